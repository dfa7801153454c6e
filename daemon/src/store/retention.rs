//! Holds and retention reviews. A hold stands on a pupil or on one incident until it is
//! released; reviews record what the school decided when a series fell due. Notes and reasons
//! arrive sealed (fields below) and every change is audited in its own transaction.

use super::{Result, Store, Tx, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

/// The fields the free text here is sealed for.
pub mod fields {
    pub const HOLD_NOTE: &str = "hold.note";
    pub const HOLD_RELEASE_NOTE: &str = "hold.release_note";
    pub const REVIEW_REASON: &str = "retention_review.reason";
}

/// Why a hold was set: the research's list (litigation, a police investigation, an inquiry, a
/// subject access request, a complaint, or something else explained in the note).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HoldReason {
    Litigation,
    Police,
    Inquiry,
    Sar,
    Complaint,
    Other,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Litigation => "litigation",
            HoldReason::Police => "police",
            HoldReason::Inquiry => "inquiry",
            HoldReason::Sar => "sar",
            HoldReason::Complaint => "complaint",
            HoldReason::Other => "other",
        }
    }
}

/// What a hold stands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOn {
    Pupil(i64),
    Incident(i64),
}

/// One hold, as stored (note still sealed).
#[derive(Debug, Clone)]
pub struct Hold {
    pub id: i64,
    pub on: HoldOn,
    pub reason: String,
    pub sealed_note: String,
    pub set_by: i64,
    pub set_at: DateTime<Utc>,
    pub released: Option<(i64, DateTime<Utc>)>,
}

/// A review decision, as stored (reason still sealed).
#[derive(Debug, Clone)]
pub struct Review {
    pub pupil_id: i64,
    pub series: String,
    pub destroy: bool,
    pub until: Option<NaiveDate>,
    pub sealed_reason: String,
    pub decided_by: i64,
    pub decided_at: DateTime<Utc>,
}

/// A pupil's incidents in one category: what the retention schedule works from.
#[derive(Debug, Clone)]
pub struct PupilCategory {
    pub pupil_id: i64,
    pub category: String,
    pub incidents: i64,
    pub latest: DateTime<Utc>,
}

const ALL_HOLDS: &str = "SELECT id, pupil_id, incident_id, reason, note, set_by, set_us, released_by, released_us \
                         FROM holds ORDER BY id DESC";
const STANDING_HOLDS: &str = "SELECT id, pupil_id, incident_id, reason, note, set_by, set_us, released_by, released_us \
                              FROM holds WHERE released_us IS NULL ORDER BY id DESC";
const HOLDS_TOUCHING: &str = "SELECT id, pupil_id, incident_id, reason, note, set_by, set_us, released_by, released_us \
                              FROM holds WHERE released_us IS NULL AND (pupil_id = $1 OR incident_id = $2 \
                              OR incident_id IN (SELECT incident_id FROM incident_pupils WHERE pupil_id = $1)) ORDER BY id";

fn hold_from(r: &impl HoldRow) -> Result<Hold> {
    r.hold()
}

/// Reads a hold from either engine's row.
trait HoldRow {
    fn hold(&self) -> Result<Hold>;
}

macro_rules! hold_row {
    ($row:ty) => {
        impl HoldRow for $row {
            fn hold(&self) -> Result<Hold> {
                let pupil: Option<i64> = self.try_get("pupil_id")?;
                let incident: Option<i64> = self.try_get("incident_id")?;
                let released_by: Option<i64> = self.try_get("released_by")?;
                let released_us: Option<i64> = self.try_get("released_us")?;
                Ok(Hold {
                    id: self.try_get("id")?,
                    on: match (pupil, incident) {
                        (Some(p), _) => HoldOn::Pupil(p),
                        (None, Some(i)) => HoldOn::Incident(i),
                        (None, None) => HoldOn::Pupil(0),
                    },
                    reason: self.try_get("reason")?,
                    sealed_note: self.try_get("note")?,
                    set_by: self.try_get("set_by")?,
                    set_at: from_us(self.try_get("set_us")?),
                    released: released_by.zip(released_us.map(from_us)),
                })
            }
        }
    };
}
hold_row!(sqlx::sqlite::SqliteRow);
hold_row!(sqlx::postgres::PgRow);

