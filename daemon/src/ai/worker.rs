//! The triage worker, a task of `haven run` beside intake, outbox and scheduler: it claims one
//! queued incident at a time (a lease, so several daemons may share the queue), asks the model,
//! and stores the suggestion sealed on the incident. Filing never waits for it. A call that
//! fails or times out is retried with backoff; the worker also pauses after each failure, so a
//! dead server is not asked again at once for every job queued. A stop gives the job in hand
//! back, so a restart loses none; a job is completed once (see `store::ai_queue`).

use super::model::{AiError, Reader};
use super::suggestion::Suggestion;
use crate::clock::Clock;
use crate::pipeline::fields;
use crate::rules::LiveRules;
use crate::store::{AiJob, AiOutcome, LiveKeys, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A job is given up after this many failed calls (about two hours of backoff).
pub const MAX_ATTEMPTS: i32 = 16;
/// The first retry waits this long; each later one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// With nothing queued, the queue is looked at again after this long (or when a batch is filed).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// The lease outlasts one call by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// What the worker needs.
pub struct Worker {
    pub store: Store,
    pub reader: Reader,
    pub keys: Arc<LiveKeys>,
    pub rules: Arc<LiveRules>,
    pub clock: Arc<dyn Clock>,
    /// Told when a batch is filed.
    pub filed: Arc<Notify>,
    /// The call's bound, from `ai.timeout`.
    pub timeout: Duration,
    /// The rules with `when.ai_risk`, evaluated again after each suggestion and wait.
    pub after: super::rules::AiRules,
}

/// How often incidents still waiting for a suggestion are checked against the rules'
/// `ai_timeout`s.
const WAIT_CHECK: Duration = Duration::from_secs(20);

/// The wait before the retry after `failures` failed calls in a row.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

impl Worker {
    /// Works the queue, and acts on late suggestions, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::join!(self.work(shutdown.clone()), self.watch_waits(shutdown));
    }

    /// Beside the queue (whose calls may hang until their timeout): incidents whose suggestion
    /// has not come within a rule's `ai_timeout`.
    async fn watch_waits(&self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.after.act_on_waits(self.clock.now()).await {
                tracing::warn!(error = %e, "AI rules: cannot act on late suggestions; trying again shortly");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(WAIT_CHECK) => {}
            }
        }
    }

    async fn work(&self, shutdown: CancellationToken) {
        let claim = format!("{}-{:016x}", crate::store::holder_id(), rand::random::<u64>());
        let lease = chrono::Duration::from_std(self.timeout + LEASE_MARGIN).unwrap_or(chrono::Duration::minutes(10));
        let mut failures: u32 = 0;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let now = self.clock.now();
            let job = match self.store.claim_ai_job(now, now + lease, &claim).await {
                Ok(job) => job,
                Err(e) => {
                    tracing::warn!(error = %e, "AI queue: cannot claim a job; trying again shortly");
                    None
                }
            };
            let Some(job) = job else {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.filed.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            };
            let incident = job.incident_id;
            let result = tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = self.store.release_ai_job(incident, &claim, self.clock.now()).await;
                    return;
                }
                r = self.read(&job) => r,
            };
            let pause = match result {
                Ok(suggestion) => {
                    failures = 0;
                    self.complete(&job, &claim, suggestion).await;
                    None
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    // Ids and the error only: never the text.
                    tracing::warn!(incident, attempt = job.attempts + 1, error = %e, "AI suggestion failed; will retry");
                    let wait = backoff(failures);
                    if job.attempts + 1 >= MAX_ATTEMPTS {
                        self.give_up(&job, &claim).await;
                    } else {
                        let next = self.clock.now() + chrono::Duration::from_std(backoff(job.attempts as u32 + 1)).unwrap_or_default();
                        if let Err(e) = self.store.retry_ai_job(incident, &claim, next).await {
                            tracing::warn!(incident, error = %e, "AI queue: cannot schedule the retry; the lease will end it");
                        }
                    }
                    Some(wait)
                }
            };
            if let Some(wait) = pause {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Opens the job's text and asks the model.
    async fn read(&self, job: &AiJob) -> Result<Option<Suggestion>, AiError> {
        let sealer = self.keys.current(&self.store).await.map_err(|e| AiError::Provider(format!("cannot open the keyring: {e}")))?;
        let open = |field: &str, v: &str| {
            crate::blind::open_or_clear(&sealer, field, v).map_err(|e| AiError::Provider(format!("cannot open the incident: {e}")))
        };
        let body = open(fields::BODY_TEXT, &job.body_text)?;
        let subject = job.subject.as_deref().map(|s| open(fields::SUBJECT, s)).transpose()?;
        let note = job.note.as_deref().map(|n| open(fields::NOTE, n)).transpose()?;
        let text = super::message_text(subject.as_deref(), note.as_deref(), &body);
        let categories: Vec<String> = self.rules.current().categories().iter().map(|c| c.name.clone()).collect();
        let directory = self
            .after
            .directory
            .current(&self.store, &sealer)
            .await
            .map_err(|e| AiError::Provider(format!("cannot open the directory: {e}")))?;
        self.reader.suggest(&text, &categories, &directory).await
    }

    /// Stores the answer and what the AI rules add for it, once. When that fails, the job
    /// is given back to be asked again.
    async fn complete(&self, job: &AiJob, claim: &str, suggestion: Option<Suggestion>) {
        let incident = job.incident_id;
        let outcome = if suggestion.is_some() { AiOutcome::Suggested } else { AiOutcome::NoSuggestion };
        match self.after.complete(incident, claim, suggestion.as_ref(), self.reader.name(), self.clock.now()).await {
            Ok(Some(raised)) => tracing::info!(
                incident,
                outcome = outcome.as_str(),
                alerts_added = raised.alerts,
                priority_raised = raised.priority_raised,
                "AI suggestion done"
            ),
            Ok(None) => tracing::info!(incident, "AI job taken over by another worker; its answer is dropped"),
            Err(e) => {
                tracing::warn!(incident, error = %e, "AI suggestion not stored; the job will be retried");
                let next = self.clock.now() + chrono::Duration::from_std(backoff(job.attempts as u32 + 1)).unwrap_or_default();
                if let Err(e) = self.store.retry_ai_job(incident, claim, next).await {
                    tracing::warn!(incident, error = %e, "AI queue: cannot schedule the retry; the lease will end it");
                }
            }
        }
    }

    async fn give_up(&self, job: &AiJob, claim: &str) {
        tracing::warn!(incident = job.incident_id, attempts = MAX_ATTEMPTS, "AI suggestion given up: every attempt failed");
        if let Err(e) =
            self.store.complete_ai_job(job.incident_id, claim, AiOutcome::GaveUp, None, self.reader.name(), None, self.clock.now()).await
        {
            tracing::warn!(incident = job.incident_id, error = %e, "AI queue: cannot record giving up");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(8), Duration::from_secs(600));
        assert_eq!(backoff(40), Duration::from_secs(600));
    }
}
