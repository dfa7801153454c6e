//! `haven report summary --term NAME | --from DATE --to DATE --as STAFF [--audience
//! governors|dsl] [--format text|html|json|pdf] [--out FILE]`: the safeguarding summary for
//! governors (no names, small numbers hidden) or for the DSL team (exact, recorders named), the
//! term asked for beside the two before it.
//!
//! Every figure is counted by the database ([`Store::report_days`] and friends); only
//! the staff list is read to check who asks, and no pupil's record is opened. Only the DSL team,
//! SLT and the head may run the governors' report, only the DSL team the DSL's; every run and
//! every refusal is audited.

use super::{App, CliError};
use crate::directory::{Directory, Role, Staff};
use crate::report::period::{self, Asked, Period, PeriodError};
use crate::report::summary::{Audience, Counted, Figures, SummaryDoc, SummaryMeta};
use crate::store::{Figure, Store};
use askama::Template as _;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use std::path::{Path, PathBuf};

/// The formats a report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Html,
    Json,
    Pdf,
}

pub struct SummaryRequest<'a> {
    pub term: Option<&'a str>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub audience: Audience,
    pub format: ReportFormat,
    pub out: Option<PathBuf>,
    /// Who runs it (a staff email).
    pub viewer: &'a str,
}

/// Who may run the report for `audience`.
pub(crate) fn may_run(staff: &Staff, audience: Audience) -> bool {
    match audience {
        Audience::Governors => staff.is_dsl_team() || staff.has_role(Role::Slt) || staff.has_role(Role::Head),
        Audience::Dsl => staff.is_dsl_team(),
    }
}

/// The active member of staff `email`, allowed to run a report for `audience`; a refusal is
/// audited.
pub(crate) async fn authorised<'a>(
    store: &Store,
    dir: &'a Directory,
    email: &str,
    audience: Audience,
    what: &str,
    now: DateTime<Utc>,
) -> Result<&'a Staff, CliError> {
    let staff = dir
        .active_staff_by_email(email)
        .ok_or_else(|| CliError::Usage(format!("--as {email}: not an active member of staff; no report was made")))?;
    if !may_run(staff, audience) {
        store.audit(now, &format!("staff:{}", staff.id), "report_refused", what, &format!("audience={audience:?}")).await?;
        let who = match audience {
            Audience::Governors => "the DSL team, SLT or the head",
            Audience::Dsl => "the DSL team",
        };
        return Err(CliError::Usage(format!("--as {email}: only {who} may run this report; no report was made")));
    }
    Ok(staff)
}

/// The periods asked for, or what is wrong with the question.
fn periods_of(app: &App, req: &SummaryRequest<'_>) -> Result<Vec<Period>, CliError> {
    let asked = match (req.term, req.from, req.to) {
        (Some(t), None, None) => Asked::Term(t),
        (None, Some(from), Some(to)) => Asked::Dates { from, to },
        _ => return Err(CliError::Usage("give --term NAME, or both --from DATE and --to DATE".into())),
    };
    period::periods(asked, app.config.terms.as_ref()).map_err(|e| match e {
        PeriodError::NoTermsFile => CliError::Config(e.to_string()),
        PeriodError::UnknownTerm { .. } => {
            let file = app.config.school.terms_file.as_deref().map(|f| format!(" ({})", f.display())).unwrap_or_default();
            CliError::Usage(format!("{e}{file}"))
        }
        PeriodError::Backwards { .. } => CliError::Usage(e.to_string()),
    })
}

/// One period's counts, every one aggregated by the database: the days changed since the last
/// report are recounted first, then the period's days are added up (see
/// [`Store::report_counts_fresh`]); referrals and plans are counted as they stand.
pub async fn figures(
    store: &Store,
    dir: &Directory,
    period: &Period,
    tz: Tz,
    now: DateTime<Utc>,
    audience: Audience,
) -> Result<Figures, CliError> {
    store.report_counts_fresh(tz).await?;
    let (from_day, to_day) = (period.from.to_string(), period.to.to_string());
    let days = |figure: Figure| store.report_days(figure, &from_day, &to_day);
    // Month by month; the period's categories are the months' added up (the months are cut to
    // the period, end to end).
    let mut by_month = Vec::new();
    let mut by_month_category = Vec::new();
    let mut by_category: std::collections::BTreeMap<Option<String>, i64> = std::collections::BTreeMap::new();
    for month in period.months() {
        let counted = store.report_days(Figure::Category, &month.from.to_string(), &month.to.to_string()).await?;
        by_month.push((month.name.clone(), counted.iter().map(|(_, n)| n).sum()));
        for (k, n) in &counted {
            *by_category.entry(k.clone()).or_default() += n;
        }
        by_month_category.push((month.name, counted));
    }
    let by_category: Counted = by_category.into_iter().collect();
    let incidents = by_category.iter().map(|(_, n)| n).sum();
    let (open_actions, overdue_actions) = store.report_days_open(&from_day, &to_day, crate::store::to_us(now)).await?;
    let by_recorder = match audience {
        Audience::Governors => Vec::new(),
        Audience::Dsl => days(Figure::Recorder)
            .await?
            .into_iter()
            .map(|(id, n)| {
                let id = id.and_then(|id| id.parse::<i64>().ok());
                let name = id.and_then(|id| dir.staff.iter().find(|s| s.id == id)).map(|s| format!("{} {}", s.first_name, s.last_name));
                (name, n)
            })
            .collect::<Counted>(),
    };
    Ok(Figures {
        incidents,
        pupils: store.report_days_pupils(&from_day, &to_day).await?,
        by_category,
        by_month,
        by_month_category,
        by_year: days(Figure::YearGroup).await?,
        by_house: days(Figure::House).await?,
        by_sen: days(Figure::Sen).await?,
        by_group: days(Figure::Group).await?,
        outcomes: days(Figure::Outcome).await?,
        referrals: store.report_referrals(&from_day, &to_day).await?,
        plans_open: store.report_plans_open(&to_day).await?,
        plans_started: store.report_plans_started(&from_day, &to_day).await?,
        open_actions,
        overdue_actions,
        occurred_to_recorded: histogram(days(Figure::OccurredToRecorded).await?),
        recorded_to_outcome: histogram(days(Figure::RecordedToOutcome).await?),
        by_recorder,
    })
}

