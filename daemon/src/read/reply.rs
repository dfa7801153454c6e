//! The new text of a reply: what the sender typed above the quoted history, without their
//! signature or their phone's footer ("Sent from my iPhone"). This is how staff record outcomes
//! by email, so it must work for the clients they use: Outlook (desktop, web, mobile), Gmail
//! (web, Android), Apple Mail (macOS, iPhone), Thunderbird.
//!
//! A signature is what follows "-- " (RFC 3676), or a closing block at the end: a short
//! sign-off ("Thanks", "Kind regards, Dee"), or the sender's name, followed by at most a few
//! short lines of name, job title and contact details. Only the reply text loses it; the
//! message's full text is kept as received.

use std::sync::OnceLock;

use regex::Regex;

use super::labels::{self, Field};

/// Longest header block looked at (real ones have fewer than ten lines); keeps scans linear.
const MAX_HEADER_LINES: usize = 40;

/// The new text of a reply, or None when nothing new was written.
pub fn reply_text(text: &str) -> Option<String> {
    reply_text_from(text, None)
}

/// The new text of a reply from `sender` (the From display name, when known: a closing line
/// that is the sender's name is a sign-off even with no job title under it).
pub fn reply_text_from(text: &str, sender: Option<&str>) -> Option<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n").replace('\u{a0}', " ");
    let lines: Vec<&str> = text.lines().collect();
    let kept = new_lines(&lines).join("\n");
    let kept = strip_signature(&kept);
    let kept = strip_footers(&kept);
    let kept = strip_disclaimers(&kept);
    let kept = strip_closing(&kept, sender);
    let kept = strip_footers(&kept);
    let kept = kept.trim();
    if kept.is_empty() { None } else { Some(kept.to_string()) }
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
    (l.ends_with(':') || l.ends_with('：')) && l.len() <= 400 && wrote_re().is_some_and(|re| re.is_match(l)) && looks_like_attribution(l)
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

/// The lines written new, wherever they are: above the quoted history (top-posted), below it
/// (bottom-posted, as Thunderbird and many phones can send), or between quoted passages
/// (interleaved answers). A `>` quote, with the "On … wrote:" line that introduces it, is
/// left out and leaves a blank line; history that is not `>`-quoted (Outlook's header block,
/// an attribution with unquoted text under it) ends the new text.
fn new_lines<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    let quoted = |k: usize| lines.get(k).is_some_and(|l| l.trim_start().starts_with('>'));
    let mut out: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if quoted(i) {
            while quoted(i) {
                i += 1;
            }
            out.push("");
            continue;
        }
        if let Some(span) = attribution_span(lines, i) {
            let next = (i + span..lines.len()).find(|&k| lines.get(k).is_some_and(|l| !l.trim().is_empty()));
            match next {
                Some(k) if quoted(k) => {
                    i = k;
                    continue;
                }
                _ => break,
            }
        }
        if header_block_at(lines, i) {
            break;
        }
        if let Some(l) = lines.get(i) {
            out.push(l);
        }
        i += 1;
    }
    // Blank runs left where quotes were collapse to one blank line.
    let mut kept: Vec<&str> = Vec::with_capacity(out.len());
    for l in out {
        if l.trim().is_empty() && kept.last().is_none_or(|p| p.trim().is_empty()) {
            continue;
        }
        kept.push(l);
    }
    kept
}

