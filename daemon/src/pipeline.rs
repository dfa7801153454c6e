//! The filing pipeline: where a received message goes, stage by stage, in the order of
//! SPEC "The pipeline". Read this file top to bottom to follow a message.
//!
//! 1. already recorded? (same IMAP UID, same bytes) — nothing is written twice
//! 2. read (`crate::read`) — unreadable or over a limit: quarantined
//! 3. noise (`crate::noise`) — auto-replies, bounces, Haven's own mail: ignored
//! 4. sender (`crate::authenticate`) — not an active member of staff: quarantined (until the
//!    DSL team releases it: `release`)
//! 5. duplicate — same Message-ID and same content as a message filed or awaiting triage
//!    5b. reply to an alert, a digest or a triage question (signed token in the address): an
//!    outcome (answered with a one-line confirmation or the reason it was refused), a
//!    follow-up entry, or the pupil a message awaiting triage is about
//! 6. identify (`crate::identify`) — pupils and category; unknown/ambiguous: awaiting triage
//! 7. rules (`crate::rules`) — category, visibility, recipients, outcome deadline, ladder
//! 8. record — message, incident, attachments, alerts (outbox), action, audit: one transaction
//!
//! Stages 2–7 are pure apart from asking the store for facts (IMAP UIDs and Message-IDs
//! recorded before, pupils' earlier incidents); stage 8 writes. A batch is one transaction,
//! committed once. It is assessed a window of messages at a time, asking the store each fact
//! once per window, and written a chunk at a time with multi-row statements while the next
//! window is assessed. What the batch itself has filed counts too: a Message-ID seen earlier
//! in the batch is a duplicate, and an incident filed earlier counts in the history.

use crate::alert;
use crate::authenticate::{self, SenderCheck};
use crate::clock::Clock;
use crate::directory::{Directory, Staff};
use crate::history;
use crate::identify::{self, Identification, Triage};
use crate::message::Message;
use crate::noise;
use crate::read::{self, Limits};
use crate::reply_token;
use crate::rules::{Decision, Facts, LiveRules, RuleSet};
use crate::seal::{KeyFiles, Sealer};
use crate::source::{Disposition, Incoming, Origin, Payload, Sink, SinkError};
use crate::store::{
    AttachmentRecord, IncidentRecord, MessageRecord, MessageState, PupilLink, QuestionRecord, Recorded, Store, StoreError, ToRecord, Tx,
};
use crate::store::{DirectoryCache, EarlierIncident, LiveKeys, Statistics};
use crate::triage;
use crate::visibility;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

mod answer;
mod receipt;
mod release;
mod trust;
pub use answer::{AnswerError, Answered};
pub use release::{ReleaseError, Released};
pub use trust::{DATE_IN_FUTURE, DATE_UNREADABLE, content_sha256};
use trust::{occurred, trusted_date};

/// What the pipeline needs from the configuration.
#[derive(Debug, Clone)]
pub struct FilingSettings {
    pub intake_address: String,
    /// Domain used in Message-IDs of Haven's own emails.
    pub mail_domain: String,
    pub limits: Limits,
    pub trusted_authserv_id: Option<String>,
    pub alerts: alert::AlertSettings,
    /// Verifies reply tokens; without it every reply to an alert is quarantined.
    pub reply_key: Option<Vec<u8>>,
    /// A message whose original is older than this is historical: see [`Filer::backfilling`].
    pub backfill_age: chrono::Duration,
    /// `[ai]` is on: every incident filed is queued for the model to read after filing.
    pub ai_read: bool,
}

/// The outcome of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filing {
    pub state: MessageState,
    /// Message record id.
    pub message: i64,
    pub incident: Option<i64>,
    /// True when nothing was written because the message was recorded before.
    pub already: bool,
}

impl Filing {
    /// Where the source should put the message once this is committed.
    pub fn disposition(&self) -> Disposition {
        match self.state {
            MessageState::Quarantined => Disposition::Quarantine,
            _ => Disposition::Filed,
        }
    }
}

/// Files messages into the store.
pub struct Filer {
    store: Store,
    rules: Arc<LiveRules>,
    clock: Arc<dyn Clock>,
    /// The keyring, followed across rotations when the filer knows where the key files are.
    keys: Arc<LiveKeys>,
    settings: FilingSettings,
    /// Under several daemons, a batch commits only while this daemon still leads.
    fence: Option<crate::lease::Leadership>,
    /// Every message is historical (`haven ingest --backfill`), whatever its date.
    backfill: bool,
    /// The opened directory, read again only when an import changed it.
    directory: DirectoryCache,
    /// When PostgreSQL's statistics were last gathered.
    statistics: Statistics,
}

/// What a message's assessment decided, before anything is written.
struct Assessed {
    record: MessageRecord,
    incident: Option<IncidentRecord>,
    /// Outcomes to record with the message: (incident, staff id, sealed text).
    /// (incident, by, sealed text, code read from the text).
    outcomes: Vec<(i64, i64, String, Option<crate::outcome_code::OutcomeCode>)>,
    /// For an answer to a triage question: the message it settles (the incident is its).
    settles: Option<i64>,
    /// An email to the sender queued with the message: a triage question to the forwarder, or
    /// the answer to an `Outcome:` reply (recorded, or why not).
    question: Option<QuestionRecord>,
    /// Why the incident is not in the category staff named (an unknown name).
    category_note: Option<String>,
    /// Emails about the message itself: the quarantine notice to the DSL team.
    notices: Vec<crate::store::OutboxRecord>,
    /// An "AI: right" / "AI: wrong" line in a reply to an alert: (incident, staff id, their
    /// address for the audit, right).
    ai_feedback: Option<(i64, i64, String, bool)>,
    /// A transfer receipt: the case it closes, who signed it and the line that replaces each
    /// body removed after it (both sealed); see [`receipt`].
    receipt: Option<(i64, String, String)>,
}

impl Assessed {
    /// A message recorded in its state, with nothing else to write.
    fn only(record: MessageRecord) -> Assessed {
        Assessed {
            record,
            incident: None,
            outcomes: Vec::new(),
            settles: None,
            question: None,
            category_note: None,
            notices: Vec::new(),
            ai_feedback: None,
            receipt: None,
        }
    }
}

/// One message of a batch, as the recorder receives it.
enum Step {
    /// Recorded before under the same IMAP UID: nothing to write.
    Already(Filing),
    Record {
        sealed_raw: Vec<u8>,
        assessed: Box<Assessed>,
    },
}

/// How far a message's assessment went before the rules.
enum Progress {
    Done(Step),
    /// Filed, once the rules (stage 7) have decided how: its sealed raw bytes and the rest.
    ToRules(Vec<u8>, Box<ForRules>),
}

