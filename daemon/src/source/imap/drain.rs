//! One connection's work: prepare the folders, select the intake mailbox, hand batches to the
//! sink and move what it committed, then wait for more (IDLE or poll) until shutdown or error.
//!
//! Every server round trip has a deadline, so a silent network failure becomes an error (and a
//! reconnect) rather than a hang. Shutdown is honoured between batches, never inside one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_imap::extensions::idle::IdleResponse;
use async_imap::types::{NameAttribute, UnsolicitedResponse};
use futures_util::TryStreamExt;
use tokio_util::sync::CancellationToken;

use super::connect::{self, ImapSession, command};
use super::wire::{quote, server_folder, uid_set};
use super::{Health, ImapError, ImapSettings, ImapState};
use crate::source::{Disposition, Incoming, Origin, Payload, Sink};

/// Deadline for a command whose answer is small.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline for fetching a batch of message bodies (up to [`BATCH_BYTES`]).
const BODY_TIMEOUT: Duration = Duration::from_secs(600);
/// A batch stops growing at this many bytes of message bodies (one message is always taken),
/// so fifty large messages are not all held in memory at once.
const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// A message the sink refused on its own (not transiently) is retried after this long.
const HOLD_FOR: Duration = Duration::from_secs(15 * 60);

/// Messages left in the mailbox and skipped until their time: those the sink refused on their
/// own, and those the server listed but did not return. One bad message must neither block the
/// rest nor spin the drain loop; each is tried again after [`HOLD_FOR`].
#[derive(Debug, Default)]
pub(crate) struct HeldBack {
    uidvalidity: u32,
    until: HashMap<u32, Instant>,
}

impl HeldBack {
    fn for_mailbox(&mut self, uidvalidity: u32) {
        if self.uidvalidity != uidvalidity {
            self.uidvalidity = uidvalidity;
            self.until.clear();
        }
    }

    fn hold(&mut self, uid: u32) {
        self.until.insert(uid, Instant::now() + HOLD_FOR);
    }

    fn is_held(&mut self, uid: u32) -> bool {
        let now = Instant::now();
        self.until.retain(|_, t| *t > now);
        self.until.contains_key(&uid)
    }

    /// How long until the earliest held message may be tried again.
    fn next_release(&self) -> Option<Duration> {
        let now = Instant::now();
        self.until.values().map(|t| t.saturating_duration_since(now)).min()
    }
}

/// The server features that change what Haven sends.
#[derive(Debug, Clone, Copy)]
struct Caps {
    moves: bool,
    uidplus: bool,
    idle: bool,
}

/// The folder names as the server spells them.
struct Folders {
    intake: String,
    filed: String,
    quarantine: String,
}

/// Why a wait ended.
enum Wake {
    Work,
    Shutdown,
}

