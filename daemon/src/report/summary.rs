//! The summary report's model (`haven report summary`): each period's counts side by side, as
//! the governors may see them (no names, small numbers hidden: [`super::suppress`]) or as the
//! DSL team does (exact counts, recorders named). Templates render it; nothing else decides what
//! the report shows.
//!
//! Pure: built from counts the store aggregated ([`Figures`]); no store, no clock.

use super::charts::{self, Chart};
use super::period::Period;
use super::suppress;
use serde::Serialize;
use std::collections::BTreeMap;

/// Who the report is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// The governing board: no names, counts from 1 to 5 hidden.
    Governors,
    /// The DSL team: exact counts, recorders named.
    Dsl,
}

/// One group's count; `None` is a group with no value.
pub type Counted = Vec<(Option<String>, i64)>;

/// One period's counts, as the store aggregated them.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub incidents: i64,
    pub pupils: i64,
    pub by_category: Counted,
    pub by_month: Vec<(String, i64)>,
    /// Each month's incidents by category, in the months' order.
    pub by_month_category: Vec<(String, Counted)>,
    pub by_year: Counted,
    pub by_house: Counted,
    pub by_sen: Counted,
    /// By vulnerable group as pupils were when each incident happened (`fsm:yes`, `sen:K`).
    pub by_group: Counted,
    pub outcomes: Counted,
    /// Referrals made in the period, by agency.
    pub referrals: Counted,
    /// Plans: open at the period's end, started in it, ended in it; by kind.
    pub plans_open: Counted,
    pub plans_started: Counted,
    pub open_actions: i64,
    pub overdue_actions: i64,
    /// Histograms: (minutes, incidents).
    pub occurred_to_recorded: Vec<(i64, i64)>,
    pub recorded_to_outcome: Vec<(i64, i64)>,
    /// By recorder's name (the DSL's report only).
    pub by_recorder: Counted,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryDoc {
    pub school: String,
    pub title: String,
    pub audience: Audience,
    /// "2026-12-07 08:15 (Europe/London)"
    pub generated_at: String,
    /// The DSL's report names who ran it; the governors' names nobody.
    pub generated_by: Option<String>,
    pub periods: Vec<Period>,
    /// How to read it (small numbers, percentiles).
    pub notes: Vec<String>,
    pub sections: Vec<Section>,
    /// Incidents per month as bars, oldest first: what people would rather look at than read.
    pub chart: Vec<Bar>,
    /// The same, and the time taken to an outcome, drawn (HTML and PDF).
    pub charts: Vec<Chart>,
}

/// One bar of a chart.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub label: String,
    /// As the table prints it ("7", "fewer than 5").
    pub text: String,
    /// The bar's length, 0 to 100, of the longest; 0 for a hidden count (its length would tell).
    pub percent: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub label: String,
    /// One per period, in the periods' order.
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The exact count, when it may be shown.
    pub count: Option<i64>,
    /// A time, in minutes, when the cell is one.
    pub minutes: Option<i64>,
    /// As printed: "12", "fewer than 5", "withheld", "2.5 hours", "–".
    pub text: String,
}

impl Cell {
    fn count(n: i64, shown: Option<i64>) -> Cell {
        Cell { count: shown, minutes: None, text: suppress::text(n, shown) }
    }

    fn none() -> Cell {
        Cell { count: None, minutes: None, text: "–".into() }
    }
}

/// Everything about the report itself.
pub struct SummaryMeta<'a> {
    pub school: &'a str,
    pub audience: Audience,
    pub generated_at: String,
    pub generated_by: Option<String>,
}

/// How outcome codes read, in the order a DSL reads them.
const CODES: &[(&str, &str)] = &[
    ("NFA", "No further action (NFA)"),
    ("MONITOR", "Monitor"),
    ("EARLY-HELP", "Early help"),
    ("REFERRED-CSC", "Referred to children's social care"),
    ("LADO", "Referred to the LADO"),
    ("POLICE", "Referred to the police"),
    ("NO-REFERRAL", "Decided not to refer (reason recorded)"),
];

