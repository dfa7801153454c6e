//! Subject access requests (UK GDPR Art 15; DPA 2018 Schedules 2 and 3): the pure parts. When
//! an answer is due ([`deadline`]), how far it may be extended ([`latest_extension`]), the
//! fixed list of exemption codes ([`Exemption`]), what Haven can tell about an item before a
//! person decides it ([`flags`]) and how a redaction is burned into its text ([`redact`]).
//! No store, no clock: the commands in `cli::sar` pass the facts and today's date.

pub mod doc;
pub mod flags;
pub mod redact;

use chrono::{Months, NaiveDate};

/// The answer is due one calendar month from receipt, the day of receipt being day 1: the
/// same date in the next month, or that month's last day when it has no such date (the ICO's
/// rule: received 31 January, due 28 February; received 3 September, due 3 October).
pub fn deadline(received: NaiveDate) -> NaiveDate {
    add_months(received, 1)
}

/// The furthest an extension may go: two further months (Art 12(3)), counted the same way.
pub fn latest_extension(received: NaiveDate) -> NaiveDate {
    add_months(received, 3)
}

fn add_months(d: NaiveDate, n: u32) -> NaiveDate {
    // chrono clamps to the month's last day, as the ICO does.
    d.checked_add_months(Months::new(n)).unwrap_or(NaiveDate::MAX)
}

/// An exemption a withheld or redacted item relies on. The codes name the provision (as
/// councils publish one code per exemption), so the disclosure log reads the same everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exemption {
    /// DPA 2018 Sch 2 Part 3 para 16: information identifying another person, or them as a source.
    ThirdParty,
    /// Sch 3 Part 4: education data whose disclosure would be likely to cause serious harm.
    SeriousHarm,
    /// Sch 3 Part 5: child abuse data, asked for by a parent, not in the child's best interests.
    ChildAbuse,
    /// Sch 2 Part 1 para 2: disclosure would prejudice the prevention or detection of crime.
    Crime,
    /// Sch 2 Part 4 para 19: legal professional privilege.
    LegalPrivilege,
    /// Sch 2 Part 4 para 24: a reference given in confidence.
    ConfidentialReference,
    /// Not the requester's personal data at all.
    NotSubjectData,
    /// The requester already holds it (a letter they wrote), kept out of the bundle.
    AlreadyHeld,
}

impl Exemption {
    pub const ALL: [Exemption; 8] = [
        Exemption::ThirdParty,
        Exemption::SeriousHarm,
        Exemption::ChildAbuse,
        Exemption::Crime,
        Exemption::LegalPrivilege,
        Exemption::ConfidentialReference,
        Exemption::NotSubjectData,
        Exemption::AlreadyHeld,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Exemption::ThirdParty => "S2P3-third-party",
            Exemption::SeriousHarm => "S3P4-serious-harm",
            Exemption::ChildAbuse => "S3P5-child-abuse-best-interests",
            Exemption::Crime => "S2P1-crime",
            Exemption::LegalPrivilege => "S2P4-legal-privilege",
            Exemption::ConfidentialReference => "S2P4-confidential-reference",
            Exemption::NotSubjectData => "not-personal-data-of-subject",
            Exemption::AlreadyHeld => "already-held",
        }
    }

    /// What the code means, for the bundle's key to the codes.
    pub fn meaning(self) -> &'static str {
        match self {
            Exemption::ThirdParty => "information about or identifying another person (DPA 2018 Sch 2 Part 3 para 16)",
            Exemption::SeriousHarm => "likely to cause serious harm to someone's physical or mental health (DPA 2018 Sch 3 Part 4)",
            Exemption::ChildAbuse => "child abuse data not in the child's best interests to disclose (DPA 2018 Sch 3 Part 5)",
            Exemption::Crime => "would prejudice the prevention or detection of crime (DPA 2018 Sch 2 Part 1 para 2)",
            Exemption::LegalPrivilege => "legal professional privilege (DPA 2018 Sch 2 Part 4 para 19)",
            Exemption::ConfidentialReference => "a reference given in confidence (DPA 2018 Sch 2 Part 4 para 24)",
            Exemption::NotSubjectData => "not personal data of the person asking",
            Exemption::AlreadyHeld => "information the person asking already holds",
        }
    }

    /// The code as given on the command line (case-insensitive); the error lists every code.
    pub fn parse(s: &str) -> Result<Exemption, String> {
        let t = s.trim();
        Exemption::ALL.into_iter().find(|e| e.code().eq_ignore_ascii_case(t)).ok_or_else(|| {
            format!(
                "--exemption {s:?} is not an exemption code; use one of: {}",
                Exemption::ALL.iter().map(|e| e.code()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// How one item was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Disclose,
    Withhold,
    Redact,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Disclose => "disclose",
            Decision::Withhold => "withhold",
            Decision::Redact => "redact",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "disclose" => Some(Decision::Disclose),
            "withhold" => Some(Decision::Withhold),
            "redact" => Some(Decision::Redact),
            _ => None,
        }
    }
}

/// Item numbers as written on the command line: `3`, `1,4`, `2-9`, `1-3,7`. Each once, in order.
pub fn parse_items(s: &str) -> Result<Vec<i64>, String> {
    let bad = || format!("{s:?} is not a list of item numbers (e.g. 3, 1,4 or 2-9)");
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (a, b): (i64, i64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a < 1 || b < a || b - a > 10_000 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// "SAR-0007": a request's reference on its bundle and in messages.
pub fn reference(id: i64) -> String {
    format!("SAR-{id:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_month_from_receipt_is_the_same_date_or_the_month_end() {
        assert_eq!(deadline(d("2027-01-31")), d("2027-02-28"));
        assert_eq!(deadline(d("2028-01-31")), d("2028-02-29"));
        assert_eq!(deadline(d("2026-09-03")), d("2026-10-03"));
        assert_eq!(deadline(d("2026-12-15")), d("2027-01-15"));
        assert_eq!(deadline(d("2026-08-31")), d("2026-09-30"));
        assert_eq!(latest_extension(d("2026-11-30")), d("2027-02-28"));
    }

    #[test]
    fn item_lists_and_ranges() {
        assert_eq!(parse_items("3"), Ok(vec![3]));
        assert_eq!(parse_items("4, 1-3,3"), Ok(vec![1, 2, 3, 4]));
        for bad in ["", "0", "3-1", "a", "1,,2", "-2"] {
            assert!(parse_items(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exemption_codes_parse_and_an_unknown_one_lists_them() {
        assert_eq!(Exemption::parse("s2p3-THIRD-party"), Ok(Exemption::ThirdParty));
        for e in Exemption::ALL {
            assert_eq!(Exemption::parse(e.code()), Ok(e));
        }
        let err = Exemption::parse("privacy").unwrap_err();
        assert!(err.contains("\"privacy\" is not an exemption code") && err.contains("S3P4-serious-harm"), "{err}");
    }
}