/// Connects and works until shutdown (`Ok`) or a failure (`Err`, the caller backs off).
pub(crate) async fn serve<S: Sink>(
    settings: &ImapSettings,
    sink: &S,
    shutdown: &CancellationToken,
    health: &mut Health<'_>,
    held: &mut HeldBack,
) -> Result<(), ImapError> {
    let mut session = tokio::select! {
        s = connect::open(settings) => s?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let caps = read_caps(&mut session).await?;
    let folders = prepare_folders(&mut session, settings).await?;
    let mailbox = command(COMMAND_TIMEOUT, "SELECT", session.select(&folders.intake)).await?;
    let uidvalidity = mailbox.uid_validity.ok_or(ImapError::NoUidValidity)?;
    held.for_mailbox(uidvalidity);
    health.backlog(u64::from(mailbox.exists));
    if health.is_failing() {
        tracing::debug!(uidvalidity, exists = mailbox.exists, "IMAP intake reconnected");
    } else {
        tracing::info!(uidvalidity, exists = mailbox.exists, idle = caps.idle, r#move = caps.moves, "IMAP intake connected");
    }
    let work = Work { settings, caps, folders: &folders, uidvalidity };

    loop {
        health.set(ImapState::Draining);
        let outcome = work.drain(&mut session, sink, shutdown, health, held).await;
        let outcome = match outcome {
            Err(e @ ImapError::Sink(_)) => {
                // The connection is fine; say goodbye before backing off.
                logout(&mut session).await;
                return Err(e);
            }
            other => other?,
        };
        if matches!(outcome, Wake::Shutdown) {
            logout(&mut session).await;
            return Ok(());
        }
        health.succeeded();
        health.backlog(0);
        let wait = held.next_release().map_or(settings.idle_renew, |d| d.min(settings.idle_renew));
        let wake = if caps.idle {
            health.set(ImapState::Idle);
            let (s, wake) = idle(session, wait, shutdown).await?;
            session = s;
            wake
        } else {
            health.set(ImapState::Polling);
            let wait = wait.min(settings.poll_interval);
            tokio::select! {
                _ = shutdown.cancelled() => Wake::Shutdown,
                _ = tokio::time::sleep(wait) => Wake::Work,
            }
        };
        if matches!(wake, Wake::Shutdown) {
            logout(&mut session).await;
            return Ok(());
        }
    }
}

async fn logout(session: &mut ImapSession) {
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
}

async fn read_caps(session: &mut ImapSession) -> Result<Caps, ImapError> {
    let caps = command(COMMAND_TIMEOUT, "CAPABILITY", session.capabilities()).await?;
    Ok(Caps { moves: caps.has_str("MOVE"), uidplus: caps.has_str("UIDPLUS"), idle: caps.has_str("IDLE") })
}

/// Learns the hierarchy delimiter and creates the filed and quarantine folders if missing.
async fn prepare_folders(session: &mut ImapSession, settings: &ImapSettings) -> Result<Folders, ImapError> {
    let delimiter = list(session, "\"\"").await?.into_iter().find_map(|(_, d, _)| d);
    let folders = Folders {
        intake: server_folder(&settings.mailbox, delimiter.as_deref()),
        filed: server_folder(&settings.filed_folder, delimiter.as_deref()),
        quarantine: server_folder(&settings.quarantine_folder, delimiter.as_deref()),
    };
    for folder in [&folders.filed, &folders.quarantine] {
        if folder_exists(session, folder).await? {
            continue;
        }
        match command(COMMAND_TIMEOUT, "CREATE", session.create(folder)).await {
            Ok(()) => tracing::info!("IMAP intake created a destination folder"),
            // Another daemon on the same mailbox may have created it a moment ago.
            Err(_) if folder_exists(session, folder).await? => {}
            Err(e) => return Err(e),
        }
    }
    Ok(folders)
}

pub(super) async fn folder_exists(session: &mut ImapSession, folder: &str) -> Result<bool, ImapError> {
    let found = list(session, &quote(folder)).await?;
    Ok(found.iter().any(|(name, _, selectable)| name == folder && *selectable))
}

/// LIST "" pattern → (name, delimiter, selectable) for each match.
pub(super) async fn list(session: &mut ImapSession, pattern: &str) -> Result<Vec<(String, Option<String>, bool)>, ImapError> {
    let run = async {
        let names: Vec<_> = session.list(Some(""), Some(pattern)).await?.try_collect().await?;
        Ok::<_, async_imap::error::Error>(
            names
                .iter()
                .map(|n| {
                    let selectable = !n.attributes().contains(&NameAttribute::NoSelect);
                    (n.name().to_string(), n.delimiter().map(str::to_string), selectable)
                })
                .collect(),
        )
    };
    command(COMMAND_TIMEOUT, "LIST", run).await
}

/// IDLE until the server announces a change, `wait` passes, or shutdown.
async fn idle(session: ImapSession, wait: Duration, shutdown: &CancellationToken) -> Result<(ImapSession, Wake), ImapError> {
    // Notifications already seen were covered by the search that ended the drain.
    while session.unsolicited_responses.try_recv().is_ok() {}
    let notes = session.unsolicited_responses.clone();
    let mut handle = session.idle();
    command(COMMAND_TIMEOUT, "IDLE", handle.init()).await?;
    // Mail that arrived between the last search and IDLE is announced before "+ idling".
    let mut pending = false;
    while let Ok(note) = notes.try_recv() {
        pending |= matches!(note, UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_));
    }
    let wake = if pending {
        Wake::Work
    } else {
        // The idle handle's own timeout restarts at every "* OK Still here", which Dovecot
        // sends every two minutes, so the renewal deadline is kept here instead.
        let (event, _stop) = handle.wait_with_timeout(wait);
        tokio::select! {
            r = event => match r {
                // A closed connection also ends the wait; DONE below then reports it.
                Ok(IdleResponse::NewData(_) | IdleResponse::ManualInterrupt | IdleResponse::Timeout) => Wake::Work,
                Err(source) => return Err(ImapError::Protocol { op: "IDLE", source }),
            },
            _ = tokio::time::sleep(wait) => Wake::Work,
            _ = shutdown.cancelled() => Wake::Shutdown,
        }
    };
    let session = command(COMMAND_TIMEOUT, "DONE", handle.done()).await?;
    Ok((session, wake))
}

/// Which of `uids` (ascending) make this batch, with their sizes: in order, stopping before
/// the bodies would pass `budget` bytes (one message is always taken); messages over `limit`
/// cost nothing as only their size is handed over. UIDs with no size are returned as missing.
fn plan_batch(uids: &[u32], sizes: &HashMap<u32, u64>, limit: u64, budget: u64) -> (Vec<(u32, u64)>, Vec<u32>) {
    let mut chosen = Vec::new();
    let mut missing = Vec::new();
    let mut used = 0u64;
    for &uid in uids {
        let Some(&size) = sizes.get(&uid) else {
            missing.push(uid);
            continue;
        };
        if size <= limit {
            if used > 0 && used.saturating_add(size) > budget {
                break;
            }
            used = used.saturating_add(size);
        }
        chosen.push((uid, size));
    }
    (chosen, missing)
}

/// One batch as fetched: (uid, message) in UID order, and the UIDs the server listed but then
/// did not return.
struct Fetched {
    batch: Vec<(u32, Incoming)>,
    missing: Vec<u32>,
}

/// UIDs the server did not return were usually moved by another client meanwhile (they are then
/// gone); holding them back keeps a server that never returns one from spinning the drain loop.
fn skip_missing(missing: &[u32], held: &mut HeldBack) {
    if missing.is_empty() {
        return;
    }
    for &uid in missing {
        held.hold(uid);
    }
    tracing::info!(count = missing.len(), "messages the server listed but did not return are skipped for now");
}

/// What one connection knows while draining.
struct Work<'a> {
    settings: &'a ImapSettings,
    caps: Caps,
    folders: &'a Folders,
    uidvalidity: u32,
}

