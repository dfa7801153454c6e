//! `haven report inspection --as DSL [--since DATE] [--format text|html|json|pdf] [--out DIR]`:
//! the pack an inspector asks for at 8am on the first day ([`crate::report::inspection`]),
//! written as a folder with the document, its data (`inspection.json`) and `MANIFEST.sha256`
//! listing the SHA-256 of each, so a copy handed over can be checked. The DSL team only; the run
//! is audited with what it listed.
//!
//! Only the pupils listed are opened (UPN, initials, year group), and only the outcomes listed.

use super::report::{ReportFormat, write_new};
use super::{App, CliError};
use crate::directory::Directory;
use crate::pipeline::fields;
use crate::report::inspection::{InspectionDoc, OverdueRow, PlanRow, ReferralRow};
use crate::report::period::day_start_us;
use crate::store::{ListedIncident, from_us};
use askama::Template as _;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::PathBuf;

pub struct InspectionRequest<'a> {
    /// The first day covered; a year before today when not given.
    pub since: Option<NaiveDate>,
    pub format: ReportFormat,
    pub out: Option<PathBuf>,
    pub viewer: &'a str,
}

#[derive(askama::Template)]
#[template(path = "report_inspection.html")]
struct InspectionHtml<'a> {
    d: &'a InspectionDoc,
}

#[derive(askama::Template)]
#[template(path = "report_inspection.txt")]
struct InspectionText<'a> {
    d: &'a InspectionDoc,
}

/// How a decision code reads.
fn decision(code: Option<&str>, decided: bool) -> String {
    match code {
        Some("NFA") => "No further action".into(),
        Some("MONITOR") => "Monitor".into(),
        Some("EARLY-HELP") => "Early help".into(),
        Some("REFERRED-CSC") => "Referred to children's social care".into(),
        Some("LADO") => "Referred to the LADO".into(),
        Some("POLICE") => "Referred to the police".into(),
        Some("NO-REFERRAL") => "Decided not to refer".into(),
        Some(other) => other.to_string(),
        None if decided => "Outcome recorded without a code".into(),
        None => "Awaiting a decision".into(),
    }
}

/// "A100000000003 A.K. (Year 9)" for each pupil.
fn pupils_text(dir: &Directory, ids: &[i64]) -> String {
    let text: Vec<String> = ids
        .iter()
        .map(|id| match dir.pupils.iter().find(|p| p.id == *id) {
            Some(p) => {
                let initials: Vec<String> = p.initials().chars().map(|c| format!("{c}.")).collect();
                let year = p.year_group.map(|y| format!(" (Year {y})")).unwrap_or_default();
                format!("{} {}{year}", p.upn, initials.concat())
            }
            None => format!("pupil #{id}"),
        })
        .collect();
    if text.is_empty() { "none recorded".into() } else { text.join("; ") }
}

/// Builds the pack's model: every list read from the store, only what is listed opened.
pub async fn inspection_doc(app: &App, req: &InspectionRequest<'_>, now: DateTime<Utc>) -> Result<InspectionDoc, CliError> {
    let tz: Tz = app.config.school.tz();
    let today = now.with_timezone(&tz).date_naive();
    let since = req.since.unwrap_or_else(|| today - chrono::Duration::days(365));
    if since > today {
        return Err(CliError::Usage(format!("--since {since} is in the future")));
    }
    let sealer = app.sealer().await?;
    let staff_only = app.store.load_directory_with_pupils(&sealer, &[]).await?;
    let viewer =
        super::referral::dsl_team(&app.store, &staff_only, req.viewer, "--as", "report_inspection", "report:inspection", now).await?;
    let viewer_name = format!("{} {} <{}>", viewer.first_name, viewer.last_name, viewer.email());
    let viewer_id = viewer.id;
    let safeguarding: Vec<String> =
        super::load_rules(&app.config)?.categories().iter().filter(|c| c.safeguarding).map(|c| c.name.clone()).collect();
    let listed: Vec<ListedIncident> = app.store.inspection_incidents(day_start_us(since, tz), &safeguarding).await?;
    let referrals = app.store.referrals(None).await?;
    let plans = app.store.plans(true).await?;
    let overdue = app.store.overdue_actions(now).await?;
    let mut ids: Vec<i64> = listed.iter().flat_map(|l| l.pupils.iter().map(|(p, _)| *p)).collect();
    ids.extend(plans.iter().map(|p| p.pupil_id));
    ids.extend(overdue.iter().flat_map(|o| o.pupils.iter().copied()));
    ids.sort_unstable();
    ids.dedup();
    let dir = app.store.load_directory_with_pupils(&sealer, &ids).await?;
    let day = |us: i64| from_us(us).with_timezone(&tz).format("%Y-%m-%d").to_string();
    let staff_name = |id: Option<i64>| {
        id.and_then(|id| dir.staff.iter().find(|s| s.id == id))
            .map_or_else(|| "unknown".to_string(), |s| format!("{} {}", s.first_name, s.last_name))
    };
    let roles = |id: Option<i64>| {
        id.and_then(|id| dir.staff.iter().find(|s| s.id == id))
            .map(|s| s.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "unknown".to_string())
    };
    let mut rows = Vec::new();
    let mut lado = Vec::new();
    for l in &listed {
        let on: Vec<String> = referrals
            .iter()
            .filter(|r| r.incident_id == l.id)
            .map(|r| {
                let reference = r
                    .sealed_reference
                    .as_deref()
                    .map(|s| sealer.open_text(super::referral::REFERENCE_FIELD, s).unwrap_or_else(|_| "unreadable".into()));
                format!("{} on {}{}", r.agency, r.referred_on, reference.map(|t| format!(" (ref {t})")).unwrap_or_default())
            })
            .collect();
        let resolution = match (&l.outcome, l.outcome_us) {
            (Some(sealed), at) => {
                let text = sealer.open_text(fields::OUTCOME, sealed).unwrap_or_else(|_| "(unreadable with this keyring)".into());
                format!("{text} ({}, {})", staff_name(l.outcome_by), at.map(day).unwrap_or_default())
            }
            (None, _) => l.due_us.map_or_else(|| "no outcome recorded".to_string(), |d| format!("outcome due {}", day(d))),
        };
        let pupil_ids: Vec<i64> = l.pupils.iter().map(|(p, _)| *p).collect();
        let row = ReferralRow {
            incident: l.id,
            date: day(l.occurred_us),
            pupils: pupils_text(&dir, &pupil_ids),
            category: l.category.clone(),
            recorded_by: roles(l.recorded_by),
            decision: decision(l.outcome_code.as_deref(), l.outcome.is_some()),
            referred_on: if on.is_empty() { "no".into() } else { on.join("; ") },
            resolution,
        };
        if l.outcome_code.as_deref() == Some("LADO") || referrals.iter().any(|r| r.incident_id == l.id && r.agency == "LADO") {
            lado.push(row.clone());
        }
        rows.push(row);
    }
    let plan_rows = plans
        .iter()
        .map(|p| PlanRow {
            plan: p.id,
            pupil: pupils_text(&dir, &[p.pupil_id]),
            kind: super::plan::kind_label(&p.kind),
            starts: p.starts_on.to_string(),
            next_review: p.next_review_on.map_or_else(|| "none set".to_string(), |d| d.to_string()),
        })
        .collect();
    let overdue_rows = overdue
        .iter()
        .map(|o| OverdueRow {
            incident: o.incident_id,
            pupils: pupils_text(&dir, &o.pupils),
            category: o.category.clone(),
            due: o.due.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
            owner: o.owner_name.clone().unwrap_or_else(|| "the DSL team".into()),
        })
        .collect();
    let doc = InspectionDoc {
        school: app.config.school.name.clone(),
        title: "Safeguarding: lists for the inspection team".into(),
        generated_at: format!("{} ({})", now.with_timezone(&tz).format("%Y-%m-%d %H:%M"), tz.name()),
        generated_by: viewer_name,
        since: since.to_string(),
        referrals: rows,
        lado,
        plans: plan_rows,
        overdue: overdue_rows,
    };
    app.store.audit(now, &format!("staff:{viewer_id}"), "report", "report:inspection", &format!("since={since} {}", doc.counts())).await?;
    Ok(doc)
}

