//! Subject access requests: the request (its subject, dates and state), the holds it placed,
//! the items collected for it with their decisions, and the disclosure log. Free text arrives
//! sealed (fields below); every change is audited as `sar_*` on `sar:ID`, whose detail names
//! ids and codes only, never a person or their words.

use super::{AuditEntry, Result, Store, Tx, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

/// The fields the free text here is sealed for.
pub mod fields {
    pub const SUBJECT_EMAIL: &str = "sar.subject_email";
    pub const REQUESTER: &str = "sar.requester";
    pub const EXTEND_REASON: &str = "sar.extend_reason";
    pub const ITEM: &str = "sar.item";
    pub const REDACTIONS: &str = "sar.redactions";
    pub const REASON: &str = "sar.reason";
    pub const CONSULTED: &str = "sar.consulted";
    pub const COPY: &str = "sar.copy";
}

/// Who a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SarSubject {
    Pupil(i64),
    /// An adult by address (sealed): a parent, a carer, a member of staff.
    Adult(String),
}

/// One request, as stored (texts still sealed).
#[derive(Debug, Clone)]
pub struct SarRequest {
    pub id: i64,
    pub kind: RequestKind,
    pub subject: SarSubject,
    pub sealed_requester: Option<String>,
    pub received_on: NaiveDate,
    pub due_on: NaiveDate,
    /// (to, sealed reason, by, at)
    pub extended: Option<(NaiveDate, String, i64, DateTime<Utc>)>,
    pub open: bool,
    pub opened_by: i64,
    pub opened_at: DateTime<Utc>,
    pub closed: Option<(i64, DateTime<Utc>)>,
}

/// What was asked for: the subject's personal data (UK GDPR Art 15), or a parent's request
/// for their child's educational record (maintained schools; 15 school days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    #[default]
    SubjectAccess,
    EducationalRecord,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::SubjectAccess => "subject_access",
            RequestKind::EducationalRecord => "educational_record",
        }
    }

    /// "Subject access request" or "Educational record request", as emails and lists say it.
    pub fn title(self) -> &'static str {
        match self {
            RequestKind::SubjectAccess => "Subject access request",
            RequestKind::EducationalRecord => "Educational record request",
        }
    }
}

impl SarRequest {
    /// When the answer is due now: the extension's date, when there is one.
    pub fn due(&self) -> NaiveDate {
        self.extended.as_ref().map_or(self.due_on, |e| e.0)
    }

    pub fn audit_subject(&self) -> String {
        format!("sar:{}", self.id)
    }
}

/// A collected item, as stored (content still sealed).
#[derive(Debug, Clone)]
pub struct SarItem {
    pub item: i64,
    /// incident | alert | audit
    pub kind: String,
    /// What it was taken from: "incident:12", "outbox:40", "pupil:3".
    pub source: String,
    pub at: DateTime<Utc>,
    pub flags: String,
    pub sealed_content: String,
    pub sha256: String,
    pub decision: Option<String>,
    pub exemption: Option<String>,
    pub sealed_redactions: Option<String>,
    pub sealed_reason: Option<String>,
    pub sealed_consulted: Option<String>,
    pub decided: Option<(i64, DateTime<Utc>)>,
}

/// An item to add.
#[derive(Debug, Clone)]
pub struct NewSarItem {
    pub kind: &'static str,
    pub source: String,
    pub at: DateTime<Utc>,
    pub flags: String,
    pub sealed_content: String,
    pub sha256: String,
}

/// A decision to record (texts sealed).
#[derive(Debug, Clone)]
pub struct SarDecision<'a> {
    pub item: i64,
    pub decision: &'a str,
    pub exemption: Option<&'a str>,
    pub sealed_redactions: Option<String>,
    pub sealed_reason: String,
    pub sealed_consulted: Option<String>,
    pub by: i64,
    pub at: DateTime<Utc>,
}

/// One entry of the disclosure log (the copy still sealed).
#[derive(Debug, Clone)]
pub struct Disclosure {
    pub id: i64,
    pub sha256: String,
    pub size: i64,
    pub sealed_copy: Vec<u8>,
    /// JSON: each item's number, decision, exemption and how many texts were redacted.
    pub decisions: String,
    pub sent_by: i64,
    pub sent_at: DateTime<Utc>,
}

