//! Reading back: a pupil's chronology and the counts `haven status` shows.

use super::{MessageState, Result, Store, from_us, on_pool, to_us};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

/// One entry of a pupil's chronology before it is read whole: what deciding who may see it
/// needs, unless the viewer's audience depends on the incident's other pupils (then
/// [`Store::incident_pupils`] tells them).
#[derive(Debug, Clone)]
pub struct IndexedEntry {
    pub incident: i64,
    pub visibility: String,
    /// The role on the incident of the pupil whose chronology this is.
    pub role: String,
}

/// One incident as it appears on a chronology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChronologyEntry {
    pub incident: i64,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: Option<String>,
    pub record_kind: String,
    pub category: String,
    /// Why the category is not the one staff named (an unknown name), when so.
    pub category_note: Option<String>,
    pub priority: String,
    pub visibility: String,
    /// This pupil's role on the incident.
    pub role: String,
    /// Every pupil on the incident: (pupil id, role).
    pub pupils: Vec<(i64, String)>,
    pub note: Option<String>,
    pub original_from: Option<String>,
    pub original_subject: Option<String>,
    pub body: String,
    pub attachments: Vec<String>,
    pub outcome: Option<String>,
    /// The decision the outcome records (`NFA`, `REFERRED-CSC`, …), when its text starts with one.
    pub outcome_code: Option<String>,
    /// Why `occurred_at` is the filing time: the original's date could not be trusted.
    pub date_note: Option<String>,
    /// Who recorded the outcome ("First Last") and when.
    pub outcome_by: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
    /// The original sender's display name, when the record carries someone else's message.
    pub original_name: Option<String>,
    /// The incident this entry follows up (a reply to its alert).
    pub follows: Option<i64>,
    /// The model's suggestion (sealed JSON), once the AI worker has read the incident.
    pub ai_suggestion: Option<String>,
}

/// A message's record, for triage lists and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub state: MessageState,
    pub reason: String,
    pub source: String,
    /// For a message released from quarantine: who released it (full name) and when.
    pub released_by: Option<String>,
    pub released_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub messages: HashMap<MessageState, u64>,
    pub incidents: u64,
    pub outbox_pending: u64,
    pub outbox_sent: u64,
    pub outbox_dead: u64,
    pub outcomes_open: u64,
    pub outcomes_overdue: u64,
    pub last_filed_at: Option<DateTime<Utc>>,
    /// Standing holds (nothing they cover may be disposed of): on pupils, on single incidents.
    pub holds_on_pupils: u64,
    pub holds_on_incidents: u64,
}

/// A pupil's chronology, lightly: each entry's incident, who may see it and the pupil's role on
/// it, through the pupil's links, in occurred-at order. A view decides what it shows from this
/// before anything heavier is read.
pub(super) const CHRONOLOGY: &str = "SELECT i.id, i.visibility, ip.role FROM incidents i JOIN incident_pupils ip ON ip.incident_id = i.id \
     WHERE ip.pupil_id = $1 ORDER BY i.occurred_us, i.id";

/// The entries of pupil `$1`'s chronology with the `n` keys `$2…`, whole (sealed texts
/// included), each by its key: only those a page shows.
#[doc(hidden)]
pub fn chronology_entries_sql(n: usize) -> String {
    format!(
        "SELECT i.id, i.occurred_us, i.recorded_us, s.first_name, s.last_name, i.record_kind, \
         i.category, i.priority, i.visibility, ip.role, i.note, i.original_from, \
         i.original_subject, i.original_name, i.follows, i.body_text, i.date_note, i.category_note, i.ai_suggestion \
         FROM incidents i JOIN incident_pupils ip ON ip.incident_id = i.id AND ip.pupil_id = $1 \
         LEFT JOIN staff s ON s.id = i.recorded_by \
         WHERE i.id IN ({}) ORDER BY i.occurred_us, i.id",
        placeholders(2, n)
    )
}

