//! The summary's counts kept per school day (migration 0038), so a term's figures are a sum
//! over its days rather than a join over every incident it holds.
//!
//! A day's counts are never adjusted by hand: they are recounted from the records with the
//! report's own GROUP BY over that day. Triggers note in `report_stale` what any change touched
//! (an incident's time, or a pupil), whichever code made it; [`Store::report_counts_fresh`]
//! recounts those days before a report reads them. A database with no counts yet, too much
//! changed, or another time zone is recounted whole.

use super::report::Counted;
use super::{Result, Store, TxConn, on_pool, on_tx};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use sqlx::Row;
use std::collections::BTreeSet;

/// Changes looked at one by one; beyond this every day is recounted (cheaper than reading them).
const STALE_LIMIT: i64 = 20_000;

/// The incidents of the days being recounted, as the report selects them (follow-ups and
/// corrections are not incidents of their own). `$1`/`$2` bound the stretch of days being recounted, so the planner expects as many
/// incidents as that stretch holds (from the days' own bounds alone it guesses a ninth of the
/// table, and PostgreSQL then scans whole tables).
const SCOPE: &str = "report_recount rd JOIN incidents i ON i.occurred_us >= rd.from_us AND i.occurred_us < rd.to_us \
     AND i.occurred_us >= $1 AND i.occurred_us < $2 AND i.follows IS NULL AND i.corrects IS NULL";

/// The longest stretch of days (first to last) one round of statements recounts.
const STRETCH_DAYS: i64 = 31;

/// The links that make an incident about a pupil (one only mentioned does not count).
const ABOUT: &str = "JOIN incident_pupils ip ON ip.incident_id = i.id AND ip.role <> 'mentioned'";

/// A delay's bucket, in minutes: to the minute under a day, to the hour under 30 days, to the
/// day beyond. Both engines divide integers the same way.
const BUCKET: &str = "CASE WHEN d < 86400000000 THEN d / 60000000 \
     WHEN d < 2592000000000 THEN (d / 3600000000) * 60 ELSE (d / 86400000000) * 1440 END";

/// The figure that lists, per day, the pupils its incidents are about (distinct over a period).
const PUPIL: &str = "pupil";

/// The figure of incidents awaiting an outcome, by when the first is due.
const OPEN: &str = "open_due";

/// Every count of the recounted days, as `INSERT INTO report_day_counts … SELECT`.
fn recount_statements() -> Vec<String> {
    let insert = "INSERT INTO report_day_counts (day, figure, value, n)";
    let (c, r, g, o) = (Figure::Category.name(), Figure::Recorder.name(), Figure::Group.name(), Figure::Outcome.name());
    let by_pupil = |figure: &str, g: &str| {
        format!(
            "{insert} SELECT rd.day, '{figure}', {g}, COUNT(DISTINCT i.id) FROM {SCOPE} {ABOUT} \
             JOIN pupils p ON p.id = ip.pupil_id GROUP BY rd.day, {g}"
        )
    };
    let delays = |figure: &str, inner: String| {
        format!(
            "{insert} SELECT day, '{figure}', CAST(b AS TEXT), COUNT(*) FROM \
             (SELECT day, {BUCKET} AS b FROM ({inner}) delays) buckets GROUP BY day, b"
        )
    };
    vec![
        format!("{insert} SELECT rd.day, '{c}', i.category, COUNT(*) FROM {SCOPE} GROUP BY rd.day, i.category"),
        format!("{insert} SELECT rd.day, '{r}', CAST(i.recorded_by AS TEXT), COUNT(*) FROM {SCOPE} GROUP BY rd.day, i.recorded_by"),
        format!("{insert} SELECT rd.day, '{PUPIL}', CAST(ip.pupil_id AS TEXT), COUNT(*) FROM {SCOPE} {ABOUT} GROUP BY rd.day, ip.pupil_id"),
        by_pupil(Figure::YearGroup.name(), "CAST(p.year_group AS TEXT)"),
        by_pupil(Figure::House.name(), "p.house"),
        by_pupil(Figure::Sen.name(), "CASE WHEN p.sen THEN 'yes' ELSE 'no' END"),
        // Vulnerable groups as the pupil was when it happened ("no" and SEN "N" left out)…
        format!(
            "{insert} SELECT rd.day, '{g}', pc.characteristic || ':' || pc.value, COUNT(DISTINCT i.id) FROM {SCOPE} {ABOUT} \
             JOIN pupil_characteristics pc ON pc.pupil_id = ip.pupil_id AND pc.from_us <= i.occurred_us \
             AND (pc.to_us IS NULL OR pc.to_us > i.occurred_us) \
             WHERE pc.value NOT IN ('no', 'N') GROUP BY rd.day, pc.characteristic, pc.value"
        ),
        // …and the plans they were on that day.
        format!(
            "{insert} SELECT rd.day, '{g}', 'plan:' || pp.kind, COUNT(DISTINCT i.id) FROM {SCOPE} {ABOUT} \
             JOIN pupil_plans pp ON pp.pupil_id = ip.pupil_id AND pp.starts_us <= i.occurred_us \
             AND (pp.ends_us IS NULL OR pp.ends_us > i.occurred_us) GROUP BY rd.day, pp.kind"
        ),
        format!(
            "{insert} SELECT rd.day, '{o}', a.outcome_code, COUNT(DISTINCT i.id) FROM {SCOPE} \
             JOIN actions a ON a.incident_id = i.id WHERE a.outcome IS NOT NULL GROUP BY rd.day, a.outcome_code"
        ),
        // Incidents still awaiting an outcome, by the earliest due time of their open actions
        // (overdue is counted against the time of the report).
        format!(
            "{insert} SELECT day, '{OPEN}', CAST(due AS TEXT), COUNT(*) FROM (SELECT rd.day AS day, MIN(a.due_us) AS due \
             FROM {SCOPE} JOIN actions a ON a.incident_id = i.id WHERE a.outcome IS NULL GROUP BY rd.day, i.id) open GROUP BY day, due"
        ),
        delays(Figure::OccurredToRecorded.name(), format!("SELECT rd.day AS day, i.recorded_us - i.occurred_us AS d FROM {SCOPE}")),
        delays(
            Figure::RecordedToOutcome.name(),
            format!(
                "SELECT rd.day AS day, MIN(a.outcome_us) - i.recorded_us AS d FROM {SCOPE} JOIN actions a ON a.incident_id = i.id \
                 WHERE a.outcome_us IS NOT NULL GROUP BY rd.day, i.id, i.recorded_us"
            ),
        ),
    ]
}