/// An email about an incident, as the outbox keeps it (its text is cleared once sent).
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub id: i64,
    pub purpose: String,
    pub recipient: String,
    pub created_at: DateTime<Utc>,
    pub state: String,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A message kept but never filed as an incident (awaiting triage, quarantined), raw bytes sealed.
#[derive(Debug, Clone)]
pub struct UnfiledMessage {
    pub id: i64,
    pub state: String,
    pub received_at: DateTime<Utc>,
    pub sealed_raw: Vec<u8>,
}

/// An incident's sealed texts, for finding what an adult sent or is named in.
#[derive(Debug, Clone)]
pub struct IncidentTexts {
    pub id: i64,
    pub original_from: Option<String>,
    pub original_name: Option<String>,
    pub note: Option<String>,
    pub subject: Option<String>,
    pub body: String,
}

const REQUEST_COLUMNS: &str = "id, subject_kind, pupil_id, subject_email, requester, received_on, due_on, extended_to, \
     extend_reason, extended_by, extended_us, state, opened_by, opened_us, closed_by, closed_us, request_kind";

const ITEM_COLUMNS: &str = "item, kind, source, item_us, flags, content, sha256, decision, exemption, redactions, reason, \
     consulted, decided_by, decided_us";

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

trait SarRow {
    fn request(&self) -> Result<SarRequest>;
    fn item(&self) -> Result<SarItem>;
}

macro_rules! sar_row {
    ($row:ty) => {
        impl SarRow for $row {
            fn request(&self) -> Result<SarRequest> {
                let kind: String = self.try_get("subject_kind")?;
                let subject = if kind == "pupil" {
                    SarSubject::Pupil(self.try_get::<Option<i64>, _>("pupil_id")?.unwrap_or_default())
                } else {
                    SarSubject::Adult(self.try_get::<Option<String>, _>("subject_email")?.unwrap_or_default())
                };
                let extended_to: Option<String> = self.try_get("extended_to")?;
                let extended = match extended_to {
                    Some(to) => Some((
                        date(&to),
                        self.try_get::<Option<String>, _>("extend_reason")?.unwrap_or_default(),
                        self.try_get::<Option<i64>, _>("extended_by")?.unwrap_or_default(),
                        from_us(self.try_get::<Option<i64>, _>("extended_us")?.unwrap_or_default()),
                    )),
                    None => None,
                };
                let closed_by: Option<i64> = self.try_get("closed_by")?;
                let closed_us: Option<i64> = self.try_get("closed_us")?;
                let request_kind: String = self.try_get("request_kind")?;
                Ok(SarRequest {
                    id: self.try_get("id")?,
                    kind: if request_kind == "educational_record" { RequestKind::EducationalRecord } else { RequestKind::SubjectAccess },
                    subject,
                    sealed_requester: self.try_get("requester")?,
                    received_on: date(&self.try_get::<String, _>("received_on")?),
                    due_on: date(&self.try_get::<String, _>("due_on")?),
                    extended,
                    open: self.try_get::<String, _>("state")? == "open",
                    opened_by: self.try_get("opened_by")?,
                    opened_at: from_us(self.try_get("opened_us")?),
                    closed: closed_by.zip(closed_us.map(from_us)),
                })
            }

            fn item(&self) -> Result<SarItem> {
                let by: Option<i64> = self.try_get("decided_by")?;
                let at: Option<i64> = self.try_get("decided_us")?;
                Ok(SarItem {
                    item: self.try_get("item")?,
                    kind: self.try_get("kind")?,
                    source: self.try_get("source")?,
                    at: from_us(self.try_get("item_us")?),
                    flags: self.try_get("flags")?,
                    sealed_content: self.try_get("content")?,
                    sha256: self.try_get("sha256")?,
                    decision: self.try_get("decision")?,
                    exemption: self.try_get("exemption")?,
                    sealed_redactions: self.try_get("redactions")?,
                    sealed_reason: self.try_get("reason")?,
                    sealed_consulted: self.try_get("consulted")?,
                    decided: by.zip(at.map(from_us)),
                })
            }
        }
    };
}
sar_row!(sqlx::sqlite::SqliteRow);
sar_row!(sqlx::postgres::PgRow);

