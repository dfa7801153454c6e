//! Reading: raw bytes in, Haven's owned [`Message`] out. Pure: no I/O, no clock, no panics on
//! any input. This module tree is the only place that knows mail-parser.

use crate::message::Message;

/// Why bytes are not a usable message (`haven inspect` exits 65 with this line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_attachments: usize,
    pub max_header_size: usize,
    pub max_mime_depth: usize,
}

/// Reads one raw RFC 5322 message.
pub fn read_message(raw: &[u8]) -> Result<Message, ReadError> {
    let _ = raw;
    Err(ReadError("reader not written yet".into()))
}

pub fn read_message_with(raw: &[u8], limits: &Limits) -> Result<Message, ReadError> {
    let _ = limits;
    read_message(raw)
}