/// What a day's count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Incidents by category.
    Category,
    /// By the recorder's staff id.
    Recorder,
    /// About a pupil in each year group, house, SEN or not (pupils as they are now).
    YearGroup,
    House,
    Sen,
    /// About a pupil in a vulnerable group or on a plan that day (`fsm:yes`, `plan:KIND`).
    Group,
    /// With an outcome, by its code.
    Outcome,
    /// Histograms: (bucket in minutes, incidents).
    OccurredToRecorded,
    RecordedToOutcome,
}

impl Figure {
    fn name(self) -> &'static str {
        match self {
            Figure::Category => "category",
            Figure::Recorder => "recorder",
            Figure::YearGroup => "year",
            Figure::House => "house",
            Figure::Sen => "sen",
            Figure::Group => "group",
            Figure::Outcome => "outcome",
            Figure::OccurredToRecorded => "occurred_to_recorded",
            Figure::RecordedToOutcome => "recorded_to_outcome",
        }
    }
}

fn day_of(us: i64, tz: Tz) -> Option<NaiveDate> {
    DateTime::from_timestamp_micros(us).map(|t| t.with_timezone(&tz).date_naive())
}

/// The days to recount, oldest first, cut into stretches of at most [`STRETCH_DAYS`]: each
/// stretch's `[from_us, to_us)`.
fn stretches(spans: &[(NaiveDate, i64, i64)]) -> Vec<(i64, i64)> {
    let mut out: Vec<(NaiveDate, i64, i64)> = Vec::new();
    for &(day, from, to) in spans {
        match out.last_mut() {
            Some((first, _, end)) if (day - *first).num_days() < STRETCH_DAYS => *end = to,
            _ => out.push((day, from, to)),
        }
    }
    out.into_iter().map(|(_, from, to)| (from, to)).collect()
}