/// How many lines a reply attribution ("On … wrote:", wrapped over up to three lines as Gmail
/// does) starting at line `i` takes, if one does.
fn attribution_span(lines: &[&str], i: usize) -> Option<usize> {
    let b = bare(lines.get(i)?);
    if b.is_empty() {
        return None;
    }
    if is_reply_header_line(b) {
        return Some(1);
    }
    if b.len() < 300 && b.chars().any(|c| c.is_ascii_digit()) && starts_like_attribution(b) {
        let mut joined = b.to_string();
        for k in 1..=2 {
            let Some(next) = lines.get(i + k) else { break };
            let nb = bare(next);
            if nb.is_empty() {
                break;
            }
            joined.push(' ');
            joined.push_str(nb);
            if is_reply_header_line(&joined) {
                return Some(k + 1);
            }
        }
    }
    None
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
        "on ", "am ", "le ", "el ", "il ", "op ", "em ", "den ", "dne ", "dnia ", "d. ", "w dniu ", "в ", "у ", "tanggal ", "pada ",
        "vào ", "la ", "i ", "og ",
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
        return next.is_some_and(|j| lines.get(j).is_some_and(|l| labels::label_line(bare(l)).is_some()));
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
    [Field::Date, Field::To, Field::Subject, Field::Cc].iter().filter(|f| fields.contains(f)).count() >= 2
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

/// Removes the confidentiality and "consider the environment" paragraphs schools' mail servers
/// and signatures put at the end.
fn strip_disclaimers(text: &str) -> String {
    const OPENINGS: [&str; 13] = [
        "this email",
        "this e-mail",
        "this message",
        "the information in this",
        "the information contained",
        "confidentiality",
        "disclaimer",
        "important: this",
        "please consider the environment",
        "please think of the environment",
        "think before you print",
        "privacy notice",
        "any views or opinions",
    ];
    let mut lines: Vec<&str> = text.trim_end().lines().collect();
    loop {
        let start = lines.iter().rposition(|l| l.trim().is_empty()).map_or(0, |b| b + 1);
        let Some(first) = lines.get(start) else { break };
        let first = first.trim().to_lowercase();
        if start == 0 || !OPENINGS.iter().any(|o| first.starts_with(o)) {
            break;
        }
        lines.truncate(start);
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
    }
    lines.join("\n")
}

/// Most non-blank lines a closing block (sign-off, name, title, contacts) may have.
const MAX_CLOSING_LINES: usize = 8;

/// Removes a closing block from the end: from a sign-off line, or from a line with the
/// sender's name, or from a name line over job-title or contact lines, to the end. The
/// earliest such start wins; text before it must remain.
fn strip_closing(text: &str, sender: Option<&str>) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let non_blank: Vec<usize> = (0..lines.len()).filter(|&i| lines.get(i).is_some_and(|l| !l.trim().is_empty())).collect();
    let first_text = non_blank.first().copied().unwrap_or(0);
    let window = non_blank.len().saturating_sub(MAX_CLOSING_LINES);
    for &start in non_blank.iter().skip(window) {
        if start <= first_text {
            continue;
        }
        let rest = lines.get(start..).unwrap_or(&[]);
        let tail: Vec<&str> = rest.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
        if tail.iter().any(|l| l.chars().count() > 100) {
            continue;
        }
        let Some(head) = tail.first() else { continue };
        let after_blank = start > 0 && lines.get(start - 1).is_some_and(|l| l.trim().is_empty());
        let closing = is_sign_off(head)
            || (sender.is_some_and(|s| is_senders_name(head, s)) && tail.iter().skip(1).all(|l| is_signature_detail(l) || is_name_line(l)))
            || (after_blank
                && is_name_line(head)
                && tail.len() >= 2
                && tail.iter().skip(1).all(|l| is_signature_detail(l) || is_name_line(l))
                && tail.iter().skip(1).any(|l| is_contact_line(l)));
        if closing {
            return lines.get(..start).unwrap_or(&[]).join("\n").trim_end().to_string();
        }
    }
    text.trim_end().to_string()
}