/// What stages 2–6 made of a message.
enum Assessment {
    Decided(Box<Assessed>),
    ToRules(Box<ForRules>),
}

/// A message from a member of staff about known pupils, waiting for the rules.
struct ForRules {
    record: MessageRecord,
    msg: Message,
    ident: Identification,
    /// The forwarder's staff id.
    sender: i64,
    /// For an answer to a triage question: the message it settles, which `msg` is.
    settles: Option<i64>,
    /// Filed now on someone's word (a triage answer, a release from quarantine): never
    /// historical, whatever its original's age, since a live concern may have waited.
    live: bool,
}

/// What the store already held of a window's messages.
#[derive(Default)]
struct Known {
    /// (mailbox, UIDVALIDITY, UID) → the message recorded under it.
    uids: HashMap<(String, u32, u32), (i64, MessageState)>,
    /// Message-ID → the messages filed or awaiting triage with it, oldest first, and their
    /// content hashes.
    originals: HashMap<String, Vec<(i64, Option<String>)>>,
}

/// What the batch has assessed so far, which the store cannot see until it commits.
#[derive(Default)]
struct Seen {
    /// (Message-ID, content hash) of the messages from staff assessed so far.
    message_ids: HashSet<(String, Option<String>)>,
    /// Incidents whose outcome a message of this batch records.
    outcomes: HashSet<i64>,
    /// Messages awaiting triage that an answer in this batch settles.
    settled: HashSet<i64>,
    /// Each pupil's incidents filed by this batch, for history counts.
    incidents: Vec<EarlierIncident>,
}

/// A message hashed, parsed and sealed, ready for assessment.
struct Prepared {
    /// Its hashes and what the reader made of it; None when it was too large to fetch.
    read: Option<(Hashes, Result<Message, read::ReadError>)>,
    sealed_raw: Vec<u8>,
}

/// A received message's hashes.
struct Hashes {
    /// Of the raw bytes: the same bytes are never recorded twice.
    raw: String,
    /// Of the body ([`content_sha256`]): with the Message-ID, what makes a duplicate.
    content: String,
}

/// How many messages are prepared, looked up and assessed together.
const WINDOW: usize = 32;

/// How many assessed messages the recorder writes together, a few statements per table.
const RECORD_CHUNK: usize = 64;

/// Stage 8: writes the messages as they arrive, in order and a chunk at a time, in the batch's
/// transaction, and hands the transaction back uncommitted with what was recorded.
async fn record_all(
    mut tx: Tx,
    mut steps: tokio::sync::mpsc::Receiver<Step>,
    now: DateTime<Utc>,
    expected: usize,
) -> Result<(Tx, Vec<Filing>), StoreError> {
    let mut out: Vec<Option<Filing>> = Vec::with_capacity(expected);
    let mut chunk: Vec<(usize, Vec<u8>, Assessed)> = Vec::with_capacity(RECORD_CHUNK);
    loop {
        let step = steps.recv().await;
        let finished = step.is_none();
        match step {
            Some(Step::Already(filing)) => out.push(Some(filing)),
            Some(Step::Record { sealed_raw, assessed }) => {
                chunk.push((out.len(), sealed_raw, *assessed));
                out.push(None);
            }
            None => {}
        }
        if chunk.len() == RECORD_CHUNK || (finished && !chunk.is_empty()) {
            record_chunk(&mut tx, &chunk, now, &mut out).await?;
            chunk.clear();
        }
        if finished {
            break;
        }
    }
    let out = out.into_iter().map(|f| f.expect("every message of the batch was recorded")).collect();
    Ok((tx, out))
}

/// Writes one chunk of assessed messages, then the outcomes they record.
async fn record_chunk(
    tx: &mut Tx,
    chunk: &[(usize, Vec<u8>, Assessed)],
    now: DateTime<Utc>,
    out: &mut [Option<Filing>],
) -> Result<(), StoreError> {
    let items: Vec<ToRecord> = chunk
        .iter()
        .map(|(_, raw, a)| ToRecord {
            raw,
            message: &a.record,
            incident: a.incident.as_ref(),
            settles: a.settles,
            question: a.question.as_ref(),
        })
        .collect();
    let recorded = tx.record_messages(&items, "intake").await?;
    for ((slot, _, a), recorded) in chunk.iter().zip(recorded) {
        if let Recorded::New { .. } = &recorded {
            for (incident, by, text, code) in &a.outcomes {
                tx.record_coded_outcome(*incident, *by, text, *code, now).await?;
            }
            if let Some((incident, by, actor, right)) = &a.ai_feedback {
                tx.record_ai_feedback(*incident, *by, actor, *right, now).await?;
            }
        }
        if let (Recorded::New { .. }, Some((case, signed, removed))) = (&recorded, &a.receipt) {
            tx.record_transfer_receipt(*case, signed, removed, "intake", now).await?;
        }
        if let (Recorded::New { incident: Some(incident), .. }, Some(note)) = (&recorded, &a.category_note) {
            tx.set_category_note(*incident, note).await?;
        }
        if let (Recorded::New { message, .. }, false) = (&recorded, a.notices.is_empty()) {
            tx.queue_about_message(*message, &a.notices, a.record.received).await?;
        }
        out[*slot] = Some(match recorded {
            Recorded::New { message, incident } => Filing { state: a.record.state, message, incident, already: false },
            Recorded::Already { message, state } => Filing { state, message, incident: None, already: true },
        });
    }
    Ok(())
}

impl Filer {
    pub fn new(store: Store, rules: Arc<LiveRules>, clock: Arc<dyn Clock>, sealer: Sealer, settings: FilingSettings) -> Filer {
        Filer {
            store,
            rules,
            clock,
            keys: Arc::new(LiveKeys::new(sealer, None)),
            settings,
            fence: None,
            backfill: false,
            directory: DirectoryCache::default(),
            statistics: Statistics::default(),
        }
    }

    /// Files every message as historical (a backfill of old records): incidents and history are
    /// recorded, but no alert is queued and no outcome deadline opened, unless a rule matching
    /// the message says `on_backfill = "alert"`. Without this, only messages whose original is
    /// older than `intake.backfill_age` are historical.
    pub fn backfilling(mut self) -> Filer {
        self.backfill = true;
        self
    }

    /// Before each batch, asks the database which key is current and, after a rotation,
    /// re-reads the keyring from `files` so new values are sealed with the new key.
    pub fn following_key_changes(mut self, files: KeyFiles) -> Filer {
        self.keys = Arc::new(LiveKeys::new(self.keys.held(), Some(files)));
        self
    }

