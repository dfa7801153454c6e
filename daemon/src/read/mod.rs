//! Reading: raw bytes in, Haven's owned [`Message`] out. Pure: no I/O, no clock, no panics on
//! any input. This module tree is the only place that knows mail-parser.
//!
//! # Layout
//!
//! - [`mime`]: mail-parser's borrowed tree turned into owned parts (headers, bodies, files,
//!   attached messages), with the size, depth and attachment limits enforced.
//! - [`html`]: HTML sanitised for display (ammonia) and turned into text (html2text).
//! - [`filename`]: attachment names made safe to show and to write.
//! - [`labels`]: the words mail clients use in forward headers, in every language we know.
//! - [`mailbox`]: addresses written as text ("Name <a@b>; c@d") parsed into [`Address`]es.
//! - [`fwddate`]: the dates those headers carry, in many languages and layouts.
//! - [`forward`]: inline forwards found in a body (header block, original text, note above).
//! - [`reply`]: the new text of a reply, without quoted history, signature or phone footer.
//! - [`kind`]: what kind of record the sender says it is (conversation, phone call, …).
//!
//! How a message is classified (see [`read_message_with`]): a forwarded message found inline or
//! attached makes it a [`Kind::Forward`]; otherwise quoted history under a reply subject or
//! In-Reply-To, or a reply header such as "On … wrote:", makes it a [`Kind::Reply`]; otherwise
//! it is [`Kind::New`].

pub mod filename;
pub mod forward;
pub mod fwddate;
pub mod html;
pub mod kind;
pub mod labels;
pub mod mailbox;
mod mime;
pub mod reply;

use crate::message::{Forwarded, Kind, Message};

/// Why bytes are not a usable message (`haven inspect` exits 65 with this line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Bounds on what one message may ask of the reader, so a hostile or broken message is refused
/// with a reason instead of exhausting memory or stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest raw message accepted, in bytes.
    pub max_message_size: u64,
    /// Most attachments accepted, counting those inside attached messages.
    pub max_attachments: usize,
    /// Largest header section of the top-level message, in bytes.
    pub max_header_size: usize,
    /// Deepest nesting of multiparts and attached messages.
    pub max_mime_depth: usize,
    /// The zone a forwarded date without one is read in: the school's (`school.timezone`),
    /// since staff forward from clients set to it. UTC by default.
    pub timezone: chrono_tz::Tz,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 50 * 1024 * 1024,
            max_attachments: 100,
            max_header_size: 256 * 1024,
            max_mime_depth: 20,
            timezone: chrono_tz::UTC,
        }
    }
}

/// Reads one raw RFC 5322 message with the default [`Limits`].
pub fn read_message(raw: &[u8]) -> Result<Message, ReadError> {
    read_message_with(raw, &Limits::default())
}

/// Reads one raw RFC 5322 message, refusing it when it goes over `limits`.
pub fn read_message_with(raw: &[u8], limits: &Limits) -> Result<Message, ReadError> {
    let parsed = mime::parse(raw, limits)?;
    Ok(build(parsed, raw.len() as u64, limits.timezone))
}

/// Turns the owned parts into Haven's message: classification, forward chain, note, reply text.
fn build(parsed: mime::Parsed, size: u64, timezone: chrono_tz::Tz) -> Message {
    let mime::Parsed { top, attached } = parsed;
    let text = top.text.clone();
    let html = top.html.as_deref().map(html::sanitize);
    let subject_kind = labels::subject_kind(top.subject.as_deref().unwrap_or(""));
    let has_thread_headers = !top.in_reply_to.is_empty() || !top.references.is_empty();
    let reply_signal = match subject_kind {
        labels::SubjectKind::Reply => true,
        labels::SubjectKind::Forward => false,
        labels::SubjectKind::Plain => has_thread_headers,
    };
    let context = forward::Context {
        forward_subject: subject_kind == labels::SubjectKind::Forward,
        reply_signal,
        subject: top.subject.clone(),
        sender_domain: top.from.as_ref().and_then(|a| domain_of(&a.address)),
        timezone,
    };

    let mut kind = Kind::New;
    let mut note = None;
    let mut chain: Vec<Forwarded> = Vec::new();
    let mut forwarded = None;
    let mut reply_text = None;

    if !attached.is_empty() {
        kind = Kind::Forward;
        note = non_empty(&reply::strip_footers(&text));
        for part in &attached {
            chain.push(attached_to_forwarded(part));
        }
        // Several attached side by side: the first is the one reported; a single attached message
        // may itself carry an inline forward, which then is the parent's original.
        if attached.len() == 1
            && let Some(first) = attached.first()
        {
            let inner_context = forward::Context {
                forward_subject: false,
                reply_signal: false,
                subject: first.subject.clone(),
                sender_domain: context.sender_domain.clone(),
                timezone,
            };
            if let forward::Found::Forward(inner) = forward::find(&first.text, &inner_context)
                && inner.note.is_none()
            {
                chain.extend(inner.chain);
            }
        }
        forwarded = if attached.len() == 1 { chain.last().cloned() } else { chain.first().cloned() };
    } else {
        match forward::find(&text, &context) {
            forward::Found::Forward(found) => {
                kind = Kind::Forward;
                note = found.note;
                chain = found.chain;
                forwarded = chain.last().cloned();
            }
            forward::Found::Reply => {
                kind = Kind::Reply;
                let sender = top.from.as_ref().and_then(|a| a.name.as_deref());
                reply_text = reply::reply_text_from(&text, sender);
            }
            forward::Found::Nothing => {
                note = non_empty(&text);
            }
        }
    }

    Message {
        message_id: top.message_id,
        from: top.from,
        from_shape: top.from_shape,
        to: top.to,
        cc: top.cc,
        reply_to: top.reply_to,
        subject: top.subject,
        date: top.date,
        in_reply_to: top.in_reply_to,
        references: top.references,
        headers: top.headers,
        kind,
        note,
        text,
        html,
        forwarded,
        forward_chain: chain,
        reply_text,
        attachments: top.attachments,
        size,
    }
}

/// An attached `message/rfc822` seen as a forwarded message.
fn attached_to_forwarded(part: &mime::Part) -> Forwarded {
    Forwarded {
        from: part.from.clone(),
        date: part.date,
        date_text: part.date_text.clone(),
        subject: part.subject.clone(),
        to: part.to.clone(),
        cc: part.cc.clone(),
        body: part.text.trim().to_string(),
        attached: true,
    }
}

fn domain_of(address: &str) -> Option<String> {
    address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())
}

fn non_empty(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() { None } else { Some(t.to_string()) }
}
