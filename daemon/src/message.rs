//! Haven's own, owned message type: what the reader (`crate::read`) makes of raw bytes and what
//! every later stage (identification, rules, filing, alerts) consumes.
//!
//! It must not borrow from the raw bytes and must not depend on mail-parser: only `crate::read`
//! knows about the parser.

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

/// A mailbox: address lower-cased as written, display name decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub address: String,
    pub name: Option<String>,
}

/// How the top-level From was written: Haven files only a message whose From names one
/// mailbox, once, since a sender check of "the first address" would not be the address a mail
/// server authenticated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FromShape {
    /// `From:` header fields.
    pub headers: usize,
    /// Mailboxes named across them, members of groups included.
    pub addresses: usize,
    /// Group syntax (`Staff: a@b, c@d;`) was used.
    pub group: bool,
}

impl FromShape {
    /// At most one header naming at most one mailbox, no group: the usual shape, not worth showing.
    pub fn is_plain(&self) -> bool {
        self.headers <= 1 && self.addresses <= 1 && !self.group
    }
}

/// How the sender meant the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Carries someone else's message, inline or as an attachment.
    Forward,
    /// Answers an earlier message (alerts, triage questions): `reply_text` holds the new text.
    Reply,
    /// The sender's own note or observation.
    New,
}

/// A message carried inside another one, inline (a "Forwarded message" block) or attached
/// (`message/rfc822`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forwarded {
    pub from: Option<Address>,
    /// Parsed when the header block's date could be read (any language the reader knows).
    pub date: Option<DateTime<FixedOffset>>,
    /// The date exactly as the header block wrote it, for the record when it could not be parsed.
    pub date_text: Option<String>,
    pub subject: Option<String>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// The forwarded message's own text (HTML turned into text), without the header block.
    pub body: String,
    /// True when it came as a `message/rfc822` attachment rather than inline text.
    pub attached: bool,
}

/// A file that came with the message. `data` is the decoded content; it is never serialised.
#[derive(Clone, PartialEq, Serialize)]
pub struct Attachment {
    /// Decoded (RFC 2231, encoded words) and sanitised: no directories, no control characters.
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of `data`.
    pub sha256: String,
    /// An image shown in the body (Content-ID referenced or disposition inline), not a file the
    /// sender attached on purpose.
    pub inline: bool,
    /// `winmail.dat` / `application/ms-tnef`: kept as-is, recognised so a human can be told.
    pub tnef: bool,
    #[serde(skip)]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .field("inline", &self.inline)
            .field("tnef", &self.tnef)
            .finish()
    }
}

/// One header as received, value decoded to text (for authentication and loop checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Everything Haven needs from one received message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Without angle brackets.
    pub message_id: Option<String>,
    /// The first mailbox of the first From header; see `from_shape` for whether there were more.
    pub from: Option<Address>,
    #[serde(skip_serializing_if = "FromShape::is_plain")]
    pub from_shape: FromShape,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub subject: Option<String>,
    pub date: Option<DateTime<FixedOffset>>,
    /// Message-IDs without angle brackets.
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Every top-level header in order, topmost first.
    pub headers: Vec<Header>,
    pub kind: Kind,
    /// What the sender wrote above a forward; for a new note, its text; None when empty.
    pub note: Option<String>,
    /// The whole top-level body as readable text (HTML converted when there is no text part).
    pub text: String,
    /// The top-level HTML body sanitised with ammonia, for storage and display.
    pub html: Option<String>,
    /// The parent's original: the innermost message of a forward chain.
    pub forwarded: Option<Forwarded>,
    /// Every forwarded message found, outermost first; `forwarded` is the last of them for a
    /// chain, or the first attached message when several were attached side by side.
    pub forward_chain: Vec<Forwarded>,
    /// For a reply: the new text, without quoted history, signature or mobile footer.
    pub reply_text: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Size in bytes of the raw message.
    pub size: u64,
}

impl Message {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }

    /// When the reported event happened: the forwarded original's date, else this message's.
    pub fn occurred_at(&self) -> Option<DateTime<FixedOffset>> {
        self.forwarded.as_ref().and_then(|f| f.date).or(self.date)
    }
}
