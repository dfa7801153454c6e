//! Recording a received message, and filing its incident with everything that must exist
//! with it (pupil links, attachments, alerts in the outbox, the outcome action and its
//! escalation rungs, the audit entry), in one transaction.

use super::audit::AuditRecord;
use super::{BLOBS_PER_STATEMENT, ROWS_PER_STATEMENT, Result, Store, StoreError, Tx, from_us, insert_values, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// The one state every received message ends in (SPEC "The pipeline").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    Filed,
    AwaitingTriage,
    Quarantined,
    Duplicate,
    Ignored,
}

impl MessageState {
    pub const ALL: [MessageState; 5] =
        [MessageState::Filed, MessageState::AwaitingTriage, MessageState::Quarantined, MessageState::Duplicate, MessageState::Ignored];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Filed => "filed",
            MessageState::AwaitingTriage => "awaiting_triage",
            MessageState::Quarantined => "quarantined",
            MessageState::Duplicate => "duplicate",
            MessageState::Ignored => "ignored",
        }
    }

    pub fn parse(s: &str) -> Option<MessageState> {
        MessageState::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A received message, whatever became of it.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    /// SHA-256 of the raw bytes, lower-case hex; None when the message was too large to fetch.
    pub sha256: Option<String>,
    pub message_id: Option<String>,
    /// "imap", "maildir" or "file".
    pub source: &'static str,
    /// Mailbox name or file path.
    pub origin: String,
    /// (UIDVALIDITY, UID) for IMAP.
    pub imap_uid: Option<(u32, u32)>,
    pub received: DateTime<Utc>,
    pub size: u64,
    pub state: MessageState,
    /// Why it is in that state; shown to the technician and the DSL, never logged.
    pub reason: String,
    pub duplicate_of: Option<i64>,
    /// SHA-256 of the body (see `pipeline::content_sha256`): with the Message-ID, what makes a
    /// later message a duplicate. None when the message could not be read.
    pub content_sha256: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PupilLink {
    pub pupil_id: i64,
    pub role: String,
    pub how: String,
}

#[derive(Debug, Clone)]
pub struct AttachmentRecord {
    pub filename: String,
    pub content_type: String,
    pub sha256: String,
    pub inline: bool,
    pub tnef: bool,
    pub data: Vec<u8>,
}

/// An email waiting to be sent, written with the incident it is about.
#[derive(Debug, Clone)]
pub struct OutboxRecord {
    /// alert | reminder | digest | triage | notice | signin (a console sign-in link); with the
    /// incident's priority it decides the email's lane (`store::outbox::lane`)
    pub purpose: &'static str,
    pub recipient: String,
    /// Stable, so a resend after a crash is recognisable.
    pub email_message_id: String,
    pub subject: String,
    pub body: String,
}

/// An escalation rung: when it falls due and whom it alerts.
#[derive(Debug, Clone)]
pub struct RungRecord {
    pub due: DateTime<Utc>,
    pub recipients: Vec<i64>,
}

/// "An outcome is required by `due`", owned by `owner`.
#[derive(Debug, Clone)]
pub struct ActionRecord {
    pub owner: Option<i64>,
    pub due: DateTime<Utc>,
    pub rungs: Vec<RungRecord>,
}

/// An incident to file.
#[derive(Debug, Clone)]
pub struct IncidentRecord {
    pub occurred: DateTime<Utc>,
    pub recorded: DateTime<Utc>,
    pub recorded_by: Option<i64>,
    /// email | conversation | observation | phone_call
    pub record_kind: String,
    pub category: String,
    pub priority: String,
    pub visibility: String,
    pub note: Option<String>,
    pub original_from: Option<String>,
    pub original_name: Option<String>,
    pub original_subject: Option<String>,
    pub body_text: String,
    pub body_html: Option<String>,
    pub pupils: Vec<PupilLink>,
    pub attachments: Vec<AttachmentRecord>,
    /// Emails to queue; `{incident}` in subject and body is replaced by the incident number.
    pub outbox: Vec<OutboxRecord>,
    pub action: Option<ActionRecord>,
    /// For a follow-up (a reply to an alert): the incident it answers.
    pub follows: Option<i64>,
    /// Why `occurred` is the filing time: the original's date could not be trusted.
    pub date_note: Option<String>,
    /// Filed as historical (a backfill): no alert was queued and no outcome deadline opened.
    pub backfilled: bool,
    /// Queue it for the model to read after filing (`[ai]` is on and it is not historical).
    pub ai_read: bool,
}

/// An earlier incident of a pupil, as the rules' history conditions count it.
#[derive(Debug, Clone)]
pub struct EarlierIncident {
    pub pupil: i64,
    pub category: String,
    pub occurred: DateTime<Utc>,
}

/// What recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Newly recorded: the message row and, when filed, its incident.
    New { message: i64, incident: Option<i64> },
    /// These exact bytes were recorded before (another delivery, a restart, another daemon):
    /// nothing new was written.
    Already { message: i64, state: MessageState },
}

