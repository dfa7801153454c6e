//! `haven export PUPIL --as STAFF --format html|json|pdf [--out DIR]`: a chronology bundle for
//! a meeting, a referral or a destination school: the chronology as `--as` (required) may see
//! it, every attachment decrypted into `attachments/`, and `MANIFEST.sha256` listing the
//! SHA-256 of every file so the recipient can check nothing was altered. Audited as `export`
//! with the export's id.
//!
//! A PDF bundle holds `chronology.pdf`, `chronology.json` (the data it shows), the attachments
//! and the manifest. The manifest lists every file but the PDF, and the PDF prints the
//! manifest's own SHA-256 on every page: a printed page names the bundle it came from (a file
//! cannot hold its own hash, so the PDF cannot be in the manifest it names).

use super::CliError;
use super::chronology::{Chronology, load_view_noted};
use super::export_doc::{EntryFacts, ExportDoc, ExportMeta};
use super::progress::Progress;
use crate::blind::BlindIndex;
use crate::pipeline::fields;
use crate::seal::Sealer;
use crate::store::Store;
use askama::Template as _;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The bundle formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Json,
    Pdf,
}

pub struct ExportRequest<'a> {
    pub query: &'a str,
    /// Who is exporting (a staff email): required, and the bundle holds only what they may see.
    pub viewer: &'a str,
    pub format: Format,
    pub out: Option<PathBuf>,
    pub school: &'a str,
    pub tz: Tz,
    pub now: DateTime<Utc>,
}

/// A bundle's files, the chronology document first and `MANIFEST.sha256` last, and the
/// directory name it is written under by default.
pub struct Bundle {
    pub name: String,
    pub files: Vec<(String, Vec<u8>)>,
}

/// Writes the bundle and returns its directory, showing progress by incident on stderr.
pub async fn run(store: &Store, sealer: &Sealer, blind: &BlindIndex, req: ExportRequest<'_>) -> Result<PathBuf, CliError> {
    let mut shown: Option<Progress> = None;
    let bundle = bundle_showing(store, sealer, blind, &req, &mut |total| {
        shown.get_or_insert_with(|| Progress::start("incidents exported", total)).advance(1)
    })
    .await?;
    if let Some(progress) = shown {
        progress.finish();
    }
    let out = req.out.clone().unwrap_or_else(|| PathBuf::from(&bundle.name));
    if out.exists() {
        return Err(CliError::Usage(format!("{} already exists; choose another --out", out.display())));
    }
    let io = |e: std::io::Error| CliError::Other(anyhow::anyhow!("writing {}: {e}", out.display()));
    std::fs::create_dir_all(out.join("attachments")).map_err(io)?;
    for (name, data) in &bundle.files {
        super::write_new(&out.join(name), data).map_err(io)?;
    }
    Ok(out)
}

/// Builds the bundle in memory (the console sends it without writing it to disk).
pub async fn bundle(store: &Store, sealer: &Sealer, blind: &BlindIndex, req: &ExportRequest<'_>) -> Result<Bundle, CliError> {
    bundle_showing(store, sealer, blind, req, &mut |_| {}).await
}

