//! The school's terms (`school.terms_file`): which days are school days, which term a date is
//! in, and the terms before it. Reports count by term; transfer deadlines count school days.
//!
//! ```toml
//! [[term]]
//! name = "Autumn 2026"
//! starts = 2026-09-02
//! ends = 2026-12-18
//! half_term = [2026-10-26, 2026-10-30]   # first and last day off, optional
//! closed = [2026-11-02]                  # INSET days and bank holidays, optional
//! ```
//!
//! A school day is a weekday inside a term, outside its half-term and not closed. Every problem
//! in the file is reported at once, each with the term it is in.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// One term of the school year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub name: String,
    pub starts: NaiveDate,
    pub ends: NaiveDate,
    /// First and last day of the half-term break, both days off.
    pub half_term: Option<(NaiveDate, NaiveDate)>,
    /// Other days the school is closed (INSET days, bank holidays).
    pub closed: Vec<NaiveDate>,
}

impl Term {
    pub fn contains(&self, day: NaiveDate) -> bool {
        (self.starts..=self.ends).contains(&day)
    }

    /// A weekday of this term on which the school is open.
    pub fn is_school_day(&self, day: NaiveDate) -> bool {
        self.contains(day)
            && !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
            && !self.half_term.is_some_and(|(a, b)| (a..=b).contains(&day))
            && !self.closed.contains(&day)
    }
}

/// The school's terms, in date order, none overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    terms: Vec<Term>,
}

/// Everything wrong with a terms file, one line each.
#[derive(Debug)]
pub struct TermsErrors {
    pub origin: String,
    pub errors: Vec<String>,
}

impl fmt::Display for TermsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(|e| format!("{}: {e}", self.origin)).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for TermsErrors {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRaw {
    #[serde(default)]
    term: Vec<TermRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermRaw {
    name: String,
    starts: toml::Value,
    ends: toml::Value,
    half_term: Option<Vec<toml::Value>>,
    #[serde(default)]
    closed: Vec<toml::Value>,
}

/// A TOML date (`2026-09-02`) or the same as a string.
fn day(v: &toml::Value) -> Option<NaiveDate> {
    let text = match v {
        toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
        toml::Value::String(s) => s.clone(),
        _ => return None,
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok()
}

impl Terms {
    /// The terms in `path`.
    pub fn load(path: &Path) -> Result<Terms, TermsErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| TermsErrors { origin: origin.clone(), errors: vec![format!("cannot be read: {e}")] })?;
        Terms::parse(&origin, &text)
    }

    pub fn parse(origin: &str, text: &str) -> Result<Terms, TermsErrors> {
        let fail = |errors: Vec<String>| TermsErrors { origin: origin.to_string(), errors };
        let raw: FileRaw = toml::from_str(text).map_err(|e| fail(vec![e.message().replace('\n', " ")]))?;
        let mut errors = Vec::new();
        let mut terms = Vec::new();
        for (i, t) in raw.term.into_iter().enumerate() {
            let at = if t.name.trim().is_empty() { format!("term[{i}]") } else { format!("term {:?}", t.name) };
            let mut bad = Vec::new();
            let mut date = |key: &str, v: &toml::Value| {
                let d = day(v);
                if d.is_none() {
                    bad.push(format!("{at}: {key}: expected a date such as 2026-09-02, found {v}"));
                }
                d
            };
            let starts = date("starts", &t.starts);
            let ends = date("ends", &t.ends);
            let half_term = match t.half_term.as_deref() {
                None => None,
                Some([a, b]) => date("half_term", a).zip(date("half_term", b)),
                Some(_) => None,
            };
            let closed: Vec<NaiveDate> = t.closed.iter().filter_map(|v| date("closed", v)).collect();
            errors.append(&mut bad);
            if t.half_term.as_ref().is_some_and(|h| h.len() != 2) {
                errors.push(format!("{at}: half_term: expected [FIRST, LAST], the first and last day off"));
            }
            if t.name.trim().is_empty() {
                errors.push(format!("{at}: name: expected a name such as \"Autumn 2026\""));
            }
            let (Some(starts), Some(ends)) = (starts, ends) else { continue };
            if ends < starts {
                errors.push(format!("{at}: ends ({ends}) is before starts ({starts})"));
                continue;
            }
            if let Some((a, b)) = half_term
                && (b < a || a < starts || b > ends)
            {
                errors.push(format!("{at}: half_term [{a}, {b}] must run forwards inside the term ({starts} to {ends})"));
            }
            for d in closed.iter().filter(|d| !(starts..=ends).contains(*d)) {
                errors.push(format!("{at}: closed: {d} is outside the term ({starts} to {ends})"));
            }
            terms.push(Term { name: t.name.trim().to_string(), starts, ends, half_term, closed });
        }
        terms.sort_by_key(|t| t.starts);
        for w in terms.windows(2) {
            if w[1].starts <= w[0].ends {
                errors.push(format!("term {:?} overlaps term {:?}", w[1].name, w[0].name));
            }
        }
        for (i, t) in terms.iter().enumerate() {
            if terms[..i].iter().any(|o| o.name.eq_ignore_ascii_case(&t.name)) {
                errors.push(format!("term {:?}: the name is used twice", t.name));
            }
        }
        if terms.is_empty() && errors.is_empty() {
            errors.push("no [[term]]: list the school's terms, each with name, starts and ends".into());
        }
        if errors.is_empty() { Ok(Terms { terms }) } else { Err(fail(errors)) }
    }

