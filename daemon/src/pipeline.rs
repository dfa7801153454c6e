//! The filing pipeline: where a received message goes, stage by stage, in the order of
//! SPEC "The pipeline". Read this file top to bottom to follow a message.
//!
//! 1. already recorded? (same IMAP UID, same bytes) — nothing is written twice
//! 2. read (`crate::read`) — unreadable or over a limit: quarantined
//! 3. noise (`crate::noise`) — auto-replies, bounces, Haven's own mail: ignored
//! 4. sender (`crate::authenticate`) — not an active member of staff: quarantined
//! 5. duplicate — same Message-ID as a message already recorded
//!    5b. reply to an alert or a triage question (signed token in the address): an outcome,
//!    a follow-up entry, or the pupil a message awaiting triage is about
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
use crate::directory::{Directory, Pupil, Staff};
use crate::reply_token;
use crate::visibility::Visibility;
use crate::identify::{self, Identification, Triage};
use crate::message::Message;
use crate::noise;
use crate::read::{self, Limits};
use crate::history;
use crate::rules::{Decision, Facts, LiveRules, RuleSet};
use crate::store::EarlierIncident;
use crate::seal::Sealer;
use crate::triage;
use crate::source::{Disposition, Incoming, Origin, Payload, Sink, SinkError};
use crate::store::{
    AttachmentRecord, IncidentRecord, MessageRecord, MessageState, PupilLink, QuestionRecord, Recorded, Store,
    StoreError, ToRecord, Tx,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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
    sealer: Sealer,
    settings: FilingSettings,
}

/// What a message's assessment decided, before anything is written.
struct Assessed {
    record: MessageRecord,
    incident: Option<IncidentRecord>,
    /// An outcome to record with the message: (incident, staff id, sealed text).
    outcome: Option<(i64, i64, String)>,
    /// For an answer to a triage question: the message it settles (the incident is its).
    settles: Option<i64>,
    /// A triage question to the forwarder.
    question: Option<QuestionRecord>,
}

impl Assessed {
    /// A message recorded in its state, with nothing else to write.
    fn only(record: MessageRecord) -> Assessed {
        Assessed { record, incident: None, outcome: None, settles: None, question: None }
    }
}

/// One message of a batch, as the recorder receives it.
enum Step {
    /// Recorded before under the same IMAP UID: nothing to write.
    Already(Filing),
    Record { sealed_raw: Vec<u8>, assessed: Box<Assessed> },
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
}

/// What the store already held of a window's messages.
#[derive(Default)]
struct Known {
    /// (mailbox, UIDVALIDITY, UID) → the message recorded under it.
    uids: HashMap<(String, u32, u32), (i64, MessageState)>,
    /// Message-ID → the first message recorded with it.
    originals: HashMap<String, i64>,
}

/// What the batch has assessed so far, which the store cannot see until it commits.
#[derive(Default)]
struct Seen {
    message_ids: HashSet<String>,
    /// Incidents whose outcome a message of this batch records.
    outcomes: HashSet<i64>,
    /// Messages awaiting triage that an answer in this batch settles.
    settled: HashSet<i64>,
    /// Each pupil's incidents filed by this batch, for history counts.
    incidents: Vec<EarlierIncident>,
}

/// A message hashed, parsed and sealed, ready for assessment.
struct Prepared {
    /// Its SHA-256 and what the reader made of it; None when it was too large to fetch.
    read: Option<(String, Result<Message, read::ReadError>)>,
    sealed_raw: Vec<u8>,
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
        if let (Recorded::New { .. }, Some((incident, by, text))) = (&recorded, &a.outcome) {
            tx.record_outcome(*incident, *by, text, now).await?;
        }
        out[*slot] = Some(match recorded {
            Recorded::New { message, incident } => Filing { state: a.record.state, message, incident, already: false },
            Recorded::Already { message, state } => Filing { state, message, incident: None, already: true },
        });
    }
    Ok(())
}