impl Store {
    /// Every request, newest first.
    pub async fn sars(&self) -> Result<Vec<SarRequest>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM sar_requests ORDER BY id DESC");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(p).await?.iter().map(|r| r.request()).collect())
    }

    pub async fn sar(&self, id: i64) -> Result<Option<SarRequest>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM sar_requests WHERE id = $1");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?.map(|r| r.request()).transpose())
    }

    /// A request's items in their numbered order.
    pub async fn sar_items(&self, sar: i64) -> Result<Vec<SarItem>> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM sar_items WHERE sar_id = $1 ORDER BY item");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql)).bind(sar).fetch_all(p).await?.iter().map(|r| r.item()).collect())
    }

    /// The holds a request placed.
    pub async fn sar_holds(&self, sar: i64) -> Result<Vec<i64>> {
        on_pool!(self, |p| Ok(sqlx::query_scalar("SELECT hold_id FROM sar_holds WHERE sar_id = $1 ORDER BY hold_id")
            .bind(sar)
            .fetch_all(p)
            .await?))
    }

    /// A request's disclosure log, oldest first.
    pub async fn sar_disclosures(&self, sar: i64) -> Result<Vec<Disclosure>> {
        on_pool!(self, |p| sqlx::query(
            "SELECT id, sha256, size, copy, decisions, sent_by, sent_us FROM sar_disclosures WHERE sar_id = $1 ORDER BY id"
        )
        .bind(sar)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            Ok(Disclosure {
                id: r.try_get("id")?,
                sha256: r.try_get("sha256")?,
                size: r.try_get("size")?,
                sealed_copy: r.try_get("copy")?,
                decisions: r.try_get("decisions")?,
                sent_by: r.try_get("sent_by")?,
                sent_at: from_us(r.try_get("sent_us")?),
            })
        })
        .collect())
    }

    /// The audit entries whose subject is one of `subjects` ("pupil:3", "incident:12"), oldest first.
    pub async fn audit_about(&self, subject: &str) -> Result<Vec<AuditEntry>> {
        on_pool!(self, |p| sqlx::query(
            "SELECT id, at_us, actor, os_user, action, subject, detail FROM audit_log WHERE subject = $1 ORDER BY id"
        )
        .bind(subject)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at: from_us(r.try_get("at_us")?),
                actor: r.try_get("actor")?,
                os_user: r.try_get("os_user")?,
                action: r.try_get("action")?,
                subject: r.try_get("subject")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect())
    }

    /// The emails queued about an incident (alerts, reminders), oldest first.
    pub async fn emails_about(&self, incident: i64) -> Result<Vec<SentEmail>> {
        on_pool!(self, |p| sqlx::query(
            "SELECT id, purpose, recipient, created_us, state, sent_us FROM outbox WHERE incident_id = $1 ORDER BY id"
        )
        .bind(incident)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            Ok(SentEmail {
                id: r.try_get("id")?,
                purpose: r.try_get("purpose")?,
                recipient: r.try_get("recipient")?,
                created_at: from_us(r.try_get("created_us")?),
                state: r.try_get("state")?,
                sent_at: r.try_get::<Option<i64>, _>("sent_us")?.map(from_us),
            })
        })
        .collect())
    }

    /// How many of the emails with these Message-IDs have been queued already.
    pub async fn emails_queued(&self, message_ids: &[String]) -> Result<usize> {
        let mut n = 0;
        for id in message_ids {
            let found: i64 = on_pool!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE email_message_id = $1")
                .bind(id)
                .fetch_one(p)
                .await?);
            n += usize::from(found > 0);
        }
        Ok(n)
    }

    /// The messages awaiting triage or quarantined, with their sealed raw bytes, after id
    /// `after`, `limit` at a time.
    pub async fn unfiled_messages(&self, after: i64, limit: i64) -> Result<Vec<UnfiledMessage>> {
        on_pool!(self, |p| sqlx::query(
            "SELECT m.id, m.state, m.received_us, b.data FROM messages m JOIN blobs b ON b.sha256 = m.sha256 \
             WHERE m.state IN ('awaiting_triage', 'quarantined') AND m.id > $1 ORDER BY m.id LIMIT $2"
        )
        .bind(after)
        .bind(limit)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            Ok(UnfiledMessage {
                id: r.try_get("id")?,
                state: r.try_get("state")?,
                received_at: from_us(r.try_get("received_us")?),
                sealed_raw: r.try_get("data")?,
            })
        })
        .collect())
    }

    /// Every incident's sealed texts, in pages of `limit` after id `after`: what `haven sar
    /// collect` opens to find what an adult sent or is named in (nothing indexes free text).
    pub async fn incident_texts(&self, after: i64, limit: i64) -> Result<Vec<IncidentTexts>> {
        on_pool!(self, |p| sqlx::query(
            "SELECT id, original_from, original_name, note, original_subject, body_text FROM incidents \
             WHERE id > $1 ORDER BY id LIMIT $2"
        )
        .bind(after)
        .bind(limit)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            Ok(IncidentTexts {
                id: r.try_get("id")?,
                original_from: r.try_get("original_from")?,
                original_name: r.try_get("original_name")?,
                note: r.try_get("note")?,
                subject: r.try_get("original_subject")?,
                body: r.try_get("body_text")?,
            })
        })
        .collect())
    }
}

