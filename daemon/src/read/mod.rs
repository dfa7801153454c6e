//! Reading: raw bytes in, Haven's owned [`Message`] out. Pure: no I/O, no clock, no panics on
//! any input. This module tree is the only place that knows mail-parser.

use crate::message::Message;

/// Why bytes are not a usable message (`haven inspect` exits 65 with this line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Reads one raw RFC 5322 message.
pub fn read_message(raw: &[u8]) -> Result<Message, ReadError> {
    let _ = raw;
    Err(ReadError("reader not written yet".into()))
}
