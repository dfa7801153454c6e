//! The school's retention schedule (`retention.toml` beside `haven.toml`): which series each
//! incident belongs to, how long it is kept and what happens then. Checked the way the rules
//! are: every mistake at once, each with its line and column, and nothing half-loaded.
//!
//! The shipped defaults are the IRMS schools' toolkit's: the child-protection file and pastoral
//! records are kept to the pupil's 25th birthday and then reviewed. A school may keep longer or
//! shorter, but the IRMS asks for the reason to be written down, so a series that differs from
//! the defaults needs `reason`. Nothing is ever destroyed by the schedule alone: `then` can only
//! be `review`, and destruction is a decision people record.

use crate::category::Categories;
use chrono::{Months, NaiveDate};
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use toml::Spanned;

/// The file's name, beside `haven.toml`.
pub const FILE_NAME: &str = "retention.toml";

/// What `haven init` writes: the shipped defaults, explained.
pub const DEFAULT_FILE: &str = r#"# Haven's retention schedule: how long each series of records is kept before it is reviewed.
# These are the IRMS schools' toolkit defaults. A series that differs from them needs a
# `reason` (the IRMS asks for the reason a school keeps longer or shorter to be recorded).
# `keep`: "dob+25y" (to the pupil's 25th birthday), "left+6y" (years after leaving the roll),
# "75y" (years after the incident). `then` is always "review": Haven never destroys records
# on a schedule; destruction is a decision two people record. See README "Retention and holds".

# Disposal (`haven dispose`): how long an approved disposal waits before it can be carried
# out (either person may cancel it meanwhile, and a hold set meanwhile stops it), and how long
# the school's backups are kept, so the disposal log can say when the last copy is gone.
[disposal]
cooling_off = "14d"
backups_kept_for = "35d"

[[series]]
name = "child_protection_file"
applies = { safeguarding = true }
keep = "dob+25y"
then = "review"

[[series]]
name = "pastoral"
applies = { safeguarding = false }
keep = "dob+25y"
then = "review"

# An example of a deviation, for incidents in a category of your own:
# [[series]]
# name = "csa_related"
# applies = { category = "Sexual abuse" }
# keep = "75y"
# then = "review"
# reason = "IICSA final report (2022) recommends 75 years for records of child sexual abuse"
"#;

/// How long a series is kept, from which date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Years after the pupil's date of birth (`dob+25y`).
    FromBirth(u32),
    /// Years after the pupil left the roll (`left+6y`).
    FromLeaving(u32),
    /// Years after the latest incident in the series (`75y`).
    FromRecord(u32),
}

impl Keep {
    fn parse(s: &str) -> Result<Keep, String> {
        let t = s.trim().to_ascii_lowercase().replace(' ', "");
        let (base, years) = match t.split_once('+') {
            Some((base, years)) => (Some(base), years),
            None => (None, t.as_str()),
        };
        let n = years
            .strip_suffix('y')
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=150).contains(n))
            .ok_or_else(|| format!("keep = {s:?}: write it as \"dob+25y\", \"left+6y\" or \"75y\" (whole years, 1 to 150)"))?;
        match base {
            None => Ok(Keep::FromRecord(n)),
            Some("dob") => Ok(Keep::FromBirth(n)),
            Some("left") => Ok(Keep::FromLeaving(n)),
            Some(other) => {
                Err(format!("keep = {s:?}: {other:?} is not a date Haven knows; use dob (date of birth) or left (left the roll)"))
            }
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::FromBirth(n) => write!(f, "date of birth + {n} years"),
            Keep::FromLeaving(n) => write!(f, "left the roll + {n} years"),
            Keep::FromRecord(n) => write!(f, "latest incident + {n} years"),
        }
    }
}

/// Which incidents a series holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies {
    /// Every incident whose category is (or is not) safeguarding.
    Safeguarding(bool),
    /// Incidents in this category (its canonical name): more specific, so it wins.
    Category(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    pub applies: Applies,
    pub keep: Keep,
    /// Why the school deviates from the defaults (required when it does).
    pub reason: Option<String>,
}

/// The checked schedule.
#[derive(Debug, Clone)]
pub struct Policy {
    pub series: Vec<Series>,
    pub disposal: DisposalSettings,
    /// Where it came from, for messages: the file, or "the shipped defaults".
    pub origin: String,
}

