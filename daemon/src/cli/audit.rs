//! `haven audit verify`: checks the audit log's HMAC chain entry by entry (streamed), its
//! length and head against the head anchored outside the database, and each recorded incident
//! against the digest its newest entry holds; names the first entry or incident that
//! disagrees. Exit 0 when intact, 65 otherwise.

use super::CliError;
use crate::config::Config;
use crate::store::{AuditVerdict, HEAD_FILE_NAME, Store};

pub async fn verify(store: &Store, config: &Config) -> Result<String, CliError> {
    let head = config.storage.audit_key_file.with_file_name(HEAD_FILE_NAME);
    let mut progress = Progress { started: std::time::Instant::now(), last: None };
    let verdict = store.verify_audit_with_progress(&mut |n| progress.checked(n)).await?;
    match verdict {
        AuditVerdict::Intact { entries } => Ok(format!("audit log intact: {entries} entries; head anchored in {}", head.display())),
        AuditVerdict::Broken { id } => Err(CliError::Data(format!(
            "audit log tampered with at entry {id}: its MAC does not match its content and the entry before it, or the head anchored in {}",
            head.display()
        ))),
        AuditVerdict::Truncated { entries, anchored } => Err(CliError::Data(format!(
            "audit log truncated: {entries} entries in the database, but {} records {anchored}: the newest {} were deleted",
            head.display(),
            anchored - entries
        ))),
        AuditVerdict::RecordChanged { incident, entry } => Err(CliError::Data(format!(
            "incident #{incident} disagrees with audit entry {entry}: who may see it, its category, priority or outcome was changed outside Haven"
        ))),
        AuditVerdict::RecordMissing { incident, entry } => Err(CliError::Data(format!(
            "incident #{incident} is missing: audit entry {entry} recorded it, and it was deleted outside Haven"
        ))),
        AuditVerdict::Unanchored { entries, reason } => Err(CliError::Data(format!(
            "audit log unanchored: its {entries} entries hold, but {reason} ({}), so deleted entries cannot be ruled out",
            head.display()
        ))),
    }
}

/// Plain progress lines on stderr while a long log is checked (a line every few seconds, so a
/// log file or a pipe gets a readable trace, not a redrawn bar); nothing for a short log.
struct Progress {
    started: std::time::Instant,
    last: Option<std::time::Instant>,
}

/// How often a line is written.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl Progress {
    fn checked(&mut self, entries: u64) {
        let since = self.last.unwrap_or(self.started);
        if since.elapsed() >= PROGRESS_EVERY {
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!("haven: audit verify: {entries} entries hold so far ({:.0} a second)", entries as f64 / secs.max(0.001));
            self.last = Some(std::time::Instant::now());
        }
    }
}
