//! `haven chronology PUPIL --format multiagency --as STAFF [--out FILE.csv|.html|.pdf]`: the
//! pupil's significant events in the partnership's column set (date · significant event ·
//! source · impact on the child · action/outcome), for a child-protection conference or a
//! strategy meeting. Only incidents the DSL team marked significant (`haven incident mark`)
//! are rows, in the words written for partner agencies, and only those the viewer may see.
//!
//! One model ([`MultiAgencyDoc`]) is written as CSV, HTML (askama) or PDF/A (typst).

use super::CliError;
use super::chronology::load_view;
use crate::blind::BlindIndex;
use crate::seal::Sealer;
use crate::store::{ChronologyEntry, Mark, Store, mark_fields};
use askama::Template;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct MultiAgencyDoc {
    pub school: String,
    pub pupil: String,
    pub upn: String,
    pub date_of_birth: String,
    /// "Dana Lead <dsl@school.example>"
    pub produced_by: String,
    pub produced_at: String,
    pub rows: Vec<Row>,
    /// Entries the viewer may see that are not marked significant (left out).
    pub unmarked: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub incident: i64,
    /// "2026-11-09"
    pub date: String,
    pub event: String,
    pub source: String,
    pub impact: String,
    pub action: String,
}

/// The format written: by the file's extension on the command line; CSV on standard output
/// without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Csv,
    Html,
    Pdf,
}

fn output_of(out: Option<&Path>) -> Result<Output, CliError> {
    let Some(path) = out else { return Ok(Output::Csv) };
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok(Output::Csv),
        Some("html") | Some("htm") => Ok(Output::Html),
        Some("pdf") => Ok(Output::Pdf),
        _ => Err(CliError::Usage(format!("--out {}: name a .csv, .html or .pdf file (the format follows the name)", path.display()))),
    }
}

/// What `--format multiagency` was asked.
pub struct Request<'a> {
    pub query: &'a str,
    pub viewer: &'a str,
    pub school: &'a str,
    pub out: Option<&'a Path>,
    pub tz: Tz,
    pub now: DateTime<Utc>,
}

pub async fn run(store: &Store, sealer: &Sealer, blind: &BlindIndex, req: &Request<'_>) -> Result<String, CliError> {
    let (doc, bytes) = build(store, sealer, blind, req, output_of(req.out)?).await?;
    let Some(path) = req.out else {
        return Ok(String::from_utf8_lossy(&bytes).trim_end().to_string());
    };
    super::write_new(path, &bytes)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e} (an existing file is never overwritten)", path.display())))?;
    Ok(format!(
        "multi-agency chronology written to {}: {} significant event(s); {} other entr{} not marked significant",
        path.display(),
        doc.rows.len(),
        doc.unmarked,
        if doc.unmarked == 1 { "y" } else { "ies" }
    ))
}

/// The chronology as `output`, read as `req.viewer` may see it (audited).
pub async fn build(
    store: &Store,
    sealer: &Sealer,
    blind: &BlindIndex,
    req: &Request<'_>,
    output: Output,
) -> Result<(MultiAgencyDoc, Vec<u8>), CliError> {
    if output == Output::Pdf && !cfg!(feature = "pdf") {
        return Err(CliError::Usage("this haven was built without PDF support (cargo feature `pdf`): write a .html and print it".into()));
    }
    let view = load_view(store, sealer, blind, req.query, req.viewer, "multiagency_chronology", req.now).await?;
    let marks = store.marks_of_pupil(view.pupil.id).await?;
    let mut rows = Vec::new();
    for e in &view.entries {
        if let Some(m) = marks.get(&e.incident).filter(|m| m.significant) {
            rows.push(row(e, m, sealer, req.tz)?);
        }
    }
    let viewer = view.dir.active_staff_by_email(req.viewer);
    let doc = MultiAgencyDoc {
        school: req.school.to_string(),
        pupil: view.pupil.full_name(),
        upn: view.pupil.upn.clone(),
        date_of_birth: view.pupil.date_of_birth.map_or_else(|| "not recorded".into(), |d| d.to_string()),
        produced_by: viewer.map_or_else(|| req.viewer.to_string(), |s| format!("{} {} <{}>", s.first_name, s.last_name, s.email())),
        produced_at: format!("{} ({})", req.now.with_timezone(&req.tz).format("%Y-%m-%d %H:%M"), req.tz.name()),
        unmarked: view.entries.len() - rows.len(),
        rows,
    };
    let bytes = match output {
        Output::Csv => csv(&doc)?,
        Output::Html => Html { d: &doc }.render().map_err(|e| CliError::Other(anyhow::anyhow!("the chronology's HTML: {e}")))?.into_bytes(),
        Output::Pdf => pdf(&doc, req.now).await?,
    };
    Ok((doc, bytes))
}