/// Every mistake in a retention file, each as `file:line:column: message`.
#[derive(Debug)]
pub struct PolicyErrors(pub Vec<String>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for PolicyErrors {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRaw {
    #[serde(default)]
    series: Vec<Spanned<SeriesRaw>>,
    #[serde(default)]
    disposal: Option<Spanned<DisposalRaw>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisposalRaw {
    cooling_off: Option<String>,
    backups_kept_for: Option<String>,
}

/// How disposal runs (`[disposal]` in `retention.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisposalSettings {
    /// How long an approved disposal waits before it may be carried out.
    pub cooling_off: std::time::Duration,
    /// How long the school keeps its backups: a disposed pupil's records are gone from every
    /// backup once this has passed after the disposal.
    pub backups_kept_for: std::time::Duration,
}

impl Default for DisposalSettings {
    fn default() -> Self {
        DisposalSettings { cooling_off: DAYS * 14, backups_kept_for: DAYS * 35 }
    }
}

const DAYS: std::time::Duration = std::time::Duration::from_secs(86_400);

/// A duration as people read it: "14 days", "1 day", "90 seconds".
pub fn describe(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesRaw {
    name: String,
    applies: AppliesRaw,
    keep: String,
    then: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppliesRaw {
    safeguarding: Option<bool>,
    category: Option<String>,
}

fn defaults() -> Vec<Series> {
    vec![
        Series { name: "child_protection_file".into(), applies: Applies::Safeguarding(true), keep: Keep::FromBirth(25), reason: None },
        Series { name: "pastoral".into(), applies: Applies::Safeguarding(false), keep: Keep::FromBirth(25), reason: None },
    ]
}

impl Policy {
    /// The schedule for a school whose config is in `config_dir`: its `retention.toml`, or the
    /// shipped defaults when there is none.
    pub fn load(config_dir: &Path, categories: &Categories) -> Result<Policy, PolicyErrors> {
        let path = config_dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Policy::parse(&path.display().to_string(), &text, categories),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Policy {
                series: defaults(),
                disposal: DisposalSettings::default(),
                origin: "the shipped defaults (no retention.toml)".into(),
            }),
            Err(e) => Err(PolicyErrors(vec![format!("{}: cannot read: {e}", path.display())])),
        }
    }

    /// Parses and checks one retention file against the school's categories.
    pub fn parse(label: &str, text: &str, categories: &Categories) -> Result<Policy, PolicyErrors> {
        let at = |span: std::ops::Range<usize>| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{label}:{line}:{column}")
        };
        let raw: FileRaw = toml::from_str(text).map_err(|e| {
            let place = e.span().map_or_else(|| format!("{label}:1:1"), at);
            PolicyErrors(vec![format!("{place}: {}", e.message())])
        })?;
        let mut errors = Vec::new();
        let mut series: Vec<Series> = Vec::new();
        let shipped = defaults();
        let mut disposal = DisposalSettings::default();
        if let Some(d) = raw.disposal {
            let place = at(d.span());
            let d = d.into_inner();
            let mut duration = |key: &str, value: Option<String>, into: &mut std::time::Duration| {
                let Some(v) = value else { return };
                match crate::duration::parse_duration(&v) {
                    Some(parsed) => *into = parsed,
                    None => errors.push(format!("{place}: [disposal] {key} = {v:?}: write a duration such as \"14d\" or \"5w\"")),
                }
            };
            duration("cooling_off", d.cooling_off, &mut disposal.cooling_off);
            duration("backups_kept_for", d.backups_kept_for, &mut disposal.backups_kept_for);
        }
        for entry in raw.series {
            let place = at(entry.span());
            let s = entry.into_inner();
            let mut fail = |m: String| errors.push(format!("{place}: series {:?}: {m}", s.name));
            if s.name.trim().is_empty() {
                fail("name is empty".into());
                continue;
            }
            if series.iter().any(|o| o.name == s.name) {
                fail("a series of this name is already defined above".into());
                continue;
            }
            if !s.then.trim().eq_ignore_ascii_case("review") {
                fail(format!(
                    "then = {:?}: Haven never destroys records on a schedule; write then = \"review\" \
                     (destruction is a decision people record)",
                    s.then
                ));
            }
            let applies = match (s.applies.safeguarding, s.applies.category.as_deref()) {
                (Some(flag), None) => Some(Applies::Safeguarding(flag)),
                (None, Some(name)) => match categories.find(name) {
                    Some(c) => Some(Applies::Category(c.name.clone())),
                    None => {
                        let known: Vec<&str> = categories.iter().map(|c| c.name.as_str()).collect();
                        fail(format!("applies.category {name:?} is not one of the school's categories ({})", known.join(", ")));
                        None
                    }
                },
                _ => {
                    fail("applies needs exactly one of safeguarding = true|false or category = \"…\"".into());
                    None
                }
            };
            let keep = match Keep::parse(&s.keep) {
                Ok(k) => Some(k),
                Err(m) => {
                    fail(m);
                    None
                }
            };
            let (Some(applies), Some(keep)) = (applies, keep) else { continue };
            let reason = s.reason.filter(|r| !r.trim().is_empty());
            let standard = shipped.iter().any(|d| d.name == s.name && d.applies == applies && d.keep == keep);
            if !standard && reason.is_none() {
                fail(format!(
                    "differs from the IRMS defaults (child_protection_file and pastoral, both dob+25y): \
                     add reason = \"…\" saying why this school keeps {keep}"
                ));
                continue;
            }
            series.push(Series { name: s.name, applies, keep, reason });
        }
        for c in categories.iter() {
            let covering: Vec<&Series> = series.iter().filter(|s| s.applies == Applies::Category(c.name.clone())).collect();
            if covering.len() > 1 {
                errors.push(format!("{label}: category {:?} is in more than one series ({})", c.name, names(&covering)));
            }
            if covering.is_empty() && !series.iter().any(|s| s.applies == Applies::Safeguarding(c.safeguarding)) && errors.is_empty() {
                errors.push(format!(
                    "{label}: no series holds incidents in category {:?} (safeguarding = {}): add one with applies = {{ safeguarding = {} }}",
                    c.name, c.safeguarding, c.safeguarding
                ));
            }
        }
        for flag in [true, false] {
            let covering: Vec<&Series> = series.iter().filter(|s| s.applies == Applies::Safeguarding(flag)).collect();
            if covering.len() > 1 {
                errors.push(format!("{label}: more than one series applies to safeguarding = {flag} ({})", names(&covering)));
            }
        }
        if errors.is_empty() { Ok(Policy { series, disposal, origin: label.to_string() }) } else { Err(PolicyErrors(errors)) }
    }

    /// The series an incident in `category` belongs to: the one naming its category, else the
    /// one for its safeguarding flag.
    pub fn series_for(&self, category: &str, categories: &Categories) -> Option<&Series> {
        let canonical = categories.find(category).map(|c| (c.name.as_str(), c.safeguarding));
        let (name, safeguarding) = canonical.unwrap_or((category, categories.default_category().safeguarding));
        self.series
            .iter()
            .find(|s| matches!(&s.applies, Applies::Category(c) if c == name))
            .or_else(|| self.series.iter().find(|s| s.applies == Applies::Safeguarding(safeguarding)))
    }

    pub fn get(&self, name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.name == name)
    }
}