/// [`bundle`], calling `incident_done(total)` as each incident's files are gathered.
async fn bundle_showing(
    store: &Store,
    sealer: &Sealer,
    blind: &BlindIndex,
    req: &ExportRequest<'_>,
    incident_done: &mut (dyn FnMut(u64) + Send),
) -> Result<Bundle, CliError> {
    #[cfg(not(feature = "pdf"))]
    if req.format == Format::Pdf {
        return Err(CliError::Usage(
            "this haven was built without PDF support (cargo feature `pdf`): export --format html and print it to PDF".into(),
        ));
    }
    let export_id = export_id(req.now);
    let view = load_view_noted(store, sealer, blind, req.query, req.viewer, "export", &format!("id={export_id}"), req.now).await?;
    let name = format!("export-{}-{}", view.pupil.upn, req.now.format("%Y%m%d-%H%M%S"));

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut attachments_by_incident = Vec::new();
    let mut facts = Vec::new();
    for e in &view.entries {
        let mut listed = Vec::new();
        let mut fact = EntryFacts::default();
        for a in store.attachment_files(e.incident).await? {
            let data = sealer
                .open(fields::ATTACHMENT, &a.sealed)
                .map_err(|err| CliError::Other(anyhow::anyhow!("incident {} attachment: {err}", e.incident)))?;
            let filename = crate::blind::open_or_clear(sealer, fields::FILENAME, &a.filename)
                .map_err(|err| CliError::Other(anyhow::anyhow!("incident {} attachment name: {err}", e.incident)))?;
            let name = format!("attachments/{}-{}-{}", e.incident, &a.sha256[..12], filename);
            listed.push(json!({"filename": filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256, "path": name}));
            fact.attachments.push(super::export_doc::AttachmentDoc { name: filename, sha256: a.sha256.clone(), path: name.clone() });
            files.push((name, data));
        }
        if req.format != Format::Json {
            fact.sent = store.console_sent_about(e.incident).await?;
        }
        attachments_by_incident.push(listed);
        facts.push(fact);
        incident_done(view.entries.len() as u64);
    }
    let chronology = Chronology::build(&view);
    let holds = store.holds_touching(Some(view.pupil.id), None).await?;
    let exporter = view
        .dir
        .active_staff_by_email(req.viewer)
        .ok_or_else(|| CliError::Usage(format!("--as {}: not an active member of staff; nothing was exported", req.viewer)))?;
    let meta = |manifest_sha256| ExportMeta {
        school: req.school,
        export_id: &export_id,
        exporter,
        manifest_sha256,
        tz: req.tz,
        now: req.now,
        staff: &view.dir.staff,
        holds: &holds,
    };
    let document = match req.format {
        Format::Html => {
            let doc = ExportDoc::build(&chronology, &facts, &meta(None));
            let html = ExportHtml { d: &doc }.render().map_err(|e| CliError::Other(anyhow::anyhow!("the export's HTML: {e}")))?;
            ("chronology.html".to_string(), html.into_bytes())
        }
        Format::Json | Format::Pdf => {
            let exported: Vec<i64> = chronology.incidents.iter().map(|e| e.incident).collect();
            let holds = super::export_doc::hold_lines(&meta(None), &exported);
            ("chronology.json".to_string(), render_json(&chronology, &attachments_by_incident, &holds, req.now).into_bytes())
        }
    };
    files.insert(0, document);

    let manifest = manifest(&files);
    if req.format == Format::Pdf {
        let hash = hex::encode(Sha256::digest(manifest.as_bytes()));
        let doc = ExportDoc::build(&chronology, &facts, &meta(Some(&hash)));
        files.insert(0, ("chronology.pdf".to_string(), render_pdf(doc, req.now).await?));
    }
    files.push(("MANIFEST.sha256".to_string(), manifest.into_bytes()));
    Ok(Bundle { name, files })
}

/// The HTML export: the same [`ExportDoc`] the PDF shows, through an auto-escaping template.
#[derive(askama::Template)]
#[template(path = "export.html")]
struct ExportHtml<'a> {
    d: &'a ExportDoc,
}

/// `sha256sum` lines for `files`: what `sha256sum -c MANIFEST.sha256` checks.
fn manifest(files: &[(String, Vec<u8>)]) -> String {
    let mut manifest = String::new();
    for (name, data) in files {
        let _ = writeln!(manifest, "{}  {name}", hex::encode(Sha256::digest(data)));
    }
    manifest
}

/// "20261207-043512-3fa9c1d2": the time of the export and 32 random bits, so two exports in
/// the same second differ.
fn export_id(now: DateTime<Utc>) -> String {
    format!("{}-{:08x}", now.format("%Y%m%d-%H%M%S"), rand::random::<u32>())
}

/// Lays the PDF out off the async runtime (a long chronology takes a while).
#[cfg(feature = "pdf")]
async fn render_pdf(doc: ExportDoc, now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    let rendered = tokio::task::spawn_blocking(move || crate::pdf::render(crate::pdf::Template::Chronology, &doc, now))
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("the PDF renderer stopped: {e}")))?
        .map_err(|e| CliError::Other(anyhow::Error::new(e)))?;
    Ok(rendered.bytes)
}

#[cfg(not(feature = "pdf"))]
async fn render_pdf(_doc: ExportDoc, _now: DateTime<Utc>) -> Result<Vec<u8>, CliError> {
    unreachable!("refused above without the pdf feature")
}

fn render_json(view: &Chronology, attachments: &[Vec<serde_json::Value>], holds: &[String], now: DateTime<Utc>) -> String {
    let incidents: Vec<serde_json::Value> = view
        .incidents
        .iter()
        .zip(attachments)
        .map(|(e, files)| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["attachments"] = json!(files);
            v
        })
        .collect();
    let v = json!({
        "exported_at": now.to_rfc3339(),
        "pupil": view.pupil,
        "holds": holds,
        "incidents": incidents,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
