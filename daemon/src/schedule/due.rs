//! Pure "what is due at time T": digest slots from a cron expression evaluated in the school's
//! time zone, and how overdue something is. No clock, no database, no tokio.
//!
//! A slot is an instant in UTC. Cron fields are read as the school's wall-clock time, so
//! `0 30 7 * * *` in Europe/London is 07:30 GMT in winter and 07:30 BST in summer, once on the
//! Sundays the clocks change. A wall-clock time that happens twice (the hour repeated when the
//! clocks go back) is one slot, its first occurrence; one that does not happen (the hour skipped
//! when they go forward) is no slot that day.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;

/// How many cron candidates to examine before giving up: far more than any real schedule
/// needs to find its neighbour of an instant, and a bound on a pathological one.
const SEARCH_LIMIT: usize = 1_000;

/// Whether `slot` is the first instant showing its wall-clock time (so a repeated hour is not
/// a second slot).
fn is_first_occurrence(slot: &DateTime<Tz>, tz: Tz) -> bool {
    tz.from_local_datetime(&slot.naive_local()).earliest().is_some_and(|first| first == *slot)
}

/// The first slot strictly after `after`.
pub fn next_digest_slot(cron: &cron::Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let start = after.with_timezone(&tz);
    cron.after(&start)
        .take(SEARCH_LIMIT)
        .filter(|s| is_first_occurrence(s, tz))
        .map(|s| s.with_timezone(&Utc))
        .find(|s| *s > after)
}

/// The latest slot at or before `now`.
pub fn latest_digest_slot(cron: &cron::Schedule, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // cron's backward search starts strictly before its argument; start a second later so a
    // slot exactly at `now` counts, and filter, as the repeated hour can yield later instants.
    let start = (now + Duration::seconds(1)).with_timezone(&tz);
    cron.after(&start)
        .rev()
        .take(SEARCH_LIMIT)
        .filter(|s| is_first_occurrence(s, tz))
        .map(|s| s.with_timezone(&Utc))
        .find(|s| *s <= now)
}

/// The slot to send now: the latest slot in `(last_sent, now]`, or None when there is none
/// (nothing new since the last one). A daemon that was down over several slots gets only the
/// latest, not one per missed slot. With no `last_sent` (never sent), the latest slot at or
/// before `now`.
pub fn due_digest_slot(
    cron: &cron::Schedule,
    tz: Tz,
    last_sent: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let latest = latest_digest_slot(cron, tz, now)?;
    match last_sent {
        Some(last) if latest <= last => None,
        _ => Some(latest),
    }
}

/// "3 days overdue", "2 hours overdue", "due in 5 hours": how `due` stands at `now`, in whole
/// units rounded down, for reminders, digests and `haven outcomes`. Overdue means past due,
/// as `haven status` counts it.
pub fn describe_due(due: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if due < now {
        format!("{} overdue", span(now - due))
    } else {
        format!("due in {}", span(due - now))
    }
}

fn span(d: Duration) -> String {
    let plural = |n: i64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    if d.num_days() >= 1 {
        plural(d.num_days(), "day")
    } else if d.num_hours() >= 1 {
        plural(d.num_hours(), "hour")
    } else {
        plural(d.num_minutes().max(0), "minute")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;
    use std::str::FromStr;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap_or_default()
    }

    fn daily_0730() -> cron::Schedule {
        cron::Schedule::from_str("0 30 7 * * *").expect("valid cron")
    }

    #[test]
    fn spring_forward_sunday_fires_once_at_0730_bst() {
        // 2026-03-29: clocks go forward at 01:00 UTC; 07:30 BST is 06:30 UTC.
        let c = daily_0730();
        let next = next_digest_slot(&c, London, utc(2026, 3, 28, 12, 0));
        assert_eq!(next, Some(utc(2026, 3, 29, 6, 30)));
        assert_eq!(next_digest_slot(&c, London, utc(2026, 3, 29, 6, 30)), Some(utc(2026, 3, 30, 6, 30)));
        let last = Some(utc(2026, 3, 28, 7, 30)); // Saturday's, in GMT
        assert_eq!(due_digest_slot(&c, London, last, utc(2026, 3, 29, 6, 29)), None);
        assert_eq!(due_digest_slot(&c, London, last, utc(2026, 3, 29, 6, 30)), Some(utc(2026, 3, 29, 6, 30)));
        assert_eq!(due_digest_slot(&c, London, Some(utc(2026, 3, 29, 6, 30)), utc(2026, 3, 29, 7, 30)), None);
    }

    #[test]
    fn fall_back_sunday_fires_once_at_0730_gmt() {
        // 2026-10-25: clocks go back at 01:00 UTC; 07:30 GMT is 07:30 UTC.
        let c = daily_0730();
        let last = Some(utc(2026, 10, 24, 6, 30)); // Saturday's, in BST
        assert_eq!(due_digest_slot(&c, London, last, utc(2026, 10, 25, 6, 30)), None, "not at 07:30 BST");
        assert_eq!(due_digest_slot(&c, London, last, utc(2026, 10, 25, 7, 30)), Some(utc(2026, 10, 25, 7, 30)));
        assert_eq!(next_digest_slot(&c, London, utc(2026, 10, 24, 6, 30)), Some(utc(2026, 10, 25, 7, 30)));
    }

    #[test]
    fn repeated_hour_is_one_slot() {
        // 01:30 happens twice on 2026-10-25 (BST then GMT): one digest, at the first.
        let c = cron::Schedule::from_str("0 30 1 * * *").expect("valid cron");
        let first = next_digest_slot(&c, London, utc(2026, 10, 24, 12, 0));
        assert_eq!(first, Some(utc(2026, 10, 25, 0, 30)));
        assert_eq!(next_digest_slot(&c, London, utc(2026, 10, 25, 0, 30)), Some(utc(2026, 10, 26, 1, 30)));
        assert_eq!(due_digest_slot(&c, London, first, utc(2026, 10, 25, 1, 45)), None);
    }

    #[test]
    fn a_long_outage_gives_only_the_latest_slot() {
        let c = daily_0730();
        let last = Some(utc(2026, 1, 5, 7, 30));
        assert_eq!(due_digest_slot(&c, London, last, utc(2026, 1, 9, 12, 0)), Some(utc(2026, 1, 9, 7, 30)));
        assert_eq!(due_digest_slot(&c, London, None, utc(2026, 1, 9, 7, 30)), Some(utc(2026, 1, 9, 7, 30)));
    }

    #[test]
    fn weekday_schedule_skips_the_weekend() {
        let c = cron::Schedule::from_str("0 30 7 * * Mon-Fri").expect("valid cron");
        // Friday 2026-11-06 → Monday 2026-11-09.
        assert_eq!(next_digest_slot(&c, London, utc(2026, 11, 6, 8, 0)), Some(utc(2026, 11, 9, 7, 30)));
        assert_eq!(latest_digest_slot(&c, London, utc(2026, 11, 8, 20, 0)), Some(utc(2026, 11, 6, 7, 30)));
    }

    #[test]
    fn overdue_is_said_in_whole_units() {
        let now = utc(2026, 11, 10, 9, 0);
        assert_eq!(describe_due(utc(2026, 11, 7, 8, 0), now), "3 days overdue");
        assert_eq!(describe_due(utc(2026, 11, 10, 8, 0), now), "1 hour overdue");
        assert_eq!(describe_due(utc(2026, 11, 10, 14, 0), now), "due in 5 hours");
        assert_eq!(describe_due(now, now), "due in 0 minutes", "overdue only once past due, as `haven status` counts");
    }
}
