//! Pure "what is due at time T": digest slots from a cron expression evaluated in the school's
//! time zone, and how overdue something is. No clock, no database, no tokio.
//!
//! A slot is an instant in UTC. Cron fields are read as the school's wall-clock time, so
//! `0 30 7 * * *` in Europe/London is 07:30 GMT in winter and 07:30 BST in summer, once on the
//! Sundays the clocks change. A wall-clock time that happens twice (the hour repeated when the
//! clocks go back) is one slot, its first occurrence; one that does not happen (the hour skipped
//! when they go forward) is no slot that day.
//!
//! Digest cron lines ([`parse_cron`]) take the standard 5 fields (minute hour day month
//! weekday) or 6 with seconds first. Numeric weekdays have their POSIX meaning, 0 or 7 Sunday,
//! 1 Monday … 6 Saturday (the cron crate numbers Sunday 1, so they are rewritten as names
//! before it reads them).

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// Weekday names in POSIX order (0 = Sunday), as the cron crate reads them.
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Reads a digest's cron line: 5 fields (minute hour day month weekday) or 6 (second first),
/// numeric weekdays read as POSIX (0 or 7 Sunday, 1 Monday). The error is one line that says
/// what is wrong.
pub fn parse_cron(line: &str) -> Result<cron::Schedule, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let mut six: Vec<String> = match fields.len() {
        5 => std::iter::once("0").chain(fields.iter().copied()).map(str::to_string).collect(),
        6 => fields.iter().map(|f| f.to_string()).collect(),
        n => {
            return Err(format!(
                "expected 5 fields (minute hour day month weekday) or 6 (second minute hour day month weekday), found {n} in {line:?}"
            ));
        }
    };
    if let Some(weekday) = six.get_mut(5) {
        *weekday = posix_weekdays(weekday)?;
    }
    let text = six.join(" ");
    cron::Schedule::from_str(&text).map_err(|e| {
        let e = e.to_string();
        format!("{} in {line:?}", e.lines().next().unwrap_or("not a cron line").trim())
    })
}

/// A weekday field with numbers and ranges rewritten as explicit day names ("1-5" → the
/// names Monday to Friday), so the cron crate cannot read them with its own numbering.
fn posix_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let mut days: Vec<usize> = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, n)) => {
                let n: usize =
                    n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| format!("weekday step {n:?} in {item:?} is not a number from 1"))?;
                (r, n)
            }
            None => (item, 1),
        };
        let (from, to) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (weekday(a)?, weekday(b)?);
            // "Fri-Sun", "5-0": Sunday at the end of a range is day 7.
            let b = if b == 0 && a > 0 { 7 } else { b };
            if b < a {
                return Err(format!(
                    "weekday range {range:?} runs backwards ({} to {}); write it as two, such as \"{}-7,0-{}\"",
                    day_name(a),
                    day_name(b),
                    a,
                    b
                ));
            }
            (a, b)
        } else {
            let a = weekday(range)?;
            // "5/2": from Friday to the end of the week, every other day.
            (a, if step > 1 || item.contains('/') { 6.max(a) } else { a })
        };
        days.extend((from..=to).step_by(step).map(|d| d % 7));
    }
    days.sort_unstable();
    days.dedup();
    Ok(days.iter().filter_map(|d| DAY_NAMES.get(*d).copied()).collect::<Vec<_>>().join(","))
}

/// A weekday as a POSIX number: 0-7 (0 and 7 Sunday) or a name ("Mon", "monday").
fn weekday(text: &str) -> Result<usize, String> {
    const NAMES: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
    let bad = || {
        format!(
            "weekday {text:?} is not a day: use 0-7 (0 and 7 Sunday, 1 Monday, 2 Tuesday, 3 Wednesday, 4 Thursday, 5 Friday, 6 Saturday) or names Sun-Sat"
        )
    };
    if let Ok(n) = text.parse::<usize>() {
        return if n <= 7 { Ok(n) } else { Err(bad()) };
    }
    let lower = text.to_ascii_lowercase();
    NAMES.iter().position(|name| lower.len() >= 3 && name.starts_with(&lower)).ok_or_else(bad)
}

fn day_name(posix: usize) -> &'static str {
    const FULL: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    FULL.get(posix % 7).copied().unwrap_or("?")
}

