//! Referrals to other agencies and the multi-agency plans a pupil is on (migration 0030), as
//! the DSL records them (`haven referral add`, `haven plan add|end`). The agency and the plan's
//! kind are in clear, for counting; a referral's reference and a plan's end reason are sealed
//! by the caller. Every change is written to the audit chain in its own transaction.

use super::{Result, Store, Tx, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

/// A referral as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    pub id: i64,
    pub incident_id: i64,
    /// CSC, LADO, POLICE, EARLY-HELP or OTHER.
    pub agency: String,
    /// Sealed; `None` when none was given.
    pub sealed_reference: Option<String>,
    pub referred_on: NaiveDate,
    pub created_by: i64,
    pub created: DateTime<Utc>,
}

/// A plan as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: i64,
    pub pupil_id: i64,
    /// early-help, child-in-need, child-protection, looked-after or other.
    pub kind: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub review_every_days: Option<i64>,
    pub next_review_on: Option<NaiveDate>,
    pub created_by: i64,
}

fn day(s: Option<String>) -> Option<NaiveDate> {
    s.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
}

fn text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

const PLAN_COLUMNS: &str = "SELECT id, pupil_id, kind, starts_on, ends_on, review_every_days, next_review_on, created_by FROM pupil_plans";

impl Tx {
    /// Records a referral of `incident` to `agency`, with its audit entry.
    pub async fn add_referral(
        &mut self,
        incident: i64,
        agency: &str,
        sealed_reference: Option<&str>,
        on: NaiveDate,
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let id: i64 = on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO referrals (incident_id, agency, reference, referred_on, created_by, created_us) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(incident)
            .bind(agency)
            .bind(sealed_reference)
            .bind(text(on))
            .bind(by)
            .bind(to_us(at))
            .fetch_one(&mut *c)
            .await?
            .try_get("id")?
        });
        self.append_incident_audit(at, &format!("staff:{by}"), "referral", incident, &format!("referral={id} agency={agency} on={on}"))
            .await?;
        Ok(id)
    }

    /// Records a plan, with its audit entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_plan(
        &mut self,
        pupil: i64,
        kind: &str,
        starts: NaiveDate,
        starts_us: i64,
        review_every_days: Option<i64>,
        next_review: Option<NaiveDate>,
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let id: i64 = on_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO pupil_plans (pupil_id, kind, starts_on, review_every_days, next_review_on, created_by, created_us, starts_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(pupil)
            .bind(kind)
            .bind(text(starts))
            .bind(review_every_days)
            .bind(next_review.map(text))
            .bind(by)
            .bind(to_us(at))
            .bind(starts_us)
            .fetch_one(&mut *c)
            .await?
            .try_get("id")?
        });
        self.append_audit(
            at,
            &format!("staff:{by}"),
            "plan_add",
            &format!("pupil:{pupil}"),
            &format!("plan={id} kind={kind} starts={starts}"),
        )
        .await?;
        Ok(id)
    }

    /// Ends an open plan on `on`; `None` when there is no open plan `id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn end_plan(
        &mut self,
        id: i64,
        on: NaiveDate,
        on_us: i64,
        sealed_reason: &str,
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let pupil: Option<i64> = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE pupil_plans SET ends_on = $1, end_reason = $2, ended_by = $3, ended_us = $4, next_review_on = NULL, \
                 ends_us = $6 WHERE id = $5 AND ends_on IS NULL RETURNING pupil_id",
            )
            .bind(text(on))
            .bind(sealed_reason)
            .bind(by)
            .bind(to_us(at))
            .bind(id)
            .bind(on_us)
            .fetch_optional(&mut *c)
            .await?
            .map(|r| r.try_get::<i64, _>("pupil_id"))
            .transpose()?
        });
        if let Some(p) = pupil {
            self.append_audit(at, &format!("staff:{by}"), "plan_end", &format!("pupil:{p}"), &format!("plan={id} ends={on}")).await?;
        }
        Ok(pupil)
    }

    /// Moves a plan's next review from `due` to `next`; false when another pass already did
    /// (or the plan ended): its reminders must then not be queued.
    pub async fn advance_plan_review(&mut self, id: i64, due: NaiveDate, next: NaiveDate, at: DateTime<Utc>) -> Result<bool> {
        let moved = on_tx!(self, |c| {
            sqlx::query("UPDATE pupil_plans SET next_review_on = $1 WHERE id = $2 AND next_review_on = $3 AND ends_on IS NULL")
                .bind(text(next))
                .bind(id)
                .bind(text(due))
                .execute(&mut *c)
                .await?
                .rows_affected()
        }) == 1;
        if moved {
            self.append_audit(at, "scheduler", "plan_review_reminded", &format!("plan:{id}"), &format!("due={due} next={next}")).await?;
        }
        Ok(moved)
    }
}

impl Store {
    /// Every referral, newest first (or those of one incident).
    pub async fn referrals(&self, incident: Option<i64>) -> Result<Vec<Referral>> {
        let filter = if incident.is_some() { "WHERE incident_id = $1" } else { "" };
        let sql = format!(
            "SELECT id, incident_id, agency, reference, referred_on, created_by, created_us FROM referrals {filter} \
             ORDER BY referred_on DESC, id DESC"
        );
        on_pool!(self, |p| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            if let Some(i) = incident {
                q = q.bind(i);
            }
            let rows = q.fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(Referral {
                        id: r.try_get("id")?,
                        incident_id: r.try_get("incident_id")?,
                        agency: r.try_get("agency")?,
                        sealed_reference: r.try_get("reference")?,
                        referred_on: day(r.try_get("referred_on")?).unwrap_or_default(),
                        created_by: r.try_get("created_by")?,
                        created: from_us(r.try_get("created_us")?),
                    })
                })
                .collect()
        })
    }

    /// Plans, newest first: every one, or only those open.
    pub async fn plans(&self, open_only: bool) -> Result<Vec<Plan>> {
        let filter = if open_only { "WHERE ends_on IS NULL" } else { "" };
        self.plans_where(filter, "ORDER BY starts_on DESC, id DESC", None).await
    }

    /// Open plans whose review falls due on or before `today`.
    pub async fn plans_due_for_review(&self, today: NaiveDate) -> Result<Vec<Plan>> {
        self.plans_where("WHERE ends_on IS NULL AND next_review_on <= $1", "ORDER BY next_review_on, id", Some(text(today))).await
    }

    async fn plans_where(&self, filter: &'static str, order: &'static str, bind: Option<String>) -> Result<Vec<Plan>> {
        let sql = format!("{PLAN_COLUMNS} {filter} {order}");
        on_pool!(self, |p| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            if let Some(b) = bind {
                q = q.bind(b);
            }
            let rows = q.fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(Plan {
                        id: r.try_get("id")?,
                        pupil_id: r.try_get("pupil_id")?,
                        kind: r.try_get("kind")?,
                        starts_on: day(r.try_get("starts_on")?).unwrap_or_default(),
                        ends_on: day(r.try_get("ends_on")?),
                        review_every_days: r.try_get("review_every_days")?,
                        next_review_on: day(r.try_get("next_review_on")?),
                        created_by: r.try_get("created_by")?,
                    })
                })
                .collect()
        })
    }
}
