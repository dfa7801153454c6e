//! mail-parser's borrowed message tree turned into owned parts: the top-level headers, body text
//! and HTML, the files, and every attached `message/rfc822` (read the same way).
//!
//! The limits are enforced here, before and while walking the tree, so nothing later sees a
//! message that is too big, too deep or carries too many files. Nothing here interprets the text.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use mail_parser::{HeaderName, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::{Limits, ReadError, filename, html};
use crate::message::{Address, Attachment, FromShape, Header};

/// One message read into owned values: the top-level one or an attached one.
#[derive(Debug, Default)]
pub(crate) struct Part {
    pub message_id: Option<String>,
    pub from: Option<Address>,
    pub from_shape: FromShape,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub subject: Option<String>,
    pub date: Option<DateTime<FixedOffset>>,
    pub date_text: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub headers: Vec<Header>,
    /// Text body, or the HTML body turned into text when there is no text part.
    pub text: String,
    /// The HTML body as received (not yet sanitised).
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// The top-level message and the messages attached to it (outermost first, depth first).
#[derive(Debug)]
pub(crate) struct Parsed {
    pub top: Part,
    pub attached: Vec<Part>,
}

/// Parses `raw`, refusing it with a one-line reason when it is not a usable message or goes over
/// a limit.
pub(crate) fn parse(raw: &[u8], limits: &Limits) -> Result<Parsed, ReadError> {
    let size = raw.len() as u64;
    if size == 0 {
        return Err(ReadError("the file is empty".into()));
    }
    if size > limits.max_message_size {
        return Err(ReadError(format!("message is {size} bytes, over the limit of {}", limits.max_message_size)));
    }
    let header_len = header_section_len(raw);
    if header_len > limits.max_header_size {
        return Err(ReadError(format!("message headers are {header_len} bytes, over the limit of {}", limits.max_header_size)));
    }
    if !looks_like_headers(raw) {
        return Err(ReadError("no mail headers found: not an email message".into()));
    }
    // mail-parser promises never to panic; a panic here would still only cost this message.
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .map_err(|_| ReadError("the message could not be parsed".into()))?;
    let Some(message) = parsed else {
        return Err(ReadError("no mail headers found: not an email message".into()));
    };
    let mut walker = Walker { limits, attachments: 0, attached: Vec::new() };
    let top = walker.message(&message, 0)?;
    if walker.attachments > limits.max_attachments {
        return Err(ReadError(format!("message has {} attachments, over the limit of {}", walker.attachments, limits.max_attachments)));
    }
    if top.from.is_none() && top.subject.is_none() && top.date.is_none() && top.message_id.is_none() {
        return Err(ReadError("no From, Subject, Date or Message-ID header: not an email message".into()));
    }
    Ok(Parsed { top, attached: walker.attached })
}

/// Bytes up to the blank line that ends the top-level header section (all of it when none).
fn header_section_len(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        match raw.get(i..i + 2) {
            Some(b"\n\n") => return i,
            Some(b"\n\r") if raw.get(i + 2) == Some(&b'\n') => return i,
            _ => {}
        }
        i += 1;
    }
    raw.len()
}

/// The first line must look like a header field (`Name: value`) or an mbox `From ` line.
fn looks_like_headers(raw: &[u8]) -> bool {
    let first = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    if first.starts_with(b"From ") {
        return true;
    }
    let Some(colon) = first.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0 && first.iter().take(colon).all(|&b| b.is_ascii_graphic() && b != b':')
}

struct Walker<'l> {
    limits: &'l Limits,
    attachments: usize,
    attached: Vec<Part>,
}