/// The messages with any of a list of Message-IDs (the list and its `)` follow), by the
/// Message-ID index. Their state is checked by the caller: asked in SQL beside the list,
/// SQLite took the state index instead and read every filed message for every batch, so filing
/// slowed as the database grew (`tests/plans.rs` keeps it on the Message-ID index).
///
/// Like every look-up by a list here, it is planned afresh each time, never kept as a prepared
/// statement: PostgreSQL keeps a statement's generic plan, and one made while the table was
/// small (a sequential scan) was kept as the table grew, until statistics were next gathered
/// (never, where autovacuum is off): filing fell from 1,465 messages a second to 216 by 140,000.
#[doc(hidden)]
pub const ORIGINALS_BY_MESSAGE_ID: &str = "SELECT message_id, id, state, content_sha256 FROM messages WHERE message_id IN (";

impl Store {
    /// A message's state and its stored (sealed) raw bytes; None when there is no such
    /// message or its bytes were never fetched.
    pub async fn message_raw(&self, id: i64) -> Result<Option<(MessageState, Vec<u8>)>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT m.id, m.state, b.data FROM messages m JOIN blobs b ON b.sha256 = m.sha256 WHERE m.id = $1")
                .bind(id)
                .fetch_optional(p)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let data: Vec<u8> = row.try_get("data")?;
            Ok(Some((state_of(row)?.1, data)))
        })
    }

    /// The earlier record of these exact bytes, if any.
    pub async fn find_message_by_sha(&self, sha256: &str) -> Result<Option<(i64, MessageState)>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT id, state FROM messages WHERE sha256 = $1").bind(sha256).fetch_optional(p).await?;
            row.map(state_of).transpose()
        })
    }

    /// The records of IMAP messages by mailbox, UIDVALIDITY and UIDs: (UID, record) for each
    /// UID recorded before.
    pub async fn find_messages_by_imap_uid(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, (i64, MessageState))>> {
        let mut found = Vec::new();
        for chunk in uids.chunks(ROWS_PER_STATEMENT) {
            on_pool!(self, |p| {
                let mut q = sqlx::QueryBuilder::new("SELECT id, state, imap_uid FROM messages WHERE origin = ");
                q.push_bind(mailbox).push(" AND imap_uidvalidity = ").push_bind(i64::from(uidvalidity));
                q.push(" AND imap_uid IN (");
                let mut list = q.separated(", ");
                for uid in chunk {
                    list.push_bind(i64::from(*uid));
                }
                q.push(")");
                for row in q.build().persistent(false).fetch_all(p).await? {
                    let uid = u32::try_from(row.try_get::<i64, _>("imap_uid")?).unwrap_or_default();
                    found.push((uid, state_of(row)?));
                }
            });
        }
        Ok(found)
    }

    /// For each of these Message-IDs, the messages filed or awaiting triage with it, oldest
    /// first, with their content hashes (None: recorded before content was hashed). Only
    /// those make a later message a duplicate: a quarantined, ignored or duplicate message
    /// reserves nothing.
    pub async fn find_originals_by_message_id(&self, message_ids: &[&str]) -> Result<HashMap<String, Vec<(i64, Option<String>)>>> {
        let mut found: HashMap<String, Vec<(i64, Option<String>)>> = HashMap::new();
        for chunk in message_ids.chunks(ROWS_PER_STATEMENT) {
            on_pool!(self, |p| {
                let mut q = sqlx::QueryBuilder::new(ORIGINALS_BY_MESSAGE_ID);
                let mut list = q.separated(", ");
                for mid in chunk {
                    list.push_bind(*mid);
                }
                q.push(") ORDER BY id");
                for row in q.build().persistent(false).fetch_all(p).await? {
                    let state: String = row.try_get("state")?;
                    if state == MessageState::Filed.as_str() || state == MessageState::AwaitingTriage.as_str() {
                        let entry = found.entry(row.try_get("message_id")?).or_default();
                        entry.push((row.try_get("id")?, row.try_get("content_sha256")?));
                    }
                }
            });
        }
        Ok(found)
    }

    /// What a release needs of a message: its state, its reason and its sealed raw bytes
    /// (None when it was too large to fetch). None when there is no such message.
    pub async fn message_for_release(&self, id: i64) -> Result<Option<(MessageState, String, Option<Vec<u8>>)>> {
        on_pool!(self, |p| {
            let row = sqlx::query(
                "SELECT m.id, m.state, m.reason, b.data FROM messages m LEFT JOIN blobs b ON b.sha256 = m.sha256 \
                 WHERE m.id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let data: Option<Vec<u8>> = row.try_get("data")?;
            let reason: String = row.try_get("reason")?;
            Ok(Some((state_of(row)?.1, reason, data)))
        })
    }

    /// The incidents in any of `categories` of any of `pupils`, occurring at or after `since`;
    /// not those a pupil is only mentioned in.
    pub async fn pupil_incidents_since(&self, pupils: &[i64], categories: &[String], since: DateTime<Utc>) -> Result<Vec<EarlierIncident>> {
        let mut found = Vec::new();
        if categories.is_empty() {
            return Ok(found);
        }
        for chunk in pupils.chunks(ROWS_PER_STATEMENT) {
            on_pool!(self, |p| {
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT ip.pupil_id, i.category, i.occurred_us FROM incidents i \
                     JOIN incident_pupils ip ON ip.incident_id = i.id WHERE ip.role <> 'mentioned' AND i.occurred_us >= ",
                );
                q.push_bind(to_us(since)).push(" AND ip.pupil_id IN (");
                let mut list = q.separated(", ");
                for pupil in chunk {
                    list.push_bind(*pupil);
                }
                q.push(") AND i.category IN (");
                let mut list = q.separated(", ");
                for category in categories {
                    list.push_bind(category.as_str());
                }
                q.push(")");
                for row in q.build().persistent(false).fetch_all(p).await? {
                    found.push(EarlierIncident {
                        pupil: row.try_get("pupil_id")?,
                        category: row.try_get("category")?,
                        occurred: from_us(row.try_get("occurred_us")?),
                    });
                }
            });
        }
        Ok(found)
    }
}

