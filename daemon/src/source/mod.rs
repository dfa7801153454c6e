//! Where messages come from (an IMAP mailbox, a local Maildir, files on the command line) and
//! the contract between a source and the filing pipeline.
//!
//! A source hands batches of [`Incoming`] messages to a [`Sink`]; only after the sink has
//! committed them does the source move each one to where its [`Disposition`] says. A source
//! never deletes or moves a message the sink has not committed; only a disposal deletes
//! messages, and only those whose records it destroyed (`imap::delete_messages`,
//! `maildir::delete_messages`).

pub(crate) mod backoff;
pub mod imap;
pub mod maildir;

use std::path::PathBuf;

/// Where one message was found: enough to recognise it again after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Imap { mailbox: String, uidvalidity: u32, uid: u32 },
    Maildir { path: PathBuf },
    File { path: PathBuf },
}

/// The message itself, or only its size when it is over the configured limit (it is then
/// quarantined without being fetched into memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Raw(Vec<u8>),
    TooLarge { size: u64 },
}

impl Payload {
    /// The message's size in bytes, fetched or not.
    pub fn size(&self) -> u64 {
        match self {
            Payload::Raw(raw) => raw.len() as u64,
            Payload::TooLarge { size } => *size,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub origin: Origin,
    pub payload: Payload,
}

/// Where a committed message goes next on its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Filed, awaiting triage, duplicate or ignored: recorded, out of the intake folder.
    Filed,
    /// Quarantined: kept apart for a human to look at.
    Quarantine,
}

/// Why a batch could not be committed. The source leaves every message of the batch where it
/// is and tries again (after a backoff when `transient`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub transient: bool,
    pub message: String,
}

impl SinkError {
    pub fn new(transient: bool, message: impl Into<String>) -> SinkError {
        SinkError { transient, message: message.into() }
    }
}

/// Takes messages from a source and commits them; one disposition per message, in order.
pub trait Sink: Send + Sync {
    fn accept(&self, batch: Vec<Incoming>) -> impl std::future::Future<Output = Result<Vec<Disposition>, SinkError>> + Send;
}
