//! Transfer cases and their reminder ladder (migration 0032). A case is opened once per pupil
//! and leaving date; its destination and who signed its receipt arrive sealed (fields below).
//! Every change is audited in the transaction that makes it.

use super::{OutboxRecord, Result, Store, Tx, from_us, on_pool, on_tx, to_us};
use crate::transfer::{Deadline, LadderRung, RetainAfter, RetainFor, RungKind};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

/// The fields the values here are sealed for.
pub mod fields {
    pub const DESTINATION: &str = "transfer.destination";
    pub const RECEIVED_BY: &str = "transfer.received_by";
}

/// A case's state: open (nothing sent), prepared (a bundle built), sent, closed (receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    Open,
    Prepared,
    Sent,
    Closed,
}

impl CaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Prepared => "prepared",
            CaseState::Sent => "sent",
            CaseState::Closed => "closed",
        }
    }

    fn parse(s: &str) -> CaseState {
        match s {
            "prepared" => CaseState::Prepared,
            "sent" => CaseState::Sent,
            "closed" => CaseState::Closed,
            _ => CaseState::Open,
        }
    }
}

/// One transfer case, as stored (destination and receipt still sealed).
#[derive(Debug, Clone)]
pub struct TransferCase {
    pub id: i64,
    pub pupil_id: i64,
    pub left_on: NaiveDate,
    pub sealed_destination: Option<String>,
    pub destination_on: Option<NaiveDate>,
    pub deadline: Option<Deadline>,
    pub state: CaseState,
    pub opened_by: Option<i64>,
    pub opened_at: DateTime<Utc>,
    pub prepared: Option<(i64, DateTime<Utc>)>,
    pub bundle_sha256: Option<String>,
    pub bundle_items: Option<i64>,
    pub sent: Option<(i64, DateTime<Utc>)>,
    pub receipt_due_on: Option<NaiveDate>,
    pub sealed_received_by: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    /// The advance notice to the destination's DSL, last sent: by whom, when.
    pub notified: Option<(i64, DateTime<Utc>)>,
}

/// A rung of a case's ladder that has fallen due while its case is still at its stage.
#[derive(Debug, Clone)]
pub struct DueTransferRung {
    pub case_id: i64,
    pub rung: i32,
    pub kind: RungKind,
    pub due: DateTime<Utc>,
}

/// A case to open.
#[derive(Debug, Clone)]
pub struct NewCase<'a> {
    pub pupil_id: i64,
    pub left_on: NaiveDate,
    pub sealed_destination: Option<&'a str>,
    pub destination_on: Option<NaiveDate>,
    pub deadline: Option<Deadline>,
    /// The member of the DSL team who recorded the leaver; None for a directory import.
    pub opened_by: Option<i64>,
    pub at: DateTime<Utc>,
    pub ladder: &'a [LadderRung],
}

fn day(v: Option<String>) -> Option<NaiveDate> {
    v.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
}

fn text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

const CASE_COLUMNS: &str = "id, pupil_id, left_on, destination, destination_on, clock_start, due_on, state, opened_by, opened_us, \
     prepared_by, prepared_us, bundle_sha256, bundle_items, sent_by, sent_us, receipt_due_on, received_by, received_us, \
     notified_by, notified_us";

/// Reads a case from either engine's row.
trait CaseRow {
    fn case(&self) -> Result<TransferCase>;
}

macro_rules! case_row {
    ($row:ty) => {
        impl CaseRow for $row {
            fn case(&self) -> Result<TransferCase> {
                let clock_start = day(self.try_get("clock_start")?);
                let due_on = day(self.try_get("due_on")?);
                let by_at = |by: Option<i64>, us: Option<i64>| by.zip(us.map(from_us));
                Ok(TransferCase {
                    id: self.try_get("id")?,
                    pupil_id: self.try_get("pupil_id")?,
                    left_on: day(self.try_get("left_on")?).unwrap_or_default(),
                    sealed_destination: self.try_get("destination")?,
                    destination_on: day(self.try_get("destination_on")?),
                    deadline: clock_start.zip(due_on).map(|(clock_start, due_on)| Deadline { clock_start, due_on }),
                    state: CaseState::parse(&self.try_get::<String, _>("state")?),
                    opened_by: self.try_get("opened_by")?,
                    opened_at: from_us(self.try_get("opened_us")?),
                    prepared: by_at(self.try_get("prepared_by")?, self.try_get("prepared_us")?),
                    bundle_sha256: self.try_get("bundle_sha256")?,
                    bundle_items: self.try_get("bundle_items")?,
                    sent: by_at(self.try_get("sent_by")?, self.try_get("sent_us")?),
                    receipt_due_on: day(self.try_get("receipt_due_on")?),
                    sealed_received_by: self.try_get("received_by")?,
                    received_at: self.try_get::<Option<i64>, _>("received_us")?.map(from_us),
                    notified: by_at(self.try_get("notified_by")?, self.try_get("notified_us")?),
                })
            }
        }
    };
}
case_row!(sqlx::sqlite::SqliteRow);
case_row!(sqlx::postgres::PgRow);

