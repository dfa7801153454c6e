//! Who leads when several `haven run` share one PostgreSQL database and one mailbox: only the
//! leader reads the intake and runs the scheduler's passes; every daemon sends from the
//! outbox (its claims are leased rows, `FOR UPDATE SKIP LOCKED`) and serves the console.
//!
//! The leader holds a lease in the database (`store::LeaseConnection`, migration 0011),
//! renewed from [`LeaseTask::run`] every third of its time to live on a connection of its own.
//! It stops acting as leader *before* the lease could pass to another daemon: each renewal
//! that succeeds lets it act until the moment it sent that renewal plus the time to live less
//! a margin, measured on the monotonic clock, and a renewal that fails, is refused, or has not
//! answered by then ends its leadership at once. The database stamps the lease with its own
//! clock no earlier than that moment, so the daemon's deadline always falls inside the lease.
//! A daemon whose session was cut off (its backend terminated) never renews through a new
//! one: it steps down and stands back for two lease times before it competes again, so a
//! healthy daemon takes over. Writes where it matters are fenced by the term: a filing
//! commits only while the lease row still names this daemon and term ([`Leadership::fence`]);
//! the scheduler's writes are each conditional (a rung fires once, a digest slot is claimed
//! once, every email has a unique Message-ID), so a pass finishing just after a takeover
//! repeats nothing.
//!
//! SQLite is one daemon per database: [`SoleDaemon`] holds a lock on a file beside the database
//! for the daemon's life and a second `haven run` is refused, and that daemon always leads.
//!
//! This module decides when to act; it logs lease terms and daemon names ("host:pid"), never
//! anything about pupils or messages.

use crate::store::{LeaseConnection, StoreError, Tx, holder_id};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The lease's timings, all derived from its time to live (`database.leader_lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    pub ttl: Duration,
}

impl LeaseTimes {
    /// The default time to live: a killed leader is replaced within about 20 s.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

    /// How often the leader renews, and a follower tries to take over: a third of the time to
    /// live, so one slow or failed renewal still leaves time for the next.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How long after sending a renewal the leader may act on it: the time to live less a
    /// fifth, room for the clocks of two machines to run at slightly different rates and for
    /// the last write in hand to commit.
    pub fn acting_for(&self) -> Duration {
        self.ttl - self.ttl / 5
    }

    /// How long a daemon that was cut off stands back before it competes again.
    pub fn stand_back(&self) -> Duration {
        self.ttl * 2
    }
}

/// A term of leadership: which daemon, and the lease's term number (it grows at each
/// takeover, so a leader's write can be told from its successor's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub holder: Arc<str>,
    pub number: i64,
}

/// Whether this daemon leads now, shared by every task that must act only as leader.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<Option<Term>>,
    /// SQLite's one daemon: always leads, nothing to fence. Holds the sender so the channel
    /// never closes.
    sole: Option<Arc<watch::Sender<Option<Term>>>>,
}

impl Leadership {
    /// The one daemon of a SQLite database: it always leads.
    pub fn sole() -> Leadership {
        let (tx, rx) = watch::channel(Some(Term { holder: "sole".into(), number: 0 }));
        Leadership { rx, sole: Some(Arc::new(tx)) }
    }

    /// The term this daemon leads in, if it leads now.
    pub fn current(&self) -> Option<Term> {
        self.rx.borrow().clone()
    }

    /// Waits until this daemon leads; `None` once the lease task has ended (shutting down).
    pub async fn leading(&mut self) -> Option<Term> {
        self.rx.wait_for(Option::is_some).await.ok().and_then(|t| t.clone())
    }

    /// Waits until this daemon no longer leads (or the lease task has ended).
    pub async fn lost(&mut self) {
        let _ = self.rx.wait_for(Option::is_none).await;
    }

    /// The fence for a leader's transaction, just before its COMMIT: fails with
    /// [`StoreError::NotLeader`] unless this daemon leads and the database still names it
    /// under the same term (the row then stays held until the commit).
    pub async fn fence(&self, tx: &mut Tx) -> Result<(), StoreError> {
        if self.sole.is_some() {
            return Ok(());
        }
        let Some(term) = self.current() else { return Err(StoreError::NotLeader) };
        tx.hold_lease(&term.holder, term.number).await
    }

