//! `haven sar export|verify`: the disclosure bundle and its log. The export lays out exactly
//! what was decided (redactions burned in, withheld items listed by number and code only) as
//! a PDF/A file through typst, writes it, and keeps in the disclosure log a sealed copy of
//! exactly those bytes with their SHA-256, who and when (audited as `sar_export`, the SHA-256
//! in the chain too). Verify opens each copy and checks it against both records.

use super::sar::{authorised, day, load, staff_name, subject_line};
use super::sar_items::{open_redactions, opened_items};
use super::{App, CliError};
use crate::sar::doc::{Cover, Decided, SarDoc, build};
use crate::sar::{Decision, Exemption, reference};
use crate::store::sar_fields;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;

/// One item's line in the disclosure log (no content).
#[derive(Debug, Serialize)]
struct Logged {
    item: i64,
    kind: String,
    decision: String,
    exemption: Option<String>,
    redacted_texts: usize,
    /// Whether the decision records a consultation (or why there was none).
    consultation_recorded: bool,
    sha256_collected: String,
}

pub async fn export(app: &App, id: i64, out: &Path, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let r = load(app, id).await?;
    let staff = authorised(app, &dir, by, "export", &r.audit_subject()).await?;
    if cfg!(not(feature = "pdf")) {
        return Err(CliError::Usage("this haven was built without PDF support (cargo feature `pdf`); nothing was exported".into()));
    }
    if out.exists() {
        return Err(CliError::Usage(format!(
            "--out {}: the file exists; give a new name (nothing is overwritten); nothing was exported",
            out.display()
        )));
    }
    let items = opened_items(app, &sealer, id).await?;
    if items.is_empty() {
        return Err(CliError::Usage(format!(
            "request #{id} has no items: `haven sar collect {id} --by EMAIL` first; nothing was exported"
        )));
    }
    let undecided: Vec<String> = items.iter().filter(|(i, _)| i.decision.is_none()).map(|(i, _)| i.item.to_string()).collect();
    if !undecided.is_empty() {
        return Err(CliError::Usage(format!(
            "request #{id}: {} item(s) undecided ({}): decide each with `haven sar decide {id} ITEM --disclose | --withhold | --redact …`; \
             nothing was exported",
            undecided.len(),
            undecided.join(", ")
        )));
    }
    let mut decided = Vec::new();
    let mut logged = Vec::new();
    for (it, content) in items {
        let decision = it
            .decision
            .as_deref()
            .and_then(Decision::parse)
            .ok_or_else(|| CliError::Other(anyhow::anyhow!("item {}: decision {:?} is not one Haven writes", it.item, it.decision)))?;
        let exemption = it
            .exemption
            .as_deref()
            .map(Exemption::parse)
            .transpose()
            .map_err(|e| CliError::Other(anyhow::anyhow!("item {}: {e}", it.item)))?;
        let redactions = open_redactions(&sealer, it.sealed_redactions.as_deref(), it.item)?;
        logged.push(Logged {
            item: it.item,
            kind: it.kind.clone(),
            decision: decision.as_str().into(),
            exemption: exemption.map(|e| e.code().to_string()),
            redacted_texts: redactions.len(),
            consultation_recorded: it.sealed_consulted.is_some(),
            sha256_collected: it.sha256.clone(),
        });
        decided.push(Decided { item: it.item, kind: it.kind, content, decision, exemption, redactions });
    }
    let roles: Vec<&str> = staff.roles.iter().map(|r| r.as_str()).collect();
    let cover = Cover {
        school: app.config.school.name.clone(),
        reference: reference(id),
        subject: subject_line(&dir, &sealer, &r),
        received: day(r.received_on),
        due: day(r.due()),
        exported_at: now.with_timezone(&tz).format("%-d %b %Y %H:%M").to_string(),
        exported_by: format!("{} {} ({})", staff.first_name, staff.last_name, roles.join(", ")),
    };
    let doc = build(cover, &decided);
    let bytes = render(doc.clone(), now).await?;
    let sha = hex::encode(Sha256::digest(&bytes));
    // Written first, under a name nobody sends; the final name only once the log holds it.
    let staged = super::stage_new(out, &bytes)
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot write {}: {e}; nothing was recorded as sent", out.display())))?;
    let mut tx = app.store.begin().await?;
    let disclosure = tx
        .record_disclosure(
            id,
            &sha,
            i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            &sealer.seal(sar_fields::COPY, &bytes),
            &serde_json::to_string(&logged).unwrap_or_default(),
            staff.id,
            now,
        )
        .await?;
    tx.commit().await?;
    staged.publish().map_err(|(e, partial)| {
        CliError::Other(anyhow::anyhow!(
            "disclosure #{disclosure} is logged, but {} could not be written ({e}); the logged copy is {}: rename it",
            out.display(),
            partial.display()
        ))
    })?;
    Ok(format!(
        "{} exported to {}: {}; disclosure #{disclosure} logged with a sealed copy, SHA-256 {sha}. \
         `haven sar verify {id} --by EMAIL` checks it",
        reference(id),
        out.display(),
        doc.counts
    ))
}

