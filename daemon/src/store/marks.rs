//! Marks on incidents for the multi-agency chronology: significant or not, a one-line summary
//! and the impact on the child, each mark a new row (the incident is never changed) and the
//! newest one counting. Summary and impact are stored sealed; this module never opens them.

use super::{Result, Store, Tx, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// The sealed fields of a mark.
pub mod fields {
    pub const SUMMARY: &str = "incident_mark.summary";
    pub const IMPACT: &str = "incident_mark.impact";
}

/// An incident's newest mark, as stored (summary and impact sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub incident: i64,
    pub significant: bool,
    pub summary: Option<String>,
    pub impact: Option<String>,
    pub marked_by: i64,
    pub marked_at: DateTime<Utc>,
}

/// The marks on a pupil's incidents, oldest first (the caller keeps the newest per incident).
const PUPIL_MARKS: &str = "SELECT m.incident_id, m.significant, m.summary, m.impact, m.marked_by, m.marked_us \
     FROM incident_pupils ip JOIN incident_marks m ON m.incident_id = ip.incident_id WHERE ip.pupil_id = $1 ORDER BY m.id";

impl Tx {
    /// Records a mark on `incident` (summary and impact already sealed), audited as
    /// `incident_marked`; returns the mark's id.
    pub async fn mark_incident(
        &mut self,
        incident: i64,
        significant: bool,
        sealed_summary: Option<&str>,
        sealed_impact: Option<&str>,
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let id: i64 = on_tx!(self, |c| sqlx::query(
            "INSERT INTO incident_marks (incident_id, significant, summary, impact, marked_by, marked_us) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        )
        .bind(incident)
        .bind(significant)
        .bind(sealed_summary)
        .bind(sealed_impact)
        .bind(by)
        .bind(to_us(at))
        .fetch_one(&mut *c)
        .await?
        .try_get("id")?);
        self.append_audit(
            at,
            &format!("staff:{by}"),
            "incident_marked",
            &format!("incident:{incident}"),
            &format!("mark={id} significant={significant}"),
        )
        .await?;
        Ok(id)
    }
}

impl Store {
    /// The newest mark on each of pupil `pupil`'s incidents that has one.
    pub async fn marks_of_pupil(&self, pupil: i64) -> Result<HashMap<i64, Mark>> {
        on_pool!(self, |p| {
            let mut out = HashMap::new();
            for r in sqlx::query(PUPIL_MARKS).bind(pupil).fetch_all(p).await? {
                let m = Mark {
                    incident: r.try_get("incident_id")?,
                    significant: r.try_get("significant")?,
                    summary: r.try_get("summary")?,
                    impact: r.try_get("impact")?,
                    marked_by: r.try_get("marked_by")?,
                    marked_at: from_us(r.try_get("marked_us")?),
                };
                out.insert(m.incident, m);
            }
            Ok(out)
        })
    }
}
