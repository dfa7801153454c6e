//! `haven export PUPIL --as STAFF --format html|json [--out DIR]`: a chronology bundle for a
//! meeting, a referral or a destination school: the chronology as `--as` (required) may see
//! it, every attachment decrypted into `attachments/`, and `MANIFEST.sha256` listing the
//! SHA-256 of every file so the recipient can check nothing was altered. Audited as `export`.

use super::CliError;
use super::chronology::{Chronology, Entry, load_view, pupils_line};
use super::progress::Progress;
use crate::blind::BlindIndex;
use crate::pipeline::fields;
use crate::seal::Sealer;
use crate::store::Store;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The bundle formats. PDF is asked for by the SPEC but not built yet: print the HTML.
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
        write_file(&out.join(name), data).map_err(io)?;
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
    if req.format == Format::Pdf {
        return Err(CliError::Usage("PDF export is not available yet: export --format html and print it to PDF".into()));
    }
    let view = load_view(store, sealer, blind, req.query, req.viewer, "export", req.now).await?;
    let name = format!("export-{}-{}", view.pupil.upn, req.now.format("%Y%m%d-%H%M%S"));

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut attachments_by_incident = Vec::new();
    for e in &view.entries {
        let mut listed = Vec::new();
        for a in store.attachment_files(e.incident).await? {
            let data = sealer
                .open(fields::ATTACHMENT, &a.sealed)
                .map_err(|err| CliError::Other(anyhow::anyhow!("incident {} attachment: {err}", e.incident)))?;
            let filename = crate::blind::open_or_clear(sealer, fields::FILENAME, &a.filename)
                .map_err(|err| CliError::Other(anyhow::anyhow!("incident {} attachment name: {err}", e.incident)))?;
            let name = format!("attachments/{}-{}-{}", e.incident, &a.sha256[..12], filename);
            listed.push(json!({"filename": filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256, "path": name}));
            files.push((name, data));
        }
        attachments_by_incident.push(listed);
        incident_done(view.entries.len() as u64);
    }
    let chronology = Chronology::build(&view);
    let document = match req.format {
        Format::Json => ("chronology.json".to_string(), render_json(&chronology, &attachments_by_incident, req.now).into_bytes()),
        _ => ("chronology.html".to_string(), render_html(&chronology, &attachments_by_incident, req.school, req.tz, req.now).into_bytes()),
    };
    files.insert(0, document);

    let mut manifest = String::new();
    for (name, data) in &files {
        let _ = writeln!(manifest, "{}  {name}", hex::encode(Sha256::digest(data)));
    }
    files.push(("MANIFEST.sha256".to_string(), manifest.into_bytes()));
    Ok(Bundle { name, files })
}

fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(data)
}

fn render_json(view: &Chronology, attachments: &[Vec<serde_json::Value>], now: DateTime<Utc>) -> String {
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
        "incidents": incidents,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn render_html(view: &Chronology, attachments: &[Vec<serde_json::Value>], school: &str, tz: Tz, now: DateTime<Utc>) -> String {
    let esc = |s: &str| ammonia::clean_text(s);
    let at = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let p = &view.pupil;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Chronology: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:50em;margin:2em auto}}section{{border-top:1px solid #999;padding:.5em 0}}\
         pre{{white-space:pre-wrap}}</style></head><body>\
         <h1>Safeguarding chronology: {name}</h1><p>{school}. UPN {upn}, Year {year}. Exported {now}. \
         CONFIDENTIAL: share only with those who need to know.</p>",
        name = esc(&p.name),
        school = esc(school),
        upn = esc(&p.upn),
        year = p.year_group.map_or("?".into(), |y| y.to_string()),
        now = at(&now),
    );
    for (e, files) in view.incidents.iter().zip(attachments) {
        let _ = write!(
            h,
            "<section id=\"incident-{id}\"><h2>#{id} {} — {}</h2><p>Kind: {}. Role: {}. Priority: {}. Recorded {} by {}.</p>",
            at(&e.occurred_at),
            esc(&e.category),
            esc(&e.kind_label),
            esc(&e.role),
            esc(&e.priority),
            at(&e.recorded_at),
            esc(e.recorded_by.as_deref().unwrap_or("unknown")),
            id = e.incident,
        );
        if let Some(d) = &e.date_note {
            let _ = write!(h, "<p>Date: {}; dated when filed.</p>", esc(d));
        }
        if let Some(n) = &e.category_note {
            let _ = write!(h, "<p>Category: {}</p>", esc(n));
        }
        if let Some(f) = e.follows {
            let _ = write!(h, "<p>Follow-up to <a href=\"#incident-{f}\">incident #{f}</a>.</p>");
        }
        let _ = write!(h, "<p>Pupils: {}</p>", esc(&pupils_line(&e.pupils)));
        html_body(&mut h, e, &at);
        for f in files {
            let _ = write!(
                h,
                "<p>Attachment: <a href=\"{path}\">{name}</a> (SHA-256 {sha})</p>",
                path = esc(f["path"].as_str().unwrap_or_default()),
                name = esc(f["filename"].as_str().unwrap_or_default()),
                sha = esc(f["sha256"].as_str().unwrap_or_default()),
            );
        }
        if !e.follow_ups.is_empty() {
            let links: Vec<String> = e.follow_ups.iter().map(|c| format!("<a href=\"#incident-{c}\">#{c}</a>")).collect();
            let _ = write!(h, "<p>Follow-ups: {}</p>", links.join(", "));
        }
        if let Some(o) = &e.outcome {
            let _ = write!(
                h,
                "<p><strong>Outcome</strong> ({}, {}):</p><pre>{}</pre>",
                esc(e.outcome_by.as_deref().unwrap_or("unknown")),
                e.outcome_at.as_ref().map(&at).unwrap_or_else(|| "time not recorded".into()),
                esc(o)
            );
        }
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    h
}

/// The note once, then the original message when there is one.
fn html_body(h: &mut String, e: &Entry, at: &dyn Fn(&DateTime<Utc>) -> String) {
    let esc = |s: &str| ammonia::clean_text(s);
    if let Some(w) = e.own_words() {
        let _ = write!(h, "<h3>Note</h3><pre>{}</pre>", esc(w));
    }
    if e.original_sender().is_some() || e.original_text().is_some() {
        h.push_str("<h3>Original message</h3>");
    }
    if let Some(sender) = e.original_sender() {
        let _ = write!(h, "<p>From: {}. Sent {}.</p>", esc(&sender), at(&e.occurred_at));
    }
    if let Some(s) = &e.original_subject {
        let _ = write!(h, "<p>Subject: {}</p>", esc(s));
    }
    if let Some(t) = e.original_text() {
        let _ = write!(h, "<pre>{}</pre>", esc(t));
    }
}