/// Rungs fire only while their case is still at their stage: nothing sent ('send'), or sent
/// with no receipt ('receipt').
const DUE_RUNGS: &str = "SELECT r.case_id, r.rung, r.kind, r.due_us FROM transfer_reminders r \
     JOIN transfer_cases t ON t.id = r.case_id \
     WHERE r.fired_us IS NULL AND r.due_us <= $1 \
     AND ((r.stage = 'send' AND t.state IN ('open', 'prepared')) OR (r.stage = 'receipt' AND t.state = 'sent')) \
     ORDER BY r.due_us, r.case_id, r.rung LIMIT $2";

impl Store {
    /// Every case, newest first; only those not closed unless `all`.
    pub async fn transfer_cases(&self, all: bool) -> Result<Vec<TransferCase>> {
        let sql =
            format!("SELECT {CASE_COLUMNS} FROM transfer_cases {} ORDER BY id DESC", if all { "" } else { "WHERE state <> 'closed'" });
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(p).await?.iter().map(|r| r.case()).collect())
    }

    pub async fn transfer_case(&self, id: i64) -> Result<Option<TransferCase>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM transfer_cases WHERE id = $1");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?.map(|r| r.case()).transpose())
    }

    /// The case opened when `pupil` left on `left_on`, if any.
    pub async fn transfer_case_for(&self, pupil: i64, left_on: NaiveDate) -> Result<Option<TransferCase>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM transfer_cases WHERE pupil_id = $1 AND left_on = $2");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pupil)
            .bind(text(left_on))
            .fetch_optional(p)
            .await?
            .map(|r| r.case())
            .transpose())
    }

    /// Pupils who have left, with any incident about them (an unconfirmed mention does not
    /// count) and no case for that leaving: (pupil, left_on).
    pub async fn leavers_without_case(&self) -> Result<Vec<(i64, NaiveDate)>> {
        const SQL: &str = "SELECT p.id, p.left_on FROM pupils p WHERE p.left_on IS NOT NULL \
             AND EXISTS (SELECT 1 FROM incident_pupils ip WHERE ip.pupil_id = p.id AND ip.role <> 'mentioned') \
             AND NOT EXISTS (SELECT 1 FROM transfer_cases t WHERE t.pupil_id = p.id AND t.left_on = p.left_on) ORDER BY p.id";
        on_pool!(self, |p| {
            let rows = sqlx::query(SQL).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("id")?, day(r.try_get("left_on")?).unwrap_or_default()))).collect()
        })
    }

    /// Whether `pupil` has any incident about them (an unconfirmed mention does not count).
    pub async fn pupil_has_incidents(&self, pupil: i64) -> Result<bool> {
        const SQL: &str = "SELECT COUNT(*) AS n FROM incident_pupils WHERE pupil_id = $1 AND role <> 'mentioned'";
        on_pool!(self, |p| Ok(sqlx::query(SQL).bind(pupil).fetch_one(p).await?.try_get::<i64, _>("n")? > 0))
    }

    /// Rungs due at `now` whose case is still at their stage, oldest first.
    pub async fn due_transfer_rungs(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueTransferRung>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(DUE_RUNGS).bind(to_us(now)).bind(limit).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let kind: String = r.try_get("kind")?;
                let Some(kind) = RungKind::parse(&kind) else { continue };
                out.push(DueTransferRung {
                    case_id: r.try_get("case_id")?,
                    rung: r.try_get("rung")?,
                    kind,
                    due: from_us(r.try_get("due_us")?),
                });
            }
            Ok(out)
        })
    }
}