/// "Thanks", "Kind regards,", "Many thanks, Dee", "Best wishes!".
fn is_sign_off(line: &str) -> bool {
    const SIGN_OFFS: [&str; 27] = [
        "thanks",
        "thank you",
        "many thanks",
        "thanks again",
        "thanks so much",
        "thank you very much",
        "with thanks",
        "best",
        "best wishes",
        "all best wishes",
        "all the best",
        "kind regards",
        "kindest regards",
        "regards",
        "best regards",
        "warm regards",
        "warmest regards",
        "many regards",
        "with best wishes",
        "yours sincerely",
        "yours faithfully",
        "sincerely",
        "cheers",
        "speak soon",
        "take care",
        "thx",
        "ta",
    ];
    let l = line.trim().to_lowercase();
    if l.chars().count() > 40 {
        return false;
    }
    let phrase = l.trim_end_matches(['.', ',', '!', ' ']);
    let original = line.trim();
    SIGN_OFFS.iter().any(|s| {
        phrase == *s
            || (phrase.starts_with(s) && {
                // "Thanks, Dee" / "Regards - Dee": a sign-off and a short capitalised name on
                // one line ("Best to wait" is not one).
                let rest = original.get(s.len()..).unwrap_or("");
                let name = rest.trim_start_matches([',', ' ', '-', '–']).trim_end_matches(['.', '!']);
                rest.starts_with([',', ' ', '-'])
                    && !name.is_empty()
                    && name.split_whitespace().count() <= 3
                    && name.split_whitespace().all(|w| w.chars().next().is_some_and(char::is_uppercase))
                    && name.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '.' | '-' | '\''))
            })
    })
}

/// The sender's display name, or its first word, alone on the line ("Dee", "Dee Lead").
fn is_senders_name(line: &str, sender: &str) -> bool {
    let l = line.trim().trim_end_matches([',', '.']).to_lowercase();
    let s = sender.trim().trim_matches('"').to_lowercase();
    if l.is_empty() || s.is_empty() {
        return false;
    }
    l == s || s.split_whitespace().next().is_some_and(|first| first == l)
}

/// One to four capitalised words ("Dee", "Mrs S. Teacher", "Dee Lead | DSL" is not one).
fn is_name_line(line: &str) -> bool {
    let l = line.trim().trim_end_matches(',');
    let words: Vec<&str> = l.split_whitespace().collect();
    !words.is_empty()
        && words.len() <= 4
        && l.chars().count() <= 40
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_uppercase) && w.chars().all(|c| c.is_alphabetic() || matches!(c, '.' | '-' | '\''))
        })
}

/// A job title, school or contact line of a signature.
fn is_signature_detail(line: &str) -> bool {
    const WORDS: [&str; 40] = [
        "head",
        "headteacher",
        "teacher",
        "lead",
        "leader",
        "officer",
        "dsl",
        "ddsl",
        "deputy",
        "designated",
        "safeguarding",
        "manager",
        "assistant",
        "coordinator",
        "co-ordinator",
        "senco",
        "principal",
        "pastoral",
        "tutor",
        "year",
        "department",
        "school",
        "academy",
        "college",
        "trust",
        "mentor",
        "administrator",
        "secretary",
        "welfare",
        "attendance",
        "inclusion",
        "learning",
        "support",
        "director",
        "governor",
        "tel",
        "phone",
        "mobile",
        "ext",
        "email",
    ];
    let l = line.trim().to_lowercase();
    if is_contact_line(line) {
        return true;
    }
    // A title or a school's name is written like one: capitalised, a few words, no sentence.
    let titled = line.trim().chars().find(|c| c.is_alphabetic()).is_some_and(char::is_uppercase)
        && line.split_whitespace().count() <= 8
        && !line.trim_end().ends_with(['.', '?', '!']);
    titled && l.split(|c: char| !c.is_alphanumeric() && c != '-').any(|w| WORDS.contains(&w))
}

/// A signature's contact line: an address, a web site, a phone number, or `|`-separated parts.
fn is_contact_line(line: &str) -> bool {
    let l = line.trim().to_lowercase();
    l.contains('@') || l.contains("www.") || l.contains("http") || l.contains('|') || l.chars().filter(char::is_ascii_digit).count() >= 7
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
    STARTS.iter().any(|s| l.starts_with(s)) || l == "sent from my iphone" || l == "sent from my ipad"
}

