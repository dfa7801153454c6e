//! Durations as safeguarding leads write them: `30m`, `4h`, `2d`, `1w`, read with Haven's one
//! duration grammar ([`crate::duration`]) and counted in whole minutes. Pure.

use chrono::Duration;

/// The longest deadline or wait a rule may give.
const LONGEST: Duration = Duration::weeks(10_000);

/// Parses a duration in [`crate::duration`]'s grammar that is a whole number of minutes, more
/// than zero (zero would make a deadline that has already passed) and at most 10,000 weeks.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let d = crate::duration::parse_duration(s)?;
    let d = Duration::from_std(d).ok()?;
    (d > Duration::zero() && d <= LONGEST && d.num_seconds() % 60 == 0).then_some(d)
}

/// The shortest exact written form (`parse_duration(format_duration(d)) == d` for whole minutes).
pub fn format_duration(d: Duration) -> String {
    let minutes = d.num_minutes();
    if minutes != 0 && minutes % (7 * 24 * 60) == 0 {
        format!("{}w", minutes / (7 * 24 * 60))
    } else if minutes != 0 && minutes % (24 * 60) == 0 {
        format!("{}d", minutes / (24 * 60))
    } else if minutes != 0 && minutes % 60 == 0 {
        format!("{}h", minutes / 60)
    } else {
        format!("{minutes}m")
    }
}

/// In words for people: `30 minutes`, `90 minutes`, `4 hours`, `1 day`, `2 weeks`.
pub fn describe_duration(d: Duration) -> String {
    let minutes = d.num_minutes();
    let (n, unit) = if minutes != 0 && minutes % (7 * 24 * 60) == 0 {
        (minutes / (7 * 24 * 60), "week")
    } else if minutes != 0 && minutes % (24 * 60) == 0 {
        (minutes / (24 * 60), "day")
    } else if minutes != 0 && minutes % 60 == 0 {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

pub(crate) fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

pub(crate) fn serialize_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_durations() {
        assert_eq!(parse_duration("30m"), Some(Duration::minutes(30)));
        assert_eq!(parse_duration("4h"), Some(Duration::hours(4)));
        assert_eq!(parse_duration("2d"), Some(Duration::days(2)));
        assert_eq!(parse_duration("1w"), Some(Duration::weeks(1)));
        assert_eq!(parse_duration("120S"), Some(Duration::minutes(2)), "the same grammar as haven.toml");
        for bad in ["90s", "", "d", "2", "2x", "-1d", "1.5d", "0d", "2 days", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::days(2)), "2d");
        assert_eq!(format_duration(Duration::days(14)), "2w");
        assert_eq!(format_duration(Duration::minutes(90)), "90m");
        assert_eq!(describe_duration(Duration::minutes(30)), "30 minutes");
        assert_eq!(describe_duration(Duration::minutes(90)), "90 minutes");
        assert_eq!(describe_duration(Duration::hours(4)), "4 hours");
        assert_eq!(describe_duration(Duration::days(1)), "1 day");
        assert_eq!(describe_duration(Duration::weeks(2)), "2 weeks");
    }
}
