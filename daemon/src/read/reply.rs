//! The new text of a reply: what the sender typed above the quoted history, without their
//! signature (after "-- ") or their phone's footer ("Sent from my iPhone"). This is how staff
//! record outcomes by email, so it must work for the clients they use: Outlook (desktop, web,
//! mobile), Gmail (web, Android), Apple Mail (macOS, iPhone), Thunderbird.

use std::sync::OnceLock;

use regex::Regex;

use super::labels::{self, Field};

/// Longest header block looked at (real ones have fewer than ten lines); keeps scans linear.
const MAX_HEADER_LINES: usize = 40;

/// The new text of a reply, or None when nothing new was written.
pub fn reply_text(text: &str) -> Option<String> {
    let text = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\u{a0}', " ");
    let lines: Vec<&str> = text.lines().collect();
    let cut = history_start(&lines).unwrap_or(lines.len());
    let kept = lines.get(..cut).unwrap_or(&[]).join("\n");
    let kept = strip_signature(&kept);
    let kept = strip_footers(&kept);
    let kept = kept.trim();
    if kept.is_empty() {
        None
    } else {
        Some(kept.to_string())
    }
}

/// Removes phone and app footers ("Sent from my iPhone", "Get Outlook for Android") from the end.
pub fn strip_footers(text: &str) -> String {
    let mut lines: Vec<&str> = text.trim_end().lines().collect();
    while let Some(last) = lines.last() {
        if last.trim().is_empty() || is_footer(last) {
            lines.pop();
        } else {
            break;
        }
    }
    lines.join("\n")
}

/// Whether a line of the text starts quoted history: a reply header ("On … wrote:") or a
/// forward/reply header block.
pub fn has_reply_header(text: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    (0..lines.len()).any(|i| reply_header_at(&lines, i).is_some())
}

/// Whether any line is quoted with `>`.
pub fn has_quoted_lines(text: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with('>'))
}

/// A single line such as "On Mon, 1 Nov 2021 at 10:00, Sam <s@x> wrote:" in any known language.
pub fn is_reply_header_line(line: &str) -> bool {
    let l = bare(line);
    // Cheap test first: attributions end with a colon.
    (l.ends_with(':') || l.ends_with('：'))
        && l.len() <= 400
        && wrote_re().is_some_and(|re| re.is_match(l))
        && looks_like_attribution(l)
}

fn bare(line: &str) -> &str {
    let mut l = line.trim_start();
    while let Some(rest) = l.strip_prefix('>') {
        l = rest.trim_start();
    }
    l.trim_end()
}

/// Ends with a "wrote:" verb in one of the languages staff and parents write in.
fn wrote_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)(wrote|writes|schrieb|schreef|a écrit|escribió|escreveu|ha scritto|scrisse|skrev|skrev følgende|kirjoitti|napisał\(a\)|napisała|napisał|napsal\(a\)|napsal|napísal|írta|ezt írta|написал\(а\)|написал|написала|написав|yazdı|šalje|wrote\s+on).{0,200}[:：]\s*$",
        )
        .ok()
    })
    .as_ref()
}

/// An attribution names someone: an address, a date-like number or a quoted name.
fn looks_like_attribution(line: &str) -> bool {
    line.contains('@') || line.chars().any(|c| c.is_ascii_digit()) || line.contains('"')
}

/// The line where quoted history starts, if any.
fn history_start(lines: &[&str]) -> Option<usize> {
    // rest_is_history[k]: from line k on there are only quotes, blanks, footers and signature.
    let mut rest_is_history = vec![true; lines.len() + 1];
    for k in (0..lines.len()).rev() {
        let l = lines.get(k).copied().unwrap_or("");
        let ok = l.trim().is_empty()
            || l.trim_start().starts_with('>')
            || is_footer(l)
            || is_signature_line(l);
        let next = rest_is_history.get(k + 1).copied().unwrap_or(true);
        if let Some(slot) = rest_is_history.get_mut(k) {
            *slot = ok && next;
        }
    }
    (0..lines.len()).find(|&i| {
        reply_header_at(lines, i).is_some()
            || is_quote_start(lines, i, rest_is_history.get(i).copied().unwrap_or(false))
    })
}

/// A reply header starting at line `i` (possibly wrapped over two or three lines, as Gmail does).
fn reply_header_at(lines: &[&str], i: usize) -> Option<usize> {
    let line = lines.get(i)?;
    let b = bare(line);
    if b.is_empty() {
        return None;
    }
    if is_reply_header_line(b) {
        return Some(i);
    }
    // Gmail wraps "On Wed, Oct 27, 2021 at 9:31 AM John Doe <j@x>\nwrote:".
    if b.len() < 300 && b.chars().any(|c| c.is_ascii_digit()) {
        let mut joined = b.to_string();
        for k in 1..=2 {
            let Some(next) = lines.get(i + k) else { break };
            let nb = bare(next);
            if nb.is_empty() {
                break;
            }
            joined.push(' ');
            joined.push_str(nb);
            if is_reply_header_line(&joined) && starts_like_attribution(b) {
                return Some(i);
            }
        }
    }
    // Outlook: a header block (From/Sent/To/Subject), under a rule line or not.
    if header_block_at(lines, i) {
        return Some(i);
    }
    None
}

