//! Transfer of a leaver's child-protection file (issue 22; KCSIE Annex C): within a number of
//! school days, separately from the main pupil file, securely, with confirmation of receipt.
//!
//! This module is the pure part: `[transfer]` settings, the deadline and reminder ladder
//! counted in the school's days (`crate::terms`), the destination as written on the command
//! line, and the receiving DSL's `Received: NAME, ROLE` line. No I/O, no clock: the store keeps
//! cases (`store::transfer`), the CLI runs them (`cli::transfer`), [`schedule`] fires the ladder
//! and [`bundle`] signs and checks what is sent.

pub mod bundle;
pub mod crypt;
pub mod schedule;

use crate::terms::Terms;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// When the deadline's clock starts: local guidance differs (Plymouth counts from leaving,
/// North Northants from the new school confirming enrolment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockStart {
    /// The day the pupil left the roll.
    #[default]
    LeftOn,
    /// The day the destination school became known (`haven leaver --destination`).
    DestinationKnown,
}

/// What deadlines count: the school's days (weekdays in term, from `school.terms_file`), as
/// KCSIE's "5 days" is usually read, or every calendar day, where local guidance says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    #[default]
    School,
    Calendar,
}

/// What the school keeps of a pupil's records once the destination's receipt has come back
/// (`[transfer] retain_after`). Local guidance differs (North Northants keeps no copy, the
/// South West protocol keeps the chronology for a year), so it is the school's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetainAfter {
    /// Everything, marked as transferred (the default).
    #[default]
    Full,
    /// The dated list of entries: when, what kind, which category and priority, who recorded
    /// it, its outcomes and the transfer mark. The message bodies (text and HTML), subject
    /// lines, senders, notes, AI suggestions, attachments and the original messages go.
    Chronology,
    /// Nothing: the records fall due for a two-person disposal (`haven dispose`) on receipt.
    None,
}

impl RetainAfter {
    pub fn as_str(self) -> &'static str {
        match self {
            RetainAfter::Full => "full",
            RetainAfter::Chronology => "chronology",
            RetainAfter::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<RetainAfter> {
        [RetainAfter::Full, RetainAfter::Chronology, RetainAfter::None].into_iter().find(|r| r.as_str() == s)
    }
}

/// How long what is kept after a transfer is kept before it is reviewed (`[transfer] retain_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum RetainFor {
    /// A year from the receipt (the South West protocol's copy of the chronology).
    #[serde(rename = "1y")]
    OneYear,
    /// To the pupil's 25th birthday (the IRMS default for the child-protection file).
    #[default]
    #[serde(rename = "dob+25y")]
    Dob25,
}

impl RetainFor {
    pub fn as_str(self) -> &'static str {
        match self {
            RetainFor::OneYear => "1y",
            RetainFor::Dob25 => "dob+25y",
        }
    }

    pub fn parse(s: &str) -> Option<RetainFor> {
        [RetainFor::OneYear, RetainFor::Dob25].into_iter().find(|r| r.as_str() == s)
    }

    /// The review date of what is kept after a receipt on `received_on`; None: the pupil's 25th
    /// birthday, which the retention schedule works out from their date of birth.
    pub fn until(self, after: RetainAfter, received_on: NaiveDate) -> Option<NaiveDate> {
        match (after, self) {
            (RetainAfter::None, _) => Some(received_on),
            (_, RetainFor::OneYear) => received_on.checked_add_months(chrono::Months::new(12)),
            (_, RetainFor::Dob25) => None,
        }
    }
}

/// `[transfer]` in haven.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSettings {
    /// School days from the clock's start to send the file (KCSIE: 5).
    #[serde(default = "five")]
    pub deadline: u32,
    #[serde(default)]
    pub clock_starts: ClockStart,
    /// `days = "school" | "calendar"`: what `deadline` and `receipt_within` count.
    #[serde(default)]
    pub days: DayKind,
    /// School days after sending to wait for a receipt before chasing (North Northants: 5).
    #[serde(default = "five")]
    pub receipt_within: u32,
    /// Other Haven schools' pinned transfer keys (see [`PinnedSchool`]), for sending to them
    /// encrypted through their intake.
    #[serde(default)]
    pub schools_file: Option<std::path::PathBuf>,
    /// What is kept here once the receipt has come back (see [`RetainAfter`]).
    #[serde(default)]
    pub retain_after: RetainAfter,
    /// When what is kept is reviewed (see [`RetainFor`]).
    #[serde(default)]
    pub retain_for: RetainFor,
    /// Whether the advance notice (`haven transfer notify-ahead`) names the pupil. Off: the
    /// notice gives the leaving date and the DSL's contact only.
    #[serde(default)]
    pub notice_names_pupil: bool,
}

