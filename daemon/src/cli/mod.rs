//! The commands behind `haven …`: each loads what it needs, calls the library and prints.
//! Exit codes are a contract (SPEC "Command line"): 0 success, 2 usage, 65 unusable input,
//! 78 configuration or rules invalid.

pub mod ai;
pub mod audit;
pub mod check;
pub mod chronology;
pub mod console;
pub mod directory;
pub mod dispose;
pub mod export;
pub mod export_doc;
pub mod hold;
pub mod ingest;
pub mod init;
pub mod inspection;
pub mod key;
pub mod link;
pub mod mark;
pub mod messages;
pub mod multiagency;
pub mod outcome;
pub mod outcomes;
pub mod plan;
pub mod progress;
pub mod referral;
pub mod report;
pub mod retention;
pub mod rules;
pub mod sar;
pub mod sar_export;
pub mod sar_items;
pub mod status;
pub mod transfer;
pub mod transfer_notice;
pub mod transfer_receive;
pub mod transfer_send;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::pipeline::{Filer, FilingSettings};
use crate::read::Limits;
use crate::rules::{LiveRules, RuleSet};
use crate::seal::{KeyFiles, Sealer};
use crate::store::{AuditKey, Store};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// A command's failure, mapped onto the exit code contract.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage(_) => 2,
            CliError::Data(_) => 65,
            CliError::Config(_) => 78,
            CliError::Other(_) => 1,
        })
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.disk_may_be_full() {
            return CliError::Other(anyhow::anyhow!(
                "{e}: the disk holding the database may be full (`df -h` shows); what this command was writing was not saved: \
                 free some space and run it again"
            ));
        }
        CliError::Other(anyhow::Error::new(e))
    }
}

/// A pupil's own key file that does not open, met while sealing for them: the key files need
/// the technician, as when the ring cannot be loaded. The commands seal before they write.
pub(crate) fn pupil_key_error(e: crate::seal::SealError) -> CliError {
    CliError::Config(format!("{e}; nothing was changed"))
}

/// Writes `data` to a new file at `path`, readable by its owner only, and syncs it: exports,
/// reports, certificates and bundles are the school's business, and an existing file is never
/// overwritten.
pub(crate) fn write_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// A new private file written beside its final name, as `NAME.partial`, and given that name by
/// [`Staged::publish`] only once what records it (a disclosure log) has committed. An error or
/// a crash before then leaves nothing under the final name that could be sent without its
/// record: the `.partial` is deleted on an error, and replaced by the next run after a crash.
#[must_use = "publish it once its record has committed, or it is deleted"]
pub(crate) struct Staged {
    partial: PathBuf,
    path: PathBuf,
}