/// First words of attribution lines ("On", "Am", "Le" …), so a wrapped paragraph that happens to
/// end in "wrote:" two lines later is not taken for one.
fn starts_like_attribution(line: &str) -> bool {
    const STARTS: [&str; 20] = [
        "on ", "am ", "le ", "el ", "il ", "op ", "em ", "den ", "dne ", "dnia ", "d. ", "w dniu ",
        "в ", "у ", "tanggal ", "pada ", "vào ", "la ", "i ", "og ",
    ];
    let l = line.to_lowercase();
    STARTS.iter().any(|s| l.starts_with(s)) || l.contains('@')
}

/// "From:" and at least two other header labels on the following lines, or an Outlook rule
/// ("_____" / "-----Original Message-----") followed by a header block.
fn header_block_at(lines: &[&str], i: usize) -> bool {
    let Some(line) = lines.get(i) else {
        return false;
    };
    let b = bare(line);
    let rule = (b.len() >= 10 && b.chars().all(|c| c == '_'))
        || (b.starts_with("--") && b.ends_with("--") && {
            let phrase = b.trim_matches('-').trim();
            labels::is_original_phrase(phrase) || labels::is_forward_phrase(phrase)
        });
    if rule {
        let end = lines.len().min(i + 1 + MAX_HEADER_LINES);
        let next = (i + 1..end).find(|&j| lines.get(j).is_some_and(|l| !bare(l).is_empty()));
        return next.is_some_and(|j| {
            lines
                .get(j)
                .is_some_and(|l| labels::label_line(bare(l)).is_some())
        });
    }
    if let Some(phrase) = b.strip_suffix(':')
        && labels::is_forward_phrase(phrase)
    {
        return true;
    }
    if !matches!(labels::label_line(b), Some((Field::From, _))) {
        return false;
    }
    let mut fields = Vec::new();
    for l in lines.iter().skip(i).take(MAX_HEADER_LINES) {
        match labels::label_line(bare(l)) {
            // A field seen twice is not one header block any more.
            Some((f, _)) if !fields.contains(&f) => fields.push(f),
            _ => break,
        }
    }
    [Field::Date, Field::To, Field::Subject, Field::Cc]
        .iter()
        .filter(|f| fields.contains(f))
        .count()
        >= 2
}

/// A `>`-quoted line that starts a block of quoted lines: two in a row, or only history after.
fn is_quote_start(lines: &[&str], i: usize, rest_is_history: bool) -> bool {
    let quoted = |k: usize| {
        lines
            .get(k)
            .is_some_and(|l| l.trim_start().starts_with('>'))
    };
    quoted(i) && (rest_is_history || quoted(i + 1))
}

/// "-- " on its own line starts a signature (RFC 3676); "--" alone is how many clients type it.
fn is_signature_line(line: &str) -> bool {
    line == "-- " || line == "--" || line.trim_end() == "--"
}

fn strip_signature(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    match lines.iter().position(|l| is_signature_line(l)) {
        Some(pos) => lines.get(..pos).unwrap_or(&[]).join("\n"),
        None => text.to_string(),
    }
}

/// A phone or app footer line.
pub fn is_footer(line: &str) -> bool {
    let l = line.trim().to_lowercase();
    if l.is_empty() || l.len() > 120 {
        return false;
    }
    const STARTS: [&str; 26] = [
        "sent from my ",
        "sent from outlook",
        "sent from mail for windows",
        "sent from yahoo mail",
        "sent from the all-new aol",
        "sent from samsung",
        "sent from gmail",
        "sent with ",
        "sent via ",
        "get outlook for ",
        "sent from outlook for ",
        "von meinem ",
        "gesendet von ",
        "envoyé de mon ",
        "envoyé depuis ",
        "enviado desde mi ",
        "enviado do meu ",
        "inviato da ",
        "verstuurd vanaf mijn ",
        "verzonden vanaf mijn ",
        "verzonden met ",
        "sendt fra min ",
        "skickat från min ",
        "lähetetty ",
        "wysłane z ",
        "odesláno z ",
    ];
    STARTS.iter().any(|s| l.starts_with(s))
        || l == "sent from my iphone"
        || l == "sent from my ipad"
}

#[cfg(test)]
mod tests {
    use super::reply_text;

    #[test]
    fn gmail_reply() {
        let t = "Outcome: parents spoken to.\n\nOn Mon, 1 Nov 2021 at 10:00, Haven <haven@school.example> wrote:\n> Incident 12 needs an outcome.\n";
        assert_eq!(
            reply_text(t).as_deref(),
            Some("Outcome: parents spoken to.")
        );
    }

    #[test]
    fn wrapped_gmail_header() {
        let t = "Outcome: done\n\nOn Wed, Oct 27, 2021 at 9:31 AM Haven <haven@school.example>\nwrote:\n\n> old\n";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: done"));
    }

    #[test]
    fn iphone_footer_and_signature() {
        let t = "Outcome: referred to CSC\n\nSent from my iPhone\n\n> On 1 Nov 2021, at 10:00, Haven <h@x.org> wrote:\n> old";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: referred to CSC"));
        let t = "Outcome: closed\n-- \nSam Teacher\nHead of Year";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: closed"));
    }

    #[test]
    fn outlook_reply() {
        let t = "Outcome: monitored\n\n________________________________\nFrom: Haven <haven@school.example>\nSent: 01 November 2021 10:00\nTo: Sam <s@school.example>\nSubject: Incident 12\n\nold text";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: monitored"));
        let t = "Outcome: monitored\n\n-----Original Message-----\nFrom: Haven <haven@school.example>\nSent: 01 November 2021 10:00\n";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: monitored"));
    }

    #[test]
    fn nothing_new() {
        assert_eq!(reply_text("> only quotes\n> here"), None);
    }
}
