//! `haven ingest PATH…`: files `.eml` files and Maildirs through the full pipeline, as the
//! daemon would (a backfill). Files are read, never moved.

use super::CliError;
use crate::ingest::collect_message_files;
use crate::pipeline::Filer;
use crate::source::Origin;
use crate::store::MessageState;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What one ingest run did, for the summary line and `--json`.
#[derive(Debug, Default, serde::Serialize)]
pub struct IngestSummary {
    pub files: u64,
    /// New records by state.
    pub recorded: BTreeMap<&'static str, u64>,
    /// Files whose exact bytes were recorded before (nothing written).
    pub already_recorded: u64,
    pub unreadable_files: Vec<String>,
}

pub async fn run(filer: &Filer, paths: &[PathBuf]) -> Result<IngestSummary, CliError> {
    let files = collect_message_files(paths).map_err(|e| CliError::Usage(format!("cannot read the paths given: {e}")))?;
    let mut summary = IngestSummary::default();
    for st in MessageState::ALL {
        summary.recorded.insert(st.as_str(), 0);
    }
    for path in files {
        summary.files += 1;
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) => {
                summary.unreadable_files.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let filing = filer.file(&raw, &Origin::File { path: path.clone() }).await?;
        if filing.already {
            summary.already_recorded += 1;
        } else {
            *summary.recorded.entry(filing.state.as_str()).or_default() += 1;
        }
    }
    Ok(summary)
}

impl std::fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} files: ", self.files)?;
        let parts: Vec<String> = self
            .recorded
            .iter()
            .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
            .collect();
        write!(f, "{}", parts.join(", "))?;
        write!(f, ", {} already recorded", self.already_recorded)?;
        for u in &self.unreadable_files {
            write!(f, "\ncould not read {u}")?;
        }
        Ok(())
    }
}