/// The next `n` slots strictly after `after`, as `haven rules check` shows them.
pub fn next_digest_slots(cron: &cron::Schedule, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut at = after;
    while out.len() < n {
        let Some(next) = next_digest_slot(cron, tz, at) else { break };
        out.push(next);
        at = next;
    }
    out
}

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
    cron.after(&start).take(SEARCH_LIMIT).filter(|s| is_first_occurrence(s, tz)).map(|s| s.with_timezone(&Utc)).find(|s| *s > after)
}

/// The latest slot at or before `now`.
pub fn latest_digest_slot(cron: &cron::Schedule, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // cron's backward search starts strictly before its argument; start a second later so a
    // slot exactly at `now` counts, and filter, as the repeated hour can yield later instants.
    let start = (now + Duration::seconds(1)).with_timezone(&tz);
    cron.after(&start).rev().take(SEARCH_LIMIT).filter(|s| is_first_occurrence(s, tz)).map(|s| s.with_timezone(&Utc)).find(|s| *s <= now)
}

/// The slot to send now: the latest slot in `(last_sent, now]`, or None when there is none
/// (nothing new since the last one). A daemon that was down over several slots gets only the
/// latest, not one per missed slot. With no `last_sent` (never sent), the latest slot at or
/// before `now`.
pub fn due_digest_slot(cron: &cron::Schedule, tz: Tz, last_sent: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
    if due < now { format!("{} overdue", span(now - due)) } else { format!("due in {}", span(due - now)) }
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

    fn weekdays_of(line: &str, after: DateTime<Utc>) -> Vec<String> {
        let c = parse_cron(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        next_digest_slots(&c, London, after, 7).iter().map(|s| s.with_timezone(&London).format("%a %H:%M").to_string()).collect()
    }

    #[test]
    fn numeric_weekdays_have_their_posix_meaning() {
        // Sunday 8 November 2026, noon: the week ahead.
        let sunday = utc(2026, 11, 8, 12, 0);
        let week = ["Mon 07:30", "Tue 07:30", "Wed 07:30", "Thu 07:30", "Fri 07:30", "Mon 07:30", "Tue 07:30"];
        assert_eq!(weekdays_of("0 30 7 * * 1-5", sunday), week);
        assert_eq!(weekdays_of("30 7 * * 1-5", sunday), week, "5 fields");
        assert_eq!(weekdays_of("30 7 * * Mon-Fri", sunday), week);
        assert_eq!(weekdays_of("30 7 * * 1,2,3,4,5", sunday), week);
        let sundays = ["Sun 18:00", "Sun 18:00", "Sun 18:00"];
        assert_eq!(weekdays_of("0 18 * * 0", sunday)[..3], sundays);
        assert_eq!(weekdays_of("0 18 * * 7", sunday)[..3], sundays);
        assert_eq!(weekdays_of("0 18 * * 5-7", sunday)[..3], ["Sun 18:00", "Fri 18:00", "Sat 18:00"]);
        assert_eq!(weekdays_of("0 18 * * Fri-Sun", sunday)[..3], ["Sun 18:00", "Fri 18:00", "Sat 18:00"]);
        assert_eq!(weekdays_of("0 9 * * 1-5/2", sunday)[..3], ["Mon 09:00", "Wed 09:00", "Fri 09:00"]);
        assert_eq!(weekdays_of("0 9 * * 6", sunday)[..1], ["Sat 09:00"]);
    }

    #[test]
    fn bad_cron_lines_say_what_is_wrong() {
        let err = |l: &str| parse_cron(l).err().unwrap_or_default();
        assert!(err("0 30 7 * * 8").contains("weekday \"8\" is not a day: use 0-7 (0 and 7 Sunday, 1 Monday"), "{}", err("0 30 7 * * 8"));
        assert!(err("30 7 * *").contains("expected 5 fields (minute hour day month weekday) or 6"));
        assert!(err("30 7 * * 5-1").contains("weekday range \"5-1\" runs backwards (Friday to Monday)"));
        assert!(err("61 7 * * 1").contains("in \"61 7 * * 1\""), "{}", err("61 7 * * 1"));
    }

    #[test]
    fn next_three_runs_are_in_the_schools_zone() {
        let c = parse_cron("30 7 * * 1-5").expect("valid");
        // Friday 23 October 2026 after 07:30 BST; the clocks go back on Sunday 25th.
        let runs = next_digest_slots(&c, London, utc(2026, 10, 23, 7, 0), 3);
        assert_eq!(runs, vec![utc(2026, 10, 26, 7, 30), utc(2026, 10, 27, 7, 30), utc(2026, 10, 28, 7, 30)]);
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