    /// Commits each batch only while `leadership` holds (several daemons on one database): a
    /// batch read by a leader that has since been replaced is not filed, and stays in the
    /// intake for the new leader.
    pub fn fenced_by(mut self, leadership: crate::lease::Leadership) -> Filer {
        self.fence = Some(leadership);
        self
    }

    /// The keyring this filer follows, to share with the daemon's other tasks.
    pub fn keys(&self) -> Arc<LiveKeys> {
        self.keys.clone()
    }

    /// The keyring as of the last batch.
    fn sealer(&self) -> Sealer {
        self.keys.held()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Files one message in its own transaction.
    pub async fn file(&self, raw: &[u8], origin: &Origin) -> Result<Filing, StoreError> {
        let incoming = Incoming { origin: origin.clone(), payload: Payload::Raw(raw.to_vec()) };
        let mut out = self.file_batch(std::slice::from_ref(&incoming)).await?;
        Ok(out.remove(0))
    }

    /// Files several messages in ONE transaction (one durable commit), in order.
    ///
    /// The batch is assessed a window at a time: the window's messages are hashed, parsed and
    /// sealed side by side on the blocking pool (the next window's while this one is
    /// assessed), and what the store knows about them (IMAP UIDs and Message-IDs recorded
    /// before, pupils' earlier incidents) is asked in one query each. Stage 8 runs in a task of
    /// its own, so the database and the CPU work side by side. If anything fails, the
    /// transaction is dropped unfinished and nothing of the batch is kept.
    pub async fn file_batch(&self, batch: &[Incoming]) -> Result<Vec<Filing>, StoreError> {
        let now = self.clock.now();
        let rules = self.rules.current();
        let sealer = self.keys.current(&self.store).await?;
        let directory = self.directory.current(&self.store, &sealer).await?;
        let tx = self.store.begin().await?;
        let (to_recorder, from_assessor) = tokio::sync::mpsc::channel(RECORD_CHUNK);
        let recorder = tokio::spawn(record_all(tx, from_assessor, now, batch.len()));

        let assessed = async {
            let mut seen = Seen::default();
            let mut windows = batch.chunks(WINDOW);
            let mut preparing = windows.next().map(|w| (w, self.prepare_window(w)));
            while let Some((window, prepared)) = preparing.take() {
                preparing = windows.next().map(|w| (w, self.prepare_window(w)));
                let mut ready = Vec::with_capacity(window.len());
                for p in prepared {
                    ready.push(p.await?);
                }
                let known = self.look_up(window, &ready).await?;
                let mut progress = Vec::with_capacity(window.len());
                for (incoming, prepared) in window.iter().zip(ready) {
                    progress.push(self.assess(incoming, prepared, &directory, &rules, now, &known, &mut seen).await?);
                }
                let earlier = self.earlier_incidents(&rules, &progress, now).await?;
                for p in progress {
                    let step = match p {
                        Progress::Done(step) => step,
                        Progress::ToRules(sealed_raw, r) => {
                            Step::Record { sealed_raw, assessed: Box::new(self.decide(*r, &directory, &rules, now, &earlier, &seen)?) }
                        }
                    };
                    if let Step::Record { assessed, .. } = &step
                        && let Some(inc) = &assessed.incident
                    {
                        // A pupil only mentioned in the text gains no history from it.
                        seen.incidents.extend(inc.pupils.iter().filter(|p| p.role != "mentioned").map(|p| EarlierIncident {
                            pupil: p.pupil_id,
                            category: inc.category.clone(),
                            occurred: inc.occurred,
                        }));
                    }
                    if to_recorder.send(step).await.is_err() {
                        return Ok(()); // the recorder stopped on an error, which it returns
                    }
                }
            }
            Ok::<(), StoreError>(())
        }
        .await;
        drop(to_recorder);
        let recorded = recorder.await.map_err(|e| StoreError::Invalid(format!("the recording task failed: {}", task_failure(&e))))?;
        assessed?;
        let (mut tx, out) = recorded?;
        if let Some(fence) = &self.fence {
            fence.fence(&mut tx).await?;
        }
        tx.commit().await?;
        self.store.note_filed(&self.statistics, out.len() as u64);
        for f in &out {
            tracing::info!(message_id = f.message, incident = ?f.incident, state = f.state.as_str(), already = f.already, "message recorded");
        }
        Ok(out)
    }

    /// Starts preparing every message of a window.
    fn prepare_window(&self, window: &[Incoming]) -> Vec<impl Future<Output = Result<Prepared, StoreError>> + use<>> {
        window.iter().map(|incoming| self.prepare(incoming)).collect()
    }

    /// The CPU-heavy part of a message — hashing, parsing (stage 2) and sealing the raw bytes —
    /// on the blocking pool, so several messages of a batch are prepared side by side.
    fn prepare(&self, incoming: &Incoming) -> impl Future<Output = Result<Prepared, StoreError>> + use<> {
        let raw = match &incoming.payload {
            Payload::Raw(raw) => Some(raw.clone()),
            Payload::TooLarge { .. } => None,
        };
        let (limits, sealer) = (self.settings.limits.clone(), self.sealer());
        let task = tokio::task::spawn_blocking(move || {
            let Some(raw) = raw else {
                return Prepared { read: None, sealed_raw: Vec::new() };
            };
            let hashes = Hashes { raw: hex::encode(Sha256::digest(&raw)), content: content_sha256(&raw) };
            Prepared { read: Some((hashes, read::read_message_with(&raw, &limits))), sealed_raw: sealer.seal(fields::RAW, &raw) }
        });
        async move { task.await.map_err(|e| StoreError::Invalid(format!("preparing a message failed: {}", task_failure(&e)))) }
    }

    /// What the store already holds of a window's messages: IMAP UIDs and Message-IDs.
    async fn look_up(&self, window: &[Incoming], prepared: &[Prepared]) -> Result<Known, StoreError> {
        let mut known = Known::default();
        let mut by_mailbox: std::collections::BTreeMap<(&str, u32), Vec<u32>> = Default::default();
        for incoming in window {
            if let Origin::Imap { mailbox, uidvalidity, uid } = &incoming.origin {
                by_mailbox.entry((mailbox, *uidvalidity)).or_default().push(*uid);
            }
        }
        for ((mailbox, uidvalidity), uids) in by_mailbox {
            for (uid, found) in self.store.find_messages_by_imap_uid(mailbox, uidvalidity, &uids).await? {
                known.uids.insert((mailbox.to_string(), uidvalidity, uid), found);
            }
        }
        let message_ids: Vec<&str> = prepared.iter().filter_map(|p| p.read.as_ref()?.1.as_ref().ok()?.message_id.as_deref()).collect();
        known.originals = self.store.find_originals_by_message_id(&message_ids).await?;
        Ok(known)
    }

    /// Stages 1–6 for one message: decides its state, or gets it ready for the rules.
    #[allow(clippy::too_many_arguments)]
    async fn assess(
        &self,
        incoming: &Incoming,
        prepared: Prepared,
        directory: &Directory,
        rules: &RuleSet,
        now: DateTime<Utc>,
        known: &Known,
        seen: &mut Seen,
    ) -> Result<Progress, StoreError> {
        // 1. Already recorded under this IMAP UID? Then only the move is left to do.
        if let Origin::Imap { mailbox, uidvalidity, uid } = &incoming.origin
            && let Some((id, state)) = known.uids.get(&(mailbox.clone(), *uidvalidity, *uid))
        {
            return Ok(Progress::Done(Step::Already(Filing { state: *state, message: *id, incident: None, already: true })));
        }
        let Prepared { read, sealed_raw } = prepared;
        Ok(match self.assess_read(incoming, read, directory, rules, now, known, seen, None).await? {
            Assessment::Decided(assessed) => Progress::Done(Step::Record { sealed_raw, assessed }),
            Assessment::ToRules(r) => Progress::ToRules(sealed_raw, r),
        })
    }

    /// Stages 2–6 for one message. `released_by`: a member of the DSL team releasing it from
    /// quarantine, for whom the sender check passes (see [`release`]).
    #[allow(clippy::too_many_arguments)]
    async fn assess_read(
        &self,
        incoming: &Incoming,
        read: Option<(Hashes, Result<Message, read::ReadError>)>,
        directory: &Directory,
        rules: &RuleSet,
        now: DateTime<Utc>,
        known: &Known,
        seen: &mut Seen,
        released_by: Option<&Staff>,
    ) -> Result<Assessment, StoreError> {
        let done = |assessed: Assessed| Ok(Assessment::Decided(Box::new(assessed)));
        let (source, origin, imap_uid) = origin_fields(&incoming.origin);
        let size = incoming.payload.size();
        let Some((hashes, read)) = read else {
            return done(self.quarantined(
                MessageRecord {
                    sha256: None,
                    message_id: None,
                    source,
                    origin,
                    imap_uid,
                    received: now,
                    size,
                    state: MessageState::Quarantined,
                    reason: format!("message is {size} bytes, over the intake.max_message_size limit; left unread on the server"),
                    duplicate_of: None,
                    content_sha256: None,
                },
                directory,
            ));
        };
        let mut record = MessageRecord {
            sha256: Some(hashes.raw),
            message_id: None,
            source,
            origin,
            imap_uid,
            received: now,
            size,
            state: MessageState::Quarantined,
            reason: String::new(),
            duplicate_of: None,
            content_sha256: Some(hashes.content),
        };
        let outcome = |mut record: MessageRecord, state, reason: String| {
            record.state = state;
            record.reason = reason;
            done(Assessed::only(record))
        };

        // 2. Read.
        let msg = match read {
            Ok(m) => m,
            Err(e) => {
                record.reason = format!("unreadable: {e}");
                return done(self.quarantined(record, directory));
            }
        };
        record.message_id = msg.message_id.clone();

        // 2b. A transfer receipt from the receiving school (automatic or not, never staff here).
        if let Some(token) = receipt::token_in(&msg) {
            return done(self.assess_receipt(record, &msg, &token).await?);
        }
        // 2c. A child-protection file from another Haven school, encrypted to this one.
        if crate::transfer::crypt::has_block(&msg.text) {
            return done(self.kept_transfer(record, directory));
        }

        // 3. Noise: auto-replies, bounces, our own mail.
        if let Some(reason) = noise::ignore_reason(&msg, &self.settings.mail_domain) {
            return outcome(record, MessageState::Ignored, reason);
        }

        // 4. Sender. A message released from quarantine passes: it is the From's, when that
        // is a member of staff (their mail server's authentication failed), else the DSL's
        // who released it.
        let sender = match authenticate::check_sender(&msg, directory, self.settings.trusted_authserv_id.as_deref()) {
            SenderCheck::Staff(staff) => staff,
            SenderCheck::Refused(reason) => match released_by {
                None => {
                    record.reason = reason;
                    return done(self.quarantined(record, directory));
                }
                Some(dsl) => match authenticate::check_sender(&msg, directory, None) {
                    SenderCheck::Staff(staff) => staff,
                    SenderCheck::Refused(_) => dsl,
                },
            },
        };

        // 5. Duplicate delivery of a message already filed or awaiting triage: the same
        // Message-ID with the same content. The same Message-ID on other content is filed,
        // and its reason says so. A message recorded before contents were hashed counts by
        // its Message-ID alone.
        if let Some(mid) = &msg.message_id {
            let content = record.content_sha256.clone();
            if !seen.message_ids.insert((mid.clone(), content.clone())) {
                return outcome(record, MessageState::Duplicate, "same Message-ID and content as an earlier message in this batch".into());
            }
            let earlier = known.originals.get(mid).map(Vec::as_slice).unwrap_or_default();
            if let Some((original, _)) = earlier.iter().find(|(_, c)| c.is_none() || *c == content) {
                record.duplicate_of = Some(*original);
                return outcome(record, MessageState::Duplicate, format!("same Message-ID and content as message {original}"));
            }
            if let Some((other, _)) = earlier.first() {
                record.reason = format!("message {other} has the same Message-ID with other content");
            }
        }

        // 5b. An answer to a triage question, or a reply to one of Haven's alerts: matched by
        // its signed token, never by subject.
        if let Some(token) = triage_token_in(&msg) {
            return self.assess_answer(record, msg, &token, sender, directory, rules, seen).await;
        }
        if let Some(token) = reply_token_in(&msg) {
            let assessed = self.assess_reply(record, &msg, &token, sender, directory, now, &mut seen.outcomes).await?;
            return done(assessed);
        }
        if let Some(token) = digest_token_in(&msg) {
            let assessed = self.assess_digest_reply(record, &msg, &token, sender, directory, &mut seen.outcomes).await?;
            return done(assessed);
        }

        // 6. Pupils and category.
        let ident = identify::identify(&msg, directory, rules.categories(), &self.settings.intake_address);
        if let Some(triage) = &ident.triage {
            record.state = MessageState::AwaitingTriage;
            record.reason = triage.reason.clone();
            return done(Assessed { question: self.question(None, &msg, triage, sender, directory), ..Assessed::only(record) });
        }
        let sender = sender.id;
        Ok(Assessment::ToRules(Box::new(ForRules { record, msg, ident, sender, settles: None, live: false })))
    }

    /// Stage 7 for one message: the rules, then the incident to file (an error only when the
    /// pupil's own key, to seal it under, does not open).
    fn decide(
        &self,
        r: ForRules,
        directory: &Directory,
        rules: &RuleSet,
        now: DateTime<Utc>,
        earlier: &[EarlierIncident],
        seen: &Seen,
    ) -> Result<Assessed, StoreError> {
        let ForRules { mut record, msg, ident, sender, settles, live } = r;
        let (at, _) = occurred(&msg, now);
        // A historical message (a backfill) is recorded with its history but alerts nobody,
        // unless a rule asks.
        let historical = !live && (self.backfill || at + self.settings.backfill_age < now);
        let history = history::counts(rules, &ident, at, earlier.iter().chain(&seen.incidents));
        let decision = rules.evaluate(&Facts { message: &msg, identification: &ident, directory, history: &history, ai_risk: None });
        record.state = MessageState::Filed;
        let filed = match settles {
            Some(settled) => format!("answer to triage: message {settled} filed under {}", decision.category),
            None => format!("filed under {}", decision.category),
        };
        // What stage 5 noted (the same Message-ID on other content) stays in the reason.
        record.reason = if record.reason.is_empty() { filed } else { format!("{filed} ({})", record.reason) };
        if let Some(why) = read::kind::read_record_kind(&msg).refused {
            record.reason = format!("{}; {why}", record.reason);
        }
        let mut incident = incident_record(&msg, &ident, &decision, sender, directory, now, &self.settings);
        let quiet = historical && !decision.alert_on_backfill;
        if quiet {
            incident.outbox.clear();
            incident.action = None;
            incident.backfilled = true;
            record.reason.push_str(" (historical: no alerts sent)");
        }
        // A category staff named that Haven does not know: the incident says so, and the
        // forwarder is told which one was used and what the names are.
        let unknown = identify::unknown_category(&msg, rules.categories(), &self.settings.intake_address);
        let category_note = unknown.map(|(name, how)| {
            if let Some(to) = directory.staff.iter().find(|s| s.id == sender).filter(|_| !quiet) {
                incident.outbox.push(alert::unknown_category_reply(
                    &name,
                    how,
                    &decision.category,
                    rules.categories(),
                    to,
                    &self.settings.alerts,
                ));
            }
            format!("{name:?} ({how}) is not a category Haven knows; filed under {}", decision.category)
        });
        if category_note.is_some() {
            record.reason.push_str(" (the category named was not recognised)");
        }
        let incident = seal_incident(incident, &self.sealer())?;
        Ok(Assessed { incident: Some(incident), settles, category_note, ..Assessed::only(record) })
    }

    /// The earlier incidents the rules' history conditions may count for a window's pupils,
    /// in one query (incidents filed earlier in this batch are in [`Seen`]).
    async fn earlier_incidents(
        &self,
        rules: &RuleSet,
        progress: &[Progress],
        now: DateTime<Utc>,
    ) -> Result<Vec<EarlierIncident>, StoreError> {
        let waiting: Vec<&ForRules> = progress
            .iter()
            .filter_map(|p| match p {
                Progress::ToRules(_, r) => Some(&**r),
                Progress::Done(_) => None,
            })
            .collect();
        let Some(first) = waiting.iter().map(|r| occurred(&r.msg, now).0).min() else {
            return Ok(Vec::new());
        };
        let pupils = waiting.iter().flat_map(|r| r.ident.pupils.iter().map(|p| p.pupil_id)).collect();
        history::earlier(&self.store, rules, pupils, first).await
    }

    /// A reply to an alert from a member of staff: checked, then an outcome (`Outcome: …` as the
    /// first line) or a follow-up entry on the incident. Anything doubtful is quarantined.
    ///
    /// Any incident may be given an outcome, whether or not a rule asked for one, by whoever
    /// [`Store::may_record_outcome`] allows (the rule `haven outcome` applies). An outcome that
    /// cannot be recorded (already recorded, or by someone who may not) is kept as a follow-up,
    /// and whoever sent it is told in one line. `outcomes_in_batch` holds the incidents whose
    /// outcome an earlier message of this batch records.
    #[allow(clippy::too_many_arguments)]
    async fn assess_reply(
        &self,
        mut record: MessageRecord,
        msg: &Message,
        token: &str,
        sender: &Staff,
        directory: &Directory,
        now: DateTime<Utc>,
        outcomes_in_batch: &mut HashSet<i64>,
    ) -> Result<Assessed, StoreError> {
        let text = msg.reply_text.clone().unwrap_or_else(|| msg.text.trim().to_string());
        let outcome = outcome_line(&text);
        let quarantine = |mut record: MessageRecord, reason: &str, incident: Option<i64>| {
            record.state = MessageState::Quarantined;
            record.reason = reason.to_string();
            let about = incident.map(|i| format!(" for incident #{i}")).unwrap_or_default();
            let question = outcome.as_ref().and_then(|_| {
                self.notice(sender, "Haven: outcome not recorded", &format!("Your outcome{about} was not recorded: {reason}."))
            });
            Ok(Assessed { question, ..Assessed::only(record) })
        };
        let verified = self.settings.reply_key.as_deref().and_then(|key| reply_token::verify(key, token));
        let Some((incident_id, addressed_to)) = verified else {
            return quarantine(record, "reply token is invalid or was not signed by this Haven", None);
        };
        let Some(facts) = self.store.incident_facts(incident_id).await? else {
            return quarantine(record, "reply token names an incident that does not exist", None);
        };
        let may_see = visibility::may_see_incident(&facts.visibility, sender, directory, &facts.pupils);
        if sender.id != addressed_to && !sender.is_dsl_team() {
            return quarantine(record, "reply from a member of staff the alert was not sent to", Some(incident_id));
        }
        if !may_see {
            return quarantine(record, "reply from a member of staff who may not see this incident", Some(incident_id));
        }
        let ai_feedback = crate::ai::feedback_verdict(&text).map(|right| (incident_id, sender.id, sender.email().to_string(), right));
        let mut reason = format!("reply filed as a follow-up to incident {incident_id}");
        // A follow-up is a `reply` unless its words say what kind of record it is.
        let said = read::kind::read_kind_of_text(&text, false);
        let record_kind = match said.source {
            read::kind::KindSource::KindLine | read::kind::KindSource::Opening => said.kind.as_str(),
            read::kind::KindSource::Forward | read::kind::KindSource::Default => "reply",
        };
        if let Some(why) = &said.refused {
            reason = format!("{reason}; {why}");
        }
        let mut question = None;
        if let Some(outcome) = outcome {
            let why_not = if !self.store.may_record_outcome(&facts, sender, directory).await? {
                format!("only the DSL team, or someone incident #{incident_id} was alerted to who may see it, may record its outcome")
            } else if !self.store.outcome_open(incident_id).await? || !outcomes_in_batch.insert(incident_id) {
                format!("the outcome of incident #{incident_id} was already recorded")
            } else {
                record.state = MessageState::Filed;
                record.reason = format!("outcome recorded on incident {incident_id}");
                let question = self.notice(
                    sender,
                    &format!("Haven: outcome recorded on incident #{incident_id}"),
                    &format!("Outcome recorded on incident #{incident_id}."),
                );
                let sealed = self.sealer().seal_text(fields::OUTCOME, &outcome);
                // A code written incompletely is not lost: the outcome is kept as free text.
                let code = crate::outcome_code::parse_outcome_code(&outcome).ok().flatten();
                return Ok(Assessed {
                    outcomes: vec![(incident_id, sender.id, sealed, code)],
                    question,
                    ai_feedback,
                    ..Assessed::only(record)
                });
            };
            reason.push_str(&format!(" (an outcome, not recorded: {why_not})"));
            question = self.notice(
                sender,
                &format!("Haven: outcome not recorded on incident #{incident_id}"),
                &format!("Your outcome was not recorded: {why_not}. Your reply was filed as a follow-up on incident #{incident_id}."),
            );
        }
        record.state = MessageState::Filed;
        record.reason = reason;
        let (occurred, date_note) = trusted_date(msg.date, msg.header("Date").is_some(), now);
        let follow_up = IncidentRecord {
            occurred,
            recorded: now,
            recorded_by: Some(sender.id),
            record_kind: record_kind.into(),
            category: facts.category.clone(),
            priority: facts.priority.clone(),
            visibility: facts.visibility.clone(),
            note: None,
            original_from: None,
            original_name: None,
            original_subject: None,
            body_text: text,
            body_html: None,
            pupils: facts
                .pupils
                .iter()
                .map(|(id, role)| PupilLink { pupil_id: *id, role: role.clone(), how: format!("reply to incident {incident_id}") })
                .collect(),
            attachments: attachments(msg),
            outbox: Vec::new(),
            action: None,
            follows: Some(incident_id),
            date_note: date_note.map(str::to_string),
            backfilled: false,
            ai_read: self.settings.ai_read,
        };
        Ok(Assessed { incident: Some(seal_incident(follow_up, &self.sealer())?), question, ai_feedback, ..Assessed::only(record) })
    }

    /// A reply to a digest: each `Outcome #24: NFA` line records that incident's outcome, with
    /// the checks of [`Store::may_record_outcome`]; the sender gets one line per outcome saying
    /// whether it was recorded. The digest's token only vouches for whom it was sent to.
    async fn assess_digest_reply(
        &self,
        mut record: MessageRecord,
        msg: &Message,
        token: &str,
        sender: &Staff,
        directory: &Directory,
        outcomes_in_batch: &mut HashSet<i64>,
    ) -> Result<Assessed, StoreError> {
        let verified = self.settings.reply_key.as_deref().and_then(|key| reply_token::verify_digest(key, token));
        let refuse = |mut record: MessageRecord, state, reason: &str| {
            record.state = state;
            record.reason = reason.to_string();
            let question = self.notice(sender, "Haven: no outcome recorded", &format!("No outcome was recorded: {reason}."));
            Ok(Assessed { question, ..Assessed::only(record) })
        };
        match verified {
            None => return refuse(record, MessageState::Quarantined, "digest reply token is invalid or was not signed by this Haven"),
            Some(to) if to != sender.id && !sender.is_dsl_team() => {
                return refuse(record, MessageState::Quarantined, "reply from a member of staff the digest was not sent to");
            }
            Some(_) => {}
        }
        let text = msg.reply_text.clone().unwrap_or_else(|| msg.text.clone());
        let wanted = digest_outcome_lines(&text);
        if wanted.is_empty() {
            return refuse(record, MessageState::Ignored, "a reply to a digest with no \"Outcome #N: text\" line");
        }
        let mut outcomes = Vec::new();
        let mut lines = Vec::new();
        for (incident, outcome) in wanted {
            let facts = self.store.incident_facts(incident).await?;
            let why_not = match &facts {
                None => Some(format!("there is no incident #{incident}")),
                Some(f) if !self.store.may_record_outcome(f, sender, directory).await? => Some(format!(
                    "only the DSL team, or someone incident #{incident} was alerted to who may see it, may record its outcome"
                )),
                Some(_) if !self.store.outcome_open(incident).await? || !outcomes_in_batch.insert(incident) => {
                    Some(format!("the outcome of incident #{incident} was already recorded"))
                }
                Some(_) => None,
            };
            match why_not {
                Some(why) => lines.push(format!("Incident #{incident}: not recorded: {why}.")),
                None => {
                    lines.push(format!("Incident #{incident}: outcome recorded."));
                    let code = crate::outcome_code::parse_outcome_code(&outcome).ok().flatten();
                    outcomes.push((incident, sender.id, self.sealer().seal_text(fields::OUTCOME, &outcome), code));
                }
            }
        }
        let recorded: Vec<String> = outcomes.iter().map(|(i, _, _, _)| i.to_string()).collect();
        record.state = MessageState::Filed;
        record.reason = format!(
            "reply to a digest: {} outcome(s) recorded{}, {} refused",
            outcomes.len(),
            if recorded.is_empty() { String::new() } else { format!(" (incidents {})", recorded.join(", ")) },
            lines.len() - outcomes.len()
        );
        let subject = format!("Haven: {} of {} outcome(s) recorded", outcomes.len(), lines.len());
        let question = self.notice(sender, &subject, &lines.join("\n"));
        Ok(Assessed { outcomes, question, ..Assessed::only(record) })
    }

    /// A short email to a member of staff, queued with the message being recorded.
    fn notice(&self, to: &Staff, subject: &str, body: &str) -> Option<QuestionRecord> {
        let recipient = to.email();
        if recipient.is_empty() {
            return None;
        }
        Some(QuestionRecord {
            about: None,
            email: crate::store::OutboxRecord {
                purpose: "notice",
                recipient: recipient.to_string(),
                email_message_id: format!("haven.notice.{{recorded}}@{}", self.settings.mail_domain),
                subject: subject.to_string(),
                body: format!("{body}\n"),
            },
        })
    }

    /// The triage question to `sender` about a message awaiting triage (`about`, or the one
    /// being recorded); None when replies cannot be signed (no reply key), since an answer
    /// could then never be matched.
    fn question(
        &self,
        about: Option<i64>,
        msg: &Message,
        triage: &Triage,
        sender: &Staff,
        directory: &Directory,
    ) -> Option<QuestionRecord> {
        self.settings.reply_key.as_ref()?;
        Some(QuestionRecord { about, email: triage::question(msg, triage, sender, directory, &self.settings.alerts) })
    }

    /// An answer to a triage question: checked, then the message it settles goes on to the
    /// rules with the pupils the answer names. An answer naming no pupil Haven can find is
    /// kept (ignored, with the reason) and the question is asked again; anything doubtful is
    /// quarantined.
    #[allow(clippy::too_many_arguments)]
    async fn assess_answer(
        &self,
        mut record: MessageRecord,
        answer: Message,
        token: &str,
        sender: &Staff,
        directory: &Directory,
        rules: &RuleSet,
        seen: &mut Seen,
    ) -> Result<Assessment, StoreError> {
        let mut finish = |state, reason: String, question| {
            record.state = state;
            record.reason = reason;
            Ok(Assessment::Decided(Box::new(Assessed { question, ..Assessed::only(record.clone()) })))
        };
        let verified = self.settings.reply_key.as_deref().and_then(|key| reply_token::verify_triage(key, token));
        let Some((message, asked)) = verified else {
            return finish(MessageState::Quarantined, "triage token is invalid or was not signed by this Haven".into(), None);
        };
        if sender.id != asked && !sender.is_dsl_team() {
            return finish(MessageState::Quarantined, "answer to triage from a member of staff who was not asked".into(), None);
        }
        let original = match self.store.message_raw(message).await? {
            None => {
                return finish(MessageState::Quarantined, format!("triage token names message {message}, which Haven does not hold"), None);
            }
            Some((state, _)) if state != MessageState::AwaitingTriage || seen.settled.contains(&message) => {
                return finish(
                    MessageState::Ignored,
                    format!("answer to triage about message {message}, which is no longer awaiting triage"),
                    None,
                );
            }
            Some((_, sealed)) => self
                .sealer()
                .open(fields::RAW, &sealed)
                .map_err(|e| e.to_string())
                .and_then(|raw| read::read_message_with(&raw, &self.settings.limits).map_err(|e| e.to_string())),
        };
        let original = match original {
            Ok(m) => m,
            Err(e) => return finish(MessageState::Quarantined, format!("message {message} cannot be read again: {e}"), None),
        };
        let intake = &self.settings.intake_address;
        let named = identify::identify(&answer, directory, rules.categories(), intake);
        let before = identify::identify(&original, directory, rules.categories(), intake);
        let ident = match triage::answered(&named, &before, sender) {
            Ok(ident) => ident,
            Err(reason) => {
                let triage = Triage { reason: reason.clone(), candidates: before.triage.map(|t| t.candidates).unwrap_or_default() };
                let again = self.question(Some(message), &original, &triage, sender, directory);
                let reason = format!("answer to triage about message {message} named no pupil Haven could find: {reason}");
                return finish(MessageState::Ignored, reason, again);
            }
        };
        seen.settled.insert(message);
        // The incident is the original message's, recorded by whoever forwarded it.
        let forwarder = match authenticate::check_sender(&original, directory, None) {
            SenderCheck::Staff(s) => s.id,
            SenderCheck::Refused(_) => sender.id,
        };
        Ok(Assessment::ToRules(Box::new(ForRules { record, msg: original, ident, sender: forwarder, settles: Some(message), live: true })))
    }

    /// A message quarantined before Haven knew it came from active staff (too large,
    /// unreadable, a sender who is not active staff or failed authentication). The DSL team is
    /// told at once, with no sender, subject or text: only the message number, the reason
    /// (which names at most a domain) and how to release it. A former member of staff may be
    /// reporting something real.
    fn quarantined(&self, mut record: MessageRecord, directory: &Directory) -> Assessed {
        record.state = MessageState::Quarantined;
        let notices = directory
            .staff
            .iter()
            .filter(|s| s.active && s.is_dsl_team())
            .map(|s| quarantine_notice(&record, s, &self.settings.alerts))
            .collect();
        Assessed { notices, ..Assessed::only(record) }
    }
}

/// The content-free notice to one member of the DSL team that message `{message}` (filled in
/// by the store) was quarantined.
fn quarantine_notice(record: &MessageRecord, to: &Staff, settings: &alert::AlertSettings) -> crate::store::OutboxRecord {
    crate::store::OutboxRecord {
        purpose: "notice",
        recipient: to.email().to_string(),
        email_message_id: format!("haven.quarantine.{{message}}.{}@{}", to.id, settings.mail_domain),
        subject: "Haven: message {message} was quarantined".into(),
        body: format!(
            "A message to {school}'s safeguarding address was not filed: Haven has kept it in \
             quarantine as message {{message}} (received {received}).\n\n\
             Reason: {reason}\n\n\
             It may still report something real (a former member of staff, a colleague writing \
             from a personal address). To see it: haven messages --state quarantined. To file it \
             through the pipeline, release it:\n\n    haven messages release {{message}} --by YOUR-EMAIL --reason \"why it may be filed\"\n\n\
             This notice carries no sender, subject or text of the message.\n",
            school = settings.school_name,
            received = record.received.format("%-d %B %Y %H:%M UTC"),
            reason = record.reason,
        ),
    }
}

fn origin_fields(origin: &Origin) -> (&'static str, String, Option<(u32, u32)>) {
    match origin {
        Origin::Imap { mailbox, uidvalidity, uid } => ("imap", mailbox.clone(), Some((*uidvalidity, *uid))),
        Origin::Maildir { path } => ("maildir", path.display().to_string(), None),
        Origin::File { path } => ("file", path.display().to_string(), None),
    }
}

/// Builds the incident to file from what was read and decided. Pure.
fn incident_record(
    msg: &Message,
    ident: &Identification,
    decision: &Decision,
    recorded_by: i64,
    directory: &Directory,
    now: DateTime<Utc>,
    settings: &FilingSettings,
) -> IncidentRecord {
    let (occurred, date_note) = occurred(msg, now);
    let original = msg.forwarded.as_ref();
    // A member of staff replying to a parent with the intake in copy: what they typed is the
    // note, and the body keeps the parent's quoted words.
    let body_text = match original {
        Some(f) => f.body.clone(),
        None => msg.text.clone(),
    };
    let outbox = alert::alerts_for(decision, ident, msg, recorded_by, directory, &settings.alerts);
    let action = alert::action_for(decision, now);
    IncidentRecord {
        occurred,
        recorded: now,
        recorded_by: Some(recorded_by),
        record_kind: read::kind::read_record_kind(msg).kind.as_str().to_string(),
        category: decision.category.clone(),
        priority: decision.priority.as_str().to_string(),
        visibility: decision.visibility.as_str().to_string(),
        note: msg.note.clone().or_else(|| msg.reply_text.clone()),
        original_from: original.and_then(|f| f.from.as_ref()).map(|a| a.address.clone()),
        original_name: original.and_then(|f| f.from.as_ref()).and_then(|a| a.name.clone()),
        original_subject: original.and_then(|f| f.subject.clone()).or_else(|| msg.subject.clone()),
        body_text,
        body_html: msg.html.clone(),
        pupils: ident
            .pupils
            .iter()
            .map(|p| PupilLink { pupil_id: p.pupil_id, role: p.role.as_str().to_string(), how: p.how.clone() })
            .collect(),
        attachments: attachments(msg),
        outbox,
        action,
        follows: None,
        date_note: date_note.map(str::to_string),
        backfilled: false,
        ai_read: settings.ai_read,
    }
}

fn attachments(msg: &Message) -> Vec<AttachmentRecord> {
    msg.attachments
        .iter()
        .map(|a| AttachmentRecord {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            sha256: a.sha256.clone(),
            inline: a.inline,
            tnef: a.tnef,
            data: a.data.clone(),
        })
        .collect()
}

/// The triage token in a `+t-…` recipient address, if the message answers a triage question.
fn triage_token_in(msg: &Message) -> Option<String> {
    msg.to.iter().chain(&msg.cc).find_map(|a| reply_token::find_triage_in_address(&a.address).map(str::to_string))
}

/// The reply token in a `+r-…` recipient address, if the message answers one of our emails.
fn reply_token_in(msg: &Message) -> Option<String> {
    msg.to.iter().chain(&msg.cc).find_map(|a| reply_token::find_in_address(&a.address).map(str::to_string))
}

/// The digest token in a `+d-…` recipient address, if the message answers a digest.
fn digest_token_in(msg: &Message) -> Option<String> {
    msg.to.iter().chain(&msg.cc).find_map(|a| reply_token::find_digest_in_address(&a.address).map(str::to_string))
}

/// `Outcome #24: NFA` lines of a reply to a digest: (incident, outcome), in order. Quoted lines
/// (`> …`) are not the sender's.
fn digest_outcome_lines(text: &str) -> Vec<(i64, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (key, rest) = line.split_once(':')?;
            let key = key.trim();
            let word = key.get(..7)?;
            if !word.eq_ignore_ascii_case("outcome") {
                return None;
            }
            let number = key.get(7..)?.trim().strip_prefix('#')?.trim();
            let incident: i64 = number.parse().ok().filter(|n| *n > 0)?;
            let outcome = rest.trim();
            (!outcome.is_empty()).then(|| (incident, outcome.to_string()))
        })
        .collect()
}

