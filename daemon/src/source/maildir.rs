//! The Maildir source: the embedded default, and for schools running their own mail server.
//!
//! `new/` is scanned (every `poll` interval, and at once when woken); messages are handed to
//! the sink in batches and, only after the sink has committed them, renamed into `cur/` with a
//! flag: `S` (seen) when filed, `F` (flagged for a human) when quarantined. A crash between
//! the commit and the rename leaves the file in `new/`; on the next scan the sink recognises the
//! same bytes and nothing is filed twice.

use super::backoff::{self, Backoff};
use super::{Disposition, Incoming, Origin, Payload, Sink, SinkError};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct MaildirSettings {
    /// The Maildir (holding `new/`, `cur/`, `tmp/`).
    pub path: PathBuf,
    pub max_message_size: u64,
    pub batch_size: usize,
    pub poll: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    #[error("the intake Maildir {path} cannot be used: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Creates `new/`, `cur/` and `tmp/` when missing.
pub fn ensure(path: &Path) -> Result<(), MaildirError> {
    for sub in ["new", "cur", "tmp"] {
        let d = path.join(sub);
        std::fs::create_dir_all(&d).map_err(|source| MaildirError::Io { path: d.display().to_string(), source })?;
    }
    Ok(())
}

/// Messages waiting in `new/`, oldest name first (Maildir names start with a timestamp).
fn waiting(path: &Path) -> Result<Vec<PathBuf>, MaildirError> {
    let new = path.join("new");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
        .map_err(|source| MaildirError::Io { path: new.display().to_string(), source })?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    Ok(files)
}

fn load(path: &Path, max: u64) -> std::io::Result<Payload> {
    let size = std::fs::metadata(path)?.len();
    if size > max {
        return Ok(Payload::TooLarge { size });
    }
    Ok(Payload::Raw(std::fs::read(path)?))
}

/// Moves a committed message from `new/` into `cur/` with its flag.
fn settle(maildir: &Path, file: &Path, disposition: Disposition) -> std::io::Result<()> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let base = name.split(":2,").next().unwrap_or(&name);
    let flag = match disposition {
        Disposition::Filed => "S",
        Disposition::Quarantine => "F",
    };
    std::fs::rename(file, maildir.join("cur").join(format!("{base}:2,{flag}")))
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Drained {
    /// Messages committed and moved into `cur/`.
    pub settled: usize,
    /// Why the sink could not commit a batch; that batch and the rest stay in `new/`.
    pub refused: Option<SinkError>,
}

/// One pass: every message now in `new/`, in batches, until the sink refuses one.
pub async fn drain<S: Sink>(settings: &MaildirSettings, sink: &S, shutdown: &CancellationToken) -> Result<Drained, MaildirError> {
    let mut settled = 0;
    let files = waiting(&settings.path)?;
    for chunk in files.chunks(settings.batch_size.max(1)) {
        if shutdown.is_cancelled() {
            break;
        }
        let mut batch = Vec::with_capacity(chunk.len());
        let mut paths = Vec::with_capacity(chunk.len());
        for file in chunk {
            match load(file, settings.max_message_size) {
                Ok(payload) => {
                    batch.push(Incoming { origin: Origin::Maildir { path: file.clone() }, payload });
                    paths.push(file.clone());
                }
                // Gone (another Haven took it) or unreadable for now: it stays for the next pass.
                Err(e) => tracing::warn!(error = %e.kind(), "intake file could not be read; will retry"),
            }
        }
        if batch.is_empty() {
            continue;
        }
        match sink.accept(batch).await {
            Ok(dispositions) => {
                for (file, d) in paths.iter().zip(dispositions) {
                    match settle(&settings.path, file, d) {
                        Ok(()) => settled += 1,
                        Err(e) => {
                            tracing::warn!(error = %e.kind(), "committed message could not be moved to cur/; it will be recognised next pass")
                        }
                    }
                }
            }
            Err(e) => return Ok(Drained { settled, refused: Some(e) }),
        }
    }
    Ok(Drained { settled, refused: None })
}

/// Runs until `shutdown`: drain, wait for `poll` (or a wake-up), drain again. While the sink
/// refuses batches (the database is full, read-only or gone) the waits grow (1 s, 2 s, 4 s, …
/// up to 5 minutes) and nothing leaves `new/`. Failures are logged once per change of state,
/// not per retry.
pub async fn run<S: Sink>(settings: MaildirSettings, sink: &S, shutdown: CancellationToken) {
    run_beating(settings, sink, shutdown, |_| {}).await;
}

/// [`run`], calling `beat` after every pass over the Maildir (whether or not it found mail),
/// with whether the Maildir could be read: the daemon's readiness and watchdog signal that
/// the loop is turning.
pub async fn run_beating<S: Sink>(settings: MaildirSettings, sink: &S, shutdown: CancellationToken, beat: impl Fn(bool)) {
    let mut unreadable = false;
    let mut refused = Backoff::new(backoff::INITIAL, backoff::MAX);
    loop {
        let mut wait = settings.poll;
        let pass = drain(&settings, sink, &shutdown).await;
        let readable = pass.is_ok();
        match pass {
            Ok(Drained { settled, refused: error }) => {
                if unreadable {
                    tracing::info!("intake Maildir readable again");
                    unreadable = false;
                }
                if settled > 0 {
                    tracing::info!(messages = settled, "intake batch settled");
                }
                match error {
                    None => {
                        if refused.failures() > 0 {
                            tracing::info!(after_failures = refused.failures(), "filing works again");
                        }
                        refused.reset();
                    }
                    Some(e) => {
                        if refused.failures() == 0 {
                            tracing::error!(transient = e.transient, error = %e, "filing failed; the messages stay in new/ and will be retried");
                        }
                        wait = refused.next(rand::random());
                        tracing::debug!(failures = refused.failures(), wait_ms = wait.as_millis() as u64, "filing will be retried");
                    }
                }
            }
            Err(e) => {
                if !unreadable {
                    tracing::error!(error = %e, "intake Maildir failing; retrying");
                    unreadable = true;
                }
            }
        }
        beat(readable);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Deletes, for a disposal, every file in the Maildir's `cur/` and `new/` whose bytes have one
/// of the SHA-256s in `wanted` (hex, with the size each was recorded at: only files of that
/// size are read). Returns how many were deleted.
pub fn delete_messages(path: &Path, wanted: &[(u64, String)]) -> Result<u64, MaildirError> {
    use sha2::{Digest, Sha256};
    let mut deleted = 0;
    for sub in ["cur", "new"] {
        let dir = path.join(sub);
        let failed = |source| MaildirError::Io { path: dir.display().to_string(), source };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(failed(e)),
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || !wanted.iter().any(|(size, _)| *size == meta.len()) {
                continue;
            }
            let file = entry.path();
            let raw = std::fs::read(&file).map_err(failed)?;
            let sha = hex::encode(Sha256::digest(&raw));
            if wanted.iter().any(|(_, w)| *w == sha) {
                std::fs::remove_file(&file).map_err(failed)?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