fn row(e: &ChronologyEntry, m: &Mark, sealer: &Sealer, tz: Tz) -> Result<Row, CliError> {
    let open = |field: &str, v: &Option<String>| -> Result<String, CliError> {
        match v {
            None => Ok(String::new()),
            Some(s) => sealer
                .open_text(field, s)
                .map_err(|err| CliError::Other(anyhow::anyhow!("incident {}'s mark cannot be opened: {err}", e.incident))),
        }
    };
    let recorder = e.recorded_by.clone().unwrap_or_else(|| "Haven".into());
    let source = match (e.original_name.as_deref().filter(|n| !n.is_empty()), e.original_from.as_deref()) {
        (Some(name), _) => format!("Email from {name}, passed on by {recorder}"),
        (None, Some(from)) if !from.is_empty() => format!("Email from {from}, passed on by {recorder}"),
        _ => format!("{recorder} (school)"),
    };
    let action = match (&e.outcome, &e.outcome_by, e.outcome_at) {
        (Some(text), by, at) => {
            let when = at.map(|t| t.with_timezone(&tz).format(" on %Y-%m-%d").to_string()).unwrap_or_default();
            format!("{text} ({}{when})", by.as_deref().unwrap_or("recorded"))
        }
        (None, ..) => "No outcome recorded yet".into(),
    };
    Ok(Row {
        incident: e.incident,
        date: e.occurred_at.with_timezone(&tz).format("%Y-%m-%d").to_string(),
        event: open(mark_fields::SUMMARY, &m.summary)?,
        source,
        impact: open(mark_fields::IMPACT, &m.impact)?,
        action,
    })
}

fn csv(doc: &MultiAgencyDoc) -> Result<Vec<u8>, CliError> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let failed = |e: ::csv::Error| CliError::Other(anyhow::anyhow!("the chronology's CSV: {e}"));
    w.write_record(["Date", "Significant event", "Source", "Impact on the child", "Action / outcome", "Incident"]).map_err(failed)?;
    for r in &doc.rows {
        let incident = format!("#{}", r.incident);
        w.write_record([&r.date, &r.event, &r.source, &r.impact, &r.action, &incident]).map_err(failed)?;
    }
    w.into_inner().map_err(|e| CliError::Other(anyhow::anyhow!("the chronology's CSV: {e}")))
}

#[derive(Template)]
#[template(path = "multiagency.html")]
struct Html<'a> {
    d: &'a MultiAgencyDoc,
}

#[cfg(feature = "pdf")]
async fn pdf(doc: &MultiAgencyDoc, now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    let doc = doc.clone();
    let rendered = tokio::task::spawn_blocking(move || crate::pdf::render(crate::pdf::Template::MultiAgency, &doc, now))
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("the PDF renderer stopped: {e}")))?
        .map_err(|e| CliError::Other(anyhow::Error::new(e)))?;
    Ok(rendered.bytes)
}

#[cfg(not(feature = "pdf"))]
async fn pdf(_doc: &MultiAgencyDoc, _now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    unreachable!("refused above without the pdf feature")
}
