//! `haven ingest PATH…`: files message files, Maildir++ folders and mbox files through the full
//! pipeline, as the daemon would (a backfill), in the daemon's batches: one transaction and one
//! directory load per batch. Files are read, never moved. Progress goes to standard error.

use super::CliError;
use super::progress::Progress;
use crate::ingest::{Found, plan};
use crate::pipeline::Filer;
use crate::source::Incoming;
use crate::store::MessageState;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Messages per transaction, as the daemon takes an IMAP backlog (daemon.rs `INTAKE_BATCH`).
const BATCH_MESSAGES: usize = 500;
/// A batch also ends once its messages hold this many bytes, so an mbox of large attachments
/// is not held in memory whole (as the daemon's IMAP batches).
const BATCH_BYTES: u64 = 64 * 1_000_000;

/// What one ingest run did, for the summary line and `--json`.
#[derive(Debug, Default, serde::Serialize)]
pub struct IngestSummary {
    /// Message files, plus the messages inside mbox files.
    pub messages: u64,
    /// New records by state.
    pub recorded: BTreeMap<&'static str, u64>,
    /// Messages whose exact bytes were recorded before (nothing written).
    pub already_recorded: u64,
    pub unreadable_files: Vec<String>,
}

/// Files everything under `paths`; `max_size` is `intake.max_message_size`.
pub async fn run(filer: &Filer, paths: &[PathBuf], max_size: u64) -> Result<IngestSummary, CliError> {
    let plan = plan(paths).map_err(|e| CliError::Usage(format!("cannot read {e}")))?;
    let mut summary = IngestSummary { messages: plan.messages(), ..IngestSummary::default() };
    for st in MessageState::ALL {
        summary.recorded.insert(st.as_str(), 0);
    }
    let mboxes = plan.found.iter().filter(|f| matches!(f, Found::Mbox { .. })).count();
    tracing::info!(messages = summary.messages, mboxes, "ingest started");
    let mut progress = Progress::start("messages", summary.messages);
    let mut batch: Vec<Incoming> = Vec::with_capacity(BATCH_MESSAGES);
    let mut bytes = 0;
    for read in plan.read(max_size) {
        match read {
            Ok(incoming) => {
                bytes += incoming.payload.size();
                batch.push(incoming);
            }
            Err(e) => {
                summary.unreadable_files.push(e.to_string());
                progress.advance(1);
            }
        }
        if batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
            file(filer, &mut batch, &mut summary, &mut progress).await?;
            bytes = 0;
        }
    }
    file(filer, &mut batch, &mut summary, &mut progress).await?;
    progress.finish();
    Ok(summary)
}

/// Files one batch in one transaction and counts what became of each message.
async fn file(filer: &Filer, batch: &mut Vec<Incoming>, summary: &mut IngestSummary, progress: &mut Progress) -> Result<(), CliError> {
    if batch.is_empty() {
        return Ok(());
    }
    for filing in filer.file_batch(batch).await? {
        if filing.already {
            summary.already_recorded += 1;
        } else {
            *summary.recorded.entry(filing.state.as_str()).or_default() += 1;
        }
    }
    progress.advance(batch.len() as u64);
    batch.clear();
    Ok(())
}

impl std::fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} messages: ", self.messages)?;
        let parts: Vec<String> = self.recorded.iter().map(|(k, v)| format!("{v} {}", k.replace('_', " "))).collect();
        write!(f, "{}", parts.join(", "))?;
        write!(f, ", {} already recorded", self.already_recorded)?;
        for u in &self.unreadable_files {
            write!(f, "\ncould not read {u}")?;
        }
        Ok(())
    }
}
