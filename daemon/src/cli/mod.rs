//! The commands behind `haven …`: each loads what it needs, calls the library and prints.
//! Exit codes are a contract (SPEC "Command line"): 0 success, 2 usage, 65 unusable input,
//! 78 configuration or rules invalid.

pub mod chronology;
pub mod directory;
pub mod export;
pub mod ingest;
pub mod init;
pub mod rules;
pub mod status;

use crate::config::Config;
use crate::store::Store;
use std::path::Path;
use std::process::ExitCode;

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
        CliError::Other(anyhow::Error::new(e))
    }
}

/// Loads the configuration (exit 78 with every error on failure).
pub fn load_config(path: &Path) -> Result<Config, CliError> {
    Config::load(path).map_err(|e| CliError::Config(e.to_string()))
}

/// Opens (and migrates) the configured database.
pub async fn open_store(config: &Config) -> Result<Store, CliError> {
    Store::open(config.database_url())
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))
}