impl Filer {
    pub fn new(
        store: Store,
        rules: Arc<LiveRules>,
        clock: Arc<dyn Clock>,
        sealer: Sealer,
        settings: FilingSettings,
    ) -> Filer {
        Filer { store, rules, clock, sealer, settings }
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
        let directory = self.store.load_directory(&self.sealer).await?;
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
                        Progress::ToRules(sealed_raw, r) => Step::Record {
                            sealed_raw,
                            assessed: Box::new(self.decide(*r, &directory, &rules, now, &earlier, &seen)),
                        },
                    };
                    if let Step::Record { assessed, .. } = &step
                        && let Some(inc) = &assessed.incident
                    {
                        seen.incidents.extend(inc.pupils.iter().map(|p| EarlierIncident {
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
        let recorded = recorder
            .await
            .map_err(|e| StoreError::Invalid(format!("the recording task failed: {e}")))?;
        assessed?;
        let (tx, out) = recorded?;
        tx.commit().await?;
        for f in &out {
            tracing::info!(message = f.message, incident = ?f.incident, state = f.state.as_str(), already = f.already, "message recorded");
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
        let (limits, sealer) = (self.settings.limits.clone(), self.sealer.clone());
        let task = tokio::task::spawn_blocking(move || {
            let Some(raw) = raw else {
                return Prepared { read: None, sealed_raw: Vec::new() };
            };
            let sha256 = hex::encode(Sha256::digest(&raw));
            Prepared {
                read: Some((sha256, read::read_message_with(&raw, &limits))),
                sealed_raw: sealer.seal(fields::RAW, &raw),
            }
        });
        async move { task.await.map_err(|e| StoreError::Invalid(format!("preparing a message failed: {e}"))) }
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
        let message_ids: Vec<&str> = prepared
            .iter()
            .filter_map(|p| p.read.as_ref()?.1.as_ref().ok()?.message_id.as_deref())
            .collect();
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
        Ok(match self.assess_read(incoming, read, directory, rules, now, known, seen).await? {
            Assessment::Decided(assessed) => Progress::Done(Step::Record { sealed_raw, assessed }),
            Assessment::ToRules(r) => Progress::ToRules(sealed_raw, r),
        })
    }

    /// Stages 2–6 for one message.
    #[allow(clippy::too_many_arguments)]
    async fn assess_read(
        &self,
        incoming: &Incoming,
        read: Option<(String, Result<Message, read::ReadError>)>,
        directory: &Directory,
        rules: &RuleSet,
        now: DateTime<Utc>,
        known: &Known,
        seen: &mut Seen,
    ) -> Result<Assessment, StoreError> {
        let done = |assessed: Assessed| Ok(Assessment::Decided(Box::new(assessed)));
        let (source, origin, imap_uid) = origin_fields(&incoming.origin);
        let size = incoming.payload.size();
        let Some((sha256, read)) = read else {
            return done(Assessed::only(MessageRecord {
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
            }));
        };
        let mut record = MessageRecord {
            sha256: Some(sha256),
            message_id: None,
            source,
            origin,
            imap_uid,
            received: now,
            size,
            state: MessageState::Quarantined,
            reason: String::new(),
            duplicate_of: None,
        };
        let outcome = |mut record: MessageRecord, state, reason: String| {
            record.state = state;
            record.reason = reason;
            done(Assessed::only(record))
        };

        // 2. Read.
        let msg = match read {
            Ok(m) => m,
            Err(e) => return outcome(record, MessageState::Quarantined, format!("unreadable: {e}")),
        };
        record.message_id = msg.message_id.clone();

        // 3. Noise: auto-replies, bounces, our own mail.
        if let Some(reason) = noise::ignore_reason(&msg, &self.settings.mail_domain) {
            return outcome(record, MessageState::Ignored, reason);
        }

        // 4. Sender.
        let sender = match authenticate::check_sender(&msg, directory, self.settings.trusted_authserv_id.as_deref()) {
            SenderCheck::Staff(staff) => staff,
            SenderCheck::Refused(reason) => return outcome(record, MessageState::Quarantined, reason),
        };

        // 5. Duplicate delivery of a message already recorded.
        if let Some(mid) = &msg.message_id {
            if !seen.message_ids.insert(mid.clone()) {
                return outcome(record, MessageState::Duplicate, "same Message-ID as an earlier message in this batch".into());
            }
            if let Some(original) = known.originals.get(mid).copied() {
                record.duplicate_of = Some(original);
                return outcome(record, MessageState::Duplicate, format!("same Message-ID as message {original}"));
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

        // 6. Pupils and category.
        let ident = identify::identify(&msg, directory, rules.categories(), &self.settings.intake_address);
        if let Some(triage) = &ident.triage {
            record.state = MessageState::AwaitingTriage;
            record.reason = triage.reason.clone();
            return done(Assessed { question: self.question(None, &msg, triage, sender, directory), ..Assessed::only(record) });
        }
        let sender = sender.id;
        Ok(Assessment::ToRules(Box::new(ForRules { record, msg, ident, sender, settles: None })))
    }

    /// Stage 7 for one message: the rules, then the incident to file.
    fn decide(
        &self,
        r: ForRules,
        directory: &Directory,
        rules: &RuleSet,
        now: DateTime<Utc>,
        earlier: &[EarlierIncident],
        seen: &Seen,
    ) -> Assessed {
        let ForRules { mut record, msg, ident, sender, settles } = r;
        let at = occurred_or(&msg, now);
        let history = history::counts(rules, &ident, at, earlier.iter().chain(&seen.incidents));
        let decision = rules.evaluate(&Facts {
            message: &msg,
            identification: &ident,
            directory,
            history: &history,
            ai_risk: None,
        });
        record.state = MessageState::Filed;
        record.reason = match settles {
            Some(settled) => format!("answer to triage: message {settled} filed under {}", decision.category),
            None => format!("filed under {}", decision.category),
        };
        let incident = incident_record(&msg, &ident, &decision, sender, directory, now, &self.settings);
        let incident = seal_incident(incident, &self.sealer);
        Assessed { incident: Some(incident), settles, ..Assessed::only(record) }
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
        let Some(first) = waiting.iter().map(|r| occurred_or(&r.msg, now)).min() else {
            return Ok(Vec::new());
        };
        let pupils = waiting.iter().flat_map(|r| r.ident.pupils.iter().map(|p| p.pupil_id)).collect();
        history::earlier(&self.store, rules, pupils, first).await
    }

    /// A reply to an alert from a member of staff: checked, then an outcome (`Outcome: …` as the
    /// first line) or a follow-up entry on the incident. Anything doubtful is quarantined.
    ///
    /// An outcome only closes an action that is still open; when none is (a second outcome, or
    /// one the rules never asked for) the reply is kept as a follow-up, since the store keeps
    /// the text of an outcome only on the action it closes. `outcomes_in_batch` holds the
    /// incidents whose outcome an earlier message of this batch records.
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
        let quarantine = |mut record: MessageRecord, reason: &str| {
            record.state = MessageState::Quarantined;
            record.reason = reason.to_string();
            Ok(Assessed::only(record))
        };
        let verified = self.settings.reply_key.as_deref().and_then(|key| reply_token::verify(key, token));
        let Some((incident_id, addressed_to)) = verified else {
            return quarantine(record, "reply token is invalid or was not signed by this Haven");
        };
        let Some(facts) = self.store.incident_facts(incident_id).await? else {
            return quarantine(record, "reply token names an incident that does not exist");
        };
        let pupils: Vec<&Pupil> = facts.pupils.iter().filter_map(|(id, _)| directory.pupil(*id)).collect();
        let may_see = Visibility::parse(&facts.visibility).is_some_and(|v| v.allows(sender, &pupils));
        if sender.id != addressed_to && !sender.is_dsl_team() {
            return quarantine(record, "reply from a member of staff the alert was not sent to");
        }
        if !may_see {
            return quarantine(record, "reply from a member of staff who may not see this incident");
        }
        let text = msg.reply_text.clone().unwrap_or_else(|| msg.text.trim().to_string());
        let mut reason = format!("reply filed as a follow-up to incident {incident_id}");
        if let Some(outcome) = outcome_line(&text) {
            if self.outcome_outstanding(incident_id).await? && outcomes_in_batch.insert(incident_id) {
                record.state = MessageState::Filed;
                record.reason = format!("outcome recorded on incident {incident_id}");
                let sealed = self.sealer.seal_text(fields::OUTCOME, &outcome);
                return Ok(Assessed { outcome: Some((incident_id, sender.id, sealed)), ..Assessed::only(record) });
            }
            reason.push_str(" (an outcome, but none was outstanding)");
        }
        record.state = MessageState::Filed;
        record.reason = reason;
        let follow_up = IncidentRecord {
            occurred: msg.date.map(|d| d.with_timezone(&Utc)).unwrap_or(now),
            recorded: now,
            recorded_by: Some(sender.id),
            record_kind: "reply".into(),
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
        };
        Ok(Assessed { incident: Some(seal_incident(follow_up, &self.sealer)), ..Assessed::only(record) })
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
            None => return finish(MessageState::Quarantined, format!("triage token names message {message}, which Haven does not hold"), None),
            Some((state, _)) if state != MessageState::AwaitingTriage || seen.settled.contains(&message) => {
                return finish(MessageState::Ignored, format!("answer to triage about message {message}, which is no longer awaiting triage"), None);
            }
            Some((_, sealed)) => self
                .sealer
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
        Ok(Assessment::ToRules(Box::new(ForRules { record, msg: original, ident, sender: forwarder, settles: Some(message) })))
    }

    /// Whether `incident` has an action still waiting for its outcome.
    async fn outcome_outstanding(&self, incident: i64) -> Result<bool, StoreError> {
        Ok(self.store.open_actions().await?.iter().any(|a| a.incident_id == incident))
    }
}

/// When the message's story happened: the original's date, else the forward's, else now.
fn occurred_or(msg: &Message, now: DateTime<Utc>) -> DateTime<Utc> {
    msg.occurred_at().map(|d| d.with_timezone(&Utc)).unwrap_or(now)
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
    let occurred = occurred_or(msg, now);
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
        record_kind: if original.is_some() { "email" } else { "observation" }.to_string(),
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
}

/// Seals what the incident says before it reaches the database.
fn seal_incident(mut inc: IncidentRecord, sealer: &Sealer) -> IncidentRecord {
    inc.note = inc.note.map(|n| sealer.seal_text(fields::NOTE, &n));
    inc.original_subject = inc.original_subject.map(|s| sealer.seal_text(fields::SUBJECT, &s));
    inc.body_text = sealer.seal_text(fields::BODY_TEXT, &inc.body_text);
    inc.body_html = inc.body_html.map(|h| sealer.seal_text(fields::BODY_HTML, &h));
    inc.original_from = inc.original_from.map(|f| sealer.seal_text(fields::ORIGINAL_FROM, &f));
    inc.original_name = inc.original_name.map(|n| sealer.seal_text(fields::ORIGINAL_NAME, &n));
    for a in &mut inc.attachments {
        a.data = sealer.seal(fields::ATTACHMENT, &a.data);
        a.filename = sealer.seal_text(fields::FILENAME, &a.filename);
    }
    inc
}

impl Sink for Filer {
    async fn accept(&self, batch: Vec<Incoming>) -> Result<Vec<Disposition>, SinkError> {
        match self.file_batch(&batch).await {
            Ok(filings) => Ok(filings.iter().map(Filing::disposition).collect()),
            Err(e) => Err(SinkError::new(e.is_transient(), e.to_string())),
        }
    }
}