/// `Outcome: NFA` → "NFA": the outcome line, when the reply's first line is one.
fn outcome_line(text: &str) -> Option<String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (key, rest) = first.split_once(':')?;
    if !key.trim().eq_ignore_ascii_case("outcome") {
        return None;
    }
    let mut outcome = rest.trim().to_string();
    let more: Vec<&str> = text.lines().map(str::trim).skip_while(|l| l.is_empty()).skip(1).filter(|l| !l.is_empty()).collect();
    if !more.is_empty() {
        outcome.push('\n');
        outcome.push_str(&more.join("\n"));
    }
    (!outcome.trim().is_empty()).then_some(outcome)
}

/// Names of sealed fields (the AEAD's associated data).
pub mod fields {
    pub const RAW: &str = "message.raw";
    pub const ATTACHMENT: &str = "attachment";
    pub const NOTE: &str = "incident.note";
    pub const SUBJECT: &str = "incident.original_subject";
    pub const BODY_TEXT: &str = "incident.body_text";
    pub const BODY_HTML: &str = "incident.body_html";
    pub const ORIGINAL_FROM: &str = "incident.original_from";
    pub const ORIGINAL_NAME: &str = "incident.original_name";
    pub const FILENAME: &str = "attachment.filename";
    pub const OUTCOME: &str = "action.outcome";
    pub const AI_SUGGESTION: &str = crate::store::AI_SUGGESTION_FIELD;
}