fn state_of<R: Row>(row: R) -> Result<(i64, MessageState)>
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let id: i64 = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let state = MessageState::parse(&state).ok_or_else(|| StoreError::Invalid(format!("message {id} has unknown state {state:?}")))?;
    Ok((id, state))
}

/// One message of a batch to record: its raw bytes (as stored), its record and, when filed,
/// its incident.
#[derive(Debug, Clone, Copy)]
pub struct ToRecord<'a> {
    pub raw: &'a [u8],
    pub message: &'a MessageRecord,
    pub incident: Option<&'a IncidentRecord>,
    /// For an answer to a triage question: the message awaiting triage that it settles. The
    /// incident is that message's, and that message becomes filed.
    pub settles: Option<i64>,
    /// A triage question to queue with this message.
    pub question: Option<&'a QuestionRecord>,
}

/// A quarantined message released from quarantine, as the pipeline decided on it again.
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    pub message: i64,
    /// Its new state, reason, duplicate_of and content hash (the rest of its row is kept).
    pub record: &'a MessageRecord,
    pub incident: Option<&'a IncidentRecord>,
    /// For an answer to a triage question: the message awaiting triage it settles.
    pub settles: Option<i64>,
    pub question: Option<&'a QuestionRecord>,
    /// The member of the DSL team who released it: staff id and, for the audit, email.
    pub by: i64,
    pub actor: &'a str,
    /// Why they released it, for the audit log.
    pub reason: &'a str,
    pub at: DateTime<Utc>,
}

/// A triage question to the forwarder, queued with a message.
#[derive(Debug, Clone)]
pub struct QuestionRecord {
    /// The message awaiting triage it asks about; None: the one it is recorded with.
    pub about: Option<i64>,
    /// `{message}` in it stands for that message's number, `{recorded}` for this one's.
    pub email: OutboxRecord,
}