impl Tx {
    /// Records a new request; returns its id. Audited as `sar_open`.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_sar(
        &mut self,
        request_kind: RequestKind,
        subject: &SarSubject,
        sealed_requester: Option<&str>,
        received: NaiveDate,
        due: NaiveDate,
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let (kind, pupil, email) = match subject {
            SarSubject::Pupil(p) => ("pupil", Some(*p), None),
            SarSubject::Adult(e) => ("adult", None, Some(e.as_str())),
        };
        let id: i64 = on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO sar_requests (subject_kind, pupil_id, subject_email, requester, received_on, due_on, state, opened_by, opened_us, \
             request_kind) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9) RETURNING id"
        )
        .bind(kind)
        .bind(pupil)
        .bind(email)
        .bind(sealed_requester)
        .bind(received.to_string())
        .bind(due.to_string())
        .bind(by)
        .bind(to_us(at))
        .bind(request_kind.as_str())
        .fetch_one(&mut *c)
        .await?
        .try_get("id")?
        });
        let about = pupil.map_or_else(|| "adult".to_string(), |p| format!("pupil:{p}"));
        self.append_audit(
            at,
            &format!("staff:{by}"),
            "sar_open",
            &format!("sar:{id}"),
            &format!("kind={} subject={about} received={received} due={due}", request_kind.as_str()),
        )
        .await?;
        Ok(id)
    }

    /// Notes that request `sar` placed hold `hold`.
    pub async fn add_sar_hold(&mut self, sar: i64, hold: i64) -> Result<()> {
        on_tx!(self, |c| sqlx::query("INSERT INTO sar_holds (sar_id, hold_id) VALUES ($1, $2)")
            .bind(sar)
            .bind(hold)
            .execute(&mut *c)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Extends an open request to `to`; false when it is not open.
    pub async fn extend_sar(&mut self, id: i64, to: NaiveDate, sealed_reason: &str, by: i64, at: DateTime<Utc>) -> Result<bool> {
        let n = on_tx!(self, |c| sqlx::query(
            "UPDATE sar_requests SET extended_to = $2, extend_reason = $3, extended_by = $4, extended_us = $5 \
             WHERE id = $1 AND state = 'open'"
        )
        .bind(id)
        .bind(to.to_string())
        .bind(sealed_reason)
        .bind(by)
        .bind(to_us(at))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if n > 0 {
            self.append_audit(at, &format!("staff:{by}"), "sar_extend", &format!("sar:{id}"), &format!("due={to}")).await?;
        }
        Ok(n > 0)
    }

    /// Closes an open request; false when it is not open. The caller releases its holds in
    /// the same transaction.
    pub async fn close_sar(&mut self, id: i64, by: i64, at: DateTime<Utc>) -> Result<bool> {
        let n = on_tx!(self, |c| sqlx::query(
            "UPDATE sar_requests SET state = 'closed', closed_by = $2, closed_us = $3 WHERE id = $1 AND state = 'open'"
        )
        .bind(id)
        .bind(by)
        .bind(to_us(at))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if n > 0 {
            self.append_audit(at, &format!("staff:{by}"), "sar_close", &format!("sar:{id}"), "").await?;
        }
        Ok(n > 0)
    }

    /// Adds the items not collected before (by kind and source), numbered after the last.
    /// Returns how many were new. Audited as `sar_collect`.
    pub async fn add_sar_items(&mut self, sar: i64, items: &[NewSarItem], by: i64, at: DateTime<Utc>) -> Result<u64> {
        let mut added = 0u64;
        on_tx!(self, |c| {
            let mut next: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(item), 0) FROM sar_items WHERE sar_id = $1").bind(sar).fetch_one(&mut *c).await?;
            for it in items {
                let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sar_items WHERE sar_id = $1 AND kind = $2 AND source = $3")
                    .bind(sar)
                    .bind(it.kind)
                    .bind(&it.source)
                    .fetch_one(&mut *c)
                    .await?;
                if seen > 0 {
                    continue;
                }
                next += 1;
                sqlx::query(
                    "INSERT INTO sar_items (sar_id, item, kind, source, item_us, flags, content, sha256) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(sar)
                .bind(next)
                .bind(it.kind)
                .bind(&it.source)
                .bind(to_us(it.at))
                .bind(&it.flags)
                .bind(&it.sealed_content)
                .bind(&it.sha256)
                .execute(&mut *c)
                .await?;
                added += 1;
            }
            Ok::<(), super::StoreError>(())
        })?;
        self.append_audit(at, &format!("staff:{by}"), "sar_collect", &format!("sar:{sar}"), &format!("items={} new={added}", items.len()))
            .await?;
        Ok(added)
    }

    /// Records an item's decision (a later one replaces it); false when there is no such item.
    pub async fn decide_sar_item(&mut self, sar: i64, d: &SarDecision<'_>) -> Result<bool> {
        let n = on_tx!(self, |c| sqlx::query(
            "UPDATE sar_items SET decision = $3, exemption = $4, redactions = $5, reason = $6, decided_by = $7, decided_us = $8, \
             consulted = $9 WHERE sar_id = $1 AND item = $2"
        )
        .bind(sar)
        .bind(d.item)
        .bind(d.decision)
        .bind(d.exemption)
        .bind(d.sealed_redactions.as_deref())
        .bind(&d.sealed_reason)
        .bind(d.by)
        .bind(to_us(d.at))
        .bind(d.sealed_consulted.as_deref())
        .execute(&mut *c)
        .await?
        .rows_affected());
        if n > 0 {
            self.append_audit(
                d.at,
                &format!("staff:{}", d.by),
                "sar_decide",
                &format!("sar:{sar}"),
                &format!("item={} decision={} exemption={}", d.item, d.decision, d.exemption.unwrap_or("none")),
            )
            .await?;
        }
        Ok(n > 0)
    }

    /// Writes the disclosure log's entry for an export; returns its id. Audited as
    /// `sar_export` with the SHA-256 of the bytes sent, so the chain vouches for it too.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_disclosure(
        &mut self,
        sar: i64,
        sha256: &str,
        size: i64,
        sealed_copy: &[u8],
        decisions: &str,
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let id: i64 = on_tx!(self, |c| sqlx::query(
            "INSERT INTO sar_disclosures (sar_id, sha256, size, copy, decisions, sent_by, sent_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
        )
        .bind(sar)
        .bind(sha256)
        .bind(size)
        .bind(sealed_copy)
        .bind(decisions)
        .bind(by)
        .bind(to_us(at))
        .fetch_one(&mut *c)
        .await?
        .try_get("id")?);
        self.append_audit(at, &format!("staff:{by}"), "sar_export", &format!("sar:{sar}"), &format!("disclosure={id} sha256={sha256}"))
            .await?;
        Ok(id)
    }
}
