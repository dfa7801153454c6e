//! What kind of record a message is: a direct conversation, a phone call, an observation or an
//! email. Staff say it with a `Kind:` line or with the usual opening ("Direct conversation
//! with…", "Phone call with…"); a forwarded message is an email. Pure: reads the message only,
//! never the store or the clock, and never echoes the text it reads.

use crate::message::{Kind, Message};
use serde::Serialize;

/// The kinds of record the safeguarding policy asks staff to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A conversation with the pupil or someone else, in person.
    Conversation,
    PhoneCall,
    Observation,
    /// A message someone wrote (a forwarded email, a staff reply quoting a parent).
    Email,
}

impl RecordKind {
    /// As stored (`incidents.record_kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Conversation => "conversation",
            RecordKind::PhoneCall => "phone_call",
            RecordKind::Observation => "observation",
            RecordKind::Email => "email",
        }
    }
}

/// The words a stored kind is shown with ("phone_call" → "phone call"); a follow-up (`reply`) is
/// "follow-up".
pub fn kind_label(stored: &str) -> &str {
    match stored {
        "conversation" => "direct conversation",
        "phone_call" => "phone call",
        "reply" => "follow-up",
        other => other,
    }
}

/// Where the kind was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KindSource {
    /// A `Kind:` line.
    KindLine,
    /// The first words of the note ("Phone call with…").
    Opening,
    /// The message carries someone else's message.
    Forward,
    /// Nothing said: a member of staff's own note is an observation.
    Default,
}

/// What [`read_record_kind`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindReading {
    pub kind: RecordKind,
    pub source: KindSource,
    /// A `Kind:` line whose value names no kind: the record keeps the kind read otherwise, and
    /// this says why, for the message's recorded reason (the value itself is not repeated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The message sent to staff whose `Kind:` line names nothing Haven knows.
pub const UNKNOWN_KIND: &str = "the Kind: line names no kind Haven knows (direct conversation, phone call, observation, email)";

/// Reads the kind of record `msg` is: a `Kind:` line in the sender's own words wins, then a
/// forward is an email, then the opening words, else an observation.
pub fn read_record_kind(msg: &Message) -> KindReading {
    let own = match msg.kind {
        Kind::Reply => msg.reply_text.as_deref(),
        Kind::Forward | Kind::New => msg.note.as_deref(),
    };
    // A reply from a member of staff that Haven files (not an answer to an alert, which the
    // pipeline reads apart) carries the message it quotes: correspondence, an email.
    let forwarded = msg.kind != Kind::New || msg.forwarded.is_some();
    read_kind_of_text(own.unwrap_or(""), forwarded)
}

/// [`read_record_kind`] on the sender's own text; `forwarded` when it carries another message.
pub fn read_kind_of_text(own: &str, forwarded: bool) -> KindReading {
    let mut refused = None;
    if let Some(value) = kind_line(own) {
        match parse_kind_value(value) {
            Some(kind) => return KindReading { kind, source: KindSource::KindLine, refused: None },
            None => refused = Some(UNKNOWN_KIND.to_string()),
        }
    }
    let (kind, source) = if forwarded {
        (RecordKind::Email, KindSource::Forward)
    } else if let Some(kind) = opening_kind(own) {
        (kind, KindSource::Opening)
    } else {
        (RecordKind::Observation, KindSource::Default)
    };
    KindReading { kind, source, refused }
}

/// The value of the first `Kind:` line among the marker lines at the top (`Pupil:`, `Category:`
/// and such) or anywhere before the first blank line after them.
fn kind_line(text: &str) -> Option<&str> {
    text.lines().take(12).find_map(|l| {
        let (key, value) = l.trim().split_once(':')?;
        let key = key.trim();
        (key.eq_ignore_ascii_case("kind") || key.eq_ignore_ascii_case("record kind") || key.eq_ignore_ascii_case("type of record"))
            .then_some(value.trim())
    })
}

