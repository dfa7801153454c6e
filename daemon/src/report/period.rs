//! The periods a report covers: a named term with the two terms before it, side by side, or
//! one span of dates. Dates are the school's; a period runs from the start of its first day to
//! the end of its last, in the school's time zone.

use crate::terms::Terms;
use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;

/// One column of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    pub name: String,
    pub from: NaiveDate,
    /// The last day, included.
    pub to: NaiveDate,
}

/// What the user asked for.
#[derive(Debug, Clone, Copy)]
pub enum Asked<'a> {
    Term(&'a str),
    Dates { from: NaiveDate, to: NaiveDate },
}

/// Why the periods cannot be worked out; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("--term needs the school's terms: set school.terms_file in haven.toml (README \"Reports\"), or give --from and --to")]
    NoTermsFile,
    #[error("there is no term called {name:?} in the terms file (its terms: {known})")]
    UnknownTerm { name: String, known: String },
    #[error("--from {from} is after --to {to}")]
    Backwards { from: NaiveDate, to: NaiveDate },
}

/// How many terms a term's report shows: the term asked for and the two before it.
pub const TERMS_SIDE_BY_SIDE: usize = 3;

/// The report's periods, oldest first.
pub fn periods(asked: Asked<'_>, terms: Option<&Terms>) -> Result<Vec<Period>, PeriodError> {
    match asked {
        Asked::Dates { from, to } => {
            if from > to {
                return Err(PeriodError::Backwards { from, to });
            }
            Ok(vec![Period { name: format!("{from} to {to}"), from, to }])
        }
        Asked::Term(name) => {
            let terms = terms.ok_or(PeriodError::NoTermsFile)?;
            let term = terms.named(name).ok_or_else(|| PeriodError::UnknownTerm {
                name: name.trim().to_string(),
                known: terms.all().iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
            })?;
            Ok(terms
                .up_to(term, TERMS_SIDE_BY_SIDE)
                .into_iter()
                .map(|t| Period { name: t.name.clone(), from: t.starts, to: t.ends })
                .collect())
        }
    }
}

/// The start of `day` in the school's zone, in microseconds since the epoch.
pub fn day_start_us(day: NaiveDate, tz: Tz) -> i64 {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A zone that skips midnight (none in the UK) starts the day at its first instant.
    tz.from_local_datetime(&midnight).earliest().map_or_else(|| midnight.and_utc().timestamp_micros(), |t| t.timestamp_micros())
}

impl Period {
    /// `[from_us, to_us)`: the start of the first day to the start of the day after the last.
    pub fn span_us(&self, tz: Tz) -> (i64, i64) {
        (day_start_us(self.from, tz), day_start_us(self.to.succ_opt().unwrap_or(self.to), tz))
    }

    /// The calendar months the period touches, each cut to the period and named "Sep 2026".
    pub fn months(&self) -> Vec<Period> {
        let mut out = Vec::new();
        let mut first = self.from;
        while first <= self.to {
            let next_month = if first.month() == 12 {
                NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
            }
            .unwrap_or(self.to);
            let last = next_month.pred_opt().unwrap_or(next_month).min(self.to);
            out.push(Period { name: first.format("%b %Y").to_string(), from: first, to: last });
            first = next_month;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    const TERMS: &str = "[[term]]\nname='Summer 2026'\nstarts=2026-04-13\nends=2026-07-22\n\
        [[term]]\nname='Autumn 2026'\nstarts=2026-09-02\nends=2026-12-18\n\
        [[term]]\nname='Spring 2027'\nstarts=2027-01-05\nends=2027-03-26\n\
        [[term]]\nname='Spring 2026'\nstarts=2026-01-05\nends=2026-03-27\n";

    #[test]
    fn a_term_comes_with_the_two_before_it_and_mistakes_say_what_to_do() {
        let terms = Terms::parse("terms.toml", TERMS).unwrap();
        let p = periods(Asked::Term("spring 2027"), Some(&terms)).unwrap();
        assert_eq!(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Summer 2026", "Autumn 2026", "Spring 2027"]);
        assert_eq!((p[0].from, p[0].to), (d("2026-04-13"), d("2026-07-22")));
        let e = periods(Asked::Term("Autumn 2030"), Some(&terms)).unwrap_err().to_string();
        assert_eq!(
            e,
            "there is no term called \"Autumn 2030\" in the terms file (its terms: Spring 2026, Summer 2026, Autumn 2026, Spring 2027)"
        );
        assert!(periods(Asked::Term("Autumn 2026"), None).unwrap_err().to_string().contains("set school.terms_file in haven.toml"));
        let e = periods(Asked::Dates { from: d("2026-12-01"), to: d("2026-09-01") }, None).unwrap_err().to_string();
        assert_eq!(e, "--from 2026-12-01 is after --to 2026-09-01");
        assert_eq!(periods(Asked::Dates { from: d("2026-09-01"), to: d("2026-09-01") }, None).unwrap().len(), 1);
    }

    #[test]
    fn months_are_cut_to_the_period_and_days_start_at_local_midnight() {
        let tz = chrono_tz::Europe::London;
        let p = Period { name: "Autumn".into(), from: d("2026-09-02"), to: d("2026-12-18") };
        let m = p.months();
        assert_eq!(m.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Sep 2026", "Oct 2026", "Nov 2026", "Dec 2026"]);
        assert_eq!((m[0].from, m[0].to, m[3].from, m[3].to), (d("2026-09-02"), d("2026-09-30"), d("2026-12-01"), d("2026-12-18")));
        // 2 September 2026 00:00 BST is 1 September 23:00 UTC.
        assert_eq!(m[0].span_us(tz).0, d("2026-09-01").and_hms_opt(23, 0, 0).unwrap().and_utc().timestamp_micros());
        // Months meet: each ends where the next begins, and the last ends after 18 December.
        assert_eq!(m[0].span_us(tz).1, m[1].span_us(tz).0);
        assert_eq!(m[3].span_us(tz).1, p.span_us(tz).1);
        assert_eq!(p.span_us(tz).1, d("2026-12-19").and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros());
    }
}