/// How agencies and plan kinds read.
const AGENCIES: &[(&str, &str)] =
    &[("CSC", "Children's social care"), ("LADO", "LADO"), ("POLICE", "Police"), ("EARLY-HELP", "Early help"), ("OTHER", "Other agencies")];
pub const PLAN_KINDS: &[(&str, &str)] = &[
    ("early-help", "Early help plan"),
    ("child-in-need", "Child in need plan"),
    ("child-protection", "Child protection plan"),
    ("looked-after", "Looked after"),
    ("other", "Other multi-agency plan"),
];

impl SummaryDoc {
    /// `figures` holds one item per period, in the same order.
    pub fn build(periods: &[Period], figures: &[Figures], meta: &SummaryMeta<'_>) -> SummaryDoc {
        let governors = meta.audience == Audience::Governors;
        let mut sections = Vec::new();
        let lone = |n: i64| Cell::count(n, if governors { suppress::lone(n) } else { Some(n) });
        sections.push(Section {
            title: "Incidents".into(),
            rows: vec![
                Row { label: "Incidents recorded".into(), cells: figures.iter().map(|f| lone(f.incidents)).collect() },
                Row { label: "Pupils they were about".into(), cells: figures.iter().map(|f| lone(f.pupils)).collect() },
            ],
        });
        let grouped = |title: &str, pick: &dyn Fn(&Figures) -> &Counted, order: Order| Section {
            title: title.into(),
            rows: columns(figures, pick, order, governors),
        };
        sections.push(grouped("By category", &|f| &f.by_category, Order::Largest));
        sections.push(Section { title: "By month".into(), rows: months(figures, governors) });
        sections.push(grouped("By year group", &|f| &f.by_year, Order::YearGroup));
        sections.push(grouped("By house", &|f| &f.by_house, Order::Name));
        sections.push(grouped("Special educational needs", &|f| &f.by_sen, Order::Sen));
        sections.push(grouped("By vulnerable group, as on the day", &|f| &f.by_group, Order::Fixed(crate::characteristics::LABELS)));
        sections.push(grouped("Outcomes recorded", &|f| &f.outcomes, Order::Fixed(CODES)));
        sections.push(grouped("Referrals made", &|f| &f.referrals, Order::Fixed(AGENCIES)));
        sections.push(grouped("Plans open at the end of the period", &|f| &f.plans_open, Order::Fixed(PLAN_KINDS)));
        sections.push(grouped("Plans started in the period", &|f| &f.plans_started, Order::Fixed(PLAN_KINDS)));
        sections.push(Section {
            title: "Actions".into(),
            rows: vec![
                Row { label: "Awaiting an outcome".into(), cells: figures.iter().map(|f| lone(f.open_actions)).collect() },
                Row { label: "Of those, overdue".into(), cells: figures.iter().map(|f| lone(f.overdue_actions)).collect() },
            ],
        });
        let timing = |label: &str, pick: &dyn Fn(&Figures) -> &Vec<(i64, i64)>, q: f64| Row {
            label: label.into(),
            cells: figures.iter().map(|f| time_cell(pick(f), q, governors)).collect(),
        };
        sections.push(Section {
            title: "Time taken".into(),
            rows: vec![
                timing("Happened to recorded: median", &|f| &f.occurred_to_recorded, 0.5),
                timing("Happened to recorded: 90th percentile", &|f| &f.occurred_to_recorded, 0.9),
                timing("Recorded to outcome: median", &|f| &f.recorded_to_outcome, 0.5),
                timing("Recorded to outcome: 90th percentile", &|f| &f.recorded_to_outcome, 0.9),
            ],
        });
        if !governors {
            sections.push(grouped("By who recorded them", &|f| &f.by_recorder, Order::Largest));
        }
        let mut notes = vec![
            "Incidents are counted in the period they happened in; follow-ups and corrections are not counted again. \
             An incident about pupils in two groups counts in each."
                .to_string(),
            "Times are nearest-rank percentiles: half the incidents took the median or less, nine in ten the 90th percentile or less."
                .to_string(),
        ];
        if governors {
            notes.insert(
                0,
                "No pupil or member of staff is named. Counts from one to five are shown as \"fewer than 5\"; where a total would \
                 let one be worked out, another count is \"withheld\" too."
                    .to_string(),
            );
        }
        let chart = chart(&sections);
        // A hidden count's text ("fewer than 5", "withheld") is no number: no bar.
        let drawn: Vec<charts::Bar> =
            chart.iter().map(|b| charts::Bar { label: b.label.clone(), value: b.text.parse().ok(), text: b.text.clone() }).collect();
        let mut drawings = vec![charts::bars("Incidents per month", "incidents", &drawn)];
        // Not for governors: a month's count in one category is in no table, and beside the
        // tables' totals it could give away a count they hide.
        if !governors {
            drawings.push(by_month_and_category(figures));
        }
        if let (Some(period), Some(latest)) = (periods.last(), figures.last()) {
            drawings.push(charts::bars(
                &format!("Time from recorded to outcome, {}", period.name),
                "incidents",
                &to_outcome(&latest.recorded_to_outcome, governors),
            ));
        }
        SummaryDoc {
            school: meta.school.to_string(),
            title: if governors { "Safeguarding report for governors" } else { "Safeguarding report for the DSL team" }.into(),
            audience: meta.audience,
            generated_at: meta.generated_at.clone(),
            generated_by: if governors { None } else { meta.generated_by.clone() },
            periods: periods.to_vec(),
            notes,
            sections,
            chart,
            charts: drawings,
        }
    }
}