#[cfg(test)]
mod tests {
    use super::reply_text;

    #[test]
    fn gmail_reply() {
        let t = "Outcome: parents spoken to.\n\nOn Mon, 1 Nov 2021 at 10:00, Haven <haven@school.example> wrote:\n> Incident 12 needs an outcome.\n";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: parents spoken to."));
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
    fn closing_blocks_are_not_the_outcome() {
        let cases = [
            // Outlook: first name, then a signature with title and phone.
            ("Outcome: met mum.\n\nDee\n\nDee Lead | Designated Safeguarding Lead\nExample Academy | 01234 567890", None),
            // Sign-off, name, job title.
            ("Outcome: met mum.\n\nKind regards,\nSam Teacher\nHead of Year 9", None),
            ("Outcome: met mum.\nThanks\nSam", None),
            ("Outcome: met mum.\n\nMany thanks, Dee", None),
            // A typical school signature without a sign-off.
            (
                "Outcome: met mum.\n\nMrs S. Teacher\nAssistant Head (Pastoral)\nEaton Community School\nTel: 01234 567 890 ext 212\nwww.eaton.example",
                None,
            ),
            // Apple Mail: the sender's name alone.
            ("Outcome: met mum.\n\nDee", Some("Dee Lead")),
            ("Outcome: met mum.\n\nBest wishes\n\nSam\n\nSent from my iPad", None),
        ];
        for (text, sender) in cases {
            assert_eq!(super::reply_text_from(text, sender).as_deref(), Some("Outcome: met mum."), "for {text:?}");
        }
    }

    #[test]
    fn outcome_words_are_kept() {
        // Not closings: a name that is part of the outcome, a last line that is content.
        for text in [
            "Outcome: spoke to\nJane Smith",
            "Outcome: referred to CSC.\n\nMum is aware and agrees.",
            "Outcome: best to wait for the meeting on Friday.",
            "Outcome: spoke to the family.\n\nFollow-up\nwith the school nurse next week at 10:00",
            "Outcome: referred.\n\nJane Smith\nYear 7 tutor informed",
            "Pupil: Jane Smith\n\nLeo Smith\nYear 7",
            "Outcome: referred.\nBest to wait for CSC",
            "Outcome: referred.\n\nThanks to the nurse for her help",
        ] {
            assert_eq!(super::reply_text_from(text, Some("Dee Lead")).as_deref(), Some(text), "for {text:?}");
        }
    }

    #[test]
    fn bottom_posted_and_interleaved_replies() {
        // Thunderbird bottom-posting: the attribution and quote first, the new text below.
        let t = "On 01/11/2021 16:00, Haven wrote:\n> Incident 12 needs an outcome.\n> Reply with Outcome:.\n\nOutcome: mum spoken to, NFA.\n\n-- \nSam Teacher\nHead of Year 9\n";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: mum spoken to, NFA."));
        // A wrapped Gmail attribution above the quote, text under it.
        let t = "On Mon, 1 Nov 2021 at 16:00 Haven <haven@school.example>\nwrote:\n\n> Incident 12 needs an outcome.\n\nOutcome: referred to CSC\n\nSent from my Galaxy";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: referred to CSC"));
        // Interleaved: answers between the quoted questions.
        let t = "> Incident 12 needs an outcome.\nOutcome: spoke to Jane.\n> Please say who was told.\nMum and the form tutor were told.\n> Thanks\n";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: spoke to Jane.\n\nMum and the form tutor were told."));
        // Above and below: both kept, the quote between left out.
        let t = "Outcome: monitoring.\n\n> Incident 12 needs an outcome.\n> by Wednesday\n\nReview on Friday.\n";
        assert_eq!(reply_text(t).as_deref(), Some("Outcome: monitoring.\n\nReview on Friday."));
    }

    #[test]
    fn nothing_new() {
        assert_eq!(reply_text("> only quotes\n> here"), None);
    }
}