/// [`write_new`] to `path`'s `.partial` beside it; the final name must not exist.
pub(crate) fn stage_new(path: &Path, data: &[u8]) -> std::io::Result<Staged> {
    if path.exists() {
        return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists"));
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let partial = path.with_file_name(name);
    // Left by a run that was killed before its record committed: nothing recorded it.
    match std::fs::remove_file(&partial) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    write_new(&partial, data)?;
    Ok(Staged { partial, path: path.to_path_buf() })
}

impl Staged {
    /// Gives the file its final name (never over an existing file) and syncs the folder. On
    /// an error the written copy stays at the returned `.partial` path.
    pub(crate) fn publish(self) -> Result<(), (std::io::Error, PathBuf)> {
        let this = std::mem::ManuallyDrop::new(self);
        let (partial, path) = (this.partial.clone(), this.path.clone());
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::hard_link(&partial, &path)
            .and_then(|()| std::fs::remove_file(&partial))
            .and_then(|()| std::fs::File::open(folder)?.sync_all())
            .map_err(|e| (e, partial))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// Loads the configuration (exit 78 with every error on failure).
pub fn load_config(path: &Path) -> Result<Config, CliError> {
    Config::load(path).map_err(|e| CliError::Config(e.to_string()))
}

/// Opens (and migrates) the configured database, with the audit key installed for this
/// process: every audit entry it writes is chained under that key.
pub async fn open_store(config: &Config) -> Result<Store, CliError> {
    install_audit_key(config)?;
    Store::open(config.database_url()).await.map_err(CliError::from)
}

/// What most commands need: the configuration, the open database and the clock.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
}

impl App {
    pub async fn open(config: Config) -> Result<App, CliError> {
        let store = open_store(&config).await?;
        Ok(App { config, store, clock: Arc::new(SystemClock) })
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The keyring, sealing with the key the database names as current (exit 78 when a key
    /// file is missing, malformed or readable by others).
    pub async fn sealer(&self) -> Result<Sealer, CliError> {
        key::load_ring(&self.store, &self.config.storage.key_file).await
    }

    /// The filing pipeline as `haven ingest` and the daemon run it.
    pub async fn filer(&self) -> Result<Filer, CliError> {
        let rules = load_rules(&self.config)?;
        Ok(Filer::new(
            self.store.clone(),
            Arc::new(LiveRules::new(rules)),
            self.clock.clone(),
            self.sealer().await?,
            filing_settings(&self.config),
        )
        .following_key_changes(KeyFiles::new(&self.config.storage.key_file)))
    }

    /// The blind-index key, derived from the storage key (exit 78 as for [`App::sealer`]).
    pub fn blind_index(&self) -> Result<crate::blind::BlindIndex, CliError> {
        crate::blind::BlindIndex::from_key_file(&self.config.storage.key_file).map_err(|e| CliError::Config(e.to_string()))
    }
}

/// Reads `storage.audit_key_file` (exit 78 when missing, malformed or readable by others) and
/// makes it this process's audit key.
pub fn install_audit_key(config: &Config) -> Result<(), CliError> {
    let key = AuditKey::from_key_file(&config.storage.audit_key_file).map_err(|e| CliError::Config(e.to_string()))?;
    crate::store::install_audit_key(key);
    Ok(())
}

/// Checks that the first key file can be read, before anything else starts (the ring, with
/// every pupil's key, is loaded once the database says which key is current).
pub fn check_key_file(config: &Config) -> Result<(), CliError> {
    crate::seal::check_key_file(&config.storage.key_file).map_err(|e| CliError::Config(e.to_string()))
}

/// The rule set (exit 78 with every error when it is invalid).
pub fn load_rules(config: &Config) -> Result<RuleSet, CliError> {
    RuleSet::load(&config.rules.dir).map_err(|e| CliError::Config(format!("the rules are invalid:\n{e}")))
}

pub fn filing_settings(config: &Config) -> FilingSettings {
    let i = &config.intake;
    FilingSettings {
        intake_address: config.school.intake_address.clone(),
        mail_domain: config.school.mail_domain().to_string(),
        limits: Limits {
            max_message_size: i.max_message_size,
            max_attachments: i.max_attachments,
            max_header_size: usize::try_from(i.max_header_size).unwrap_or(usize::MAX),
            max_mime_depth: i.max_mime_depth,
            timezone: config.school.tz(),
        },
        trusted_authserv_id: i.trusted_authserv_id.clone(),
        alerts: crate::alert::AlertSettings {
            detail: config.alerts.detail,
            mail_domain: config.school.mail_domain().to_string(),
            school_name: config.school.name.clone(),
        },
        reply_key: read_reply_key(config).ok(),
        backfill_age: chrono::Duration::from_std(i.backfill_age).unwrap_or(chrono::Duration::MAX),
        ai_read: config.ai.is_some(),
    }
}

/// The key that signs and verifies reply tokens (`alerts.reply_key_file`, hex).
pub fn read_reply_key(config: &Config) -> Result<Vec<u8>, CliError> {
    let Some(path) = &config.alerts.reply_key_file else {
        return Err(CliError::Config("alerts.reply_key_file: missing (haven init writes one)".into()));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Config(format!("alerts.reply_key_file: cannot read {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(CliError::Config(format!(
                "alerts.reply_key_file: {0} is readable by group or others; run: chmod 600 {0}",
                path.display()
            )));
        }
    }
    hex::decode(text.trim())
        .ok()
        .filter(|k| k.len() >= 32)
        .ok_or_else(|| CliError::Config(format!("alerts.reply_key_file: {} must hold at least 32 bytes as hex", path.display())))
}