impl Store {
    /// Recounts every day something has changed on since the last report, in `tz`'s days; the
    /// whole record when it was never counted, was counted in another zone, or too much changed.
    /// One transaction, one recount at a time.
    pub async fn report_counts_fresh(&self, tz: Tz) -> Result<()> {
        let mut tx = self.begin().await?;
        if let TxConn::Postgres(c) = &mut tx.conn {
            // What is read below is what is deleted at the end: a change committed meanwhile
            // stays noted for the next recount. Compiling the small recounts' plans (JIT) would
            // take longer than running them.
            sqlx::raw_sql(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET LOCAL jit = off; LOCK TABLE report_day_counts IN EXCLUSIVE MODE",
            )
            .execute(&mut **c)
            .await?;
        }
        let (counted_in, stale, last): (Option<String>, i64, i64) = on_tx!(tx, |c| {
            let zone: Option<String> = sqlx::query_scalar("SELECT tz FROM report_counts_state WHERE id = 1").fetch_one(&mut *c).await?;
            let r = sqlx::query("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM report_stale").fetch_one(&mut *c).await?;
            (zone, r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)
        });
        let whole = counted_in.as_deref() != Some(tz.name()) || stale > STALE_LIMIT;
        if !whole && stale == 0 {
            return tx.commit().await;
        }
        let days: BTreeSet<NaiveDate> = if whole {
            let (first, last_us): (Option<i64>, Option<i64>) = on_tx!(tx, |c| {
                let r = sqlx::query("SELECT MIN(occurred_us), MAX(occurred_us) FROM incidents").fetch_one(&mut *c).await?;
                sqlx::query("DELETE FROM report_day_counts").execute(&mut *c).await?;
                (r.try_get(0)?, r.try_get(1)?)
            });
            match (first.and_then(|u| day_of(u, tz)), last_us.and_then(|u| day_of(u, tz))) {
                (Some(a), Some(b)) => a.iter_days().take_while(|d| *d <= b).collect(),
                _ => BTreeSet::new(),
            }
        } else {
            let times: Vec<i64> = on_tx!(tx, |c| {
                let mut times: Vec<i64> =
                    sqlx::query_scalar("SELECT occurred_us FROM report_stale WHERE id <= $1 AND occurred_us IS NOT NULL")
                        .bind(last)
                        .fetch_all(&mut *c)
                        .await?;
                let pupils: Vec<i64> =
                    sqlx::query_scalar("SELECT DISTINCT pupil_id FROM report_stale WHERE id <= $1 AND pupil_id IS NOT NULL")
                        .bind(last)
                        .fetch_all(&mut *c)
                        .await?;
                if !pupils.is_empty() {
                    // Whole numbers only are written into the text.
                    let ids = pupils.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
                    let sql = format!(
                        "SELECT DISTINCT i.occurred_us FROM incident_pupils ip JOIN incidents i ON i.id = ip.incident_id \
                         WHERE ip.pupil_id IN ({ids})"
                    );
                    times.extend(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *c).await?);
                }
                times
            });
            times.into_iter().filter_map(|u| day_of(u, tz)).collect()
        };
        let spans: Vec<(NaiveDate, i64, i64)> = days
            .iter()
            .map(|d| {
                let next = d.succ_opt().unwrap_or(*d);
                (*d, crate::report::period::day_start_us(*d, tz), crate::report::period::day_start_us(next, tz))
            })
            .collect();
        on_tx!(tx, |c| {
            for chunk in spans.chunks(super::ROWS_PER_STATEMENT) {
                let mut qb = sqlx::QueryBuilder::new("INSERT INTO report_recount (day, from_us, to_us) ");
                qb.push_values(chunk, |mut b, (day, from, to)| {
                    b.push_bind(day.to_string()).push_bind(*from).push_bind(*to);
                });
                qb.build().persistent(false).execute(&mut *c).await?;
            }
            if !whole {
                sqlx::query("DELETE FROM report_day_counts WHERE day IN (SELECT day FROM report_recount)").execute(&mut *c).await?;
            }
            let statements = recount_statements();
            // The whole record in one stretch: every incident is read anyway.
            let stretches = match (whole, spans.first(), spans.last()) {
                (true, Some(first), Some(last)) => vec![(first.1, last.2)],
                _ => stretches(&spans),
            };
            for (from, to) in stretches {
                for sql in &statements {
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(from).bind(to).execute(&mut *c).await?;
                }
            }
            sqlx::query("DELETE FROM report_recount").execute(&mut *c).await?;
            sqlx::query("DELETE FROM report_stale WHERE id <= $1").bind(last).execute(&mut *c).await?;
            sqlx::query("UPDATE report_counts_state SET tz = $1 WHERE id = 1").bind(tz.name()).execute(&mut *c).await?;
        });
        if whole && let TxConn::Postgres(c) = &mut tx.conn {
            // Every count is new: let the planner know how many there are.
            sqlx::raw_sql("ANALYZE report_day_counts").execute(&mut **c).await?;
        }
        tx.commit().await
    }

    /// One figure over the days `from` to `to` (both included, `YYYY-MM-DD`), by group.
    pub async fn report_days(&self, figure: Figure, from: &str, to: &str) -> Result<Counted> {
        on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT value, CAST(SUM(n) AS BIGINT) FROM report_day_counts WHERE figure = $1 AND day >= $2 AND day <= $3 GROUP BY value",
            )
            .bind(figure.name())
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok((r.try_get::<Option<String>, _>(0)?, r.try_get::<i64, _>(1)?))).collect()
        })
    }

    /// The incidents of the days `from` to `to` still awaiting an outcome, and how many of those
    /// are overdue at `now_us`.
    pub async fn report_days_open(&self, from: &str, to: &str, now_us: i64) -> Result<(i64, i64)> {
        on_pool!(self, |p| {
            let r = sqlx::query(
                "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN CAST(value AS BIGINT) < $4 THEN n ELSE 0 END), 0) AS BIGINT) \
                 FROM report_day_counts WHERE figure = $3 AND day >= $1 AND day <= $2",
            )
            .bind(from)
            .bind(to)
            .bind(OPEN)
            .bind(now_us)
            .fetch_one(p)
            .await?;
            Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?))
        })
    }

    /// Distinct pupils the incidents of the days `from` to `to` are about.
    pub async fn report_days_pupils(&self, from: &str, to: &str) -> Result<i64> {
        on_pool!(self, |p| {
            Ok(sqlx::query_scalar("SELECT COUNT(DISTINCT value) FROM report_day_counts WHERE figure = $3 AND day >= $1 AND day <= $2")
                .bind(from)
                .bind(to)
                .bind(PUPIL)
                .fetch_one(p)
                .await?)
        })
    }
}
