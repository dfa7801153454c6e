//! Storage: one interface over SQLite (the embedded default) and PostgreSQL (scale-out),
//! chosen by the database URL. Migrations for both dialects are embedded and run at start.
//!
//! Every query is written once, with `$N` placeholders that both engines accept, and run on
//! whichever pool is open through [`on_pool!`]/[`on_tx!`]. Times are stored as microseconds since
//! the Unix epoch (UTC) so comparisons are the same on both engines. This layer knows nothing of
//! email or rules: it stores and reads what the pipeline gives it.

mod ai_feedback;
mod ai_queue;
mod ai_rules;
mod audit;
mod audit_writer;
mod characteristics;
mod console;
mod console_access;
mod console_passkeys;
mod console_triage;
mod directory;
mod directory_cache;
mod disposal;
mod filing;
mod health;
mod keyring;
mod lease;
mod links;
mod marks;
mod migrations;
mod outbox;
mod outcomes;
mod plans;
mod pupil_search;
mod read;
mod referrals;
mod report;
mod report_days;
mod retention;
mod sar;
mod schedule;
mod seal_clear;
mod staff;
mod statistics;
mod tallies;
mod transfer;
mod transfer_retain;

pub use ai_feedback::AiVerdict;
pub use ai_queue::{AiJob, AiJobState, AiOutcome, SUGGESTION_FIELD as AI_SUGGESTION_FIELD};
pub use ai_rules::{AiIncident, AiRaise, AiRaised, AiWaiting};
pub use audit::{AuditEntry, AuditKey, AuditKeyError, AuditVerdict, HEAD_FILE_NAME, install_audit_key, os_user, write_empty_anchor};
pub use audit_writer::AuditWriter;
pub use console::{SessionRecord, TotpRecord};
pub use console_access::SentAbout;
pub use console_passkeys::PasskeyRecord;
pub use directory::{ContactImport, DirectoryImport, SyncReport};
pub use directory_cache::DirectoryCache;
pub use disposal::{Destroyed, Disposal, DisposalPlan, DisposalState, MailCopy, PupilIncident, fields as disposal_fields};
#[doc(hidden)]
pub use filing::ORIGINALS_BY_MESSAGE_ID;
pub use filing::{
    ActionRecord, AttachmentRecord, EarlierIncident, IncidentRecord, MessageRecord, MessageState, OutboxRecord, PupilLink, QuestionRecord,
    Recorded, Release, RungRecord, ToRecord,
};
pub use health::{Component, HealthRecord, HealthState};
pub use keyring::{KeyState, KeyWalk, LiveKeys};
pub use lease::{LeaseConnection, LeaseState, holder_id, sqlite_file};
pub use marks::{Mark, fields as mark_fields};
pub use migrations::{MigrationState, migration_state};
pub use outbox::{CLAIM_LEASE, DeadEmail, PendingEmail};
pub use outcomes::OutcomeRecorded;
#[doc(hidden)]
pub use plans::{PlannedQuery, read_queries};
pub use read::{AttachmentFile, ChronologyEntry, IncidentFacts, IndexedEntry, MessageSummary, StatusCounts};
#[doc(hidden)]
pub use read::{chronology_attachments_sql, chronology_entries_sql, chronology_outcomes_sql, chronology_pupils_sql, padded};
pub use referrals::{Plan, Referral};
pub use report::{Counted, ListedIncident};
pub use report_days::Figure;
pub use retention::{Hold, HoldOn, HoldReason, PupilCategory, Review, fields as retention_fields};
pub use sar::{
    Disclosure, IncidentTexts, NewSarItem, RequestKind, SarDecision, SarItem, SarRequest, SarSubject, SentEmail, UnfiledMessage,
    fields as sar_fields,
};
pub use schedule::{DueRung, OpenAction, RecordedIncident};
pub use statistics::Statistics;
pub use transfer::{CaseState, DueTransferRung, NewCase, TransferCase, fields as transfer_fields};
pub use transfer_retain::KeptAfterTransfer;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Storage failures. Database internals are kept for the log; users see the one-line summary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unsupported database URL (use sqlite://FILE or postgres://…)")]
    UnsupportedUrl,
    #[error("{0}")]
    Invalid(String),
    /// A sealed value could not be opened (another key, or damaged): retrying cannot help.
    #[error("{what}: {source}")]
    Sealed { what: String, source: crate::seal::SealError },
    /// A leader's write found the lease no longer its own (another daemon took over): the
    /// write was dropped, and the new leader does it. Transient: the work is not lost.
    #[error("this daemon no longer holds the leader lease; the daemon that does takes over")]
    NotLeader,
    /// A group of audit entries could not be committed (the database's error, as text: it is
    /// told to every request of the group).
    #[error("cannot write the audit log: {0}")]
    AuditWrite(String),
}