/// The outcomes recorded on the `n` incidents `$1…`, the latest of each incident first, by the
/// actions-by-incident index. (Joined to the entries through a subquery for the latest, as it
/// was, PostgreSQL hashed every action in the database to answer it.)
#[doc(hidden)]
pub fn chronology_outcomes_sql(n: usize) -> String {
    format!(
        "SELECT a.incident_id, a.outcome, a.outcome_code, a.outcome_us, s.first_name, s.last_name FROM actions a \
         LEFT JOIN staff s ON s.id = a.outcome_by WHERE a.incident_id IN ({}) AND a.outcome IS NOT NULL \
         ORDER BY a.incident_id, a.outcome_us DESC, a.id DESC",
        placeholders(1, n)
    )
}

/// Every pupil of the `n` incidents `$1…`.
///
/// Asked by the incidents' keys, not by joining the pupil's links back onto `incident_pupils`:
/// PostgreSQL planned that self-join as a hash join over a sequential scan of every link once a
/// pupil had a few hundred incidents in a table of some hundred thousand (41 ms where the key
/// look-ups take 2; `tests/plans.rs` keeps it so with real statistics).
#[doc(hidden)]
pub fn chronology_pupils_sql(n: usize) -> String {
    format!(
        "SELECT incident_id, pupil_id, role FROM incident_pupils WHERE incident_id IN ({}) ORDER BY incident_id, pupil_id",
        placeholders(1, n)
    )
}

/// The attachment names (inline images excluded, `$1` false) of the `n` incidents `$2…`, by the
/// attachments-by-incident index, as [`chronology_pupils_sql`] and for the same reason.
#[doc(hidden)]
pub fn chronology_attachments_sql(n: usize) -> String {
    format!(
        "SELECT incident_id, filename FROM attachments WHERE incident_id IN ({}) AND inline = $1 ORDER BY incident_id, id",
        placeholders(2, n)
    )
}

/// `$first, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `ids` padded with its last key to the next power of two (at most [`IDS_PER_QUERY`]), so the
/// look-ups by a list of keys come in a few lengths only, each prepared once per connection and
/// kept: a page of 100 entries used to send, parse and plan four statements with a hundred
/// numbers written into each (PostgreSQL spent longer planning them than running them).
/// A repeated key matches nothing twice.
#[doc(hidden)]
pub fn padded(ids: &[i64]) -> Vec<i64> {
    let mut out = ids.to_vec();
    if let Some(&last) = ids.last() {
        out.resize(ids.len().next_power_of_two().min(IDS_PER_QUERY), last);
    }
    out
}

/// An incident's latest outcome, as [`chronology_outcomes_sql`] reads it.
#[derive(Default)]
struct Outcome {
    text: Option<String>,
    code: Option<String>,
    by: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// How many incidents one look-up of their pupils, attachments or outcomes names.
const IDS_PER_QUERY: usize = 1024;

pub(super) const MESSAGES_IN_STATE: &str = "SELECT m.id, m.state, m.reason, m.source, m.released_us, s.first_name, s.last_name \
     FROM messages m LEFT JOIN staff s ON s.id = m.released_by WHERE m.state = $1 ORDER BY m.id";

const MESSAGES_ALL: &str = "SELECT m.id, m.state, m.reason, m.source, m.released_us, s.first_name, s.last_name \
     FROM messages m LEFT JOIN staff s ON s.id = m.released_by ORDER BY m.id";

pub(super) const STATUS_OUTCOMES: &str = "SELECT COUNT(*) AS open, COALESCE(SUM(CASE WHEN due_us < $1 THEN 1 ELSE 0 END), 0) AS overdue \
     FROM actions WHERE outcome IS NULL";
pub(super) const STATUS_LAST_FILED: &str = "SELECT MAX(received_us) AS t FROM messages WHERE state = 'filed'";
pub(super) const STATUS_HOLDS: &str =
    "SELECT COUNT(pupil_id) AS pupils, COUNT(incident_id) AS incidents FROM holds WHERE released_us IS NULL";

impl Store {
    /// A pupil's incidents in occurred-at order (all of them: the caller applies visibility).
    pub async fn chronology(&self, pupil_id: i64) -> Result<Vec<ChronologyEntry>> {
        let ids: Vec<i64> = self.chronology_index(pupil_id).await?.into_iter().map(|e| e.incident).collect();
        self.chronology_entries(pupil_id, &ids).await
    }