/// `haven report inspection`: writes the pack and says where.
pub async fn run(app: &App, req: InspectionRequest<'_>) -> Result<String, CliError> {
    let now = app.now();
    let out = req.out.clone().unwrap_or_else(|| PathBuf::from(format!("inspection-{}", now.format("%Y%m%d-%H%M%S"))));
    if out.exists() {
        return Err(CliError::Usage(format!("{} already exists; choose another --out", out.display())));
    }
    let (doc, files) = pack(app, &req, now).await?;
    std::fs::create_dir_all(&out).map_err(|e| CliError::Other(anyhow::anyhow!("creating {}: {e}", out.display())))?;
    for (name, data) in &files {
        write_new(&out.join(name), data)?;
    }
    Ok(format!("inspection pack written to {} ({})", out.display(), doc.counts()))
}

/// The pack's files (the lists in `req.format`, their JSON and `MANIFEST.sha256`), checked,
/// audited and made in memory; the CLI writes them to a folder, the console zips them.
pub async fn pack(app: &App, req: &InspectionRequest<'_>, now: DateTime<Utc>) -> Result<(InspectionDoc, Vec<(String, Vec<u8>)>), CliError> {
    let doc = inspection_doc(app, req, now).await?;
    let templ = |e: askama::Error| CliError::Other(anyhow::anyhow!("the inspection pack's template: {e}"));
    let json = serde_json::to_vec_pretty(&doc).map_err(|e| CliError::Other(anyhow::anyhow!("the inspection pack's JSON: {e}")))?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    match req.format {
        ReportFormat::Text => files.push(("inspection.txt".into(), InspectionText { d: &doc }.render().map_err(templ)?.into_bytes())),
        ReportFormat::Html => files.push(("inspection.html".into(), InspectionHtml { d: &doc }.render().map_err(templ)?.into_bytes())),
        ReportFormat::Pdf => files.push(("inspection.pdf".into(), render_pdf(doc.clone(), now).await?)),
        ReportFormat::Json => {}
    }
    files.push(("inspection.json".into(), json));
    let mut manifest = String::new();
    for (name, data) in &files {
        let _ = writeln!(manifest, "{}  {name}", hex::encode(Sha256::digest(data)));
    }
    files.push(("MANIFEST.sha256".into(), manifest.into_bytes()));
    Ok((doc, files))
}

#[cfg(feature = "pdf")]
async fn render_pdf(doc: InspectionDoc, now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    let rendered = tokio::task::spawn_blocking(move || crate::pdf::render(crate::pdf::Template::Inspection, &doc, now))
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("the PDF renderer stopped: {e}")))?
        .map_err(|e| CliError::Other(anyhow::Error::new(e)))?;
    Ok(rendered.bytes)
}

#[cfg(not(feature = "pdf"))]
async fn render_pdf(_doc: InspectionDoc, _now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    Err(CliError::Usage("this haven was built without PDF support (cargo feature `pdf`): use --format html and print it".into()))
}