    /// A token cancelled when `parent` is, or when this daemon stops leading: what a leader's
    /// task runs under for one term.
    fn stint(&self, parent: &CancellationToken) -> CancellationToken {
        let stint = parent.child_token();
        let mut me = self.clone();
        let done = stint.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = me.lost() => done.cancel(),
                () = done.cancelled() => {}
            }
        });
        stint
    }
}

/// Runs `work` only while this daemon leads: started at each term under a token that is
/// cancelled when the term ends (or at shutdown), and awaited before the next term starts.
/// The sole daemon of a SQLite database leads from the start, so `work` runs as it always has.
pub async fn while_leading<F, Fut>(mut leadership: Leadership, shutdown: CancellationToken, mut work: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let term = tokio::select! {
            () = shutdown.cancelled() => return,
            term = leadership.leading() => term,
        };
        if term.is_none() {
            return;
        }
        let stint = leadership.stint(&shutdown);
        work(stint.clone()).await;
        // Work that ended by itself is not restarted within the same term.
        stint.cancelled().await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Keeps [`Leadership`] up to date from the database's lease.
pub struct LeaseTask {
    url: String,
    holder: Arc<str>,
    times: LeaseTimes,
    tx: watch::Sender<Option<Term>>,
}

/// How a term ended.
enum Ending {
    Shutdown,
    /// Another daemon holds the lease now; the connection is sound.
    Taken(LeaseConnection),
    /// The session failed or did not answer in time.
    CutOff,
}

impl LeaseTask {
    /// A task for the database at `url` (PostgreSQL), and the [`Leadership`] it keeps.
    pub fn new(url: &str, times: LeaseTimes) -> (Leadership, LeaseTask) {
        let (tx, rx) = watch::channel(None);
        let task = LeaseTask { url: url.to_string(), holder: holder_id().into(), times, tx };
        (Leadership { rx, sole: None }, task)
    }

    /// Competes for the lease, leads while it holds it, and hands it back at shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(daemon = %self.holder, ttl_ms = self.times.ttl.as_millis() as u64, "competing for the leader lease");
        let mut conn: Option<LeaseConnection> = None;
        let mut next_try = Instant::now();
        let mut standing_by = false;
        let mut failing: Option<String> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(next_try) => {}
            }
            let sent = Instant::now();
            next_try = sent + self.times.renew_every();
            let attempt = async {
                let c = match conn.take() {
                    Some(c) => c,
                    None => LeaseConnection::open(&self.url, self.times.renew_every()).await?,
                };
                let c = conn.insert(c);
                c.acquire(&self.holder, self.times.ttl).await
            };
            let won = match tokio::time::timeout(self.times.renew_every(), attempt).await {
                Ok(Ok(won)) => {
                    if failing.take().is_some() {
                        tracing::info!("the leader lease can be reached again");
                    }
                    won
                }
                Ok(Err(e)) => {
                    self.failed(&mut failing, &e.to_string());
                    conn = None;
                    continue;
                }
                Err(_) => {
                    self.failed(&mut failing, "the database did not answer in time");
                    conn = None;
                    continue;
                }
            };
            let Some(number) = won else {
                if !standing_by {
                    tracing::info!(daemon = %self.holder, "another daemon leads; this one stands by (outbox and console only)");
                    standing_by = true;
                }
                continue;
            };
            let Some(c) = conn.take() else { continue };
            standing_by = false;
            match self.lead(c, number, sent, &shutdown).await {
                Ending::Shutdown => return,
                Ending::Taken(c) => conn = Some(c),
                Ending::CutOff => next_try = Instant::now() + self.times.stand_back(),
            }
        }
    }

    fn failed(&self, failing: &mut Option<String>, error: &str) {
        if failing.as_deref() != Some(error) {
            tracing::warn!(error, "cannot reach the leader lease; standing by");
            *failing = Some(error.to_string());
        }
    }

    /// Leads from `sent` (when the winning request left) until the term ends.
    async fn lead(&self, mut conn: LeaseConnection, number: i64, sent: Instant, shutdown: &CancellationToken) -> Ending {
        let mut acting_until = sent + self.times.acting_for();
        let mut next_renew = sent + self.times.renew_every();
        self.tx.send_replace(Some(Term { holder: self.holder.clone(), number }));
        tracing::info!(daemon = %self.holder, term = number, "this daemon leads: it reads the intake and runs the scheduler");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.tx.send_replace(None);
                    let handed = tokio::time::timeout(self.times.renew_every(), conn.release(&self.holder, number)).await;
                    if matches!(handed, Ok(Ok(()))) {
                        tracing::info!(term = number, "leader lease handed back");
                    }
                    return Ending::Shutdown;
                }
                () = tokio::time::sleep_until(next_renew) => {}
            }
            let renewing = Instant::now();
            let ending = match tokio::time::timeout_at(acting_until, conn.renew(&self.holder, number, self.times.ttl)).await {
                Ok(Ok(true)) => {
                    acting_until = renewing + self.times.acting_for();
                    next_renew = renewing + self.times.renew_every();
                    continue;
                }
                Ok(Ok(false)) => (Ending::Taken(conn), "another daemon holds the lease".to_string()),
                Ok(Err(e)) => (Ending::CutOff, format!("the lease could not be renewed: {e}")),
                Err(_) => (Ending::CutOff, "the lease could not be renewed before it could run out".to_string()),
            };
            self.tx.send_replace(None);
            tracing::warn!(daemon = %self.holder, term = number, reason = %ending.1, "this daemon no longer leads: intake and scheduler stopped");
            return ending.0;
        }
    }
}