    /// A pupil's chronology as [`Store::chronology`] lists it, but only each entry's incident,
    /// visibility and the pupil's role: one indexed query, nothing sealed read, no other pupil's
    /// links.
    pub async fn chronology_index(&self, pupil_id: i64) -> Result<Vec<IndexedEntry>> {
        on_pool!(self, |p| {
            sqlx::query(CHRONOLOGY)
                .bind(pupil_id)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| Ok(IndexedEntry { incident: r.try_get("id")?, visibility: r.try_get("visibility")?, role: r.try_get("role")? }))
                .collect::<Result<Vec<_>>>()
        })
    }

    /// Every pupil of each of the incidents `ids`, with their role, by the incidents' keys.
    pub async fn incident_pupils(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<(i64, String)>>> {
        on_pool!(self, |p| {
            let mut pupils: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
            for chunk in ids.chunks(IDS_PER_QUERY) {
                let keys = padded(chunk);
                let sql = sqlx::AssertSqlSafe(chronology_pupils_sql(keys.len()));
                let q = keys.iter().fold(sqlx::query(sql), |q, k| q.bind(*k));
                for r in q.fetch_all(p).await? {
                    pupils.entry(r.try_get("incident_id")?).or_default().push((r.try_get("pupil_id")?, r.try_get("role")?));
                }
            }
            Ok(pupils)
        })
    }

    /// The entries `ids` of pupil `pupil_id`'s chronology (from [`Store::chronology_index`], as
    /// many as are shown), whole and in occurred-at order: each by its key with its pupils,
    /// attachment names and latest outcome.
    pub async fn chronology_entries(&self, pupil_id: i64, ids: &[i64]) -> Result<Vec<ChronologyEntry>> {
        let mut pupils = self.incident_pupils(ids).await?;
        on_pool!(self, |p| {
            let mut rows = Vec::with_capacity(ids.len());
            let mut attachments: HashMap<i64, Vec<String>> = HashMap::new();
            let mut outcomes: HashMap<i64, Outcome> = HashMap::new();
            for chunk in ids.chunks(IDS_PER_QUERY) {
                let keys = padded(chunk);
                let sql = sqlx::AssertSqlSafe(chronology_entries_sql(keys.len()));
                rows.extend(keys.iter().fold(sqlx::query(sql).bind(pupil_id), |q, k| q.bind(*k)).fetch_all(p).await?);
                let sql = sqlx::AssertSqlSafe(chronology_attachments_sql(keys.len()));
                for r in keys.iter().fold(sqlx::query(sql).bind(false), |q, k| q.bind(*k)).fetch_all(p).await? {
                    attachments.entry(r.try_get("incident_id")?).or_default().push(r.try_get("filename")?);
                }
                let sql = sqlx::AssertSqlSafe(chronology_outcomes_sql(keys.len()));
                for r in keys.iter().fold(sqlx::query(sql), |q, k| q.bind(*k)).fetch_all(p).await? {
                    // The latest of each incident comes first.
                    if let std::collections::hash_map::Entry::Vacant(v) = outcomes.entry(r.try_get("incident_id")?) {
                        let first: Option<String> = r.try_get("first_name")?;
                        let last: Option<String> = r.try_get("last_name")?;
                        v.insert(Outcome {
                            text: r.try_get("outcome")?,
                            code: r.try_get("outcome_code")?,
                            by: first.zip(last).map(|(f, l)| format!("{f} {l}")),
                            at: r.try_get::<Option<i64>, _>("outcome_us")?.map(from_us),
                        });
                    }
                }
            }
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: i64 = r.try_get("id")?;
                let outcome = outcomes.remove(&id).unwrap_or_default();
                let first: Option<String> = r.try_get("first_name")?;
                let last: Option<String> = r.try_get("last_name")?;
                out.push(ChronologyEntry {
                    incident: id,
                    occurred_at: from_us(r.try_get("occurred_us")?),
                    recorded_at: from_us(r.try_get("recorded_us")?),
                    recorded_by: first.zip(last).map(|(f, l)| format!("{f} {l}")),
                    record_kind: r.try_get("record_kind")?,
                    category: r.try_get("category")?,
                    category_note: r.try_get("category_note")?,
                    priority: r.try_get("priority")?,
                    visibility: r.try_get("visibility")?,
                    role: r.try_get("role")?,
                    pupils: pupils.remove(&id).unwrap_or_default(),
                    note: r.try_get("note")?,
                    original_from: r.try_get("original_from")?,
                    original_subject: r.try_get("original_subject")?,
                    body: r.try_get("body_text")?,
                    attachments: attachments.remove(&id).unwrap_or_default(),
                    outcome: outcome.text,
                    outcome_code: outcome.code,
                    date_note: r.try_get("date_note")?,
                    outcome_by: outcome.by,
                    outcome_at: outcome.at,
                    original_name: r.try_get("original_name")?,
                    follows: r.try_get("follows")?,
                    ai_suggestion: r.try_get("ai_suggestion")?,
                });
            }
            // A chunk's rows come in occurred-at order; chunks follow the index's order.
            Ok(out)
        })
    }

