//! Durations as safeguarding leads write them: `30m`, `4h`, `2d`, `1w`. Pure.

use chrono::Duration;

/// Parses a whole number followed by `m`, `h`, `d` or `w`. None for anything else
/// (including zero, which would make a deadline that has already passed).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let number = s.get(..s.len() - unit.len_utf8())?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = number.parse().ok()?;
    if n == 0 || n > 10_000 {
        return None;
    }
    match unit.to_ascii_lowercase() {
        'm' => Some(Duration::minutes(n)),
        'h' => Some(Duration::hours(n)),
        'd' => Some(Duration::days(n)),
        'w' => Some(Duration::weeks(n)),
        _ => None,
    }
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

pub(crate) fn serialize_duration<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

pub(crate) fn serialize_opt_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
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
        for bad in [
            "",
            "d",
            "2",
            "2x",
            "-1d",
            "1.5d",
            "0d",
            "2 days",
            "99999999999999999999d",
        ] {
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