#[derive(Clone, Copy)]
enum Order {
    /// Largest total first, then by name.
    Largest,
    Name,
    YearGroup,
    Sen,
    Fixed(&'static [(&'static str, &'static str)]),
}

fn label_of(key: &Option<String>, order: Order) -> String {
    match (key.as_deref(), order) {
        (None, Order::Fixed(_)) => "Recorded without a code".into(),
        (None, _) => "Not recorded".into(),
        (Some(y), Order::YearGroup) => match y {
            "0" => "Reception".into(),
            "-1" => "Nursery".into(),
            y => format!("Year {y}"),
        },
        (Some("yes"), Order::Sen) => "SEN".into(),
        (Some("no"), Order::Sen) => "No SEN".into(),
        (Some(k), Order::Fixed(names)) => names.iter().find(|(c, _)| *c == k).map_or_else(|| k.to_string(), |(_, n)| n.to_string()),
        (Some(k), _) => k.to_string(),
    }
}

/// Rows for every group any period has, each period's column suppressed for governors.
fn columns(figures: &[Figures], pick: &dyn Fn(&Figures) -> &Counted, order: Order, governors: bool) -> Vec<Row> {
    let mut totals: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for f in figures {
        for (k, n) in pick(f) {
            *totals.entry(k.clone()).or_default() += n;
        }
    }
    if let Order::Fixed(names) = order {
        for (k, _) in names {
            totals.entry(Some((*k).to_string())).or_default();
        }
    }
    let mut keys: Vec<(Option<String>, i64)> = totals.into_iter().collect();
    match order {
        Order::Largest => keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.is_none().cmp(&b.0.is_none())).then_with(|| a.0.cmp(&b.0))),
        Order::Name | Order::Sen => keys.sort_by(|a, b| a.0.is_none().cmp(&b.0.is_none()).then(a.0.cmp(&b.0))),
        Order::YearGroup => keys.sort_by_key(|(k, _)| (k.is_none(), k.as_deref().and_then(|y| y.parse::<i64>().ok()).unwrap_or(i64::MAX))),
        Order::Fixed(names) => keys
            .sort_by_key(|(k, _)| k.as_deref().map_or(names.len() + 1, |k| names.iter().position(|(c, _)| *c == k).unwrap_or(names.len()))),
    }
    let counts: Vec<Vec<i64>> =
        figures.iter().map(|f| keys.iter().map(|(k, _)| pick(f).iter().find(|(g, _)| g == k).map_or(0, |(_, n)| *n)).collect()).collect();
    let shown: Vec<Vec<Option<i64>>> =
        counts.iter().map(|col| if governors { suppress::column(col) } else { col.iter().map(|n| Some(*n)).collect() }).collect();
    keys.iter()
        .enumerate()
        .map(|(r, (k, _))| Row {
            label: label_of(k, order),
            cells: (0..figures.len()).map(|c| Cell::count(counts[c][r], shown[c][r])).collect(),
        })
        .collect()
}