#[cfg(feature = "pdf")]
async fn render(doc: SarDoc, now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    let rendered = tokio::task::spawn_blocking(move || crate::pdf::render(crate::pdf::Template::SubjectAccess, &doc, now))
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("the PDF renderer stopped: {e}")))?
        .map_err(|e| CliError::Other(anyhow::Error::new(e)))?;
    Ok(rendered.bytes)
}

#[cfg(not(feature = "pdf"))]
async fn render(_doc: SarDoc, _now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    unreachable!("refused above without the pdf feature")
}

/// Checks every disclosure of request `id`: its sealed copy opens, hashes to the SHA-256 the
/// log recorded, and to the one the audit chain recorded when it was sent; with `file`, that
/// the file is the latest copy sent.
pub async fn verify(app: &App, id: i64, file: Option<&Path>, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let r = load(app, id).await?;
    let staff = authorised(app, &dir, by, "verify", &r.audit_subject()).await?;
    let log = app.store.sar_disclosures(id).await?;
    let chain = app.store.audit_about(&r.audit_subject()).await?;
    app.store.audit(now, &format!("staff:{}", staff.id), "sar_verify", &r.audit_subject(), &format!("disclosures={}", log.len())).await?;
    if log.is_empty() {
        return Err(CliError::Usage(format!("request #{id} has no disclosures: nothing was exported for it yet")));
    }
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for d in &log {
        let audited = chain.iter().any(|a| a.action == "sar_export" && a.detail == format!("disclosure={} sha256={}", d.id, d.sha256));
        let problem = match sealer.open(sar_fields::COPY, &d.sealed_copy) {
            Err(e) => Some(format!("the stored copy does not open ({e}): it was changed or damaged")),
            Ok(bytes) => {
                let sha = hex::encode(Sha256::digest(&bytes));
                if sha != d.sha256 {
                    Some(format!("the stored copy hashes to {sha}, not the {} recorded when it was sent", d.sha256))
                } else if !audited {
                    Some("the audit chain has no matching sar_export entry: the log's hash was changed".into())
                } else {
                    None
                }
            }
        };
        let when = d.sent_at.with_timezone(&tz).format("%-d %b %Y %H:%M");
        match problem {
            None => lines.push(format!(
                "disclosure #{} of {}: intact ({} bytes, SHA-256 {}, sent {when} by {})",
                d.id,
                reference(id),
                d.size,
                d.sha256,
                staff_name(&dir, d.sent_by)
            )),
            Some(p) => failed.push(format!("disclosure #{} of {}: {p}", d.id, reference(id))),
        }
    }
    if let (Some(path), Some(last)) = (file, log.last()) {
        let bytes = std::fs::read(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if sha == last.sha256 {
            lines.push(format!("{} is exactly what disclosure #{} sent", path.display(), last.id));
        } else {
            failed.push(format!("{} is not what disclosure #{} sent (SHA-256 {sha}, not {})", path.display(), last.id, last.sha256));
        }
    }
    if failed.is_empty() { Ok(lines.join("\n")) } else { Err(CliError::Data(failed.join("\n"))) }
}