fn names(list: &[&Series]) -> String {
    list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// When a pupil's records in a series fall due for review, and on what basis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueDate {
    On {
        date: NaiveDate,
        basis: String,
    },
    /// Cannot be worked out yet (on roll and no date of birth; on roll for a `left+` series).
    NotYet(String),
}

/// The pupil facts the schedule needs.
pub struct PupilDates {
    pub date_of_birth: Option<NaiveDate>,
    pub left_on: Option<NaiveDate>,
    /// The latest incident in the series.
    pub latest: NaiveDate,
}

/// When `keep` runs out for a pupil. Without a date of birth, a `dob+` rule falls back to the
/// date they left the roll (and says so), as the research asks.
pub fn due(keep: Keep, p: &PupilDates) -> DueDate {
    let add = |d: NaiveDate, years: u32| d.checked_add_months(Months::new(years * 12)).unwrap_or(NaiveDate::MAX);
    match keep {
        Keep::FromBirth(n) => match (p.date_of_birth, p.left_on) {
            (Some(dob), _) => DueDate::On { date: add(dob, n), basis: keep.to_string() },
            (None, Some(left)) => {
                DueDate::On { date: add(left, n), basis: format!("left the roll + {n} years (no date of birth on the roll: check it)") }
            }
            (None, None) => DueDate::NotYet("no date of birth on the roll, and still on roll".into()),
        },
        Keep::FromLeaving(n) => match p.left_on {
            Some(left) => DueDate::On { date: add(left, n), basis: keep.to_string() },
            None => DueDate::NotYet("still on roll".into()),
        },
        Keep::FromRecord(n) => DueDate::On { date: add(p.latest, n), basis: keep.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;

    fn categories() -> Categories {
        let c = |name: &str, safeguarding: bool| Category {
            name: name.into(),
            aliases: vec![],
            visibility: crate::visibility::Visibility::dsl_team(),
            safeguarding,
        };
        Categories::new(vec![c("Safeguarding", true), c("Pastoral issue", false), c("Sexual abuse", true)], "Pastoral issue")
            .expect("categories")
    }

    #[test]
    fn the_shipped_file_is_the_defaults_and_needs_no_reason() {
        let p = Policy::parse("retention.toml", DEFAULT_FILE, &categories()).expect("defaults parse");
        assert_eq!(p.series, defaults());
    }

    #[test]
    fn a_category_series_wins_over_the_safeguarding_one() {
        let text = format!(
            "{DEFAULT_FILE}\n[[series]]\nname = \"csa\"\napplies = {{ category = \"sexual abuse\" }}\nkeep = \"75y\"\nthen = \"review\"\nreason = \"IICSA\"\n"
        );
        let p = Policy::parse("r", &text, &categories()).expect("parses");
        assert_eq!(p.series_for("Sexual abuse", &categories()).map(|s| s.name.as_str()), Some("csa"));
        assert_eq!(p.series_for("Safeguarding", &categories()).map(|s| s.name.as_str()), Some("child_protection_file"));
        assert_eq!(p.series_for("Pastoral issue", &categories()).map(|s| s.name.as_str()), Some("pastoral"));
    }

    #[test]
    fn every_mistake_is_reported_with_its_place() {
        let text = "[[series]]\nname = \"pastoral\"\napplies = { safeguarding = false }\nkeep = \"dob+20y\"\nthen = \"destroy\"\n\n\
                    [[series]]\nname = \"cp\"\napplies = { category = \"Safeguardin\" }\nkeep = \"25 years\"\nthen = \"review\"\n";
        let e = Policy::parse("r.toml", text, &categories()).expect_err("errors").0;
        let all = e.join("\n");
        assert!(all.contains("r.toml:1:1: series \"pastoral\": then = \"destroy\""), "{all}");
        assert!(all.contains("add reason"), "{all}");
        assert!(all.contains("r.toml:7:1: series \"cp\": applies.category \"Safeguardin\" is not one of"), "{all}");
        assert!(all.contains("keep = \"25 years\""), "{all}");
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_placed() {
        let e = Policy::parse("r", "[[series]]\nname = \"x\"\nkeepp = \"1y\"\n", &categories()).expect_err("unknown");
        assert!(e.0[0].starts_with("r:3:1:") || e.0[0].starts_with("r:1:1:"), "{:?}", e.0);
        assert!(e.0[0].contains("keepp"), "{:?}", e.0);
        let e = Policy::parse("r", "[[series]\n", &categories()).expect_err("syntax");
        assert!(e.0[0].starts_with("r:1:"), "{:?}", e.0);
    }

    #[test]
    fn disposal_settings_default_and_are_checked() {
        let p = Policy::parse("r", DEFAULT_FILE, &categories()).expect("defaults");
        assert_eq!(p.disposal, DisposalSettings::default());
        assert_eq!(p.disposal.cooling_off, DAYS * 14);
        let text = DEFAULT_FILE.replace("cooling_off = \"14d\"", "cooling_off = \"3w\"");
        assert_eq!(Policy::parse("r", &text, &categories()).expect("3w").disposal.cooling_off, DAYS * 21);
        let text = DEFAULT_FILE.replace("backups_kept_for = \"35d\"", "backups_kept_for = \"a month\"");
        let e = Policy::parse("r", &text, &categories()).expect_err("bad duration").0;
        assert!(e[0].contains("[disposal] backups_kept_for = \"a month\""), "{e:?}");
        assert_eq!(describe(DAYS * 14), "14 days");
        assert_eq!(describe(std::time::Duration::from_secs(1)), "1 second");
    }

    #[test]
    fn uncovered_incidents_are_an_error() {
        let text =
            "[[series]]\nname = \"child_protection_file\"\napplies = { safeguarding = true }\nkeep = \"dob+25y\"\nthen = \"review\"\n";
        let e = Policy::parse("r", text, &categories()).expect_err("pastoral uncovered").0;
        assert!(e[0].contains("no series holds incidents in category \"Pastoral issue\""), "{e:?}");
    }

    #[test]
    fn due_dates_follow_the_rule_and_fall_back_without_a_birth_date() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let p = PupilDates { date_of_birth: Some(d("2008-02-29")), left_on: None, latest: d("2020-05-01") };
        assert_eq!(due(Keep::FromBirth(25), &p), DueDate::On { date: d("2033-02-28"), basis: "date of birth + 25 years".into() });
        assert_eq!(due(Keep::FromRecord(75), &p), DueDate::On { date: d("2095-05-01"), basis: "latest incident + 75 years".into() });
        assert!(matches!(due(Keep::FromLeaving(6), &p), DueDate::NotYet(_)));
        let no_dob = PupilDates { date_of_birth: None, left_on: Some(d("2024-07-19")), latest: d("2020-05-01") };
        match due(Keep::FromBirth(25), &no_dob) {
            DueDate::On { date, basis } => {
                assert_eq!(date, d("2049-07-19"));
                assert!(basis.contains("no date of birth"));
            }
            other => panic!("{other:?}"),
        }
        let neither = PupilDates { date_of_birth: None, left_on: None, latest: d("2020-05-01") };
        assert!(matches!(due(Keep::FromBirth(25), &neither), DueDate::NotYet(_)));
    }
}
