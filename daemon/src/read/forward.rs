//! Inline forwards found in a message's text: where the forwarded message starts, its header
//! block (from, date, subject, to, cc in any language the clients write), its own text, and the
//! forwarder's note above it. Forwards of forwards are followed down to the parent's original.
//!
//! Pure text in, values out. What counts as a forward depends on how sure the marker is:
//! - a forward phrase ("Begin forwarded message:", "----- Forwarded Message -----") is enough;
//! - a bare header block ("From: … Sent: … To: … Subject: …", Outlook's "____" line,
//!   "-----Original Message-----") is a forward unless the message is a reply;
//! - a reply header with the sender ("On 28/10/2021 12:46, "John Doe" <j@x> wrote:", how
//!   Outlook 2019 forwards in plain text) is a forward only under a forward subject ("FW:").

use std::sync::OnceLock;

use regex::Regex;

use super::labels::{self, Field};
use super::{fwddate, mailbox, reply};
use crate::message::{Address, Forwarded};

/// Longest header block looked at (real ones have fewer than ten lines); keeps scans linear.
const MAX_HEADER_LINES: usize = 40;

/// Most forwards followed inside one another (a longer chain is kept whole in the last body).
const MAX_CHAIN: usize = 8;

/// What the surrounding message says about its own text.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The subject starts with a forward prefix ("Fwd:", "FW:", "WG:" …).
    pub forward_subject: bool,
    /// The subject starts with a reply prefix, or In-Reply-To/References are set without a
    /// forward subject.
    pub reply_signal: bool,
    /// The message's own subject (the forwarded subject when the header block has none).
    pub subject: Option<String>,
    /// Domain of the message's sender: a forwarded message from the same domain that only passes
    /// on another forward is a colleague's hop, not the original.
    pub sender_domain: Option<String>,
    /// The zone a header-block date without one is read in (the school's).
    pub timezone: chrono_tz::Tz,
}

/// What [`find`] saw in the text.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// A forwarded message; `chain` is outermost first and never empty.
    Forward(Inline),
    /// Quoted history under a reply (or a reply header such as "On … wrote:").
    Reply,
    /// Neither: the sender's own text.
    Nothing,
}

/// An inline forward: the note above it and the chain of forwarded messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Inline {
    pub note: Option<String>,
    pub chain: Vec<Forwarded>,
}

/// Looks for a forwarded message in `text`.
pub fn find(text: &str, ctx: &Context) -> Found {
    find_depth(text, ctx, 0)
}

fn find_depth(text: &str, ctx: &Context, depth: usize) -> Found {
    let text = normalise(text);
    let lines: Vec<&str> = text.lines().collect();
    let Some(sep) = first_separator(&lines) else {
        return if reply::has_reply_header(&text) || ctx.reply_signal && reply::has_quoted_lines(&text) {
            Found::Reply
        } else {
            Found::Nothing
        };
    };
    let is_forward = match sep.strength {
        Strength::Phrase => !(ctx.reply_signal && history_before(&lines, sep.line)),
        Strength::Block => ctx.forward_subject || !ctx.reply_signal,
        Strength::ReplyHeader => ctx.forward_subject,
    };
    if !is_forward {
        return if ctx.reply_signal || matches!(sep.strength, Strength::ReplyHeader) || reply::has_reply_header(&text) {
            Found::Reply
        } else {
            Found::Nothing
        };
    }
    let note = lines.get(..sep.line).map(|l| l.join("\n")).unwrap_or_default();
    let note = reply::strip_footers(note.trim());
    let note = if note.trim().is_empty() { None } else { Some(note.trim().to_string()) };
    let mut forwarded = extract(&lines, &sep, ctx);
    let mut chain = Vec::new();
    if depth < MAX_CHAIN {
        let inner_ctx = Context {
            forward_subject: false,
            reply_signal: false,
            subject: forwarded.subject.clone(),
            sender_domain: ctx.sender_domain.clone(),
            timezone: ctx.timezone,
        };
        if let Found::Forward(inner) = find_depth(&forwarded.body, &inner_ctx, depth + 1) {
            let colleague = same_domain(forwarded.from.as_ref(), ctx.sender_domain.as_deref());
            if inner.note.is_none() || colleague {
                // Keep the whole text on the outer message; the inner one is the original.
                forwarded.body = forwarded.body.trim().to_string();
                chain.push(forwarded);
                chain.extend(inner.chain);
                return Found::Forward(Inline { note, chain });
            }
        }
    }
    chain.push(forwarded);
    Found::Forward(Inline { note, chain })
}