impl StoreError {
    /// Whether trying again later can help: the database was unreachable, busy, full, read-only
    /// or failing. Only what one message's own data provokes (a constraint it breaks, a value
    /// the engine refuses) is not transient, so a source can set that message aside and go on.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect(_) | StoreError::NotLeader => true,
            StoreError::Database(sqlx::Error::Database(d)) => match self.engine_code(d.as_ref()) {
                EngineCode::Sqlite(code) => !matches!(code & 0xff, SQLITE_CONSTRAINT | SQLITE_TOOBIG | SQLITE_MISMATCH),
                EngineCode::Postgres(state) => !(state.starts_with("22") || state.starts_with("23")),
                EngineCode::Unknown => true,
            },
            StoreError::Database(e) => !matches!(
                e,
                sqlx::Error::RowNotFound | sqlx::Error::ColumnNotFound(_) | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)
            ),
            _ => false,
        }
    }

    /// Whether the engine said it could not write for want of space (SQLite: full, or an I/O
    /// error, which is how a full disk shows when the shared-memory file cannot grow;
    /// PostgreSQL: insufficient resources, such as disk_full).
    pub fn disk_may_be_full(&self) -> bool {
        let (StoreError::Connect(e) | StoreError::Database(e)) = self else { return false };
        match e {
            sqlx::Error::Database(d) => match self.engine_code(d.as_ref()) {
                EngineCode::Sqlite(code) => matches!(code & 0xff, SQLITE_FULL | SQLITE_IOERR),
                EngineCode::Postgres(state) => state.starts_with("53"),
                EngineCode::Unknown => false,
            },
            sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    fn engine_code(&self, d: &dyn sqlx::error::DatabaseError) -> EngineCode {
        let Some(code) = d.code() else { return EngineCode::Unknown };
        if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
            code.parse().map(EngineCode::Sqlite).unwrap_or(EngineCode::Unknown)
        } else {
            EngineCode::Postgres(code.into_owned())
        }
    }
}

enum EngineCode {
    /// SQLite's extended result code.
    Sqlite(i32),
    /// PostgreSQL's SQLSTATE.
    Postgres(String),
    Unknown,
}

const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;
const SQLITE_CONSTRAINT: i32 = 19;
const SQLITE_TOOBIG: i32 = 18;
const SQLITE_MISMATCH: i32 = 20;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open database.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store holds.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// An open transaction on either engine, on a pooled connection of its own.
///
/// The transaction is begun and committed by hand rather than with sqlx's `Transaction`, so
/// that a connection which saw any failure never goes back to the pool: dropped without a
/// successful COMMIT (an error, a cancelled task), the connection is closed, and closing rolls
/// the transaction back on the server. A connection left inside a transaction that the engine
/// had already abandoned (SQLite rolls back by itself on SQLITE_FULL and some I/O errors)
/// would otherwise turn every later "commit" on it into a no-op, or hold a lock the
/// checkpointer waits on. A batch is therefore filed only when its COMMIT really succeeded.
pub struct Tx {
    conn: TxConn,
    committed: bool,
    /// The audit chain's head, once this transaction has appended to it: the transaction
    /// holds the chain's lock from then on, so the head cannot move. Anchored after commit.
    audit_head: Option<audit::ChainHead>,
}