/// A key that finds an inserted message among the rows an INSERT returned: its content hash,
/// or for a message too large to fetch its IMAP address (both unique in the table).
#[derive(Debug, PartialEq, Eq, Hash)]
enum MessageKey {
    Sha(String),
    Imap(String, i64, i64),
}

impl MessageKey {
    fn of(msg: &MessageRecord) -> Option<MessageKey> {
        match (&msg.sha256, msg.imap_uid) {
            (Some(sha), _) => Some(MessageKey::Sha(sha.clone())),
            (None, Some((v, u))) => Some(MessageKey::Imap(msg.origin.clone(), i64::from(v), i64::from(u))),
            (None, None) => None,
        }
    }

    fn returned<R: Row>(row: &R) -> Result<(MessageKey, i64)>
    where
        for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
    {
        let id: i64 = row.try_get("id")?;
        let key = match row.try_get::<Option<String>, _>("sha256")? {
            Some(sha) => MessageKey::Sha(sha),
            None => MessageKey::Imap(
                row.try_get("origin")?,
                row.try_get::<Option<i64>, _>("imap_uidvalidity")?.unwrap_or_default(),
                row.try_get::<Option<i64>, _>("imap_uid")?.unwrap_or_default(),
            ),
        };
        Ok((key, id))
    }
}

fn imap_columns(msg: &MessageRecord) -> (Option<i64>, Option<i64>) {
    msg.imap_uid.map_or((None, None), |(v, u)| (Some(i64::from(v)), Some(i64::from(u))))
}

impl Tx {
    /// Records one message and, when given, files its incident, inside this transaction.
    /// See [`Tx::record_messages`].
    pub async fn record_message(
        &mut self,
        raw: &[u8],
        msg: &MessageRecord,
        incident: Option<&IncidentRecord>,
        actor: &str,
    ) -> Result<Recorded> {
        let item = ToRecord { raw, message: msg, incident, settles: None, question: None };
        let mut out = self.record_messages(&[item], actor).await?;
        Ok(out.remove(0))
    }