/// One row per month of any period, shown under its own period only.
fn months(figures: &[Figures], governors: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    for (c, f) in figures.iter().enumerate() {
        let counts: Vec<i64> = f.by_month.iter().map(|(_, n)| *n).collect();
        let shown = if governors { suppress::column(&counts) } else { counts.iter().map(|n| Some(*n)).collect() };
        for ((label, n), s) in f.by_month.iter().zip(shown) {
            let mut cells: Vec<Cell> = (0..figures.len()).map(|_| Cell::none()).collect();
            cells[c] = Cell::count(*n, s);
            rows.push(Row { label: label.clone(), cells });
        }
    }
    rows
}

/// Bars for the "By month" section: each month under its own period, hidden counts drawn empty.
fn chart(sections: &[Section]) -> Vec<Bar> {
    let Some(months) = sections.iter().find(|s| s.title == "By month") else { return Vec::new() };
    let cell = |r: &Row| r.cells.iter().find(|c| c.text != "–").cloned().unwrap_or_else(Cell::none);
    let top = months.rows.iter().filter_map(|r| cell(r).count).max().unwrap_or(0).max(1);
    months
        .rows
        .iter()
        .map(|r| {
            let c = cell(r);
            Bar { label: r.label.clone(), percent: c.count.map_or(0, |n| u32::try_from(n * 100 / top).unwrap_or(100)), text: c.text }
        })
        .collect()
}

/// Categories drawn apart in the chart by month and category; the rest are drawn as one.
const DRAWN_CATEGORIES: usize = 6;

/// Incidents per month by category (the DSL team's report), every period's months in order:
/// the largest categories apart, the others as one.
fn by_month_and_category(figures: &[Figures]) -> Chart {
    let mut totals: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for (_, counted) in figures.iter().flat_map(|f| &f.by_month_category) {
        for (k, n) in counted {
            *totals.entry(k.clone()).or_default() += n;
        }
    }
    let mut largest: Vec<(Option<String>, i64)> = totals.into_iter().filter(|(_, n)| *n > 0).collect();
    largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let others = largest.len() > DRAWN_CATEGORIES + 1;
    let apart: Vec<Option<String>> =
        largest.iter().take(if others { DRAWN_CATEGORIES } else { largest.len() }).map(|(k, _)| k.clone()).collect();
    let mut names: Vec<String> = apart.iter().map(|k| label_of(k, Order::Largest)).collect();
    if others {
        names.push("Other categories".into());
    }
    let months: Vec<&(String, Counted)> = figures.iter().flat_map(|f| &f.by_month_category).collect();
    let columns: Vec<Vec<Option<i64>>> = months
        .iter()
        .map(|(_, counted)| {
            let mut col = vec![0i64; names.len()];
            for (k, n) in counted {
                let i = apart.iter().position(|a| a == k).unwrap_or(names.len() - 1);
                col[i] += n;
            }
            col.into_iter().map(Some).collect::<Vec<_>>()
        })
        .collect();
    let series: Vec<(String, Vec<Option<i64>>)> =
        names.into_iter().enumerate().map(|(i, name)| (name, columns.iter().map(|c| c[i]).collect())).collect();
    let labels: Vec<String> = months.iter().map(|(m, _)| m.clone()).collect();
    charts::stacked("Incidents per month by category", "incidents", &labels, &series)
}

/// How long outcomes took, in the buckets a DSL thinks in (upper bounds in minutes).
/// Words, not numbers: a governors' page holds no small number that is not a count's "fewer than 5".
const TO_OUTCOME: &[(&str, i64)] = &[
    ("under a day", 24 * 60),
    ("a day or two", 2 * 24 * 60),
    ("up to a week", 7 * 24 * 60),
    ("up to a fortnight", 14 * 24 * 60),
    ("up to a month", 30 * 24 * 60),
    ("over a month", i64::MAX),
];