fn five() -> u32 {
    5
}

impl Default for TransferSettings {
    fn default() -> Self {
        TransferSettings {
            deadline: 5,
            clock_starts: ClockStart::LeftOn,
            days: DayKind::School,
            receipt_within: 5,
            schools_file: None,
            retain_after: RetainAfter::Full,
            retain_for: RetainFor::Dob25,
            notice_names_pupil: false,
        }
    }
}

impl TransferSettings {
    /// Every value out of range, as `transfer.KEY: …` lines.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (key, v) in [("deadline", self.deadline), ("receipt_within", self.receipt_within)] {
            if !(1..=60).contains(&v) {
                errors.push(format!("transfer.{key}: expected a number of school days from 1 to 60, found {v}"));
            }
        }
        errors
    }
}

/// Another Haven school, pinned: its name as destinations give it, its intake address and its
/// transfer key (`x25519:HEX`, as its `haven transfer key` prints it).
///
/// ```toml
/// [[school]]
/// name = "Brook Academy"
/// intake = "safeguarding@brook.sch.example"
/// key = "x25519:9f2c…"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedSchool {
    pub name: String,
    pub intake: String,
    pub key: String,
}

/// The schools in `transfer.schools_file`.
pub fn read_pinned(path: &std::path::Path) -> Result<Vec<PinnedSchool>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        school: Vec<PinnedSchool>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("transfer.schools_file: {}: cannot be read: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("transfer.schools_file: {}: {}", path.display(), e.message()))?;
    Ok(file.school)
}

/// The message a transfer needing a deadline gives when no terms file is configured.
pub const NO_TERMS: &str = "school.terms_file is not set: transfer deadlines are counted in school days, so Haven needs the \
school's terms; add `terms_file = \"terms.toml\"` under [school] (examples/eaton/terms.toml shows the format), or count calendar \
days with `days = \"calendar\"` under [transfer], then run the command again";

/// Where the file goes: the school's name and, when known, its DSL's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub school: String,
    pub dsl_email: Option<String>,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.dsl_email {
            Some(e) => write!(f, "{} <{e}>", self.school),
            None => f.write_str(&self.school),
        }
    }
}

/// Reads `SCHOOL NAME <dsl@school>` or `SCHOOL NAME`.
pub fn parse_destination(text: &str) -> Result<Destination, String> {
    let text = text.trim();
    let (school, email) = match (text.find('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close && close == text.len() - 1 => {
            (text[..open].trim(), Some(text[open + 1..close].trim().to_ascii_lowercase()))
        }
        (None, None) => (text, None),
        _ => return Err(format!("{text:?}: expected \"SCHOOL NAME <dsl@school.example>\" or \"SCHOOL NAME\"")),
    };
    if school.is_empty() {
        return Err(format!("{text:?}: the school's name is missing (\"SCHOOL NAME <dsl@school.example>\")"));
    }
    if let Some(e) = &email {
        let ok = e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !e.contains(char::is_whitespace));
        if !ok {
            return Err(format!("{text:?}: {e:?} is not an email address"));
        }
    }
    Ok(Destination { school: school.to_string(), dsl_email: email })
}

/// The deadline: the day the clock starts and the last school day to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub clock_start: NaiveDate,
    pub due_on: NaiveDate,
}

/// Why a deadline cannot be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    #[error("{}", NO_TERMS)]
    NoTerms,
    #[error(
        "school.terms_file has no term {days} school days after {from}: add the coming terms to the terms file, then run the command again"
    )]
    BeyondTerms { from: NaiveDate, days: u32 },
}

/// The days deadlines count in: the school's (from its terms) or every calendar day.
#[derive(Debug, Clone, Copy)]
pub enum Days<'a> {
    School(&'a Terms),
    Calendar,
}