impl Tx {
    /// Sets a hold; returns its id. Audited as `hold_set` on the pupil or incident.
    pub async fn set_hold(&mut self, on: HoldOn, reason: HoldReason, sealed_note: &str, by: i64, at: DateTime<Utc>) -> Result<i64> {
        let (pupil, incident) = match on {
            HoldOn::Pupil(p) => (Some(p), None),
            HoldOn::Incident(i) => (None, Some(i)),
        };
        let id: i64 = on_tx!(self, |c| sqlx::query(
            "INSERT INTO holds (pupil_id, incident_id, reason, note, set_by, set_us) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        )
        .bind(pupil)
        .bind(incident)
        .bind(reason.as_str())
        .bind(sealed_note)
        .bind(by)
        .bind(to_us(at))
        .fetch_one(&mut *c)
        .await?
        .try_get("id")?);
        self.append_audit(at, &format!("staff:{by}"), "hold_set", &subject(on), &format!("hold={id} reason={}", reason.as_str())).await?;
        Ok(id)
    }

    /// Releases a standing hold; false when there is no such hold or it was already released.
    pub async fn release_hold(&mut self, id: i64, sealed_note: &str, by: i64, at: DateTime<Utc>) -> Result<Option<HoldOn>> {
        let row = on_tx!(self, |c| {
            sqlx::query(
            "UPDATE holds SET released_by = $2, released_us = $3, release_note = $4 \
             WHERE id = $1 AND released_us IS NULL RETURNING id, pupil_id, incident_id, reason, note, set_by, set_us, released_by, released_us"
        )
        .bind(id)
        .bind(by)
        .bind(to_us(at))
        .bind(sealed_note)
        .fetch_optional(&mut *c)
        .await?
        .map(|r| hold_from(&r))
        .transpose()?
        });
        let Some(hold) = row else { return Ok(None) };
        self.append_audit(at, &format!("staff:{by}"), "hold_release", &subject(hold.on), &format!("hold={id}")).await?;
        Ok(Some(hold.on))
    }

    /// Records a review decision for a pupil's series. Audited as `retention_review`.
    pub async fn record_review(&mut self, review: &Review) -> Result<()> {
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO retention_reviews (pupil_id, series, decision, until_date, reason, decided_by, decided_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(review.pupil_id)
        .bind(&review.series)
        .bind(if review.destroy { "destroy" } else { "retain" })
        .bind(review.until.map(|d| d.to_string()))
        .bind(&review.sealed_reason)
        .bind(review.decided_by)
        .bind(to_us(review.decided_at))
        .execute(&mut *c)
        .await?
        .rows_affected());
        let decision = match (review.destroy, review.until) {
            (true, _) => "destroy".to_string(),
            (false, Some(d)) => format!("retain until {d}"),
            (false, None) => "retain".to_string(),
        };
        self.append_audit(
            review.decided_at,
            &format!("staff:{}", review.decided_by),
            "retention_review",
            &format!("pupil:{}", review.pupil_id),
            &format!("series={} decision={decision}", review.series),
        )
        .await
    }
}

fn subject(on: HoldOn) -> String {
    match on {
        HoldOn::Pupil(p) => format!("pupil:{p}"),
        HoldOn::Incident(i) => format!("incident:{i}"),
    }
}

impl Store {
    /// Holds, newest first: only those standing unless `all`.
    pub async fn holds(&self, all: bool) -> Result<Vec<Hold>> {
        let sql = if all { ALL_HOLDS } else { STANDING_HOLDS };
        on_pool!(self, |p| sqlx::query(sql).fetch_all(p).await?.iter().map(hold_from).collect())
    }

    /// The standing holds on a pupil, on any incident they are on, or on one incident.
    pub async fn holds_touching(&self, pupil: Option<i64>, incident: Option<i64>) -> Result<Vec<Hold>> {
        on_pool!(self, |p| sqlx::query(HOLDS_TOUCHING).bind(pupil).bind(incident).fetch_all(p).await?.iter().map(hold_from).collect())
    }

    /// For every pupil with incidents (other than pupils only mentioned, not yet confirmed):
    /// how many incidents in each category, and the latest.
    pub async fn pupil_categories(&self) -> Result<Vec<PupilCategory>> {
        const SQL: &str = "SELECT ip.pupil_id, i.category, COUNT(*) AS n, MAX(i.occurred_us) AS latest \
                           FROM incident_pupils ip JOIN incidents i ON i.id = ip.incident_id \
                           WHERE ip.role <> 'mentioned' GROUP BY ip.pupil_id, i.category ORDER BY ip.pupil_id";
        on_pool!(self, |p| sqlx::query(SQL)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| {
                Ok(PupilCategory {
                    pupil_id: r.try_get("pupil_id")?,
                    category: r.try_get("category")?,
                    incidents: r.try_get("n")?,
                    latest: from_us(r.try_get("latest")?),
                })
            })
            .collect())
    }

    /// The newest review decision of every (pupil, series).
    pub async fn latest_reviews(&self) -> Result<Vec<Review>> {
        const SQL: &str = "SELECT r.pupil_id, r.series, r.decision, r.until_date, r.reason, r.decided_by, r.decided_us \
                           FROM retention_reviews r WHERE r.id = (SELECT MAX(id) FROM retention_reviews o \
                           WHERE o.pupil_id = r.pupil_id AND o.series = r.series)";
        on_pool!(self, |p| sqlx::query(SQL)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| {
                let until: Option<String> = r.try_get("until_date")?;
                Ok(Review {
                    pupil_id: r.try_get("pupil_id")?,
                    series: r.try_get("series")?,
                    destroy: r.try_get::<String, _>("decision")? == "destroy",
                    until: until.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
                    sealed_reason: r.try_get("reason")?,
                    decided_by: r.try_get("decided_by")?,
                    decided_at: from_us(r.try_get("decided_us")?),
                })
            })
            .collect())
    }
}