    /// Messages recorded, oldest first (optionally only those in `state`).
    pub async fn messages(&self, state: Option<MessageState>) -> Result<Vec<MessageSummary>> {
        on_pool!(self, |p| {
            // Two statements, not `$1 IS NULL OR state = $1`: no engine can use an index for that.
            let rows = match state {
                Some(state) => sqlx::query(MESSAGES_IN_STATE).bind(state.as_str()).fetch_all(p).await?,
                None => sqlx::query(MESSAGES_ALL).fetch_all(p).await?,
            };
            rows.into_iter()
                .map(|r| {
                    let state: String = r.try_get("state")?;
                    let first: Option<String> = r.try_get("first_name")?;
                    let last: Option<String> = r.try_get("last_name")?;
                    Ok(MessageSummary {
                        id: r.try_get("id")?,
                        state: MessageState::parse(&state).unwrap_or(MessageState::Quarantined),
                        reason: r.try_get("reason")?,
                        source: r.try_get("source")?,
                        released_by: first.zip(last).map(|(f, l)| format!("{f} {l}")),
                        released_at: r.try_get::<Option<i64>, _>("released_us")?.map(from_us),
                    })
                })
                .collect()
        })
    }

    /// What `haven status` shows.
    pub async fn status(&self, now: DateTime<Utc>) -> Result<StatusCounts> {
        on_pool!(self, |p| {
            let mut s = StatusCounts::default();
            for st in MessageState::ALL {
                s.messages.insert(st, 0);
            }
            // Kept by triggers as the tables change, not counted here (`tallies.rs`).
            for r in sqlx::query(super::tallies::TALLIES).fetch_all(p).await? {
                let (tally, state): (String, String) = (r.try_get("tally")?, r.try_get("state")?);
                let n = r.try_get::<i64, _>("n")?.max(0) as u64;
                match (tally.as_str(), state.as_str()) {
                    ("messages", state) => {
                        if let Some(st) = MessageState::parse(state) {
                            s.messages.insert(st, n);
                        }
                    }
                    ("incidents", _) => s.incidents = n,
                    ("outbox", "pending") => s.outbox_pending = n,
                    ("outbox", "sent") => s.outbox_sent = n,
                    ("outbox", "dead") => s.outbox_dead = n,
                    _ => {}
                }
            }
            let r = sqlx::query(STATUS_OUTCOMES).bind(to_us(now)).fetch_one(p).await?;
            s.outcomes_open = r.try_get::<i64, _>("open")? as u64;
            s.outcomes_overdue = r.try_get::<i64, _>("overdue")? as u64;
            s.last_filed_at = sqlx::query(STATUS_LAST_FILED).fetch_one(p).await?.try_get::<Option<i64>, _>("t")?.map(from_us);
            let r = sqlx::query(STATUS_HOLDS).fetch_one(p).await?;
            s.holds_on_pupils = r.try_get::<i64, _>("pupils")? as u64;
            s.holds_on_incidents = r.try_get::<i64, _>("incidents")? as u64;
            Ok(s)
        })
    }
}