/// SQLite's rule, one daemon per database: a lock on `DATABASE-daemon.lock` held for the life
/// of `haven run` (the kernel releases it when the process ends, however it ends).
#[derive(Debug)]
pub struct SoleDaemon {
    _file: std::fs::File,
}

/// Why a SQLite daemon may not start.
#[derive(Debug, thiserror::Error)]
pub enum SoleDaemonError {
    #[error(
        "another `haven run` ({holder}) is already running on the SQLite database {}: SQLite allows \
         one daemon per database. Stop that one first; to run several daemons, use PostgreSQL \
         (README: Several daemons)", .database.display()
    )]
    Taken { database: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl SoleDaemon {
    /// Locks the daemon lock file of the SQLite database `database`, writing this process's
    /// name in it for whoever is refused next.
    pub fn lock(database: &Path) -> Result<SoleDaemon, SoleDaemonError> {
        use std::io::{Read, Seek, Write};
        let mut name = database.as_os_str().to_owned();
        name.push("-daemon.lock");
        let path = PathBuf::from(name);
        let io = |source| SoleDaemonError::Io { path: path.clone(), source };
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path).map_err(io)?
        };
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.rewind().map_err(io)?;
                writeln!(file, "{}", holder_id()).map_err(io)?;
                Ok(SoleDaemon { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "process unknown".to_string() } else { holder.to_string() };
                Err(SoleDaemonError::Taken { database: database.to_path_buf(), holder })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_stops_acting_well_before_its_lease_can_run_out() {
        for secs in [3, 15, 60, 600] {
            let t = LeaseTimes { ttl: Duration::from_secs(secs) };
            // Two renewals fit before the leader must stop, and it stops a margin early.
            assert!(t.renew_every() * 2 < t.acting_for(), "{t:?}");
            assert!(t.acting_for() < t.ttl, "{t:?}");
            assert!(t.ttl - t.acting_for() >= Duration::from_millis(600), "{t:?}");
            // A cut-off daemon stands back until a healthy one has had its turn.
            assert!(t.stand_back() > t.ttl + t.renew_every(), "{t:?}");
        }
    }

    #[tokio::test]
    async fn the_sole_daemon_always_leads() {
        let mut l = Leadership::sole();
        assert!(l.current().is_some());
        assert!(l.leading().await.is_some());
    }

    #[tokio::test]
    async fn a_stint_ends_when_leadership_is_lost() {
        let (tx, rx) = watch::channel(Some(Term { holder: "h:1".into(), number: 3 }));
        let l = Leadership { rx, sole: None };
        let shutdown = CancellationToken::new();
        let stint = l.stint(&shutdown);
        assert!(!stint.is_cancelled());
        tx.send_replace(None);
        tokio::time::timeout(Duration::from_secs(5), stint.cancelled()).await.expect("the stint ends with the lead");
        assert!(!shutdown.is_cancelled(), "losing the lead does not stop the daemon");
    }

    #[test]
    fn a_second_sqlite_daemon_is_refused_and_told_who_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("haven.db");
        let first = SoleDaemon::lock(&db).expect("the first daemon locks");
        let second = SoleDaemon::lock(&db).expect_err("a second is refused");
        let text = second.to_string();
        assert!(text.contains(&holder_id()) && text.contains("one daemon per database"), "{text}");
        drop(first);
        assert!(SoleDaemon::lock(&db).is_ok(), "the lock is free once the first has gone");
    }
}