/// Seals what the incident says before it reaches the database. The text of an incident about
/// one pupil who has a key of their own is sealed under it too (crypto-shredding: destroying
/// their key at disposal makes every copy unreadable); attachment contents are not. A key file
/// of theirs that does not open fails the message (it stays in the intake, to be filed again).
fn seal_incident(mut inc: IncidentRecord, sealer: &Sealer) -> Result<IncidentRecord, StoreError> {
    let only = match inc.pupils.as_slice() {
        [one] => one.pupil_id,
        _ => 0,
    };
    let seal = |field: &str, v: &str| {
        sealer.seal_text_for(only, field, v).map_err(|source| StoreError::Sealed { what: format!("an incident on pupil {only}"), source })
    };
    inc.note = inc.note.map(|n| seal(fields::NOTE, &n)).transpose()?;
    inc.original_subject = inc.original_subject.map(|s| seal(fields::SUBJECT, &s)).transpose()?;
    inc.body_text = seal(fields::BODY_TEXT, &inc.body_text)?;
    inc.body_html = inc.body_html.map(|h| seal(fields::BODY_HTML, &h)).transpose()?;
    inc.original_from = inc.original_from.map(|f| seal(fields::ORIGINAL_FROM, &f)).transpose()?;
    inc.original_name = inc.original_name.map(|n| seal(fields::ORIGINAL_NAME, &n)).transpose()?;
    for a in &mut inc.attachments {
        a.data = sealer.seal(fields::ATTACHMENT, &a.data);
        a.filename = seal(fields::FILENAME, &a.filename)?;
    }
    Ok(inc)
}

/// Why a task ended without its answer. Not the panic's own message: it can quote the message
/// being read (a string slice out of bounds shows the string), and this text reaches the log.
fn task_failure(e: &tokio::task::JoinError) -> &'static str {
    if e.is_panic() { "it panicked (the location is in the log)" } else { "it was cancelled" }
}

impl Sink for Filer {
    async fn accept(&self, batch: Vec<Incoming>) -> Result<Vec<Disposition>, SinkError> {
        match self.file_batch(&batch).await {
            Ok(filings) => Ok(filings.iter().map(Filing::disposition).collect()),
            Err(e) => Err(SinkError::new(e.is_transient(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::digest_outcome_lines;

    #[test]
    fn digest_outcome_lines_are_numbered_and_quoted_ones_are_not_the_senders() {
        let text = "Outcome #24: NFA\noutcome # 25 : Referred to CSC\n> Outcome #26: quoted\nOutcome #0: no\nOutcome #27:\nOutcome: no number\nThanks";
        assert_eq!(digest_outcome_lines(text), vec![(24, "NFA".to_string()), (25, "Referred to CSC".to_string())]);
    }
}