    /// Every term, in date order.
    pub fn all(&self) -> &[Term] {
        &self.terms
    }

    /// The term called `name` (case does not matter).
    pub fn named(&self, name: &str) -> Option<&Term> {
        self.terms.iter().find(|t| t.name.eq_ignore_ascii_case(name.trim()))
    }

    /// The term `day` falls in, holidays inside it included.
    pub fn containing(&self, day: NaiveDate) -> Option<&Term> {
        self.terms.iter().find(|t| t.contains(day))
    }

    /// `term` and up to `n - 1` terms before it, oldest first.
    pub fn up_to<'a>(&'a self, term: &Term, n: usize) -> Vec<&'a Term> {
        let Some(at) = self.terms.iter().position(|t| t == term) else { return Vec::new() };
        self.terms[at.saturating_sub(n.saturating_sub(1))..=at].iter().collect()
    }

    pub fn is_school_day(&self, day: NaiveDate) -> bool {
        self.containing(day).is_some_and(|t| t.is_school_day(day))
    }

    /// The `n`th school day after `from` (`from` itself not counted), or `None` when the file
    /// has no term that far ahead.
    pub fn add_school_days(&self, from: NaiveDate, n: u32) -> Option<NaiveDate> {
        let last = self.terms.last()?.ends;
        let mut day = from;
        let mut left = n;
        while left > 0 {
            day = day.succ_opt()?;
            if day > last {
                return None;
            }
            if self.is_school_day(day) {
                left -= 1;
            }
        }
        Some(day)
    }

    /// School days after `from` up to and including `to` (0 when `to` is not after `from`).
    pub fn school_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        from.iter_days().skip(1).take_while(|d| *d <= to).filter(|d| self.is_school_day(*d)).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[term]]
name = "Autumn 2026"
starts = 2026-09-02
ends = 2026-12-18
half_term = [2026-10-26, 2026-10-30]
closed = [2026-11-02]

[[term]]
name = "Spring 2027"
starts = 2027-01-05
ends = 2027-03-26
half_term = [2027-02-15, 2027-02-19]

[[term]]
name = "Summer 2026"
starts = "2026-04-13"
ends = 2026-07-22
"#;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn school_days_skip_weekends_half_terms_closures_and_holidays() {
        let t = Terms::parse("terms.toml", FILE).unwrap();
        assert_eq!(t.all().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["Summer 2026", "Autumn 2026", "Spring 2027"]);
        // Friday 23 October + 5 school days: half-term week off, Monday 2 November closed.
        assert_eq!(t.add_school_days(d("2026-10-23"), 5), Some(d("2026-11-09")));
        // Across the Christmas holiday.
        assert_eq!(t.add_school_days(d("2026-12-17"), 2), Some(d("2027-01-05")));
        assert_eq!(t.school_days_between(d("2026-10-23"), d("2026-11-09")), 5);
        assert!(!t.is_school_day(d("2026-08-03")));
        assert_eq!(t.add_school_days(d("2027-03-25"), 5), None, "no term that far ahead");
        assert_eq!(t.containing(d("2026-10-27")).unwrap().name, "Autumn 2026");
        let spring = t.named("spring 2027").unwrap();
        assert_eq!(t.up_to(spring, 3).iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["Summer 2026", "Autumn 2026", "Spring 2027"]);
        assert_eq!(t.up_to(t.named("Summer 2026").unwrap(), 3).len(), 1);
    }

    #[test]
    fn every_mistake_is_reported_at_once_with_its_term() {
        let bad = r#"
[[term]]
name = "Autumn"
starts = 2026-09-02
ends = 2026-08-01

[[term]]
name = "Spring"
starts = "5th January"
ends = 2027-03-26
half_term = [2027-04-15, 2027-04-19]

[[term]]
name = "Summer"
starts = 2027-04-12
ends = 2027-07-21
closed = [2027-08-01]
"#;
        let e = Terms::parse("terms.toml", bad).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("terms.toml: term \"Autumn\": ends (2026-08-01) is before starts (2026-09-02)"), "{text}");
        assert!(text.contains("term \"Spring\": starts: expected a date such as 2026-09-02, found \"5th January\""), "{text}");
        assert!(text.contains("term \"Summer\": closed: 2027-08-01 is outside the term"), "{text}");
        let overlap = "[[term]]\nname='A'\nstarts=2026-09-01\nends=2026-12-01\n[[term]]\nname='a'\nstarts=2026-11-01\nends=2027-01-01\n";
        let text = Terms::parse("t", overlap).unwrap_err().to_string();
        assert!(text.contains("overlaps") && text.contains("used twice"), "{text}");
        assert!(Terms::parse("t", "").unwrap_err().to_string().contains("no [[term]]"));
        assert!(Terms::parse("t", "[[term]]\nname='A'\nstart=2026-09-01\n").unwrap_err().to_string().contains("unknown field"));
    }
}