/// A delay's counts as (minutes, incidents), shortest first.
fn histogram(counted: Counted) -> Vec<(i64, i64)> {
    let mut h: Vec<(i64, i64)> = counted.into_iter().filter_map(|(b, n)| Some((b?.parse().ok()?, n))).collect();
    h.sort_unstable();
    h
}

/// Builds the summary's model: the periods, their counts, who asked (checked and audited).
pub async fn summary_doc(app: &App, req: &SummaryRequest<'_>, now: DateTime<Utc>) -> Result<SummaryDoc, CliError> {
    let periods = periods_of(app, req)?;
    // The staff list only: no pupil is opened to make a report.
    let dir = app.store.load_directory_with_pupils(&app.sealer().await?, &[]).await?;
    let staff = authorised(&app.store, &dir, req.viewer, req.audience, "report:summary", now).await?;
    let tz = app.config.school.tz();
    let mut all = Vec::with_capacity(periods.len());
    for p in &periods {
        all.push(figures(&app.store, &dir, p, tz, now, req.audience).await?);
    }
    let names: Vec<&str> = periods.iter().map(|p| p.name.as_str()).collect();
    app.store
        .audit(
            now,
            &format!("staff:{}", staff.id),
            "report",
            "report:summary",
            &format!("audience={:?} periods={} format={:?}", req.audience, names.join("|"), req.format),
        )
        .await?;
    let meta = SummaryMeta {
        school: &app.config.school.name,
        audience: req.audience,
        generated_at: format!("{} ({})", now.with_timezone(&tz).format("%Y-%m-%d %H:%M"), tz.name()),
        generated_by: Some(format!("{} {} <{}>", staff.first_name, staff.last_name, staff.email())),
    };
    Ok(SummaryDoc::build(&periods, &all, &meta))
}

/// `haven report summary`: prints the report, or writes it to `--out`.
pub async fn summary(app: &App, req: SummaryRequest<'_>) -> Result<String, CliError> {
    if req.format == ReportFormat::Pdf && req.out.is_none() {
        return Err(CliError::Usage("--format pdf writes a file: give --out FILE.pdf".into()));
    }
    if let Some(out) = &req.out
        && out.exists()
    {
        return Err(CliError::Usage(format!("{} already exists; choose another --out", out.display())));
    }
    let now = app.now();
    let doc = summary_doc(app, &req, now).await?;
    let bytes = render(&doc, req.format, now).await?;
    match &req.out {
        Some(out) => {
            write_new(out, &bytes)?;
            Ok(format!("report written to {}", out.display()))
        }
        None => Ok(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

#[derive(askama::Template)]
#[template(path = "report_summary.txt")]
struct SummaryText<'a> {
    d: &'a SummaryDoc,
}

#[derive(askama::Template)]
#[template(path = "report_summary.html")]
struct SummaryHtml<'a> {
    d: &'a SummaryDoc,
}

/// The report in `format`.
pub async fn render(doc: &SummaryDoc, format: ReportFormat, now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    let templ = |e: askama::Error| CliError::Other(anyhow::anyhow!("the report's template: {e}"));
    Ok(match format {
        ReportFormat::Text => SummaryText { d: doc }.render().map_err(templ)?.into_bytes(),
        ReportFormat::Html => SummaryHtml { d: doc }.render().map_err(templ)?.into_bytes(),
        ReportFormat::Json => serde_json::to_vec_pretty(doc).map_err(|e| CliError::Other(anyhow::anyhow!("the report's JSON: {e}")))?,
        ReportFormat::Pdf => render_pdf(doc.clone(), now).await?,
    })
}

#[cfg(feature = "pdf")]
async fn render_pdf(doc: SummaryDoc, now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    let rendered = tokio::task::spawn_blocking(move || crate::pdf::render(crate::pdf::Template::Summary, &doc, now))
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("the PDF renderer stopped: {e}")))?
        .map_err(|e| CliError::Other(anyhow::Error::new(e)))?;
    Ok(rendered.bytes)
}

#[cfg(not(feature = "pdf"))]
async fn render_pdf(_doc: SummaryDoc, _now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    Err(CliError::Usage("this haven was built without PDF support (cargo feature `pdf`): use --format html and print it".into()))
}

/// Writes a new file, readable by its owner only (a report is the school's business).
pub(crate) fn write_new(path: &Path, data: &[u8]) -> Result<(), CliError> {
    super::write_new(path, data).map_err(|e| CliError::Other(anyhow::anyhow!("writing {}: {e}", path.display())))
}