impl<'a> Days<'a> {
    /// The days `settings` asks for: school days need the school's terms.
    pub fn of(terms: Option<&'a Terms>, settings: &TransferSettings) -> Result<Days<'a>, DeadlineError> {
        match settings.days {
            DayKind::Calendar => Ok(Days::Calendar),
            DayKind::School => terms.map(Days::School).ok_or(DeadlineError::NoTerms),
        }
    }

    /// "school days" or "days", as messages say them.
    pub fn unit(&self) -> &'static str {
        match self {
            Days::School(_) => "school days",
            Days::Calendar => "days",
        }
    }

    fn counts(&self, day: NaiveDate) -> bool {
        match self {
            Days::School(t) => t.is_school_day(day),
            Days::Calendar => true,
        }
    }

    /// The `n`th counted day after `from`; `None` past the last term.
    pub fn add(&self, from: NaiveDate, n: u32) -> Option<NaiveDate> {
        match self {
            Days::School(t) => t.add_school_days(from, n),
            Days::Calendar => from.checked_add_days(chrono::Days::new(u64::from(n))),
        }
    }

    /// Counted days after `from` up to and including `to`.
    pub fn between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        match self {
            Days::School(t) => t.school_days_between(from, to),
            Days::Calendar => u32::try_from((to - from).num_days().max(0)).unwrap_or(u32::MAX),
        }
    }

    /// The counted day `n` counted days before `day` (or the earliest looked at).
    fn before(&self, day: NaiveDate, n: u32) -> NaiveDate {
        let mut d = day;
        let mut left = n;
        for _ in 0..400 {
            if left == 0 {
                break;
            }
            let Some(prev) = d.pred_opt() else { break };
            d = prev;
            if self.counts(d) {
                left -= 1;
            }
        }
        d
    }

    /// The first counted day after `day`, or the next calendar day when the terms run out.
    fn next(&self, day: NaiveDate) -> NaiveDate {
        self.add(day, 1).or_else(|| day.succ_opt()).unwrap_or(day)
    }

    /// [`Days::add`], or as many calendar days again (and a half) when the terms run out.
    fn add_or_guess(&self, from: NaiveDate, n: u32) -> NaiveDate {
        self.add(from, n).unwrap_or_else(|| from + chrono::Days::new(u64::from(n) * 7 / 5))
    }
}

/// The deadline of a case, or `None` while its clock waits for a destination.
pub fn deadline(
    days: Days<'_>,
    settings: &TransferSettings,
    left_on: NaiveDate,
    destination_on: Option<NaiveDate>,
) -> Result<Option<Deadline>, DeadlineError> {
    let start = match settings.clock_starts {
        ClockStart::LeftOn => left_on,
        ClockStart::DestinationKnown => match destination_on {
            Some(d) => d.max(left_on),
            None => return Ok(None),
        },
    };
    let due_on = days.add(start, settings.deadline).ok_or(DeadlineError::BeyondTerms { from: start, days: settings.deadline })?;
    Ok(Some(Deadline { clock_start: start, due_on }))
}

/// What a rung of the ladder is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RungKind {
    /// The case was opened: the DSL team is told what to send and by when.
    Opened,
    /// Two school days before the deadline, nothing sent yet.
    Reminder,
    /// The deadline has passed unsent: the DSL team and the head.
    Overdue,
    /// Sent, no receipt within `receipt_within` school days: chase the receiving DSL.
    Chase,
    /// Still no receipt after as long again: the DSL team and the head.
    ChaseOverdue,
}

impl RungKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RungKind::Opened => "opened",
            RungKind::Reminder => "reminder",
            RungKind::Overdue => "overdue",
            RungKind::Chase => "chase",
            RungKind::ChaseOverdue => "chase_overdue",
        }
    }

    pub fn parse(s: &str) -> Option<RungKind> {
        [RungKind::Opened, RungKind::Reminder, RungKind::Overdue, RungKind::Chase, RungKind::ChaseOverdue]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Whether the head is told too (an escalation).
    pub fn escalates(self) -> bool {
        matches!(self, RungKind::Overdue | RungKind::ChaseOverdue)
    }

    /// The stage the case must still be at for the rung to fire.
    pub fn stage(self) -> &'static str {
        match self {
            RungKind::Opened | RungKind::Reminder | RungKind::Overdue => "send",
            RungKind::Chase | RungKind::ChaseOverdue => "receipt",
        }
    }
}

/// One rung: its number (unique in the case), what it is for and when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LadderRung {
    pub rung: i32,
    pub kind: RungKind,
    pub due: DateTime<Utc>,
}