    /// Records messages and files their incidents inside this transaction, in order, with a
    /// few multi-row statements per table rather than one per row. The raw bytes are stored
    /// content-addressed. A message whose exact bytes (or IMAP UID) were recorded before comes
    /// back `Already` and nothing of it is written. Triage questions are queued, and messages
    /// that answers settle are filed.
    pub async fn record_messages(&mut self, batch: &[ToRecord<'_>], actor: &str) -> Result<Vec<Recorded>> {
        self.store_blobs(batch.iter().filter_map(|r| Some((r.message.sha256.as_deref()?, r.raw)))).await?;
        let ids = self.insert_messages(batch).await?;
        self.name_batch_originals(batch, &ids).await?;

        let mut recorded = Vec::with_capacity(batch.len());
        let mut filed: Vec<(i64, &IncidentRecord)> = Vec::new();
        for (item, id) in batch.iter().zip(ids) {
            match id {
                Some(message) => {
                    if let Some(inc) = item.incident {
                        filed.push((item.settles.unwrap_or(message), inc));
                    }
                    recorded.push(Recorded::New { message, incident: None });
                }
                None => {
                    let (message, state) = self.earlier_record(item.message).await?;
                    recorded.push(Recorded::Already { message, state });
                }
            }
        }
        let incidents = self.file_incidents(&filed).await?;

        let mut audit = Vec::with_capacity(batch.len());
        let mut questions = Vec::new();
        for (item, r) in batch.iter().zip(&mut recorded) {
            let Recorded::New { message, incident } = r else { continue };
            *incident = incidents.get(&item.settles.unwrap_or(*message)).copied();
            if let Some(q) = item.question {
                questions.push((q.about.unwrap_or(*message), *message, item.message.received, &q.email));
            }
            if let (Some(settled), Some(id)) = (item.settles, *incident) {
                self.settle(settled, *message, id).await?;
                let detail = format!("filed as incident:{id} on the answer in message:{message}");
                audit.push(AuditRecord {
                    at: item.message.received,
                    actor,
                    action: "triage",
                    subject: format!("message:{settled}"),
                    detail,
                    incident: None,
                });
            }
            let subject = match incident {
                Some(id) => format!("incident:{id}"),
                None => format!("message:{message}"),
            };
            let detail = format!("state={} message={message}", item.message.state.as_str());
            audit.push(AuditRecord { at: item.message.received, actor, action: "record", subject, detail, incident: *incident });
        }
        self.queue_questions(&questions).await?;
        self.append_audits(&audit).await?;
        Ok(recorded)
    }

    /// Records a quarantined message again as the pipeline decided on its release: its row
    /// takes the new state and reason (no second row is written) and names who released it,
    /// and its incident (alerts, action, rungs), triage question or settled message are
    /// written with the audit entry, all in this transaction. Returns the incident filed.
    pub async fn release_message(&mut self, r: &Release<'_>) -> Result<Option<i64>> {
        let m = r.record;
        let changed = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE messages SET state = $2, reason = $3, duplicate_of = $4, content_sha256 = $5, \
                 released_by = $6, released_us = $7 WHERE id = $1 AND state = 'quarantined'",
            )
            .bind(r.message)
            .bind(m.state.as_str())
            .bind(m.reason.clone())
            .bind(m.duplicate_of)
            .bind(m.content_sha256.clone())
            .bind(r.by)
            .bind(to_us(r.at))
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if changed != 1 {
            // Released by someone else since it was read: dropping the transaction writes nothing.
            return Err(StoreError::Invalid(format!("message {} is no longer quarantined", r.message)));
        }
        let owner = r.settles.unwrap_or(r.message);
        let incident = match r.incident {
            Some(inc) => self.file_incidents(&[(owner, inc)]).await?.get(&owner).copied(),
            None => None,
        };
        let mut audit = Vec::new();
        if let (Some(settled), Some(id)) = (r.settles, incident) {
            self.settle(settled, r.message, id).await?;
            let detail = format!("filed as incident:{id} on the answer in message:{}", r.message);
            audit.push(AuditRecord {
                at: r.at,
                actor: r.actor,
                action: "triage",
                subject: format!("message:{settled}"),
                detail,
                incident: None,
            });
        }
        if let Some(q) = r.question {
            self.queue_questions(&[(q.about.unwrap_or(r.message), r.message, r.at, &q.email)]).await?;
        }
        let filed = incident.map(|i| format!(" incident:{i}")).unwrap_or_default();
        let detail = format!("state={}{filed} reason: {}", m.state.as_str(), r.reason);
        audit.push(AuditRecord {
            at: r.at,
            actor: r.actor,
            action: "release",
            subject: format!("message:{}", r.message),
            detail,
            incident,
        });
        self.append_audits(&audit).await?;
        Ok(incident)
    }

    /// Records why `incident` is not in the category staff named (see migration 0009).
    pub async fn set_category_note(&mut self, incident: i64, note: &str) -> Result<()> {
        on_tx!(self, |c| {
            sqlx::query("UPDATE incidents SET category_note = $2 WHERE id = $1").bind(incident).bind(note).execute(&mut *c).await?;
        });
        Ok(())
    }