fn same_domain(from: Option<&Address>, domain: Option<&str>) -> bool {
    match (from.and_then(|a| a.address.rsplit_once('@')), domain) {
        (Some((_, d)), Some(domain)) => d.eq_ignore_ascii_case(domain),
        _ => false,
    }
}

/// Line endings, byte-order marks and no-break spaces made plain.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n").replace('\u{feff}', "").replace('\u{a0}', " ")
}

/// Quoted lines or a reply header before `line`: the forward marker is inside reply history.
fn history_before(lines: &[&str], line: usize) -> bool {
    lines.iter().take(line).any(|l| l.trim_start().starts_with('>') || reply::is_reply_header_line(l))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strength {
    Phrase,
    Block,
    ReplyHeader,
}

/// Where a forwarded message starts.
#[derive(Debug)]
struct Separator {
    /// Line of the marker (the note is everything above it).
    line: usize,
    strength: Strength,
    /// First line of the header block (or of the body when the header is on the marker line).
    block: usize,
    /// Header fields written on the marker line itself (Yahoo Mail, Outlook 2019 reply header).
    inline_fields: Vec<(Field, String)>,
}

/// The line with quote marks (`>`) and surrounding blanks removed.
fn bare(line: &str) -> &str {
    let mut l = line.trim_start();
    while let Some(rest) = l.strip_prefix('>') {
        l = rest.trim_start();
    }
    l.trim_end()
}

fn next_non_blank(lines: &[&str], from: usize) -> Option<usize> {
    let end = lines.len().min(from.saturating_add(MAX_HEADER_LINES));
    (from..end).find(|&j| lines.get(j).is_some_and(|l| !bare(l).is_empty()))
}

fn starts_header_block(lines: &[&str], from: usize) -> bool {
    next_non_blank(lines, from).and_then(|j| lines.get(j)).is_some_and(|l| labels::label_line(bare(l)).is_some())
}

/// "----- Phrase -----" alone on a line (the phrase may itself hold dashes).
fn dashes_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^-{2,}\s*(\S.*?\S|\S)\s*-{2,}$").ok()).as_ref()
}

/// "----- Phrase ----- rest of the line".
fn glued_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^-{2,}\s*(\S.*?)\s*-{2,}\s+(\S.*)$").ok()).as_ref()
}

fn first_separator(lines: &[&str]) -> Option<Separator> {
    for (i, line) in lines.iter().enumerate() {
        let b = bare(line);
        if b.is_empty() {
            continue;
        }
        if let Some(sep) = separator_at(lines, i, b) {
            return Some(sep);
        }
    }
    None
}