/// One attachment's record and its stored (sealed) content, for exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentFile {
    /// Sealed (field `attachment.filename`) since migration 0007.
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// SHA-256 of the plaintext content.
    pub sha256: String,
    /// Sealed: open with the store key's `Sealer` and field `attachment`.
    pub sealed: Vec<u8>,
}

impl Store {
    /// The files attached to an incident (inline images excluded), with their sealed content.
    pub async fn attachment_files(&self, incident: i64) -> Result<Vec<AttachmentFile>> {
        on_pool!(self, |p| {
            sqlx::query(
                "SELECT a.filename, a.content_type, a.size, a.sha256, b.data FROM attachments a \
                 JOIN blobs b ON b.sha256 = a.sha256 WHERE a.incident_id = $1 AND a.inline = $2 ORDER BY a.id",
            )
            .bind(incident)
            .bind(false)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(|r| {
                Ok(AttachmentFile {
                    filename: r.try_get("filename")?,
                    content_type: r.try_get("content_type")?,
                    size: r.try_get::<i64, _>("size")? as u64,
                    sha256: r.try_get("sha256")?,
                    sealed: r.try_get("data")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(Into::into)
        })
    }
}

impl Store {
    /// Whether incident `id` exists.
    pub async fn incident_exists(&self, id: i64) -> Result<bool> {
        on_pool!(self, |p| {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE id = $1").bind(id).fetch_one(p).await?;
            Ok(n > 0)
        })
    }
}

/// What a follow-up needs to know about the incident it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentFacts {
    pub id: i64,
    pub category: String,
    pub priority: String,
    pub visibility: String,
    /// (pupil id, role)
    pub pupils: Vec<(i64, String)>,
}

impl Store {
    pub async fn incident_facts(&self, id: i64) -> Result<Option<IncidentFacts>> {
        on_pool!(self, |p| {
            let Some(row) =
                sqlx::query("SELECT category, priority, visibility FROM incidents WHERE id = $1").bind(id).fetch_optional(p).await?
            else {
                return Ok(None);
            };
            let pupils = sqlx::query("SELECT pupil_id, role FROM incident_pupils WHERE incident_id = $1 ORDER BY pupil_id")
                .bind(id)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| Ok((r.try_get::<i64, _>("pupil_id")?, r.try_get::<String, _>("role")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(Some(IncidentFacts {
                id,
                category: row.try_get("category")?,
                priority: row.try_get("priority")?,
                visibility: row.try_get("visibility")?,
                pupils,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_come_in_a_few_lengths_and_keep_every_key() {
        assert!(padded(&[]).is_empty(), "no keys, no look-up");
        assert_eq!(padded(&[5]), vec![5]);
        assert_eq!(padded(&[5, 9, 12]), vec![5, 9, 12, 12]);
        let page: Vec<i64> = (1..=100).collect();
        let keys = padded(&page);
        assert_eq!(keys.len(), 128);
        assert_eq!(&keys[..100], &page[..], "the page's own keys, in order");
        assert!(keys[100..].iter().all(|k| *k == 100), "padded with the last");
        let chunk: Vec<i64> = (1..=1000).collect();
        assert_eq!(padded(&chunk).len(), IDS_PER_QUERY, "a whole chunk at most");
        assert_eq!(chronology_pupils_sql(3).matches('$').count(), 3);
        assert!(chronology_entries_sql(2).contains("IN ($2, $3)"), "{}", chronology_entries_sql(2));
    }
}
