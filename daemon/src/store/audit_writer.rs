//! Group commit for audit entries that stand alone: a console page viewed, a file downloaded, a
//! sign-in. Entries that arrive while one transaction commits are appended together in the
//! next, so concurrent requests queue here instead of each taking the database's write lock in
//! turn (on SQLite a writer that finds it taken sleeps 1, 2, 5, 10… ms before trying again), and
//! they share one commit and one move of the anchored head.
//!
//! [`AuditWriter::append`] returns only once its entry is committed, or with the error that
//! stopped it: a page is shown only after its audit entry is durable, exactly as with
//! [`Store::audit`].

use super::audit::AuditRecord;
use super::{Result, Store, StoreError};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

/// Entries one transaction takes at most; the rest wait for the next.
const MOST_PER_COMMIT: usize = 256;

/// Requests waiting for the writer at most; more wait to be queued.
const QUEUE: usize = 1024;

/// An entry waiting to be appended, and who to tell.
struct Waiting {
    at: DateTime<Utc>,
    actor: String,
    action: String,
    subject: String,
    detail: String,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// The handle requests append through; one writer task per handle's store.
#[derive(Clone, Debug)]
pub struct AuditWriter {
    queue: mpsc::Sender<Waiting>,
}

impl AuditWriter {
    /// Starts the writer on `store`; it runs until every handle is dropped.
    pub fn start(store: Store) -> AuditWriter {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write_in_groups(store, waiting));
        AuditWriter { queue }
    }

    /// Appends one entry and returns once it is committed.
    pub async fn append(&self, at: DateTime<Utc>, actor: &str, action: &str, subject: &str, detail: &str) -> Result<()> {
        let (done, outcome) = oneshot::channel();
        let entry = Waiting {
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            subject: subject.to_string(),
            detail: detail.to_string(),
            done,
        };
        let stopped = || StoreError::AuditWrite("the audit writer has stopped".to_string());
        self.queue.send(entry).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?.map_err(StoreError::AuditWrite)
    }
}

/// Takes whatever has queued up (at least one entry), appends it in one transaction and tells
/// each waiting request how it went; until the queue closes.
async fn write_in_groups(store: Store, mut waiting: mpsc::Receiver<Waiting>) {
    let mut group = Vec::with_capacity(MOST_PER_COMMIT);
    while waiting.recv_many(&mut group, MOST_PER_COMMIT).await > 0 {
        let outcome = append_group(&store, &group).await.map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::error!(error = %e, entries = group.len(), "cannot write audit entries; the requests that made them are refused");
        }
        for w in group.drain(..) {
            let _ = w.done.send(outcome.clone());
        }
    }
}

async fn append_group(store: &Store, group: &[Waiting]) -> Result<()> {
    let records: Vec<AuditRecord<'_>> = group
        .iter()
        .map(|w| AuditRecord {
            at: w.at,
            actor: &w.actor,
            action: &w.action,
            subject: w.subject.clone(),
            detail: w.detail.clone(),
            incident: None,
        })
        .collect();
    let mut tx = store.begin().await?;
    tx.append_audits(&records).await?;
    tx.commit().await
}