/// Reminders go out at 08:00 school time.
pub fn morning(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let at = day.and_time(NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default());
    tz.from_local_datetime(&at).earliest().map_or_else(|| Utc.from_utc_datetime(&at), |t| t.with_timezone(&Utc))
}

/// The ladder until the file is sent: told now, reminded two school days before the deadline
/// (when that is still ahead), escalated on the first school morning after it. `deadline` is
/// `None` while the clock waits for a destination: then only the first rung.
pub fn send_ladder(days: Days<'_>, deadline: Option<Deadline>, opened: DateTime<Utc>, tz: Tz) -> Vec<LadderRung> {
    let mut rungs = vec![LadderRung { rung: 0, kind: RungKind::Opened, due: opened }];
    let Some(d) = deadline else { return rungs };
    let remind = morning(days.before(d.due_on, 2), tz);
    if remind > opened {
        rungs.push(LadderRung { rung: 1, kind: RungKind::Reminder, due: remind });
    }
    rungs.push(LadderRung { rung: 2, kind: RungKind::Overdue, due: morning(days.next(d.due_on), tz).max(opened) });
    rungs
}

/// After sending: the last school day for a receipt, and the chase on the school morning after
/// it, escalated to the head after as long again.
pub fn receipt_ladder(days: Days<'_>, settings: &TransferSettings, sent_on: NaiveDate, tz: Tz) -> (NaiveDate, Vec<LadderRung>) {
    let within = settings.receipt_within;
    let receipt_due = days.add_or_guess(sent_on, within);
    let chase = days.next(receipt_due);
    let escalate = days.add_or_guess(chase, within);
    let rungs = vec![
        LadderRung { rung: 10, kind: RungKind::Chase, due: morning(chase, tz) },
        LadderRung { rung: 11, kind: RungKind::ChaseOverdue, due: morning(escalate, tz) },
    ];
    (receipt_due, rungs)
}

