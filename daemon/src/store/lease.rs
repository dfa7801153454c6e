//! The leader lease's side of the store (migration 0011): taking, renewing and handing back
//! the lease on a connection of its own, the fence a leader's filing commits under, and the
//! lease as `haven status` shows it.
//!
//! Only PostgreSQL runs several daemons on one database; on SQLite the one daemon holds a lock
//! file instead ([`sqlite_file`] says where the database is) and the lease row stays unused.
//! Every time here is the database server's clock, so that daemons whose own clocks disagree
//! still agree on when a lease ends. This layer decides nothing: when to renew and when to
//! stop acting is `crate::lease`'s job.

use super::{Result, Store, StoreError, Tx, from_us};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Row};
use std::str::FromStr;
use std::time::Duration;

/// The database's clock in microseconds since the epoch. `now()` is the start of the
/// statement's own transaction: no later than the moment the statement arrived, so a lease
/// stamped with it never ends after the holder's own reckoning says it does.
const DB_NOW: &str = "(EXTRACT(EPOCH FROM now()) * 1000000)::BIGINT";

/// The one lease today: the intake reader and the scheduler.
const LEADER: &str = "leader";

/// The lease as the database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The daemon holding it, or that held it last ("host:pid"); empty before anyone has.
    pub holder: String,
    pub term: i64,
    pub renewed: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// The database's clock when this was read: the lease is held while `now < expires`.
    pub now: DateTime<Utc>,
}

impl LeaseState {
    /// Whether a daemon holds the lease at this moment.
    pub fn is_held(&self) -> bool {
        !self.holder.is_empty() && self.now < self.expires
    }
}

/// This process's name among the daemons sharing a database: "host:pid". It names the lease's
/// holder and, as `application_name`, every PostgreSQL connection of the process, so an
/// administrator can tell in `pg_stat_activity` which daemon a backend belongs to.
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Names the process's connections after [`holder_id`], unless the URL names them already.
pub(super) fn named(opts: PgConnectOptions) -> PgConnectOptions {
    if opts.get_application_name().is_some() {
        return opts;
    }
    opts.application_name(&format!("haven {}", holder_id()))
}

/// The SQLite database file a URL names, or `None` for PostgreSQL or an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let file = opts.get_filename();
    (!file.as_os_str().is_empty() && file != std::path::Path::new(":memory:")).then(|| file.to_path_buf())
}

impl Store {
    /// The leader lease as recorded, with the database's clock (`None` before migration 0011).
    pub async fn leader_lease(&self) -> Result<Option<LeaseState>> {
        let now = match self {
            Store::Postgres(_) => DB_NOW,
            Store::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)",
        };
        let sql = format!("SELECT holder, term, renewed_us, expires_us, {now} AS now_us FROM leader_lease WHERE name = $1");
        super::on_pool!(self, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(LEADER).fetch_optional(p).await?;
            row.map(|r| {
                Ok(LeaseState {
                    holder: r.try_get("holder")?,
                    term: r.try_get("term")?,
                    renewed: from_us(r.try_get("renewed_us")?),
                    expires: from_us(r.try_get("expires_us")?),
                    now: from_us(r.try_get("now_us")?),
                })
            })
            .transpose()
        })
    }
}

/// A PostgreSQL connection of its own for the lease. Leadership lives and dies with it: the
/// lease is renewed only on the session that took it, so a daemon whose session is cut off
/// (its backend terminated, the network gone) cannot carry on leading through a fresh one.
pub struct LeaseConnection(PgConnection);

impl LeaseConnection {
    /// Opens the connection, within `timeout`.
    pub async fn open(url: &str, timeout: Duration) -> Result<LeaseConnection> {
        let opts = named(PgConnectOptions::from_str(url).map_err(StoreError::Connect)?);
        match tokio::time::timeout(timeout, opts.connect()).await {
            Ok(conn) => Ok(LeaseConnection(conn.map_err(StoreError::Connect)?)),
            Err(_) => Err(StoreError::Connect(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Takes the lease for `holder` for `ttl` if nobody holds it (it ran out, or was handed
    /// back), returning the new term; `None` while another daemon holds it. A daemon whose
    /// own lease ran out takes it afresh, under a new term, like anyone else.
    pub async fn acquire(&mut self, holder: &str, ttl: Duration) -> Result<Option<i64>> {
        let sql = format!(
            "UPDATE leader_lease SET holder = $2, term = term + 1, acquired_us = {DB_NOW}, \
             renewed_us = {DB_NOW}, expires_us = {DB_NOW} + $3 \
             WHERE name = $1 AND expires_us <= {DB_NOW} RETURNING term"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(LEADER).bind(holder).bind(micros(ttl)).fetch_optional(&mut self.0).await?;
        Ok(row.map(|r| r.try_get("term")).transpose()?)
    }

    /// Extends the lease `holder` took under `term` by `ttl` from now; false when it is no
    /// longer theirs (another daemon took it after it ran out).
    pub async fn renew(&mut self, holder: &str, term: i64, ttl: Duration) -> Result<bool> {
        let sql = format!(
            "UPDATE leader_lease SET renewed_us = {DB_NOW}, expires_us = {DB_NOW} + $4 \
             WHERE name = $1 AND holder = $2 AND term = $3"
        );
        let done =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(LEADER).bind(holder).bind(term).bind(micros(ttl)).execute(&mut self.0).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hands the lease back (a clean stop), so another daemon takes over at its next try
    /// instead of waiting for it to run out. The holder's name stays, as the last leader.
    pub async fn release(&mut self, holder: &str, term: i64) -> Result<()> {
        sqlx::query("UPDATE leader_lease SET expires_us = 0 WHERE name = $1 AND holder = $2 AND term = $3")
            .bind(LEADER)
            .bind(holder)
            .bind(term)
            .execute(&mut self.0)
            .await?;
        Ok(())
    }
}

impl Tx {
    /// The fence for a leader's writes: holds the lease row (FOR SHARE) until this
    /// transaction ends, provided `holder` still has it under `term`; otherwise fails with
    /// [`StoreError::NotLeader`] and the caller drops the transaction unwritten. Taken just
    /// before COMMIT, it makes a takeover wait for the commit, and a commit after a takeover
    /// impossible. SQLite has one daemon per database: nothing to fence.
    pub async fn hold_lease(&mut self, holder: &str, term: i64) -> Result<()> {
        let c = match &mut self.conn {
            super::TxConn::Sqlite(_) => return Ok(()),
            super::TxConn::Postgres(c) => &mut **c,
        };
        let held = sqlx::query("SELECT term FROM leader_lease WHERE name = $1 AND holder = $2 AND term = $3 FOR SHARE")
            .bind(LEADER)
            .bind(holder)
            .bind(term)
            .fetch_optional(c)
            .await?
            .is_some();
        if held { Ok(()) } else { Err(StoreError::NotLeader) }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