pub(crate) enum TxConn {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.committed {
            match &mut self.conn {
                TxConn::Sqlite(c) => c.close_on_drop(),
                TxConn::Postgres(c) => c.close_on_drop(),
            }
        }
    }
}

/// Runs `$body` with `$conn` bound to the transaction's connection.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match &mut $tx.conn {
            $crate::store::TxConn::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::TxConn::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// Rows per multi-row INSERT: well inside both engines' limits on bound parameters
/// (SQLite 32,766; PostgreSQL 65,535) at 16 columns.
pub(crate) const ROWS_PER_STATEMENT: usize = 128;

/// Blobs per INSERT: they carry whole messages and attachments.
pub(crate) const BLOBS_PER_STATEMENT: usize = 16;

/// Runs `INSERT … VALUES (…), (…) …` over `$rows`, chunk by chunk, pushing each row's values
/// with `$push`; evaluates to every row the statements returned.
///
/// The statements are never kept in the statement cache: there is one per chunk size (up to
/// `$per` of them per table, on every pooled connection), and SQLite keeps each prepared
/// statement's values until it is next used, so cached, they held on to copies of the sealed
/// texts of every batch size seen and the daemon's memory grew with its uptime.
macro_rules! insert_values {
    ($conn:expr, $per:expr, $head:expr, $rows:expr, $tail:expr, |$b:ident, $row:ident| $push:block) => {{
        let mut returned = Vec::new();
        for chunk in $rows.chunks($per) {
            let mut qb = sqlx::QueryBuilder::new($head);
            qb.push_values(chunk, |mut $b, $row| $push);
            qb.push($tail);
            returned.extend(qb.build().persistent(false).fetch_all(&mut *$conn).await?);
        }
        returned
    }};
}
pub(crate) use insert_values;

impl Tx {
    /// Commits. On any error the connection is closed (see [`Tx`]) and nothing of the
    /// transaction is kept.
    pub async fn commit(mut self) -> Result<()> {
        on_tx!(self, |c| sqlx::raw_sql("COMMIT").execute(c).await.map(|_| ()))?;
        self.committed = true;
        if let Some(head) = self.audit_head.take() {
            head.anchor().await;
        }
        Ok(())
    }
}

/// sqlx reports an `sslrootcert` it cannot find only as "No such file or directory"; say
/// which setting to look at.
fn missing_root_cert(url: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(io)
            if io.kind() == std::io::ErrorKind::NotFound
                && (url.contains("sslrootcert=") || std::env::var_os("PGSSLROOTCERT").is_some()) =>
        {
            StoreError::Invalid(format!(
                "cannot open the database: {io}: is the sslrootcert file in the database URL (or \
                 PGSSLROOTCERT) there? (give its absolute path)"
            ))
        }
        _ => StoreError::Connect(e),
    }
}