impl Work<'_> {
    /// Hands every message in the mailbox to the sink, batch by batch, until none is left
    /// (held-back ones aside) or shutdown is asked for between batches.
    async fn drain<S: Sink>(
        &self,
        session: &mut ImapSession,
        sink: &S,
        shutdown: &CancellationToken,
        health: &mut Health<'_>,
        held: &mut HeldBack,
    ) -> Result<Wake, ImapError> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(Wake::Shutdown);
            }
            let mut uids = self.search(session).await?;
            uids.retain(|uid| !held.is_held(*uid));
            if uids.is_empty() {
                return Ok(Wake::Work);
            }
            uids.truncate(self.settings.batch_size);
            let Fetched { batch, missing } = self.fetch_batch(session, &uids).await?;
            skip_missing(&missing, held);
            if batch.is_empty() {
                continue;
            }
            self.commit(session, sink, batch, held).await?;
            health.succeeded();
        }
    }

    /// The mailbox's UIDs, ascending.
    async fn search(&self, session: &mut ImapSession) -> Result<Vec<u32>, ImapError> {
        // Without UIDPLUS, moved messages can only be flagged \Deleted and must then be skipped.
        let query = if self.caps.moves || self.caps.uidplus { "ALL" } else { "UNDELETED" };
        let found = command(COMMAND_TIMEOUT, "UID SEARCH", session.uid_search(query)).await?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Sizes first; then the bodies of those under the limit, within the byte budget. Returns
    /// (uid, message) in UID order; messages expunged meanwhile by someone else are skipped.
    async fn fetch_batch(&self, session: &mut ImapSession, uids: &[u32]) -> Result<Fetched, ImapError> {
        let sizes = self.fetch_sizes(session, uids).await?;
        let limit = self.settings.max_message_size;
        let (chosen, mut missing) = plan_batch(uids, &sizes, limit, BATCH_BYTES);
        let wanted: Vec<u32> = chosen.iter().filter(|(_, size)| *size <= limit).map(|(uid, _)| *uid).collect();
        let mut bodies = self.fetch_bodies(session, &wanted).await?;
        let batch = chosen
            .into_iter()
            .filter_map(|(uid, size)| {
                let payload = if size > limit {
                    Payload::TooLarge { size }
                } else {
                    let Some(raw) = bodies.remove(&uid) else {
                        missing.push(uid);
                        return None;
                    };
                    Payload::Raw(raw)
                };
                let origin = Origin::Imap { mailbox: self.settings.mailbox.clone(), uidvalidity: self.uidvalidity, uid };
                Some((uid, Incoming { origin, payload }))
            })
            .collect();
        Ok(Fetched { batch, missing })
    }

    async fn fetch_sizes(&self, session: &mut ImapSession, uids: &[u32]) -> Result<HashMap<u32, u64>, ImapError> {
        let set = uid_set(uids);
        let run = async {
            let fetches: Vec<_> = session.uid_fetch(&set, "(UID RFC822.SIZE)").await?.try_collect().await?;
            Ok::<_, async_imap::error::Error>(fetches.iter().filter_map(|f| Some((f.uid?, u64::from(f.size?)))).collect::<HashMap<_, _>>())
        };
        command(COMMAND_TIMEOUT, "UID FETCH RFC822.SIZE", run).await
    }

    async fn fetch_bodies(&self, session: &mut ImapSession, uids: &[u32]) -> Result<HashMap<u32, Vec<u8>>, ImapError> {
        if uids.is_empty() {
            return Ok(HashMap::new());
        }
        let set = uid_set(uids);
        let run = async {
            let fetches: Vec<_> = session.uid_fetch(&set, "(UID BODY.PEEK[])").await?.try_collect().await?;
            Ok::<_, async_imap::error::Error>(fetches.iter().filter_map(|f| Some((f.uid?, f.body()?.to_vec()))).collect::<HashMap<_, _>>())
        };
        command(BODY_TIMEOUT, "UID FETCH BODY.PEEK[]", run).await
    }

    /// Commits a batch and moves it. A transient sink error leaves everything in place for a
    /// retry after backoff; a non-transient one is retried message by message, so only the
    /// message the sink cannot take stays behind (held back for a while).
    async fn commit<S: Sink>(
        &self,
        session: &mut ImapSession,
        sink: &S,
        batch: Vec<(u32, Incoming)>,
        held: &mut HeldBack,
    ) -> Result<(), ImapError> {
        let (uids, messages): (Vec<u32>, Vec<Incoming>) = batch.into_iter().unzip();
        let sent = messages.len();
        match sink.accept(messages).await {
            Ok(dispositions) => {
                if dispositions.len() != sent {
                    return Err(ImapError::SinkContract { sent, got: dispositions.len() });
                }
                tracing::debug!(messages = sent, uidvalidity = self.uidvalidity, "batch committed");
                self.move_committed(session, &uids, &dispositions).await
            }
            Err(e) if e.transient => Err(ImapError::Sink(e)),
            Err(e) if sent == 1 => {
                for &uid in &uids {
                    tracing::warn!(uid, uidvalidity = self.uidvalidity, error = %e,
                        "the filing pipeline refused a message; it stays in the intake mailbox");
                    held.hold(uid);
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(messages = sent, error = %e,
                    "the filing pipeline refused a batch; retrying its messages one by one");
                for uid in uids {
                    let Fetched { batch: one, missing } = self.fetch_batch(session, &[uid]).await?;
                    skip_missing(&missing, held);
                    if !one.is_empty() {
                        Box::pin(self.commit(session, sink, one, held)).await?;
                    }
                }
                Ok(())
            }
        }
    }

    async fn move_committed(&self, session: &mut ImapSession, uids: &[u32], dispositions: &[Disposition]) -> Result<(), ImapError> {
        let pick =
            |want: Disposition| -> Vec<u32> { uids.iter().zip(dispositions).filter(|(_, d)| **d == want).map(|(u, _)| *u).collect() };
        self.move_to(session, &pick(Disposition::Filed), &self.folders.filed).await?;
        self.move_to(session, &pick(Disposition::Quarantine), &self.folders.quarantine).await
    }

    /// UID MOVE when the server has it; otherwise UID COPY, flag `\Deleted`, and UID EXPUNGE of
    /// exactly these UIDs (with no UIDPLUS they stay flagged: a plain EXPUNGE could remove
    /// messages another client flagged).
    async fn move_to(&self, session: &mut ImapSession, uids: &[u32], folder: &str) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        if self.caps.moves {
            return command(COMMAND_TIMEOUT, "UID MOVE", session.uid_mv(&set, folder)).await;
        }
        command(COMMAND_TIMEOUT, "UID COPY", session.uid_copy(&set, folder)).await?;
        let flag = async {
            let _: Vec<_> = session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect().await?;
            Ok::<_, async_imap::error::Error>(())
        };
        command(COMMAND_TIMEOUT, "UID STORE", flag).await?;
        if self.caps.uidplus {
            let expunge = async {
                let _: Vec<_> = session.uid_expunge(&set).await?.try_collect().await?;
                Ok::<_, async_imap::error::Error>(())
            };
            command(COMMAND_TIMEOUT, "UID EXPUNGE", expunge).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stop_at_the_byte_budget_but_always_take_one() {
        let sizes: HashMap<u32, u64> = [(1, 40), (2, 40), (3, 500), (4, 40), (6, 10)].into();
        // 3 is over the limit: handed over by size, costing nothing; 5 has no size.
        let (chosen, missing) = plan_batch(&[1, 2, 3, 4, 5, 6], &sizes, 100, 100);
        assert_eq!(chosen, [(1, 40), (2, 40), (3, 500)]);
        assert_eq!(missing, Vec::<u32>::new());
        let (chosen, missing) = plan_batch(&[4, 5, 6], &sizes, 100, 100);
        assert_eq!(chosen, [(4, 40), (6, 10)]);
        assert_eq!(missing, [5]);
        let big: HashMap<u32, u64> = [(7, 90)].into();
        assert_eq!(plan_batch(&[7], &big, 100, 10).0, [(7, 90)], "one message always goes");
    }

    #[test]
    fn held_messages_are_skipped_until_released_and_reset_on_new_uidvalidity() {
        let mut held = HeldBack::default();
        held.for_mailbox(7);
        held.hold(3);
        assert!(held.is_held(3));
        assert!(!held.is_held(4));
        assert!(held.next_release().is_some_and(|d| d <= HOLD_FOR));
        held.for_mailbox(7);
        assert!(held.is_held(3));
        held.for_mailbox(8);
        assert!(!held.is_held(3));
        assert_eq!(held.next_release(), None);
    }
}
