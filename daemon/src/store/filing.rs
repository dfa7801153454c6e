//! Recording a received message, and filing its incident with everything that must exist
//! with it (pupil links, attachments, alerts in the outbox, the outcome action and its
//! escalation rungs, the audit entry), in one transaction.

use super::{Result, Store, StoreError, Tx, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;

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
    pub const ALL: [MessageState; 5] = [
        MessageState::Filed,
        MessageState::AwaitingTriage,
        MessageState::Quarantined,
        MessageState::Duplicate,
        MessageState::Ignored,
    ];

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
    /// alert | reminder | digest | triage | notice
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

impl Store {
    /// The earlier record of these exact bytes, if any.
    pub async fn find_message_by_sha(&self, sha256: &str) -> Result<Option<(i64, MessageState)>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT id, state FROM messages WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(p)
                .await?;
            row.map(state_of).transpose()
        })
    }

    /// The record of an IMAP message by mailbox, UIDVALIDITY and UID.
    pub async fn find_message_by_imap_uid(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        uid: u32,
    ) -> Result<Option<(i64, MessageState)>> {
        on_pool!(self, |p| {
            let row = sqlx::query(
                "SELECT id, state FROM messages WHERE origin = $1 AND imap_uidvalidity = $2 AND imap_uid = $3",
            )
            .bind(mailbox)
            .bind(i64::from(uidvalidity))
            .bind(i64::from(uid))
            .fetch_optional(p)
            .await?;
            row.map(state_of).transpose()
        })
    }

    /// The first message recorded with this Message-ID that was not itself a duplicate.
    pub async fn find_original_by_message_id(&self, message_id: &str) -> Result<Option<i64>> {
        on_pool!(self, |p| {
            let row = sqlx::query(
                "SELECT id FROM messages WHERE message_id = $1 AND state <> 'duplicate' ORDER BY id LIMIT 1",
            )
            .bind(message_id)
            .fetch_optional(p)
            .await?;
            row.map(|r| r.try_get::<i64, _>("id")).transpose().map_err(Into::into)
        })
    }

    /// Incidents in any of `categories` linked to `pupil_id` and occurring at or after `since`.
    pub async fn count_pupil_incidents(
        &self,
        pupil_id: i64,
        categories: &[String],
        since: DateTime<Utc>,
    ) -> Result<u32> {
        on_pool!(self, |p| {
            let mut n = 0i64;
            for cat in categories {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM incidents i JOIN incident_pupils ip ON ip.incident_id = i.id \
                     WHERE ip.pupil_id = $1 AND i.category = $2 AND i.occurred_us >= $3",
                )
                .bind(pupil_id)
                .bind(cat)
                .bind(to_us(since))
                .fetch_one(p)
                .await?;
                n += row.try_get::<i64, _>("n")?;
            }
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
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
    let state = MessageState::parse(&state)
        .ok_or_else(|| StoreError::Invalid(format!("message {id} has unknown state {state:?}")))?;
    Ok((id, state))
}

impl Tx {
    /// Records one message and, when given, files its incident, inside this transaction.
    /// The raw bytes are stored content-addressed. Returns `Already` without writing anything
    /// when these exact bytes were recorded before.
    pub async fn record_message(
        &mut self,
        raw: &[u8],
        msg: &MessageRecord,
        incident: Option<&IncidentRecord>,
        actor: &str,
    ) -> Result<Recorded> {
        let received_us = to_us(msg.received);
        let inserted: Option<i64> = on_tx!(self, |c| {
            if let Some(sha) = &msg.sha256 {
                sqlx::query("INSERT INTO blobs (sha256, size, data) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING")
                    .bind(sha)
                    .bind(raw.len() as i64)
                    .bind(raw)
                    .execute(&mut *c)
                    .await?;
            }
            let (uidvalidity, uid) = match msg.imap_uid {
                Some((v, u)) => (Some(i64::from(v)), Some(i64::from(u))),
                None => (None, None),
            };
            sqlx::query(
                "INSERT INTO messages (sha256, message_id, source, origin, imap_uidvalidity, imap_uid, \
                 received_us, size, state, reason, duplicate_of) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&msg.sha256)
            .bind(&msg.message_id)
            .bind(msg.source)
            .bind(&msg.origin)
            .bind(uidvalidity)
            .bind(uid)
            .bind(received_us)
            .bind(msg.size as i64)
            .bind(msg.state.as_str())
            .bind(&msg.reason)
            .bind(msg.duplicate_of)
            .fetch_optional(&mut *c)
            .await?
            .map(|r| r.try_get::<i64, _>("id"))
            .transpose()?
        });
        let Some(message) = inserted else {
            // Conflict on the content hash or on the IMAP (mailbox, UIDVALIDITY, UID).
            let (uidvalidity, uid) = msg.imap_uid.map_or((None, None), |(v, u)| (Some(i64::from(v)), Some(i64::from(u))));
            let earlier = on_tx!(self, |c| {
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
            })?;
            return Ok(Recorded::Already { message: earlier.0, state: earlier.1 });
        };

        let incident_id = match incident {
            Some(inc) => Some(self.file_incident(message, inc).await?),
            None => None,
        };
        let subject = match incident_id {
            Some(id) => format!("incident:{id}"),
            None => format!("message:{message}"),
        };
        let detail = format!("state={} message={message}", msg.state.as_str());
        self.append_audit(msg.received, actor, "record", &subject, &detail).await?;
        Ok(Recorded::New { message, incident: incident_id })
    }

    async fn file_incident(&mut self, message: i64, inc: &IncidentRecord) -> Result<i64> {
        on_tx!(self, |c| {
            let id: i64 = sqlx::query(
                "INSERT INTO incidents (message_id, occurred_us, recorded_us, recorded_by, record_kind, \
                 category, priority, visibility, note, original_from, original_name, original_subject, \
                 body_text, body_html, follows) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
            )
            .bind(message)
            .bind(to_us(inc.occurred))
            .bind(to_us(inc.recorded))
            .bind(inc.recorded_by)
            .bind(&inc.record_kind)
            .bind(&inc.category)
            .bind(&inc.priority)
            .bind(&inc.visibility)
            .bind(&inc.note)
            .bind(&inc.original_from)
            .bind(&inc.original_name)
            .bind(&inc.original_subject)
            .bind(&inc.body_text)
            .bind(&inc.body_html)
            .bind(inc.follows)
            .fetch_one(&mut *c)
            .await?
            .try_get("id")?;
            for p in &inc.pupils {
                sqlx::query("INSERT INTO incident_pupils (incident_id, pupil_id, role, how) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(p.pupil_id)
                    .bind(&p.role)
                    .bind(&p.how)
                    .execute(&mut *c)
                    .await?;
            }
            for a in &inc.attachments {
                sqlx::query("INSERT INTO blobs (sha256, size, data) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING")
                    .bind(&a.sha256)
                    .bind(a.data.len() as i64)
                    .bind(&a.data)
                    .execute(&mut *c)
                    .await?;
                sqlx::query(
                    "INSERT INTO attachments (incident_id, filename, content_type, size, sha256, inline, tnef) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(&a.filename)
                .bind(&a.content_type)
                .bind(a.data.len() as i64)
                .bind(&a.sha256)
                .bind(a.inline)
                .bind(a.tnef)
                .execute(&mut *c)
                .await?;
            }
            let number = id.to_string();
            for o in &inc.outbox {
                sqlx::query(
                    "INSERT INTO outbox (incident_id, purpose, recipient, email_message_id, subject, body, \
                     created_us, state, attempts, next_attempt_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $7)",
                )
                .bind(id)
                .bind(o.purpose)
                .bind(&o.recipient)
                .bind(o.email_message_id.replace("{incident}", &number))
                .bind(o.subject.replace("{incident}", &number))
                .bind(o.body.replace("{incident}", &number))
                .bind(to_us(inc.recorded))
                .execute(&mut *c)
                .await?;
            }
            if let Some(a) = &inc.action {
                let action: i64 = sqlx::query(
                    "INSERT INTO actions (incident_id, owner, created_us, due_us) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(id)
                .bind(a.owner)
                .bind(to_us(inc.recorded))
                .bind(to_us(a.due))
                .fetch_one(&mut *c)
                .await?
                .try_get("id")?;
                for (i, r) in a.rungs.iter().enumerate() {
                    let recipients = serde_json::to_string(&r.recipients)
                        .map_err(|e| StoreError::Invalid(e.to_string()))?;
                    sqlx::query(
                        "INSERT INTO action_rungs (action_id, rung, due_us, recipients) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(action)
                    .bind(i as i32)
                    .bind(to_us(r.due))
                    .bind(recipients)
                    .execute(&mut *c)
                    .await?;
                }
            }
            Ok::<i64, StoreError>(id)
        })
    }
}
