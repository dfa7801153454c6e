//! Reports as downloads (issue 21: "each report and export is a download there too"): the
//! governors' or the DSL team's summary (`haven report summary`), the inspection lists (`haven
//! report inspection`, zipped with their manifest) and a pupil's multi-agency chronology
//! (`haven chronology --format multiagency`). Each is made by the CLI's own code, so it checks
//! who asks and audits the same way; the console audits the download too. Whoever may not run
//! a report finds no page here (404).

use super::routes::{Shared, message, not_found, render, signed, unavailable};
use super::{State, views};
use crate::cli::CliError;
use crate::cli::inspection::InspectionRequest;
use crate::cli::multiagency::Output;
use crate::cli::report::{ReportFormat, SummaryRequest};
use crate::directory::Staff;
use crate::report::summary::Audience;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;

/// `GET /reports`: what this person may download, and the form for a summary.
pub async fn reports_page(axum::extract::State(st): Shared, headers: HeaderMap) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !crate::cli::report::may_run(&s.staff, Audience::Governors) {
        return not_found().await;
    }
    // Newest first: the term just ended is the one governors usually ask about.
    let terms = st.app.config.terms.as_ref().map(|t| t.all().iter().rev().map(|t| t.name.clone()).collect()).unwrap_or_default();
    render(&views::Reports { terms, dsl_team: s.staff.is_dsl_team() })
}

#[derive(serde::Deserialize)]
pub struct SummaryQuery {
    #[serde(default)]
    term: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    format: String,
}

/// A date from a form field: empty is none; anything else must be YYYY-MM-DD.
fn date(field: &str, value: &str) -> Result<Option<NaiveDate>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| format!("The {field} date {v:?} is not a date (YYYY-MM-DD)."))
}

/// The format asked for: PDF or HTML (what a browser can open or print).
fn pdf_or_html(value: &str) -> Option<(ReportFormat, &'static str)> {
    match value {
        "pdf" | "" => Some((ReportFormat::Pdf, "pdf")),
        "html" => Some((ReportFormat::Html, "html")),
        _ => None,
    }
}

/// `GET /reports/summary?term=…|from=…&to=…&audience=governors|dsl&format=pdf|html`.
pub async fn summary(axum::extract::State(st): Shared, headers: HeaderMap, Query(q): Query<SummaryQuery>) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !crate::cli::report::may_run(&s.staff, Audience::Governors) {
        return not_found().await;
    }
    let refuse = |text: &str| message(StatusCode::BAD_REQUEST, "Cannot make the report", text);
    let audience = match q.audience.as_str() {
        "governors" | "" => Audience::Governors,
        "dsl" => Audience::Dsl,
        _ => return refuse("Choose who the report is for: the governors or the DSL team."),
    };
    let Some((format, ext)) = pdf_or_html(&q.format) else { return refuse("Choose PDF or HTML.") };
    let (from, to) = match (date("first", &q.from), date("last", &q.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return refuse(&e),
    };
    let term = Some(q.term.trim()).filter(|t| !t.is_empty());
    let now = st.clock.now();
    let req = SummaryRequest { term, from, to, audience, format, out: None, viewer: s.staff.email() };
    let made = async {
        let doc = crate::cli::report::summary_doc(&st.app, &req, now).await?;
        crate::cli::report::render(&doc, format, now).await
    };
    let bytes = match made.await {
        Ok(b) => b,
        Err(e) => return failed(e, "the summary report"),
    };
    let which = term.map_or_else(|| format!("{}-to-{}", q.from.trim(), q.to.trim()), |t| t.replace(char::is_whitespace, "-"));
    let audience = if audience == Audience::Dsl { "dsl" } else { "governors" };
    let detail = format!("summary audience={audience} format={ext}");
    downloaded(&st, &s.staff, "report:summary", &detail, &format!("safeguarding-summary-{which}-{audience}.{ext}"), bytes).await
}

#[derive(serde::Deserialize)]
pub struct InspectionQuery {
    #[serde(default)]
    since: String,
    #[serde(default)]
    format: String,
}

/// `GET /reports/inspection?since=…&format=pdf|html`: the pack, zipped with its manifest.
pub async fn inspection(axum::extract::State(st): Shared, headers: HeaderMap, Query(q): Query<InspectionQuery>) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !s.staff.is_dsl_team() {
        return not_found().await;
    }
    let Some((format, ext)) = pdf_or_html(&q.format) else {
        return message(StatusCode::BAD_REQUEST, "Cannot make the lists", "Choose PDF or HTML.");
    };
    let since = match date("first", &q.since) {
        Ok(d) => d,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Cannot make the lists", &e),
    };
    let now = st.clock.now();
    let req = InspectionRequest { since, format, out: None, viewer: s.staff.email() };
    let files = match crate::cli::inspection::pack(&st.app, &req, now).await {
        Ok((_, files)) => files,
        Err(e) => return failed(e, "the inspection lists"),
    };
    let name = format!("inspection-{}", now.with_timezone(&st.tz).format("%Y%m%d-%H%M"));
    let Ok(zipped) = super::bundle::zip(&name, &files) else { return unavailable() };
    downloaded(&st, &s.staff, "report:inspection", &format!("inspection format={ext}"), &format!("{name}.zip"), zipped).await
}

#[derive(serde::Deserialize)]
pub struct MultiAgencyQuery {
    #[serde(default)]
    format: String,
}

/// `GET /pupils/{upn}/multiagency?format=pdf|html|csv`: the significant events this person
/// may see, in the partnership's columns.
pub async fn multiagency(
    axum::extract::State(st): Shared,
    headers: HeaderMap,
    Path(upn): Path<String>,
    Query(q): Query<MultiAgencyQuery>,
) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (output, ext) = match q.format.as_str() {
        "pdf" | "" => (Output::Pdf, "pdf"),
        "html" => (Output::Html, "html"),
        "csv" => (Output::Csv, "csv"),
        _ => return message(StatusCode::BAD_REQUEST, "Cannot make the chronology", "Choose PDF, HTML or CSV."),
    };
    let now = st.clock.now();
    let req = crate::cli::multiagency::Request { query: &upn, viewer: s.staff.email(), school: &st.school, out: None, tz: st.tz, now };
    let bytes = match crate::cli::multiagency::build(&st.store, &st.sealer().await, &st.blind, &req, output).await {
        Ok((_, b)) => b,
        Err(CliError::Usage(m)) if m.starts_with("no pupil") || m.contains("not an active") || m.contains("may not see") => {
            return not_found().await;
        }
        Err(e) => return failed(e, "the multi-agency chronology"),
    };
    let name = format!("multi-agency-chronology-{}.{ext}", upn.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    downloaded(&st, &s.staff, "console", &format!("multiagency format={ext}"), &name, bytes).await
}

/// A refusal the CLI would print (400 with its words), or a failure (503, logged).
fn failed(e: CliError, what: &str) -> Response {
    match e {
        CliError::Usage(m) | CliError::Config(m) => message(StatusCode::BAD_REQUEST, "Cannot make it", &m),
        e => {
            tracing::error!(error = %e, "console: cannot make {what}");
            unavailable()
        }
    }
}

/// Audits the download (a download that cannot be audited is not given), then gives it.
async fn downloaded(st: &State, staff: &Staff, subject: &str, detail: &str, name: &str, bytes: Vec<u8>) -> Response {
    let audited = st.audit(st.clock.now(), &format!("staff:{}", staff.id), "console_report_download", subject, detail).await;
    if audited.is_err() {
        return unavailable();
    }
    super::files::download(name, bytes)
}