/// The time-to-outcome histogram in [`TO_OUTCOME`]'s buckets, hidden as a column for governors.
fn to_outcome(histogram: &[(i64, i64)], governors: bool) -> Vec<charts::Bar> {
    let mut counts = vec![0i64; TO_OUTCOME.len()];
    for (minutes, n) in histogram {
        let i = TO_OUTCOME.iter().position(|(_, upper)| minutes <= upper).unwrap_or(TO_OUTCOME.len() - 1);
        counts[i] += n;
    }
    let shown = if governors { suppress::column(&counts) } else { counts.iter().map(|n| Some(*n)).collect() };
    TO_OUTCOME
        .iter()
        .zip(counts.iter().zip(shown))
        .map(|((label, _), (n, s))| charts::Bar { label: (*label).to_string(), value: s, text: suppress::text(*n, s) })
        .collect()
}

/// The nearest-rank `q` quantile of a histogram of (minutes, count), in minutes.
pub fn quantile(histogram: &[(i64, i64)], q: f64) -> Option<i64> {
    let n: i64 = histogram.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as i64).max(1);
    let mut seen = 0;
    let mut sorted = histogram.to_vec();
    sorted.sort_unstable();
    for (minutes, count) in sorted {
        seen += count;
        if seen >= rank {
            return Some(minutes);
        }
    }
    None
}

/// "35 min", "5.5 hours", "3.0 days".
pub fn duration_text(minutes: i64) -> String {
    if minutes.abs() < 60 {
        format!("{minutes} min")
    } else if minutes.abs() < 48 * 60 {
        format!("{:.1} hours", minutes as f64 / 60.0)
    } else {
        format!("{:.1} days", minutes as f64 / 1440.0)
    }
}

fn time_cell(histogram: &[(i64, i64)], q: f64, governors: bool) -> Cell {
    let n: i64 = histogram.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return Cell { count: None, minutes: None, text: "no incidents".into() };
    }
    if governors && suppress::is_small(n) {
        return Cell { count: None, minutes: None, text: "fewer than 5 incidents".into() };
    }
    let m = quantile(histogram, q);
    Cell { count: None, minutes: m, text: m.map(duration_text).unwrap_or_default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_over_the_histogram() {
        let h = [(10, 2), (60, 1), (2880, 2)];
        assert_eq!(quantile(&h, 0.5), Some(60));
        assert_eq!(quantile(&h, 0.9), Some(2880));
        assert_eq!(quantile(&[(5, 1)], 0.9), Some(5));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(duration_text(35), "35 min");
        assert_eq!(duration_text(330), "5.5 hours");
        assert_eq!(duration_text(4320), "3.0 days");
    }

    #[test]
    fn governors_see_no_small_count_and_the_dsl_sees_every_count() {
        let p = |n: &str| Period { name: n.into(), from: "2026-09-01".parse().unwrap(), to: "2026-12-18".parse().unwrap() };
        let f = Figures {
            incidents: 14,
            pupils: 3,
            by_category: vec![(Some("Behaviour".into()), 10), (Some("E-safety".into()), 4)],
            by_recorder: vec![(Some("Kit Kestrel".into()), 14)],
            occurred_to_recorded: vec![(30, 14)],
            ..Figures::default()
        };
        let meta =
            SummaryMeta { school: "S", audience: Audience::Governors, generated_at: "now".into(), generated_by: Some("Dana".into()) };
        let doc = SummaryDoc::build(&[p("Autumn")], std::slice::from_ref(&f), &meta);
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("Kit Kestrel") && !text.contains("Dana"), "{text}");
        let cat = doc.sections.iter().find(|s| s.title == "By category").unwrap();
        assert_eq!(cat.rows[0].cells[0].text, "withheld");
        assert_eq!(cat.rows[1].cells[0].text, "fewer than 5");
        assert_eq!(doc.sections[0].rows[1].cells[0].text, "fewer than 5");
        assert_eq!(doc.sections[0].rows[0].cells[0].count, Some(14));
        let dsl = SummaryDoc::build(&[p("Autumn")], &[f], &SummaryMeta { audience: Audience::Dsl, ..meta });
        let text = serde_json::to_string(&dsl).unwrap();
        assert!(text.contains("Kit Kestrel") && text.contains("\"count\":4"), "{text}");
    }
}
