//! Which of this binary's migrations a database has, without changing it: `haven check`
//! reports pending ones (they run when `haven run` or any other command next opens the
//! database) and refuses a database that a newer Haven has migrated.

use super::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, StoreError};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use std::str::FromStr;
use std::time::Duration;

/// How long opening the database may take before `haven check` reports it unreachable.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The migrations a database has, against those this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// "sqlite" or "postgres".
    pub backend: &'static str,
    /// How many of this binary's migrations are applied.
    pub applied: usize,
    /// This binary's migrations not yet applied, as "0007 description".
    pub pending: Vec<String>,
    /// Versions applied to the database that this binary does not know (a newer Haven ran).
    pub unknown: Vec<i64>,
    /// A SQLite file that does not exist yet (Haven creates it, with every migration, when it
    /// first opens it), with whether its folder is there to hold it.
    pub missing_file: Option<(std::path::PathBuf, bool)>,
}

/// Opens the database named by `url` (never creating it) and compares its applied migrations
/// with this binary's.
pub async fn migration_state(url: &str) -> Result<MigrationState, StoreError> {
    let (backend, migrator, applied) = if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(url).map_err(StoreError::Connect)?.create_if_missing(false);
        let file = opts.get_filename().to_path_buf();
        if !file.exists() {
            let folder = file.parent().is_none_or(|p| p.as_os_str().is_empty() || p.is_dir());
            return Ok(MigrationState {
                backend: "sqlite",
                applied: 0,
                pending: SQLITE_MIGRATIONS.iter().map(|m| format!("{:04} {}", m.version, m.description)).collect(),
                unknown: Vec::new(),
                missing_file: Some((file, folder)),
            });
        }
        let mut conn = within(opts.connect()).await?;
        let rows = sqlx::query_scalar::<_, i64>(APPLIED).fetch_all(&mut conn).await;
        ("sqlite", &SQLITE_MIGRATIONS, applied_versions(rows)?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let opts = PgConnectOptions::from_str(url).map_err(StoreError::Connect)?;
        let mut conn = within(opts.connect()).await?;
        let rows = sqlx::query_scalar::<_, i64>(APPLIED).fetch_all(&mut conn).await;
        ("postgres", &POSTGRES_MIGRATIONS, applied_versions(rows)?)
    } else {
        return Err(StoreError::UnsupportedUrl);
    };
    let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    Ok(MigrationState {
        backend,
        applied: known.iter().filter(|v| applied.contains(v)).count(),
        pending: migrator.iter().filter(|m| !applied.contains(&m.version)).map(|m| format!("{:04} {}", m.version, m.description)).collect(),
        unknown: applied.into_iter().filter(|v| !known.contains(v)).collect(),
        missing_file: None,
    })
}

async fn within<C>(connect: impl Future<Output = Result<C, sqlx::Error>>) -> Result<C, StoreError> {
    match tokio::time::timeout(OPEN_TIMEOUT, connect).await {
        Ok(conn) => conn.map_err(StoreError::Connect),
        Err(_) => Err(StoreError::Connect(sqlx::Error::PoolTimedOut)),
    }
}

const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// The successfully applied versions; none when the bookkeeping table is not there yet.
fn applied_versions(rows: Result<Vec<i64>, sqlx::Error>) -> Result<Vec<i64>, StoreError> {
    match rows {
        Ok(v) => Ok(v),
        Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => Ok(Vec::new()),
        Err(e) => Err(StoreError::Connect(e)),
    }
}