fn separator_at(lines: &[&str], i: usize, b: &str) -> Option<Separator> {
    let plain = |strength, block| Separator { line: i, strength, block, inline_fields: Vec::new() };
    // "---------- Forwarded message ---------" and "-----Original Message-----".
    if b.starts_with("--") {
        if let Some(c) = dashes_re().and_then(|re| re.captures(b)) {
            let phrase = c.get(1).map_or("", |m| m.as_str());
            if starts_header_block(lines, i + 1) && phrase.chars().count() <= 60 {
                let strength = if labels::is_forward_phrase(phrase) { Strength::Phrase } else { Strength::Block };
                return Some(plain(strength, i + 1));
            }
        }
        // Yahoo Mail: "----- Forwarded Message ----- From: …To: …Subject: …" on one line.
        if let Some(c) = glued_re().and_then(|re| re.captures(b)) {
            let phrase = c.get(1).map_or("", |m| m.as_str());
            let rest = c.get(2).map_or("", |m| m.as_str());
            // Several locales share a From label ("De:"): keep the split that finds most fields.
            let best = labels::langs_of_from(rest).map(|lang| split_glued(rest, lang)).max_by_key(|fields| fields.len());
            if let Some(fields) = best {
                let strength = if labels::is_original_phrase(phrase) { Strength::Block } else { Strength::Phrase };
                return Some(Separator { line: i, strength, block: i + 1, inline_fields: fields });
            }
        }
    }
    // Outlook on the web: a line of underscores, then the header block.
    if b.len() >= 10 && b.chars().all(|c| c == '_') && starts_header_block(lines, i + 1) {
        return Some(plain(Strength::Block, i + 1));
    }
    // "Begin forwarded message:" (Apple Mail) and "Forwarded message:" (MailMate).
    if let Some(phrase) = b.strip_suffix(':').or_else(|| b.strip_suffix('：'))
        && labels::is_forward_phrase(phrase)
    {
        return Some(plain(Strength::Phrase, i + 1));
    }
    // Outlook 2019 plain text: "On <date>, "Name" <address> wrote:".
    if let Some(fields) = reply_header_with_sender(b) {
        return Some(Separator { line: i, strength: Strength::ReplyHeader, block: i + 1, inline_fields: fields });
    }
    // A bare header block: From plus at least two other fields (new Outlook, Outlook desktop).
    if let Some((Field::From, _)) = labels::label_line(b) {
        let mut fields = Vec::new();
        for l in lines.iter().skip(i).take(MAX_HEADER_LINES) {
            match labels::label_line(bare(l)) {
                // A field seen twice is not one header block any more.
                Some((f, _)) if !fields.contains(&f) => fields.push(f),
                _ => break,
            }
        }
        let others = [Field::Date, Field::To, Field::Subject, Field::Cc].iter().filter(|f| fields.contains(f)).count();
        if others >= 2 {
            return Some(plain(Strength::Block, i));
        }
    }
    None
}

/// Splits "From: A <a@x>To: b@y Cc: …Sent: …Subject: …" at the labels of one language.
fn split_glued(text: &str, lang: &labels::Lang) -> Vec<(Field, String)> {
    let mut marks: Vec<(usize, usize, Field)> = Vec::new();
    for (field, names) in lang.fields() {
        for name in names.iter().chain(if field == Field::Cc { ["Cc", "CC"].iter() } else { [].iter() }) {
            let mut from = 0;
            while let Some(pos) = text.get(from..).and_then(|t| t.find(name)) {
                let start = from + pos;
                let after = start + name.len();
                let rest = text.get(after..).unwrap_or("");
                let colon = rest.trim_start_matches(' ');
                let label_end = if colon.starts_with(':') || colon.starts_with('：') {
                    Some(after + (rest.len() - colon.len()) + colon.chars().next().map_or(1, char::len_utf8))
                } else if field == Field::Subject && rest.starts_with(' ') {
                    // Yahoo Mail (pt) writes "Assunto Integer …" without the colon.
                    Some(after)
                } else {
                    None
                };
                if let Some(end) = label_end
                    && !marks.iter().any(|(s, e, _)| start < *e && *s < end)
                {
                    marks.push((start, end, field));
                }
                from = after;
            }
        }
    }
    marks.sort_by_key(|m| m.0);
    // Only the first mark of each field counts; later ones are inside values.
    let mut seen = Vec::new();
    marks.retain(|m| {
        if seen.contains(&m.2) {
            false
        } else {
            seen.push(m.2);
            true
        }
    });
    let mut out = Vec::new();
    for (k, (_, end, field)) in marks.iter().enumerate() {
        let stop = marks.get(k + 1).map_or(text.len(), |m| m.0);
        let value = text.get(*end..stop).unwrap_or("").trim();
        out.push((*field, value.to_string()));
    }
    out
}