impl Tx {
    /// Marks `pupil` as left on `left_on` (a pupil already left keeps the date they left).
    /// Returns the leaving date that stands.
    pub async fn mark_pupil_left(&mut self, pupil: i64, left_on: NaiveDate, by: i64, at: DateTime<Utc>) -> Result<NaiveDate> {
        let current: Option<String> = on_tx!(self, |c| {
            sqlx::query("UPDATE pupils SET left_on = $1, updated_us = $2 WHERE id = $3 AND left_on IS NULL")
                .bind(text(left_on))
                .bind(to_us(at))
                .bind(pupil)
                .execute(&mut *c)
                .await?;
            sqlx::query("SELECT left_on FROM pupils WHERE id = $1").bind(pupil).fetch_one(&mut *c).await?.try_get("left_on")?
        });
        let stands = day(current).unwrap_or(left_on);
        if stands == left_on {
            self.bump_directory_generation().await?;
            self.append_audit(at, &format!("staff:{by}"), "leaver", &format!("pupil:{pupil}"), &format!("left_on={left_on}")).await?;
        }
        Ok(stands)
    }

    /// Opens a case with its ladder; None when the pupil already has one for that leaving.
    /// Audited as `transfer_open` (counts and dates, no names).
    pub async fn open_transfer_case(&mut self, case: &NewCase<'_>) -> Result<Option<i64>> {
        let id: Option<i64> = on_tx!(self, |c| {
            let row = sqlx::query(
                "INSERT INTO transfer_cases (pupil_id, left_on, destination, destination_on, clock_start, due_on, state, opened_by, opened_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8) ON CONFLICT (pupil_id, left_on) DO NOTHING RETURNING id",
            )
            .bind(case.pupil_id)
            .bind(text(case.left_on))
            .bind(case.sealed_destination)
            .bind(case.destination_on.map(text))
            .bind(case.deadline.map(|d| text(d.clock_start)))
            .bind(case.deadline.map(|d| text(d.due_on)))
            .bind(case.opened_by)
            .bind(to_us(case.at))
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| r.try_get::<i64, _>("id")).transpose()?
        });
        let Some(id) = id else { return Ok(None) };
        self.add_transfer_rungs(id, case.ladder).await?;
        let actor = case.opened_by.map_or_else(|| "directory_import".to_string(), |s| format!("staff:{s}"));
        let detail = format!(
            "case={id} left_on={} destination={} due_on={}",
            case.left_on,
            if case.sealed_destination.is_some() { "known" } else { "unknown" },
            case.deadline.map_or_else(|| "waiting".to_string(), |d| d.due_on.to_string())
        );
        self.append_audit(case.at, &actor, "transfer_open", &format!("pupil:{}", case.pupil_id), &detail).await?;
        Ok(Some(id))
    }

    /// Gives an open case its destination (and, when its clock starts then, its deadline and
    /// the rest of its ladder). Audited as `transfer_destination`.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_transfer_destination(
        &mut self,
        case: i64,
        sealed_destination: &str,
        on: NaiveDate,
        deadline: Option<Deadline>,
        ladder: &[LadderRung],
        by: i64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        on_tx!(self, |c| {
            sqlx::query(
                "UPDATE transfer_cases SET destination = $1, destination_on = $2, \
                 clock_start = COALESCE(clock_start, $3), due_on = COALESCE(due_on, $4) WHERE id = $5",
            )
            .bind(sealed_destination)
            .bind(text(on))
            .bind(deadline.map(|d| text(d.clock_start)))
            .bind(deadline.map(|d| text(d.due_on)))
            .bind(case)
            .execute(&mut *c)
            .await?;
        });
        self.add_transfer_rungs(case, ladder).await?;
        self.append_audit(at, &format!("staff:{by}"), "transfer_destination", &format!("transfer:{case}"), "destination=known").await
    }

    async fn add_transfer_rungs(&mut self, case: i64, ladder: &[LadderRung]) -> Result<()> {
        on_tx!(self, |c| {
            for r in ladder {
                sqlx::query(
                    "INSERT INTO transfer_reminders (case_id, rung, stage, kind, due_us) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (case_id, rung) DO NOTHING",
                )
                .bind(case)
                .bind(r.rung)
                .bind(r.kind.stage())
                .bind(r.kind.as_str())
                .bind(to_us(r.due))
                .execute(&mut *c)
                .await?;
            }
        });
        Ok(())
    }

    /// Records a bundle built for `case`. Audited as `transfer_prepare`.
    pub async fn record_transfer_prepared(
        &mut self,
        case: i64,
        by: i64,
        at: DateTime<Utc>,
        manifest_sha256: &str,
        items: i64,
    ) -> Result<()> {
        on_tx!(self, |c| {
            sqlx::query(
                "UPDATE transfer_cases SET state = CASE WHEN state = 'open' THEN 'prepared' ELSE state END, \
                 prepared_by = $1, prepared_us = $2, bundle_sha256 = $3, bundle_items = $4 WHERE id = $5",
            )
            .bind(by)
            .bind(to_us(at))
            .bind(manifest_sha256)
            .bind(items)
            .bind(case)
            .execute(&mut *c)
            .await?;
        });
        let detail = format!("case={case} manifest_sha256={manifest_sha256} items={items}");
        self.append_audit(at, &format!("staff:{by}"), "transfer_prepare", &format!("transfer:{case}"), &detail).await
    }

    /// Records the bundle as sent, with the receipt's deadline and chase. False when the case
    /// was not prepared (or already sent). Audited as `transfer_send`.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_transfer_sent(
        &mut self,
        case: i64,
        by: i64,
        at: DateTime<Utc>,
        receipt_due_on: NaiveDate,
        ladder: &[LadderRung],
        method: &str,
        retain: (RetainAfter, RetainFor),
    ) -> Result<bool> {
        let changed = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE transfer_cases SET state = 'sent', sent_by = $1, sent_us = $2, receipt_due_on = $3, retain_after = $5, \
                 retain_for = $6 WHERE id = $4 AND state = 'prepared'",
            )
            .bind(by)
            .bind(to_us(at))
            .bind(text(receipt_due_on))
            .bind(case)
            .bind(retain.0.as_str())
            .bind(retain.1.as_str())
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Ok(false);
        }
        self.add_transfer_rungs(case, ladder).await?;
        let detail = format!(
            "case={case} method={method} receipt_due_on={receipt_due_on} retain_after={} retain_for={}",
            retain.0.as_str(),
            retain.1.as_str()
        );
        self.append_audit(at, &format!("staff:{by}"), "transfer_send", &format!("transfer:{case}"), &detail).await?;
        Ok(true)
    }

    /// Closes a prepared or sent case on its receipt, and applies what the school keeps after a
    /// transfer (`store::transfer_retain`; `sealed_removed` replaces each body it removes). False
    /// when it was not waiting for one (already closed: a receipt repeated). Audited as
    /// `transfer_receipt` and `transfer_retain`.
    pub async fn record_transfer_receipt(
        &mut self,
        case: i64,
        sealed_received_by: &str,
        sealed_removed: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let changed = on_tx!(self, |c| {
            sqlx::query(
                "UPDATE transfer_cases SET state = 'closed', received_by = $1, received_us = $2, closed_us = $2 \
                 WHERE id = $3 AND state IN ('prepared', 'sent')",
            )
            .bind(sealed_received_by)
            .bind(to_us(at))
            .bind(case)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Ok(false);
        }
        self.append_audit(at, actor, "transfer_receipt", &format!("transfer:{case}"), &format!("case={case} closed")).await?;
        self.keep_after_receipt(case, sealed_removed, actor, at, at.date_naive()).await?;
        Ok(true)
    }

    /// Records the advance notice to the destination's DSL, queued in this transaction.
    /// Audited as `transfer_notify_ahead`.
    pub async fn record_transfer_notice(&mut self, case: i64, by: i64, at: DateTime<Utc>, names_pupil: bool) -> Result<()> {
        on_tx!(self, |c| {
            sqlx::query("UPDATE transfer_cases SET notified_by = $1, notified_us = $2 WHERE id = $3")
                .bind(by)
                .bind(to_us(at))
                .bind(case)
                .execute(&mut *c)
                .await?;
        });
        let detail = format!("case={case} names_pupil={names_pupil}");
        self.append_audit(at, &format!("staff:{by}"), "transfer_notify_ahead", &format!("transfer:{case}"), &detail).await
    }

    /// Fires one rung: records it and queues its emails. False when it had fired already
    /// (another daemon, a restart).
    pub async fn fire_transfer_rung(&mut self, rung: &DueTransferRung, emails: &[OutboxRecord], now: DateTime<Utc>) -> Result<bool> {
        let fired = on_tx!(self, |c| {
            sqlx::query("UPDATE transfer_reminders SET fired_us = $1 WHERE case_id = $2 AND rung = $3 AND fired_us IS NULL")
                .bind(to_us(now))
                .bind(rung.case_id)
                .bind(rung.rung)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        if fired == 0 {
            return Ok(false);
        }
        for e in emails {
            self.queue_email(None, e, now).await?;
        }
        let detail = format!("case={} rung={} kind={} emails={}", rung.case_id, rung.rung, rung.kind.as_str(), emails.len());
        self.append_audit(now, "scheduler", "transfer_reminder", &format!("transfer:{}", rung.case_id), &detail).await?;
        Ok(true)
    }
}