/// A receipt as the receiving DSL writes it: the first line that starts `Received:` (any
/// case), `NAME, ROLE`. Quoted lines (`>`) are not read.
pub fn parse_receipt(text: &str) -> Option<(String, String)> {
    let line = text.lines().map(str::trim).find(|l| l.len() > 9 && l[..9].eq_ignore_ascii_case("received:"))?;
    let (name, role) = line[9..].split_once(',')?;
    let (name, role) = (name.trim(), role.trim());
    (!name.is_empty() && !role.is_empty()).then(|| (name.to_string(), role.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    const TERMS: &str = r#"
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
"#;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn terms() -> Terms {
        Terms::parse("terms.toml", TERMS).unwrap()
    }

    #[test]
    fn the_deadline_counts_school_days_over_the_half_term() {
        let t = terms();
        let s = TransferSettings::default();
        // Friday 23 October: half-term week off, Monday 2 November closed: Monday 9 November.
        let school = Days::of(Some(&t), &s).unwrap();
        let dl = deadline(school, &s, d("2026-10-23"), None).unwrap().unwrap();
        assert_eq!(dl, Deadline { clock_start: d("2026-10-23"), due_on: d("2026-11-09") });
        // Left in the Christmas holiday: the first five days of the new term.
        assert_eq!(deadline(school, &s, d("2026-12-21"), None).unwrap().unwrap().due_on, d("2027-01-11"));
        assert!(matches!(Days::of(None, &s), Err(DeadlineError::NoTerms)));
        assert!(DeadlineError::NoTerms.to_string().contains("add `terms_file = \"terms.toml\"` under [school]"));
        assert!(matches!(deadline(school, &s, d("2027-03-24"), None), Err(DeadlineError::BeyondTerms { .. })));
        let known = TransferSettings { clock_starts: ClockStart::DestinationKnown, ..s };
        assert_eq!(deadline(school, &known, d("2026-10-23"), None), Ok(None), "waits for the destination");
        assert_eq!(deadline(school, &known, d("2026-10-23"), Some(d("2026-11-03"))).unwrap().unwrap().due_on, d("2026-11-10"));
        // Calendar days, where local guidance counts them: no terms needed.
        let calendar = TransferSettings { days: DayKind::Calendar, ..TransferSettings::default() };
        let days = Days::of(None, &calendar).unwrap();
        assert_eq!(deadline(days, &calendar, d("2026-10-23"), None).unwrap().unwrap().due_on, d("2026-10-28"));
        assert_eq!((days.unit(), days.between(d("2026-10-23"), d("2026-10-30"))), ("days", 7));
    }

    #[test]
    fn the_ladder_reminds_before_and_escalates_after_the_deadline() {
        let t = terms();
        let opened = Utc.with_ymd_and_hms(2026, 10, 23, 15, 0, 0).unwrap();
        let dl = Deadline { clock_start: d("2026-10-23"), due_on: d("2026-11-09") };
        let ladder = send_ladder(Days::School(&t), Some(dl), opened, London);
        let at = |k: RungKind| ladder.iter().find(|r| r.kind == k).map(|r| r.due);
        assert_eq!(at(RungKind::Opened), Some(opened));
        // Two school days before Monday 9 November is Thursday 5 November (2 November closed).
        assert_eq!(at(RungKind::Reminder), Some(Utc.with_ymd_and_hms(2026, 11, 5, 8, 0, 0).unwrap()));
        assert_eq!(at(RungKind::Overdue), Some(Utc.with_ymd_and_hms(2026, 11, 10, 8, 0, 0).unwrap()));
        assert_eq!(send_ladder(Days::School(&t), None, opened, London).len(), 1);
        let (due, chase) = receipt_ladder(Days::School(&t), &TransferSettings::default(), d("2026-11-06"), London);
        assert_eq!(due, d("2026-11-13"));
        assert_eq!(chase[0].due, Utc.with_ymd_and_hms(2026, 11, 16, 8, 0, 0).unwrap());
        assert_eq!(chase[1].due, Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap());
    }

    #[test]
    fn what_is_kept_after_a_receipt_is_read_and_dated() {
        let s: TransferSettings = toml::from_str("retain_after = \"chronology\"\nretain_for = \"1y\"").unwrap();
        assert_eq!((s.retain_after, s.retain_for), (RetainAfter::Chronology, RetainFor::OneYear));
        let default = TransferSettings::default();
        assert_eq!((default.retain_after, default.retain_for, default.notice_names_pupil), (RetainAfter::Full, RetainFor::Dob25, false));
        assert!(toml::from_str::<TransferSettings>("retain_after = \"forever\"").is_err());
        assert!(toml::from_str::<TransferSettings>("retain_for = \"2y\"").is_err());
        // Received on 29 February: a year on is the last day of February.
        let on = d("2028-02-29");
        assert_eq!(RetainFor::OneYear.until(RetainAfter::Chronology, on), Some(d("2029-02-28")));
        assert_eq!(RetainFor::Dob25.until(RetainAfter::Full, on), None, "the schedule works out the 25th birthday");
        assert_eq!(RetainFor::OneYear.until(RetainAfter::None, on), Some(on), "none: due on the day of the receipt");
        for r in [RetainAfter::Full, RetainAfter::Chronology, RetainAfter::None] {
            assert_eq!(RetainAfter::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn destinations_and_receipts_are_read_or_refused_with_the_reason() {
        let dest = parse_destination(" Brook Academy <DSL@brook.sch.example> ").unwrap();
        assert_eq!(dest, Destination { school: "Brook Academy".into(), dsl_email: Some("dsl@brook.sch.example".into()) });
        assert_eq!(dest.to_string(), "Brook Academy <dsl@brook.sch.example>");
        assert_eq!(parse_destination("Brook Academy").unwrap().dsl_email, None);
        assert!(parse_destination("<dsl@brook.sch.example>").unwrap_err().contains("name is missing"));
        assert!(parse_destination("Brook <not an address>").unwrap_err().contains("is not an email address"));
        assert!(parse_destination("Brook <dsl@brook").unwrap_err().contains("expected"));
        assert_eq!(parse_receipt("Thanks.\nreceived: Bea Brook, DSL\n> Received: Someone, Else"), Some(("Bea Brook".into(), "DSL".into())));
        assert_eq!(parse_receipt("Received: Bea Brook"), None, "the role is needed");
        assert_eq!(parse_receipt("> Received: Bea Brook, DSL"), None);
        let s: TransferSettings = toml::from_str("deadline = 0\nclock_starts = \"destination_known\"\ndays = \"calendar\"").unwrap();
        assert_eq!(s.check(), vec!["transfer.deadline: expected a number of school days from 1 to 60, found 0".to_string()]);
        assert!(toml::from_str::<TransferSettings>("clock = \"left_on\"").is_err());
    }
}
