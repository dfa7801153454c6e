//! The counts behind `haven report` that are read live (referrals, plans) and the
//! inspector's list; the rest are kept per day (`report_days`). Every figure is aggregated by
//! the database, never by loading incidents; nothing is opened (decrypted) to count. Categories,
//! outcome codes, year groups, houses, SEN flags and agencies are kept in clear for this, as an
//! incident's category always was.
//!
//! Follow-ups (replies filed on an incident) and corrections are not incidents of their own and
//! are never counted.

use super::{Result, Store, on_pool};
use sqlx::Row;

/// One group's count; `None` is a group with no value.
pub type Counted = Vec<(Option<String>, i64)>;

impl Store {
    /// Referrals made from `from` to `to` (days, both included), by agency.
    pub async fn report_referrals(&self, from: &str, to: &str) -> Result<Counted> {
        text_grouped(
            self,
            "SELECT agency, COUNT(*) FROM referrals WHERE referred_on >= $1 AND referred_on <= $2 GROUP BY agency",
            &[from, to],
        )
        .await
    }

    /// Plans open at the end of `day`, by kind.
    pub async fn report_plans_open(&self, day: &str) -> Result<Counted> {
        text_grouped(
            self,
            "SELECT kind, COUNT(*) FROM pupil_plans WHERE starts_on <= $1 AND (ends_on IS NULL OR ends_on > $1) GROUP BY kind",
            &[day],
        )
        .await
    }

    /// Plans started from `from` to `to` (both included), by kind.
    pub async fn report_plans_started(&self, from: &str, to: &str) -> Result<Counted> {
        text_grouped(self, "SELECT kind, COUNT(*) FROM pupil_plans WHERE starts_on >= $1 AND starts_on <= $2 GROUP BY kind", &[from, to])
            .await
    }
}

async fn text_grouped(store: &Store, sql: &'static str, binds: &[&str]) -> Result<Counted> {
    on_pool!(store, |p| {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(p).await?;
        rows.iter().map(|r| Ok((r.try_get::<Option<String>, _>(0)?, r.try_get::<i64, _>(1)?))).collect()
    })
}

/// An incident on the inspector's list of referrals to the DSL, with its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedIncident {
    pub id: i64,
    pub occurred_us: i64,
    pub category: String,
    pub recorded_by: Option<i64>,
    pub outcome_code: Option<String>,
    /// Sealed.
    pub outcome: Option<String>,
    pub outcome_by: Option<i64>,
    pub outcome_us: Option<i64>,
    /// When an open action's outcome is due.
    pub due_us: Option<i64>,
    /// The pupils it is about: (pupil id, role).
    pub pupils: Vec<(i64, String)>,
}

impl Store {
    /// Incidents since `from_us` that reached the DSL for a decision: in one of `categories`
    /// (the safeguarding ones), or given a decision code, or referred on. Oldest first, each with
    /// its latest action and the pupils it is about. A list for an inspector, not a count: its
    /// length is the school's safeguarding caseload, not its whole record.
    pub async fn inspection_incidents(&self, from_us: i64, categories: &[String]) -> Result<Vec<ListedIncident>> {
        // Placeholders only are written into the text; the names are bound.
        let marks: Vec<String> = (0..categories.len()).map(|i| format!("${}", i + 2)).collect();
        let in_categories = if marks.is_empty() { "FALSE".to_string() } else { format!("i.category IN ({})", marks.join(", ")) };
        let sql = format!(
            "SELECT i.id, i.occurred_us, i.category, i.recorded_by, a.outcome_code, a.outcome, a.outcome_by, a.outcome_us, a.due_us \
             FROM incidents i LEFT JOIN actions a ON a.incident_id = i.id \
             WHERE i.occurred_us >= $1 AND i.follows IS NULL AND i.corrects IS NULL \
             AND ({in_categories} OR a.outcome_code IS NOT NULL OR EXISTS (SELECT 1 FROM referrals r WHERE r.incident_id = i.id)) \
             ORDER BY i.occurred_us, i.id, a.id"
        );
        let mut list: Vec<ListedIncident> = on_pool!(self, |p| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from_us);
            for c in categories {
                q = q.bind(c.as_str());
            }
            let rows = q.fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(ListedIncident {
                        id: r.try_get(0)?,
                        occurred_us: r.try_get(1)?,
                        category: r.try_get(2)?,
                        recorded_by: r.try_get(3)?,
                        outcome_code: r.try_get(4)?,
                        outcome: r.try_get(5)?,
                        outcome_by: r.try_get(6)?,
                        outcome_us: r.try_get(7)?,
                        due_us: r.try_get(8)?,
                        pupils: Vec::new(),
                    })
                })
                .collect::<Result<Vec<_>>>()?
        });
        // One row per incident: its last action (ordered by action id) stands.
        list.dedup_by(|later, earlier| {
            let same = later.id == earlier.id;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        if list.is_empty() {
            return Ok(list);
        }
        // Whole numbers only are written into the text.
        let ids = list.iter().map(|l| l.id.to_string()).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT incident_id, pupil_id, role FROM incident_pupils WHERE incident_id IN ({ids}) AND role <> 'mentioned' \
             ORDER BY incident_id, pupil_id"
        );
        let pupils: Vec<(i64, i64, String)> = on_pool!(self, |p| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect::<Result<Vec<_>>>()?
        });
        for (incident, pupil, role) in pupils {
            if let Some(l) = list.iter_mut().find(|l| l.id == incident) {
                l.pupils.push((pupil, role));
            }
        }
        Ok(list)
    }
}