    /// Marks a message that was awaiting triage as filed, on the answer in `answer`.
    async fn settle(&mut self, message: i64, answer: i64, incident: i64) -> Result<()> {
        let reason = format!("filed as incident {incident} on the answer to triage in message {answer}");
        let changed = on_tx!(self, |c| {
            sqlx::query("UPDATE messages SET state = 'filed', reason = $2 WHERE id = $1 AND state = 'awaiting_triage'")
                .bind(message)
                .bind(reason)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        if changed != 1 {
            // Settled by someone else since it was assessed: dropping the transaction keeps
            // the message from being filed twice; the next attempt sees it filed.
            return Err(StoreError::Invalid(format!("message {message} is no longer awaiting triage")));
        }
        Ok(())
    }

    /// Queues emails about a message that has no incident (a quarantine notice to the DSL
    /// team); `{message}` in them stands for its number.
    pub async fn queue_about_message(&mut self, message: i64, emails: &[OutboxRecord], at: DateTime<Utc>) -> Result<()> {
        let rows: Vec<(i64, i64, DateTime<Utc>, &OutboxRecord)> = emails.iter().map(|e| (message, message, at, e)).collect();
        self.queue_questions(&rows).await
    }

    /// Queues triage questions: (message asked about, message recorded with, when, question).
    async fn queue_questions(&mut self, questions: &[(i64, i64, DateTime<Utc>, &OutboxRecord)]) -> Result<()> {
        on_tx!(self, |c| {
            insert_values!(
                c,
                ROWS_PER_STATEMENT,
                "INSERT INTO outbox (message_id, purpose, recipient, email_message_id, subject, body, \
                 created_us, state, attempts, next_attempt_us) ",
                questions,
                "",
                |b, row| {
                    let (about, recorded, at, q) = *row;
                    let fill = |s: &str| s.replace("{message}", &about.to_string()).replace("{recorded}", &recorded.to_string());
                    b.push_bind(about)
                        .push_bind(q.purpose)
                        .push_bind(q.recipient.clone())
                        .push_bind(fill(&q.email_message_id))
                        .push_bind(fill(&q.subject))
                        .push_bind(fill(&q.body))
                        .push_bind(to_us(at))
                        .push_bind("pending")
                        .push_bind(0i32)
                        .push_bind(to_us(at));
                }
            );
        });
        Ok(())
    }

    /// Stores blobs by content hash; one already stored is kept as it is.
    async fn store_blobs<'b>(&mut self, blobs: impl Iterator<Item = (&'b str, &'b [u8])>) -> Result<()> {
        let mut seen = HashSet::new();
        let blobs: Vec<(&str, &[u8])> = blobs.filter(|(sha, _)| seen.insert(*sha)).collect();
        on_tx!(self, |c| {
            for chunk in blobs.chunks(BLOBS_PER_STATEMENT) {
                let mut qb = sqlx::QueryBuilder::new("INSERT INTO blobs (sha256, size, data) ");
                qb.push_values(chunk, |mut b, blob| {
                    b.push_bind(blob.0).push_bind(blob.1.len() as i64).push_bind(blob.1);
                });
                qb.push(" ON CONFLICT (sha256) DO NOTHING");
                // Never kept in the statement cache: SQLite keeps a prepared statement's record
                // buffer for reuse, so each cached blob INSERT (one per chunk size, on every
                // pooled connection) would hold on to a copy of the largest messages it wrote,
                // and the daemon's memory would grow with the biggest attachments it has seen.
                qb.build().persistent(false).execute(&mut *c).await?;
            }
        });
        Ok(())
    }

    /// Inserts the message rows; for each, its new id, or None when it was recorded before.
    async fn insert_messages(&mut self, batch: &[ToRecord<'_>]) -> Result<Vec<Option<i64>>> {
        let (keyed, unkeyed): (Vec<(usize, &MessageRecord)>, Vec<_>) =
            batch.iter().map(|r| r.message).enumerate().partition(|(_, m)| MessageKey::of(m).is_some());
        // Rows with a unique key go in together and are found again by it among the returned
        // rows. One without (too large to read, from a Maildir) cannot conflict and could not
        // be told apart from another: each goes in on its own.
        let mut groups = vec![keyed];
        groups.extend(unkeyed.into_iter().map(|row| vec![row]));
        let mut ids = vec![None; batch.len()];
        for group in groups {
            let returned: Vec<(MessageKey, i64)> = on_tx!(self, |c| {
                let rows = insert_values!(
                    c,
                    ROWS_PER_STATEMENT,
                    "INSERT INTO messages (sha256, message_id, source, origin, imap_uidvalidity, imap_uid, \
                     received_us, size, state, reason, duplicate_of, content_sha256) ",
                    group,
                    " ON CONFLICT DO NOTHING RETURNING id, sha256, origin, imap_uidvalidity, imap_uid",
                    |b, row| {
                        let m = row.1;
                        let (uidvalidity, uid) = imap_columns(m);
                        b.push_bind(m.sha256.clone())
                            .push_bind(m.message_id.clone())
                            .push_bind(m.source)
                            .push_bind(m.origin.clone())
                            .push_bind(uidvalidity)
                            .push_bind(uid)
                            .push_bind(to_us(m.received))
                            .push_bind(m.size as i64)
                            .push_bind(m.state.as_str())
                            .push_bind(m.reason.clone())
                            .push_bind(m.duplicate_of)
                            .push_bind(m.content_sha256.clone());
                    }
                );
                rows.iter().map(MessageKey::returned).collect::<Result<_>>()?
            });
            match group.as_slice() {
                [(i, m)] if MessageKey::of(m).is_none() => ids[*i] = returned.first().map(|r| r.1),
                _ => {
                    let returned: HashMap<MessageKey, i64> = returned.into_iter().collect();
                    for (i, m) in &group {
                        ids[*i] = MessageKey::of(m).and_then(|k| returned.get(&k).copied());
                    }
                }
            }
        }
        Ok(ids)
    }

    /// A duplicate of a message earlier in its own batch could not name its original before
    /// both had ids; now they have, it names it (`duplicate_of` and the reason), as a duplicate
    /// of an earlier batch's message does.
    async fn name_batch_originals(&mut self, batch: &[ToRecord<'_>], ids: &[Option<i64>]) -> Result<()> {
        for (item, id) in batch.iter().zip(ids) {
            let m = item.message;
            let (Some(id), MessageState::Duplicate, None, Some(mid), Some(content)) =
                (id, m.state, m.duplicate_of, &m.message_id, &m.content_sha256)
            else {
                continue;
            };
            on_tx!(self, |c| {
                let original: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM messages WHERE message_id = $1 AND content_sha256 = $2 AND state <> 'duplicate' AND id < $3 \
                     ORDER BY id LIMIT 1",
                )
                .bind(mid)
                .bind(content)
                .bind(id)
                .fetch_optional(&mut *c)
                .await?;
                if let Some(original) = original {
                    sqlx::query("UPDATE messages SET duplicate_of = $1, reason = $2 WHERE id = $3")
                        .bind(original)
                        .bind(format!("same Message-ID and content as message {original}"))
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                }
                Ok::<(), StoreError>(())
            })?;
        }
        Ok(())
    }

    /// The message recorded before under the same content hash or IMAP UID.
    async fn earlier_record(&mut self, msg: &MessageRecord) -> Result<(i64, MessageState)> {
        let (uidvalidity, uid) = imap_columns(msg);
        on_tx!(self, |c| {
            let row = sqlx::query(
                "SELECT id, state FROM messages WHERE sha256 = $1 \
                 OR (origin = $2 AND imap_uidvalidity = $3 AND imap_uid = $4) ORDER BY id LIMIT 1",
            )
            .bind(&msg.sha256)
            .bind(&msg.origin)
            .bind(uidvalidity)
            .bind(uid)
            .fetch_one(&mut *c)
            .await?;
            state_of(row)
        })
    }

    /// Files incidents with their pupil links, attachments, alerts, actions and rungs. Returns
    /// each message's incident id.
    pub(super) async fn file_incidents(&mut self, filed: &[(i64, &IncidentRecord)]) -> Result<HashMap<i64, i64>> {
        if filed.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: HashMap<i64, i64> = on_tx!(self, |c| {
            let rows = insert_values!(
                c,
                ROWS_PER_STATEMENT,
                "INSERT INTO incidents (message_id, occurred_us, recorded_us, recorded_by, record_kind, \
                 category, priority, visibility, note, original_from, original_name, original_subject, \
                 body_text, body_html, follows, date_note, backfilled) ",
                filed,
                " RETURNING id, message_id",
                |b, row| {
                    let (message, inc) = *row;
                    b.push_bind(message)
                        .push_bind(to_us(inc.occurred))
                        .push_bind(to_us(inc.recorded))
                        .push_bind(inc.recorded_by)
                        .push_bind(inc.record_kind.clone())
                        .push_bind(inc.category.clone())
                        .push_bind(inc.priority.clone())
                        .push_bind(inc.visibility.clone())
                        .push_bind(inc.note.clone())
                        .push_bind(inc.original_from.clone())
                        .push_bind(inc.original_name.clone())
                        .push_bind(inc.original_subject.clone())
                        .push_bind(inc.body_text.clone())
                        .push_bind(inc.body_html.clone())
                        .push_bind(inc.follows)
                        .push_bind(inc.date_note.clone())
                        .push_bind(inc.backfilled);
                }
            );
            rows.iter().map(|r| Ok((r.try_get::<i64, _>("message_id")?, r.try_get::<i64, _>("id")?))).collect::<Result<_>>()?
        });
        let incident = |message: &i64| ids[message];
        let to_read: Vec<i64> = filed.iter().filter(|(_, inc)| inc.ai_read && !inc.backfilled).map(|(m, _)| incident(m)).collect();
        if let Some((_, first)) = filed.first() {
            self.queue_ai(&to_read, first.recorded).await?;
        }

        let pupils: Vec<(i64, &PupilLink)> = filed.iter().flat_map(|(m, inc)| inc.pupils.iter().map(move |p| (incident(m), p))).collect();
        let attachments: Vec<(i64, &AttachmentRecord)> =
            filed.iter().flat_map(|(m, inc)| inc.attachments.iter().map(move |a| (incident(m), a))).collect();
        let outbox: Vec<(i64, i64, i16, &OutboxRecord)> = filed
            .iter()
            .flat_map(|(m, inc)| {
                let urgent = inc.priority == "urgent";
                inc.outbox.iter().map(move |o| (incident(m), to_us(inc.recorded), super::outbox::lane(o.purpose, urgent), o))
            })
            .collect();
        let actions: Vec<(i64, i64, &ActionRecord)> =
            filed.iter().filter_map(|(m, inc)| Some((incident(m), to_us(inc.recorded), inc.action.as_ref()?))).collect();

        self.store_blobs(attachments.iter().map(|(_, a)| (a.sha256.as_str(), a.data.as_slice()))).await?;
        let action_ids: HashMap<i64, i64> = on_tx!(self, |c| {
            insert_values!(
                c,
                ROWS_PER_STATEMENT,
                "INSERT INTO incident_pupils (incident_id, pupil_id, role, how) ",
                pupils,
                "",
                |b, row| {
                    b.push_bind(row.0).push_bind(row.1.pupil_id).push_bind(row.1.role.clone()).push_bind(row.1.how.clone());
                }
            );
            insert_values!(
                c,
                ROWS_PER_STATEMENT,
                "INSERT INTO attachments (incident_id, filename, content_type, size, sha256, inline, tnef) ",
                attachments,
                "",
                |b, row| {
                    let a = row.1;
                    b.push_bind(row.0)
                        .push_bind(a.filename.clone())
                        .push_bind(a.content_type.clone())
                        .push_bind(a.data.len() as i64)
                        .push_bind(a.sha256.clone())
                        .push_bind(a.inline)
                        .push_bind(a.tnef);
                }
            );
            insert_values!(
                c,
                ROWS_PER_STATEMENT,
                "INSERT INTO outbox (incident_id, purpose, recipient, email_message_id, subject, body, \
                 created_us, state, attempts, next_attempt_us, lane) ",
                outbox,
                "",
                |b, row| {
                    let (incident, created, lane, o) = *row;
                    let number = incident.to_string();
                    b.push_bind(incident)
                        .push_bind(o.purpose)
                        .push_bind(o.recipient.clone())
                        .push_bind(o.email_message_id.replace("{incident}", &number))
                        .push_bind(o.subject.replace("{incident}", &number))
                        .push_bind(o.body.replace("{incident}", &number))
                        .push_bind(created)
                        .push_bind("pending")
                        .push_bind(0i32)
                        .push_bind(created)
                        .push_bind(lane);
                }
            );
            let rows = insert_values!(
                c,
                ROWS_PER_STATEMENT,
                "INSERT INTO actions (incident_id, owner, created_us, due_us) ",
                actions,
                " RETURNING id, incident_id",
                |b, row| {
                    b.push_bind(row.0).push_bind(row.2.owner).push_bind(row.1).push_bind(to_us(row.2.due));
                }
            );
            rows.iter().map(|r| Ok((r.try_get::<i64, _>("incident_id")?, r.try_get::<i64, _>("id")?))).collect::<Result<_>>()?
        });

        let mut rungs: Vec<(i64, i32, i64, String)> = Vec::new();
        for (incident, _, a) in &actions {
            for (i, r) in a.rungs.iter().enumerate() {
                let recipients = serde_json::to_string(&r.recipients).map_err(|e| StoreError::Invalid(e.to_string()))?;
                rungs.push((action_ids[incident], i as i32, to_us(r.due), recipients));
            }
        }
        on_tx!(self, |c| {
            insert_values!(
                c,
                ROWS_PER_STATEMENT,
                "INSERT INTO action_rungs (action_id, rung, due_us, recipients) ",
                rungs,
                "",
                |b, row| {
                    b.push_bind(row.0).push_bind(row.1).push_bind(row.2).push_bind(row.3.clone());
                }
            );
        });
        Ok(ids)
    }
}
