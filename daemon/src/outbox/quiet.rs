//! Quiet hours (`[alerts.quiet_hours]`): when non-urgent alerts about an incident wait in
//! the outbox until the school's hours open again. Urgent incidents' alerts never wait, nor
//! do digests (they are scheduled by the school), notices to the DSL team, or triage questions.
//!
//! Pure: the caller gives the time; the school's time zone is applied here, so "18:00" means
//! 18:00 on the school's clock in summer and in winter.

use chrono::{DateTime, Datelike, Days, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

/// `[alerts.quiet_hours]` as written: `start = "18:00"`, `end = "07:30"`, `weekends = true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursRaw {
    start: String,
    end: String,
    #[serde(default)]
    weekends: bool,
}

/// Quiet from `start` to `end` every day (over midnight when `end` is earlier), and all of
/// Saturday and Sunday when `weekends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "QuietHoursRaw")]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
    weekends: bool,
}

impl TryFrom<QuietHoursRaw> for QuietHours {
    type Error = String;
    fn try_from(raw: QuietHoursRaw) -> Result<Self, String> {
        let time = |key: &str, v: &str| {
            NaiveTime::parse_from_str(v.trim(), "%H:%M")
                .map_err(|_| format!("quiet_hours.{key}: expected a time such as \"18:00\" (24-hour clock), found {v:?}"))
        };
        let (start, end) = (time("start", &raw.start)?, time("end", &raw.end)?);
        if start == end {
            return Err("quiet_hours: start and end are the same time; leave [alerts.quiet_hours] out for no quiet hours".into());
        }
        Ok(QuietHours { start, end, weekends: raw.weekends })
    }
}

impl QuietHours {
    /// Whether `now` falls in quiet hours on the school's clock.
    pub fn is_quiet(&self, now: DateTime<Utc>, tz: Tz) -> bool {
        let local = now.with_timezone(&tz);
        if self.weekends && matches!(local.weekday(), Weekday::Sat | Weekday::Sun) {
            return true;
        }
        let t = local.time();
        if self.start < self.end { t >= self.start && t < self.end } else { t >= self.start || t < self.end }
    }

    /// When the hours open again, if `now` is quiet: the first `end` or midnight after `now`
    /// that is not quiet (a quiet stretch ends at one or the other).
    pub fn opens_at(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if !self.is_quiet(now, tz) {
            return None;
        }
        let today = now.with_timezone(&tz).date_naive();
        (0..=3u64)
            .filter_map(|d| today.checked_add_days(Days::new(d)))
            .flat_map(|day| [day.and_time(NaiveTime::MIN), day.and_time(self.end)])
            .filter_map(|local| {
                // A time skipped by a clock change opens an hour later.
                tz.from_local_datetime(&local)
                    .earliest()
                    .or_else(|| tz.from_local_datetime(&(local + chrono::Duration::hours(1))).earliest())
            })
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > now && !self.is_quiet(*t, tz))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    fn hours(start: &str, end: &str, weekends: bool) -> QuietHours {
        QuietHours::try_from(QuietHoursRaw { start: start.into(), end: end.into(), weekends }).unwrap()
    }

    fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        // December 2026: London is on UTC. 7 December is a Monday.
        Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap()
    }

    #[test]
    fn evening_hours_wait_for_the_morning() {
        let q = hours("18:00", "07:30", false);
        assert_eq!(q.opens_at(utc(7, 17, 59), London), None);
        assert_eq!(q.opens_at(utc(7, 18, 0), London), Some(utc(8, 7, 30)));
        assert_eq!(q.opens_at(utc(8, 3, 0), London), Some(utc(8, 7, 30)));
        assert_eq!(q.opens_at(utc(8, 7, 30), London), None);
    }

    #[test]
    fn weekends_wait_for_monday_morning() {
        let q = hours("18:00", "07:30", true);
        assert_eq!(q.opens_at(utc(11, 19, 0), London), Some(utc(14, 7, 30)), "Friday evening");
        assert_eq!(q.opens_at(utc(12, 12, 0), London), Some(utc(14, 7, 30)), "Saturday noon");
        let midday = hours("12:00", "13:00", true);
        assert_eq!(midday.opens_at(utc(13, 12, 30), London), Some(utc(14, 0, 0)), "Monday's midnight opens");
    }

    #[test]
    fn school_time_is_used_in_summer() {
        let q = hours("18:00", "07:30", false);
        // 17:30 UTC on 1 July is 18:30 in London: quiet until 07:30 BST = 06:30 UTC.
        let evening = Utc.with_ymd_and_hms(2026, 7, 1, 17, 30, 0).unwrap();
        assert_eq!(q.opens_at(evening, London), Some(Utc.with_ymd_and_hms(2026, 7, 2, 6, 30, 0).unwrap()));
    }

    #[test]
    fn the_alerts_section_reads_quiet_hours_and_names_a_bad_key() {
        let alerts: crate::config::Alerts = toml::from_str("[quiet_hours]\nstart = \"18:00\"\nend = \"07:30\"\nweekends = true\n").unwrap();
        assert_eq!(alerts.quiet_hours, Some(hours("18:00", "07:30", true)));
        let e = toml::from_str::<crate::config::Alerts>("[quiet_hours]\nstart = \"6pm\"\nend = \"07:30\"\n").unwrap_err();
        assert!(e.to_string().contains("quiet_hours.start: expected a time such as \"18:00\""), "{e}");
        assert!(toml::from_str::<crate::config::Alerts>("[quiet_hours]\nstart = \"18:00\"\nend = \"07:30\"\nweekend = true\n").is_err());
    }

    #[test]
    fn bad_times_are_refused_with_the_key() {
        let e = QuietHours::try_from(QuietHoursRaw { start: "6pm".into(), end: "07:30".into(), weekends: false }).unwrap_err();
        assert!(e.starts_with("quiet_hours.start: expected a time"), "{e}");
        assert!(QuietHours::try_from(QuietHoursRaw { start: "07:30".into(), end: "07:30".into(), weekends: false }).is_err());
    }
}