impl Walker<'_> {
    /// Reads one message (top-level or attached) found at MIME depth `depth`.
    fn message(&mut self, msg: &mail_parser::Message<'_>, depth: usize) -> Result<Part, ReadError> {
        let Some(root) = msg.parts.first() else {
            return Ok(Part::default());
        };
        let mut part = headers_of(root, msg.raw_message.as_ref());
        let html_cids = self.bodies(msg, &mut part);
        let mut nested = Vec::new();
        self.walk(msg, 0, depth, &html_cids, &mut part.attachments, &mut nested)?;
        // Attached messages are recorded after their parent, so the list is outermost first.
        for (child, child_depth) in nested {
            let mut read = self.message(child, child_depth)?;
            // The parent's files travel with the forward: keep them on the top-level list.
            part.attachments.append(&mut read.attachments);
            self.attached.push(read);
        }
        Ok(part)
    }

    /// Fills text and HTML bodies; returns the Content-IDs the HTML refers to.
    fn bodies(&self, msg: &mail_parser::Message<'_>, part: &mut Part) -> Vec<String> {
        let mut texts = Vec::new();
        for id in &msg.text_body {
            if let Some(PartType::Text(t)) = msg.parts.get(*id as usize).map(|p| &p.body) {
                texts.push(t.as_ref());
            }
        }
        let mut htmls = Vec::new();
        for id in &msg.html_body {
            if let Some(PartType::Html(h)) = msg.parts.get(*id as usize).map(|p| &p.body) {
                htmls.push(h.as_ref());
            }
        }
        let html = if htmls.is_empty() { None } else { Some(htmls.join("\n")) };
        part.text = if texts.is_empty() { html.as_deref().map(html::to_text).unwrap_or_default() } else { texts.join("\n") };
        part.text = normalise_newlines(&part.text);
        let cids = html.as_deref().map(html::referenced_cids).unwrap_or_default();
        part.html = html;
        cids
    }

    /// Walks the part tree from `id`, checking depth, collecting files and attached messages.
    fn walk<'m>(
        &mut self,
        msg: &'m mail_parser::Message<'m>,
        id: u32,
        depth: usize,
        cids: &[String],
        files: &mut Vec<Attachment>,
        nested: &mut Vec<(&'m mail_parser::Message<'m>, usize)>,
    ) -> Result<(), ReadError> {
        let Some(part) = msg.parts.get(id as usize) else {
            return Ok(());
        };
        match &part.body {
            PartType::Multipart(children) => {
                let depth = depth + 1;
                self.check_depth(depth)?;
                for child in children {
                    // A part never lists itself or an earlier part; guard against loops anyway.
                    if *child > id {
                        self.walk(msg, *child, depth, cids, files, nested)?;
                    }
                }
            }
            PartType::Message(inner) => {
                let depth = depth + 1;
                self.check_depth(depth)?;
                nested.push((inner, depth));
            }
            PartType::Binary(data) | PartType::InlineBinary(data) => {
                let inline_disposition = matches!(part.body, PartType::InlineBinary(_));
                self.file(part, data.as_ref(), inline_disposition, cids, files)?;
            }
            PartType::Text(t) | PartType::Html(t) => {
                let is_body = msg.text_body.contains(&id) || msg.html_body.contains(&id);
                if !is_body && msg.attachments.contains(&id) {
                    self.file(part, t.as_bytes(), false, cids, files)?;
                }
            }
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize) -> Result<(), ReadError> {
        if depth > self.limits.max_mime_depth {
            return Err(ReadError(format!("message parts are nested more than {} deep", self.limits.max_mime_depth)));
        }
        Ok(())
    }

    fn file(
        &mut self,
        part: &MessagePart<'_>,
        data: &[u8],
        inline_disposition: bool,
        cids: &[String],
        files: &mut Vec<Attachment>,
    ) -> Result<(), ReadError> {
        // Past the limit, only count: the message is refused with the full number below.
        self.attachments += 1;
        if self.attachments > self.limits.max_attachments {
            return Ok(());
        }
        let content_type = part
            .content_type()
            .map(|ct| match &ct.c_subtype {
                Some(sub) => format!("{}/{}", ct.c_type, sub),
                None => ct.c_type.to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_string())
            .to_ascii_lowercase();
        let raw_name = part.attachment_name().unwrap_or("");
        let name = filename::sanitize(raw_name);
        let content_id = part.content_id().map(|c| c.trim_matches(['<', '>', ' ']).to_string());
        let referenced = content_id.as_ref().is_some_and(|c| cids.iter().any(|r| r.eq_ignore_ascii_case(c)));
        let disposition_inline = part.content_disposition().is_some_and(|d| d.is_inline());
        let is_image = content_type.starts_with("image/");
        let inline = referenced || (is_image && (disposition_inline || inline_disposition && raw_name.is_empty()));
        let tnef =
            content_type == "application/ms-tnef" || content_type == "application/vnd.ms-tnef" || name.eq_ignore_ascii_case("winmail.dat");
        let sha256 = hex::encode(Sha256::digest(data));
        files.push(Attachment { filename: name, content_type, size: data.len() as u64, sha256, inline, tnef, data: data.to_vec() });
        Ok(())
    }
}

/// Headers, addresses, subject and date of one message's root part.
fn headers_of(root: &MessagePart<'_>, raw: &[u8]) -> Part {
    let mut part = Part::default();
    for h in &root.headers {
        let name = h.name.as_str().to_string();
        let value = match &h.value {
            // Structured values the parser keeps only in part: the header as received.
            HeaderValue::Received(_) | HeaderValue::ContentType(_) | HeaderValue::DateTime(_) | HeaderValue::Empty => raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(|b| unfold(&String::from_utf8_lossy(b)))
                .unwrap_or_else(|| header_text(&h.value)),
            other => unfold(&header_text(other)),
        };
        match &h.name {
            HeaderName::MessageId if part.message_id.is_none() => {
                part.message_id = ids(&h.value).into_iter().next();
            }
            HeaderName::From => {
                part.from_shape.headers += 1;
                if let HeaderValue::Address(a) = &h.value {
                    part.from_shape.group |= a.as_group().is_some();
                    part.from_shape.addresses += a.iter().filter(|m| m.address.as_deref().is_some_and(|s| !s.trim().is_empty())).count();
                }
                if part.from.is_none() {
                    part.from = addresses(&h.value).into_iter().next();
                }
            }
            HeaderName::To => part.to.extend(addresses(&h.value)),
            HeaderName::Cc => part.cc.extend(addresses(&h.value)),
            HeaderName::ReplyTo => part.reply_to.extend(addresses(&h.value)),
            HeaderName::Subject if part.subject.is_none() => {
                part.subject = Some(value.trim().to_string());
            }
            HeaderName::Date if part.date.is_none() => {
                if let HeaderValue::DateTime(d) = &h.value {
                    part.date = to_chrono(d);
                }
                part.date_text = Some(value.trim().to_string());
            }
            HeaderName::InReplyTo => part.in_reply_to.extend(ids(&h.value)),
            HeaderName::References => part.references.extend(ids(&h.value)),
            _ => {}
        }
        part.headers.push(Header { name, value });
    }
    part
}

/// A header's value as text: decoded text as is, structured values written back out.
fn header_text(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(", "),
        HeaderValue::Address(a) => a
            .iter()
            .map(|addr| match (&addr.name, &addr.address) {
                (Some(n), Some(a)) => format!("{n} <{a}>"),
                (None, Some(a)) => a.to_string(),
                (Some(n), None) => n.to_string(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        HeaderValue::DateTime(d) => d.to_rfc822(),
        HeaderValue::ContentType(ct) => {
            let mut s = match &ct.c_subtype {
                Some(sub) => format!("{}/{}", ct.c_type, sub),
                None => ct.c_type.to_string(),
            };
            for attr in ct.attributes.iter().flatten() {
                s.push_str(&format!("; {}=\"{}\"", attr.name, attr.value));
            }
            s
        }
        HeaderValue::Received(r) => r.from().map(|h| h.to_string()).unwrap_or_default(),
        HeaderValue::Empty => String::new(),
    }
}

/// Message-IDs without angle brackets.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let list: Vec<Cow<'_, str>> = match value {
        HeaderValue::Text(t) => vec![t.clone()],
        HeaderValue::TextList(l) => l.clone(),
        _ => Vec::new(),
    };
    list.iter().map(|s| s.trim().trim_matches(['<', '>']).trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn addresses(value: &HeaderValue<'_>) -> Vec<Address> {
    let HeaderValue::Address(list) = value else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|a| {
            let address = a.address.as_deref()?.trim().to_lowercase();
            if address.is_empty() {
                return None;
            }
            let name = a.name.as_deref().map(|n| n.trim().to_string()).filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case(&address));
            Some(Address { address, name })
        })
        .collect()
}

/// mail-parser's date as chrono's, None when it does not name a real instant.
fn to_chrono(d: &mail_parser::DateTime) -> Option<DateTime<FixedOffset>> {
    let secs = i32::from(d.tz_hour) * 3600 + i32::from(d.tz_minute) * 60;
    let offset = FixedOffset::east_opt(if d.tz_before_gmt { -secs } else { secs })?;
    let naive = NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))?.and_hms_opt(
        u32::from(d.hour),
        u32::from(d.minute),
        u32::from(d.second),
    )?;
    offset.from_local_datetime(&naive).single()
}

/// A folded header value on one line.
fn unfold(value: &str) -> String {
    value.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

fn normalise_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}