/// Outlook 2019's plain-text forward header, one pattern per locale, capturing date (`d`),
/// name (`n`) and address (`a`).
fn reply_header_patterns() -> &'static [Regex] {
    static RES: OnceLock<Vec<Regex>> = OnceLock::new();
    RES.get_or_init(|| {
        const A: &str = r#"[<\[](?:mailto:)?(?P<a>[^<>\[\]\s]+@[^<>\[\]\s]+)[>\]]"#;
        let patterns = [
            format!(r#"^Dne (?P<d>.+?), (?P<n>[^,]+?)\s*{A}\s*napsal\(a\)\s*:$"#),
            format!(r#"^D\. (?P<d>.+?) skrev "(?P<n>.+?)"\s*{A}\s*:$"#),
            format!(r#"^Am (?P<d>.+?) schrieb "(?P<n>.+?)"\s*{A}\s*:$"#),
            format!(r#"^On (?P<d>.+?), "(?P<n>.+?)"\s*{A}\s*wrote\s*:$"#),
            format!(r#"^El (?P<d>.+?), "(?P<n>.+?)"\s*{A}\s*escribió\s*:$"#),
            format!(r#"^Le (?P<d>.+?), «\s*(?P<n>.+?)\s*»\s*{A}\s*a écrit\s*:$"#),
            format!(r#"^(?P<n>[^<\[]+?)\s*{A}\s*kirjoitti (?P<d>.+?)\s*:$"#),
            format!(r#"^(?P<d>.+?) időpontban (?P<n>.+?)\s*\(?{A}\)?\s*ezt írta\s*:$"#),
            format!(r#"^Il giorno (?P<d>.+?),? "(?P<n>.+?)"\s*{A}\s*ha scritto\s*:$"#),
            format!(r#"^Op (?P<d>.+?) heeft (?P<n>.+?)\s*{A}\s*geschreven\s*:$"#),
            format!(r#"^(?P<n>[^<\[]+?)\s*{A}\s*skrev følgende den (?P<d>.+?)\s*:$"#),
            format!(r#"^Dnia (?P<d>.+?) użytkownik „(?P<n>.+?)”\s*{A}\s*napisał\s*:$"#),
            format!(r#"^Dnia (?P<d>.+?),? „(?P<n>.+?)”\s*{A}\s*napisał\s*:$"#),
            format!(r#"^Em (?P<d>.+?), "(?P<n>.+?)"\s*{A}\s*escreveu\s*:$"#),
            format!(r#"^(?P<d>.+?) пользователь "(?P<n>.+?)"\s*{A}\s*написал\s*:$"#),
            format!(r#"^(?P<d>.+?) používateľ (?P<n>.+?)\s*\({A}\)\s*napísal\s*:$"#),
            format!(r#"^Den (?P<d>.+?) skrev "(?P<n>.+?)"\s*{A}\s*följande\s*:$"#),
            format!(r#"^"(?P<n>.+?)"\s*{A}, (?P<d>.+?) tarihinde şunu yazdı\s*:$"#),
        ];
        patterns.iter().filter_map(|p| Regex::new(p).ok()).collect()
    })
}

fn reply_header_with_sender(line: &str) -> Option<Vec<(Field, String)>> {
    if !line.ends_with(':') || line.len() > 400 {
        return None;
    }
    for re in reply_header_patterns() {
        if let Some(c) = re.captures(line) {
            let get = |k: &str| c.name(k).map_or("", |m| m.as_str()).trim().to_string();
            let (name, address, date) = (get("n"), get("a"), get("d"));
            let from = if name.is_empty() || name.eq_ignore_ascii_case(&address) { address } else { format!("{name} <{address}>") };
            return Some(vec![(Field::From, from), (Field::Date, date)]);
        }
    }
    None
}

/// Reads the header block and the body after `sep`.
fn extract(lines: &[&str], sep: &Separator, ctx: &Context) -> Forwarded {
    let mut fields: Vec<(Field, String)> = sep.inline_fields.clone();
    let mut body_start = sep.block;
    let quoted = lines.get(sep.line).is_some_and(|l| l.trim_start().starts_with('>'));
    if sep.inline_fields.is_empty() {
        let mut j = next_non_blank(lines, sep.block).unwrap_or(lines.len());
        let mut last: Option<Field> = None;
        while let Some(line) = lines.get(j) {
            let b = bare(line);
            if let Some((field, value)) = labels::label_line(b) {
                fields.push((field, value.to_string()));
                last = Some(field);
            } else if b.is_empty() {
                break;
            } else if matches!(last, Some(Field::To | Field::Cc | Field::From))
                && b.contains('@')
                && !b.contains(": ")
                && j > 0
                && fields.last().is_some_and(|(_, v)| v.ends_with([',', ';']) || v.is_empty() || !v.contains('@'))
            {
                // A recipient list wrapped onto the next line.
                if let Some((_, v)) = fields.last_mut() {
                    v.push(' ');
                    v.push_str(b);
                }
            } else {
                break;
            }
            j += 1;
        }
        body_start = j;
    }
    let body = body_text(lines.get(body_start..).unwrap_or(&[]), quoted);
    let first = |f: Field| fields.iter().find(|(k, _)| *k == f).map(|(_, v)| v.clone());
    let from = first(Field::From).and_then(|v| mailbox::parse_first(&v));
    let date_text = first(Field::Date).filter(|d| !d.is_empty());
    let date = date_text.as_deref().and_then(|t| fwddate::parse_in(t, ctx.timezone));
    let subject = first(Field::Subject)
        .or_else(|| if ctx.forward_subject { ctx.subject.as_deref().map(labels::strip_forward_prefixes) } else { None });
    Forwarded {
        from,
        date,
        date_text,
        subject,
        to: first(Field::To).map(|v| mailbox::parse_list(&v)).unwrap_or_default(),
        cc: first(Field::Cc).map(|v| mailbox::parse_list(&v)).unwrap_or_default(),
        body,
        attached: false,
    }
}

/// The forwarded text with the quoting its client added removed: one `>` level when the
/// forward was quoted, and Outlook 2019's four-space indent.
fn body_text(lines: &[&str], quoted: bool) -> String {
    let non_blank: Vec<&&str> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    let all_quoted = !non_blank.is_empty() && non_blank.iter().all(|l| l.starts_with('>'));
    let most_quoted = non_blank.iter().filter(|l| l.starts_with('>')).count() * 2 > non_blank.len();
    let indented = !non_blank.is_empty() && non_blank.iter().all(|l| l.starts_with("    "));
    let out: Vec<String> = lines
        .iter()
        .map(|l| {
            if quoted || all_quoted || most_quoted {
                let s = l.strip_prefix('>').map(|r| r.strip_prefix(' ').unwrap_or(r)).unwrap_or(l);
                s.to_string()
            } else if indented {
                l.get(4..).unwrap_or("").to_string()
            } else {
                (*l).to_string()
            }
        })
        .collect();
    out.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert_eq!(reply_header_patterns().len(), 18);
        assert!(dashes_re().unwrap().is_match("---------- Forwarded message ---------"));
    }

    #[test]
    fn gmail_forward_with_note() {
        let text = "Please see below.\n\n---------- Forwarded message ---------\nFrom: Ann Parent <ann@home.example>\nDate: Mon, 1 Nov 2021 at 09:00\nSubject: Worried\nTo: <teacher@school.example>\n\nHello,\nI am worried.\n";
        let Found::Forward(f) = find(text, &Context::default()) else { panic!("not a forward") };
        assert_eq!(f.note.as_deref(), Some("Please see below."));
        let fwd = f.chain.last().unwrap();
        assert_eq!(fwd.from.as_ref().map(|a| a.address.as_str()), Some("ann@home.example"));
        assert_eq!(fwd.subject.as_deref(), Some("Worried"));
        assert_eq!(fwd.body, "Hello,\nI am worried.");
        assert!(fwd.date.is_some());
    }

    #[test]
    fn yahoo_glued_header() {
        let text = "   ----- Forwarded Message ----- From: John Doe <john.doe@acme.com>To: \"b@acme.com\" <b@acme.com>Sent: Tuesday, November 2, 2021, 09:26:50 AM GMT+1Subject: Hi there\n Body text";
        let Found::Forward(f) = find(text, &Context::default()) else { panic!("not a forward") };
        let fwd = f.chain.last().unwrap();
        assert_eq!(fwd.subject.as_deref(), Some("Hi there"));
        assert_eq!(fwd.to.len(), 1);
        assert_eq!(fwd.body, "Body text");
    }
}