/// "Phone call", "phone-call", "Telephone", "Direct conversation", "E-mail", "observation."…
pub fn parse_kind_value(value: &str) -> Option<RecordKind> {
    let v: String = value
        .trim()
        .trim_end_matches(['.', ';', ','])
        .to_lowercase()
        .replace(['-', '_'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match v.as_str() {
        "direct conversation"
        | "conversation"
        | "in person conversation"
        | "face to face"
        | "face to face conversation"
        | "in person"
        | "disclosure"
        | "verbal disclosure"
        | "meeting" => Some(RecordKind::Conversation),
        "phone call" | "phone" | "telephone" | "telephone call" | "call" | "phone conversation" | "telephone conversation" => {
            Some(RecordKind::PhoneCall)
        }
        "observation" | "observed" | "observations" => Some(RecordKind::Observation),
        "email" | "e mail" | "mail" => Some(RecordKind::Email),
        _ => None,
    }
}

/// The kind the first line of the note names by its opening words, after any marker lines
/// (`Pupil: …`, `Category: …`).
fn opening_kind(text: &str) -> Option<RecordKind> {
    let first = text.lines().map(str::trim).filter(|l| !l.is_empty()).find(|l| !is_marker_line(l))?.to_lowercase().replace('-', " ");
    const OPENINGS: &[(&str, RecordKind)] = &[
        ("direct conversation", RecordKind::Conversation),
        ("conversation with", RecordKind::Conversation),
        ("face to face conversation", RecordKind::Conversation),
        ("phone call", RecordKind::PhoneCall),
        ("telephone call", RecordKind::PhoneCall),
        ("telephone conversation", RecordKind::PhoneCall),
        ("phone conversation", RecordKind::PhoneCall),
        ("call with", RecordKind::PhoneCall),
        ("call from", RecordKind::PhoneCall),
        ("call to", RecordKind::PhoneCall),
        ("rang ", RecordKind::PhoneCall),
        ("phoned ", RecordKind::PhoneCall),
        ("observation", RecordKind::Observation),
        ("observed", RecordKind::Observation),
        ("email from", RecordKind::Email),
        ("e mail from", RecordKind::Email),
    ];
    OPENINGS.iter().find(|(words, _)| first.starts_with(words)).map(|(_, k)| *k)
}

/// `Pupil: …`, `Witness: …`, `Category: …`: a short key of letters and spaces, then a colon.
fn is_marker_line(line: &str) -> bool {
    let Some((key, _)) = line.split_once(':') else { return false };
    let key = key.trim();
    !key.is_empty()
        && key.len() <= 20
        && key.chars().all(|c| c.is_alphabetic() || c == ' ')
        && !matches!(key.to_lowercase().as_str(), "observation" | "phone call" | "direct conversation")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> (RecordKind, KindSource) {
        let r = read_kind_of_text(text, false);
        (r.kind, r.source)
    }

    #[test]
    fn kind_line_wins_in_any_spelling() {
        for (text, want) in [
            ("Pupil: Jane Smith\nKind: phone call\n\nMum rang.", RecordKind::PhoneCall),
            ("kind: Direct conversation\nShe told me at break.", RecordKind::Conversation),
            ("KIND: Telephone\n", RecordKind::PhoneCall),
            ("Kind: observation.\nSeen crying.", RecordKind::Observation),
            ("Kind: e-mail\nParent wrote to me.", RecordKind::Email),
            ("Kind: phone_call", RecordKind::PhoneCall),
        ] {
            assert_eq!(kind(text), (want, KindSource::KindLine), "{text:?}");
        }
    }

    #[test]
    fn kind_line_beats_a_forward_and_an_opening() {
        let r = read_kind_of_text("Kind: phone call\nPhone call with dad, then he sent this.", true);
        assert_eq!((r.kind, r.source), (RecordKind::PhoneCall, KindSource::KindLine));
        let r = read_kind_of_text("Kind: observation\nPhone call with mum first.", false);
        assert_eq!(r.kind, RecordKind::Observation);
    }

    #[test]
    fn openings_after_marker_lines() {
        for (text, want) in [
            ("Direct conversation with Amira at lunch.", RecordKind::Conversation),
            ("Pupil: Amira Khan\nCategory: welfare\n\nPhone call with mum at 4pm.", RecordKind::PhoneCall),
            ("Telephone call from the social worker.", RecordKind::PhoneCall),
            ("Observation: limping in PE.", RecordKind::Observation),
            ("Phone-call with grandad.", RecordKind::PhoneCall),
        ] {
            assert_eq!(kind(text), (want, KindSource::Opening), "{text:?}");
        }
    }

    #[test]
    fn nothing_said_is_an_observation_and_a_forward_an_email() {
        assert_eq!(kind("Seemed low today; I will keep an eye on her."), (RecordKind::Observation, KindSource::Default));
        // Words later in the note do not count: only the opening does.
        assert_eq!(kind("Seemed low. Later a phone call with mum."), (RecordKind::Observation, KindSource::Default));
        let r = read_kind_of_text("Phone call with mum after she sent this.", true);
        assert_eq!((r.kind, r.source), (RecordKind::Email, KindSource::Forward));
        assert_eq!(kind(""), (RecordKind::Observation, KindSource::Default));
        // "Spoke to…" does not say whether in person or by phone.
        assert_eq!(kind("Spoke to mum after school."), (RecordKind::Observation, KindSource::Default));
    }

    #[test]
    fn an_unknown_kind_line_is_refused_with_a_reason_and_loses_nothing() {
        let r = read_kind_of_text("Kind: carrier pigeon\nDirect conversation with Tom.", false);
        assert_eq!((r.kind, r.source), (RecordKind::Conversation, KindSource::Opening));
        let why = r.refused.expect("a reason");
        assert!(why.contains("direct conversation, phone call, observation, email"), "{why}");
        assert!(!why.contains("pigeon"), "the reason does not repeat the text: {why}");
    }

    #[test]
    fn labels() {
        assert_eq!(kind_label("phone_call"), "phone call");
        assert_eq!(kind_label("conversation"), "direct conversation");
        assert_eq!(kind_label("reply"), "follow-up");
        assert_eq!(kind_label("email"), "email");
    }
}