impl Store {
    /// Opens the database named by `url`, creating a SQLite file if needed, and migrates it.
    pub async fn open(url: &str) -> Result<Store> {
        let store = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url).map_err(StoreError::Connect)?;
            private_database_file(opts.get_filename())?;
            let opts = opts
                .create_if_missing(true)
                // Deleted and overwritten values are zeroed, not left in free pages where a
                // copy of the file would still show them (sealing a clear value, a sent alert).
                .pragma("secure_delete", "ON")
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit survives power loss, as the reliability promises require.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // Checkpoints run beside the writers (see `checkpoint_in_background`); this is
                // only the backstop that bounds the WAL (~400 MB) should that task fall behind.
                .pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES.to_string())
                // Reads map the file instead of copying each page into the connection's cache:
                // every commit (an audit entry per console page) empties the other connections'
                // caches, so without it a chronology of 500 entries is hundreds of reads and
                // copies each time. Read-only mapping; writes still go through the WAL.
                .pragma("mmap_size", MMAP_BYTES.to_string())
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await.map_err(StoreError::Connect)?;
            if pending(sqlx::query_scalar(APPLIED).fetch_all(&pool).await, &SQLITE_MIGRATIONS) {
                SQLITE_MIGRATIONS.run(&pool).await?;
            }
            tokio::spawn(checkpoint_in_background(pool.clone()));
            Store::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = lease::named(PgConnectOptions::from_str(url).map_err(StoreError::Connect)?);
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|e| missing_root_cert(url, e))?;
            if pending(sqlx::query_scalar(APPLIED).fetch_all(&pool).await, &POSTGRES_MIGRATIONS) {
                POSTGRES_MIGRATIONS.run(&pool).await?;
            }
            Store::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(store)
    }

    /// "sqlite" or "postgres", for status output.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn begin(&self) -> Result<Tx> {
        let conn = match self {
            Store::Sqlite(p) => TxConn::Sqlite(p.acquire().await?),
            Store::Postgres(p) => TxConn::Postgres(p.acquire().await?),
        };
        // Not committed until COMMIT succeeds: a failed BEGIN also closes the connection.
        let mut tx = Tx { conn, committed: false, audit_head: None };
        // SQLite: take the write lock at BEGIN, where the busy timeout applies. A deferred
        // transaction that reads first fails at once ("database is locked") when it tries to
        // write after another connection committed.
        match &mut tx.conn {
            TxConn::Sqlite(c) => sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut **c).await.map(|_| ())?,
            TxConn::Postgres(c) => sqlx::raw_sql("BEGIN").execute(&mut **c).await.map(|_| ())?,
        }
        Ok(tx)
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

/// Whether any migration is not yet applied (or that cannot be told). Running the migrator
/// writes even when nothing is pending (it creates its own table if missing), so a database
/// that refuses writes (full, read-only, a replica) could not even be looked at with
/// `haven status`; a database already up to date is opened without writing.
fn pending(applied: std::result::Result<Vec<i64>, sqlx::Error>, migrator: &sqlx::migrate::Migrator) -> bool {
    applied.map_or(true, |applied| migrator.iter().any(|m| !applied.contains(&m.version)))
}

/// The migrations recorded as applied.
const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// Creates the SQLite database file readable by its owner only (0600), or narrows an existing
/// one that group or others can read; SQLite gives its `-wal` and `-shm` files the database
/// file's mode. An in-memory database has no file.
fn private_database_file(path: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
            return Ok(());
        }
        let failed = |e: std::io::Error| StoreError::Invalid(format!("cannot create the database file {}: {e}", path.display()));
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
                tracing::warn!(path = %path.display(), "the database file was readable by others; narrowed to 0600");
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.as_os_str().to_owned();
                    side.push(suffix);
                    let _ = std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600));
                }
            }
            Ok(_) => {}
            Err(_) => {
                std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(failed)?;
            }
        }
    }
    Ok(())
}

/// WAL pages after which a committing writer checkpoints itself.
const WAL_BACKSTOP_PAGES: u32 = 100_000;

/// How much of the SQLite file reads may map (256 MiB). Mapped pages are the kernel's page
/// cache, shared and reclaimable: they show in resident memory as file pages (`RssFile`), not
/// as memory Haven holds (`RssAnon`).
const MMAP_BYTES: u64 = 256 * 1024 * 1024;

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies committed pages from SQLite's write-ahead log into the database file every
/// half-second, on a connection of its own, so that a commit only waits for its own WAL
/// fsync and not for a checkpoint too. A PASSIVE checkpoint never blocks readers or
/// writers. Ends when the pool is closed.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await
            && !pool.is_closed()
        {
            tracing::warn!(error = %e, "SQLite checkpoint failed; the next one will try again");
        }
    }
}

/// Microseconds since the Unix epoch, the stored form of every time.
pub fn to_us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Runs one raw SQL statement: for tests that tamper with the database as an attacker would.
#[doc(hidden)]
pub async fn on_pool_for_tests(store: &Store, sql: &str) {
    on_pool!(store, |p| {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.expect("test SQL");
    })
}
