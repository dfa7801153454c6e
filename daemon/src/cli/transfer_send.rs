//! `haven transfer prepare CASE --summary FILE --by DSL` and `haven transfer send CASE --by DSL`:
//! the bundle of a leaver's child-protection file and the record that it went.
//!
//! The bundle is a folder (and the same as one `.zip`): the chronology as PDF and JSON with
//! its attachments (the export's own code, audited as an export), a front sheet with the DSL's
//! summary of the main concerns, `receipt.txt` saying how to confirm receipt, `ITEMS.sha256`
//! (every file's SHA-256) and `manifest.json` signed with the school's Ed25519 transfer key
//! (`manifest.sig`). "Written out" sending: the DSL sends it through the school's encrypted
//! mail, then records it; the receipt address carries a token signed for this case alone.

use super::export::{ExportRequest, Format};
use super::transfer::dsl_team;
use super::{App, CliError};
use crate::store::{CaseState, TransferCase, transfer_fields};
use crate::transfer::bundle::{self, Item, Manifest, PupilId, SigningKey};
use crate::transfer::{RetainAfter, RetainFor};
use askama::Template as _;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The front sheet and `receipt.txt`: one model, two templates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FrontSheet {
    pub case: i64,
    pub from_school: String,
    pub to_school: String,
    pub pupil_name: String,
    pub upn: String,
    pub date_of_birth: String,
    pub left_on: String,
    pub prepared_on: String,
    pub prepared_by: String,
    pub summary: String,
    pub entries: usize,
    pub attachments: usize,
    pub files: Vec<String>,
    pub fingerprint: String,
    pub receipt_to: String,
}

#[derive(askama::Template)]
#[template(path = "transfer_front_sheet.html")]
struct FrontSheetHtml<'a> {
    f: &'a FrontSheet,
}

#[derive(askama::Template)]
#[template(path = "transfer_receipt.txt")]
struct ReceiptText<'a> {
    f: &'a FrontSheet,
}

pub(crate) async fn case_for(app: &App, id: i64) -> Result<TransferCase, CliError> {
    app.store.transfer_case(id).await?.ok_or_else(|| CliError::Usage(format!("there is no transfer case #{id} (see `haven transfers`)")))
}

pub struct Prepare<'a> {
    pub case: i64,
    pub summary: &'a Path,
    pub by: &'a str,
    pub out: Option<PathBuf>,
}

pub async fn prepare(app: &App, req: Prepare<'_>) -> Result<String, CliError> {
    let now = app.now();
    let case = case_for(app, req.case).await?;
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory_with_pupils(&sealer, &[case.pupil_id]).await?;
    let staff = dsl_team(&app.store, &dir, req.by, "transfer_prepare", &format!("transfer:{}", case.id), now).await?.clone();
    if matches!(case.state, CaseState::Sent | CaseState::Closed) {
        return Err(CliError::Usage(format!(
            "transfer case #{} was sent already ({}); nothing was prepared",
            case.id,
            case.state.as_str()
        )));
    }
    let summary = std::fs::read_to_string(req.summary)
        .map_err(|e| CliError::Usage(format!("--summary {}: cannot be read: {e}; nothing was prepared", req.summary.display())))?;
    if summary.trim().is_empty() {
        return Err(CliError::Data(format!(
            "--summary {}: the summary is empty: write the main concerns for the receiving DSL; nothing was prepared",
            req.summary.display()
        )));
    }
    let pupil = dir
        .pupil(case.pupil_id)
        .cloned()
        .ok_or_else(|| CliError::Data(format!("transfer case #{}: the pupil is no longer in the directory", case.id)))?;
    let reply_key = super::read_reply_key(&app.config)?;
    let signing = SigningKey::from_key_file(&app.config.storage.key_file).map_err(|e| CliError::Config(e.to_string()))?;
    let receipt_to =
        crate::reply_token::receipt_address(&app.config.school.intake_address, &crate::reply_token::sign_receipt(&reply_key, case.id))
            .ok_or_else(|| CliError::Config("school.intake_address: expected an email address".into()))?;
    let destination = case
        .sealed_destination
        .as_deref()
        .map(|s| sealer.open_text(transfer_fields::DESTINATION, s))
        .transpose()
        .map_err(|e| CliError::Other(anyhow::anyhow!("the destination: {e}")))?;

    // The chronology as the DSL sees it: everything (the export is audited as an export).
    let tz = app.config.school.tz();
    let export =
        ExportRequest { query: &pupil.upn, viewer: req.by, format: Format::Pdf, out: None, school: &app.config.school.name, tz, now };
    let mut files = super::export::bundle(&app.store, &sealer, &app.blind_index()?, &export).await?.files;
    let entries = chronology_entries(&files);
    let attachments = files.iter().filter(|(n, _)| n.starts_with("attachments/")).count();
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    names.extend(["front-sheet.html", "summary.txt", "receipt.txt", "ITEMS.sha256"].map(String::from));
    let sheet = FrontSheet {
        case: case.id,
        from_school: app.config.school.name.clone(),
        to_school: destination.clone().unwrap_or_else(|| "(destination not yet known)".into()),
        pupil_name: pupil.full_name(),
        upn: pupil.upn.clone(),
        date_of_birth: pupil.date_of_birth.map(|d| d.format("%-d %b %Y").to_string()).unwrap_or_default(),
        left_on: case.left_on.format("%-d %b %Y").to_string(),
        prepared_on: now.with_timezone(&tz).format("%-d %b %Y %H:%M").to_string(),
        prepared_by: format!("{} {}, {}", staff.first_name, staff.last_name, role_of(&staff)),
        summary: summary.trim().to_string(),
        entries,
        attachments,
        files: names,
        fingerprint: signing.fingerprint(),
        receipt_to: receipt_to.clone(),
    };
    let render = |r: Result<String, askama::Error>| r.map_err(|e| CliError::Other(anyhow::anyhow!("the front sheet: {e}")));
    files.push(("front-sheet.html".into(), render(FrontSheetHtml { f: &sheet }.render())?.into_bytes()));
    files.push(("summary.txt".into(), format!("{}\n", sheet.summary).into_bytes()));
    files.push(("receipt.txt".into(), render(ReceiptText { f: &sheet }.render())?.into_bytes()));
    let mut listing = String::new();
    for (name, data) in &files {
        let _ = writeln!(listing, "{}  {name}", hex::encode(Sha256::digest(data)));
    }
    files.push(("ITEMS.sha256".into(), listing.into_bytes()));
    let items: Vec<Item> = files.iter().map(|(n, d)| bundle::item(n, d)).collect();
    let manifest = Manifest {
        format: bundle::FORMAT.into(),
        case: case.id,
        from_school: app.config.school.name.clone(),
        to_school: destination.clone(),
        pupil: PupilId { upn: pupil.upn.clone(), name: pupil.full_name(), date_of_birth: pupil.date_of_birth.map(|d| d.to_string()) },
        left_on: case.left_on.to_string(),
        prepared_at: now.to_rfc3339(),
        prepared_by: sheet.prepared_by.clone(),
        receipt_to: receipt_to.clone(),
        signing_key: signing.public(),
        items,
    };
    let (manifest_bytes, signature) = bundle::seal(&manifest, &signing);
    let manifest_sha256 = hex::encode(Sha256::digest(&manifest_bytes));
    files.push((bundle::MANIFEST.into(), manifest_bytes));
    files.push((bundle::SIGNATURE.into(), format!("{signature}\n").into_bytes()));

    let out = req.out.unwrap_or_else(|| PathBuf::from(format!("transfer-{}-{}-{}", case.id, pupil.upn, now.format("%Y%m%d"))));
    let archive = out.with_extension("zip");
    write_bundle(&out, &archive, &files)?;
    let mut tx = app.store.begin().await?;
    tx.record_transfer_prepared(case.id, staff.id, now, &manifest_sha256, manifest.items.len() as i64).await?;
    tx.commit().await?;
    Ok(format!(
        "transfer case #{}: bundle written to {} and {} ({} files, manifest SHA-256 {manifest_sha256}, signing key {}).\n\
         Send it through the school's encrypted mail to {}, separately from the main pupil file, then run \
         `haven transfer send {} --by {}`. The receipt comes back to {receipt_to}.",
        case.id,
        out.display(),
        archive.display(),
        manifest.items.len(),
        signing.fingerprint(),
        destination.as_deref().unwrap_or("the new school (record it with `haven leaver … --destination` first)"),
        case.id,
        req.by
    ))
}

/// The entries in the export's chronology.json.
fn chronology_entries(files: &[(String, Vec<u8>)]) -> usize {
    files
        .iter()
        .find(|(n, _)| n == "chronology.json")
        .and_then(|(_, d)| serde_json::from_slice::<serde_json::Value>(d).ok())
        .and_then(|v| v["incidents"].as_array().map(Vec::len))
        .unwrap_or(0)
}

fn role_of(staff: &crate::directory::Staff) -> &'static str {
    if staff.has_role(crate::directory::Role::Dsl) { "Designated Safeguarding Lead" } else { "Deputy Designated Safeguarding Lead" }
}

/// Writes the folder (files 0600, folders 0700) and the same files as one zip.
fn write_bundle(out: &Path, archive: &Path, files: &[(String, Vec<u8>)]) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    for p in [out, archive] {
        if p.exists() {
            return Err(CliError::Usage(format!("{} already exists; choose another --out; nothing was prepared", p.display())));
        }
    }
    let io = |p: &Path, e: std::io::Error| CliError::Other(anyhow::anyhow!("writing {}: {e}", p.display()));
    for (name, data) in files {
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(|e| io(parent, e))?;
        }
        super::write_new(&path, data).map_err(|e| io(&path, e))?;
    }
    let root = out.file_name().map_or_else(|| "transfer".to_string(), |n| n.to_string_lossy().into_owned());
    let zipped = crate::console::bundle::zip(&root, files).map_err(|e| CliError::Other(anyhow::anyhow!("the zip archive: {e}")))?;
    super::write_new(archive, &zipped).map_err(|e| io(archive, e))
}

/// `haven transfer send CASE --by DSL`: records the prepared bundle as sent by the school's own
/// encrypted mail, now, by `by`; the receipt is chased after `[transfer] receipt_within`
/// school days.
///
/// With `to_haven` (the prepared .zip), the destination runs Haven: the bundle is encrypted to
/// its key pinned in `transfer.schools_file` and queued to its intake address; the outbox sends
/// it, and its Haven keeps it for its DSL team (`haven transfer receive --message N`).
pub async fn send(app: &App, case: i64, by: &str, to_haven: Option<&Path>) -> Result<String, CliError> {
    let now: DateTime<Utc> = app.now();
    let case = case_for(app, case).await?;
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory_with_pupils(&sealer, &[case.pupil_id]).await?;
    let staff = dsl_team(&app.store, &dir, by, "transfer_send", &format!("transfer:{}", case.id), now).await?.clone();
    match case.state {
        CaseState::Open => {
            return Err(CliError::Usage(format!(
                "transfer case #{} has no bundle yet: run `haven transfer prepare {} --summary FILE --by {by}` first; nothing was recorded",
                case.id, case.id
            )));
        }
        CaseState::Sent | CaseState::Closed => {
            return Err(CliError::Usage(format!("transfer case #{} was recorded as sent already; nothing was recorded", case.id)));
        }
        CaseState::Prepared => {}
    }
    if case.sealed_destination.is_none() {
        return Err(CliError::Usage(format!(
            "transfer case #{}: the destination is not known: record it with `haven leaver UPN --left-on DATE --destination \"SCHOOL <dsl@school>\" --by {by}`; nothing was recorded",
            case.id
        )));
    }
    let days = super::transfer::days(app).map_err(|e| CliError::Config(e.to_string()))?;
    let tz = app.config.school.tz();
    let sent_on = now.with_timezone(&tz).date_naive();
    let (receipt_due, rungs) = crate::transfer::receipt_ladder(days, &app.config.transfer, sent_on, tz);
    let destination =
        case.sealed_destination.as_deref().and_then(|s| sealer.open_text(transfer_fields::DESTINATION, s).ok()).unwrap_or_default();
    let email = match to_haven {
        None => None,
        Some(zip) => Some(to_haven_email(app, &case, &destination, zip)?),
    };
    let method = if email.is_some() { "haven" } else { "written_out" };
    let retain = (app.config.transfer.retain_after, app.config.transfer.retain_for);
    let (raw, message, marker) = transferred_entry(app, &sealer, &case, &staff, &destination, email.is_some(), now)?;
    let mut tx = app.store.begin().await?;
    tx.record_message(&raw, &message, Some(&marker), &format!("staff:{}", staff.id)).await?;
    if !tx.record_transfer_sent(case.id, staff.id, now, receipt_due, &rungs, method, retain).await? {
        return Err(CliError::Usage(format!("transfer case #{} changed meanwhile; nothing was recorded (see `haven transfers`)", case.id)));
    }
    if let Some(email) = &email {
        tx.queue_email(None, email, now).await?;
    }
    tx.commit().await?;
    let how = match &email {
        Some(e) => format!(" (encrypted to its pinned key, queued to {}: the daemon sends it)", e.recipient),
        None => String::new(),
    };
    Ok(format!(
        "transfer case #{}: recorded as sent to {destination}{how} on {} by {} {}; a receipt is due by {} (the DSL team is reminded after that)",
        case.id,
        now.with_timezone(&tz).format("%a %-d %b %Y %H:%M"),
        staff.first_name,
        staff.last_name,
        receipt_due.format("%a %-d %b %Y")
    ))
}

/// The email carrying case `case`'s prepared bundle (`zip`), encrypted to the destination's
/// key pinned in `transfer.schools_file`. Checks first that `zip` is the bundle prepared for
/// this case (its signed manifest, as recorded when it was prepared).
fn to_haven_email(app: &App, case: &TransferCase, destination: &str, zip: &Path) -> Result<crate::store::OutboxRecord, CliError> {
    let file = app.config.transfer.schools_file.as_ref().ok_or_else(|| {
        CliError::Config(
            "transfer.schools_file is not set: list the Haven schools you send to with their keys (README \"Transfer when a pupil leaves\")"
                .into(),
        )
    })?;
    let schools = crate::transfer::read_pinned(file).map_err(CliError::Config)?;
    let school = crate::transfer::parse_destination(destination).map(|d| d.school).unwrap_or_default();
    let pinned = schools.iter().find(|s| s.name.eq_ignore_ascii_case(&school)).ok_or_else(|| {
        CliError::Usage(format!(
            "{school:?} is not in transfer.schools_file: pin its key there, or send the bundle by the school's encrypted mail and run \
             `haven transfer send {}` without --to-haven; nothing was sent",
            case.id
        ))
    })?;
    let data =
        std::fs::read(zip).map_err(|e| CliError::Usage(format!("--to-haven {}: cannot be read: {e}; nothing was sent", zip.display())))?;
    let files = super::transfer_receive::read_zip(&data)
        .map_err(|e| CliError::Data(format!("--to-haven {}: {e}; nothing was sent", zip.display())))?;
    let manifest_sha256 = files.get(bundle::MANIFEST).map(|m| hex::encode(Sha256::digest(m)));
    let ours = bundle::verify(&files, None).is_ok_and(|m| m.case == case.id) && manifest_sha256 == case.bundle_sha256;
    if !ours {
        return Err(CliError::Data(format!(
            "--to-haven {}: not the bundle last prepared for transfer case #{} (or changed since); nothing was sent",
            zip.display(),
            case.id
        )));
    }
    let block = crate::transfer::crypt::seal_to(&pinned.key, &data)
        .map_err(|e| CliError::Config(format!("transfer.schools_file: {}: {e}", pinned.name)))?;
    let school_name = &app.config.school.name;
    Ok(crate::store::OutboxRecord {
        purpose: "notice",
        recipient: pinned.intake.clone(),
        email_message_id: format!(
            "haven.transfer-out.{}.{}@{}",
            case.id,
            &manifest_sha256.unwrap_or_default()[..16],
            app.config.school.mail_domain()
        ),
        subject: format!("Haven transfer from {school_name}: a child-protection file"),
        body: format!(
            "{school_name}'s Haven sends a child-protection file to {}'s Haven, encrypted to its transfer key. That Haven keeps \
             this message for its DSL team, who receive it with `haven transfer receive --message N --by DSL`.\n\n{block}",
            pinned.name
        ),
    })
}

/// `haven transfer key`: this school's transfer keys, for other schools to pin and compare.
pub fn key(app: &App) -> Result<String, CliError> {
    let path = &app.config.storage.key_file;
    let signing = SigningKey::from_key_file(path).map_err(|e| CliError::Config(e.to_string()))?;
    let encryption = crate::transfer::crypt::EncryptionKey::from_key_file(path).map_err(|e| CliError::Config(e.to_string()))?;
    Ok(format!(
        "signing key fingerprint: {}\nfor other Haven schools' transfer.schools_file:\n\n[[school]]\nname = {:?}\nintake = {:?}\nkey = {:?}",
        signing.fingerprint(),
        app.config.school.name,
        app.config.school.intake_address,
        encryption.public()
    ))
}

/// What the mark says is kept here once the receipt comes back (`[transfer] retain_after`,
/// `retain_for`).
fn kept_words(after: RetainAfter, until: RetainFor) -> &'static str {
    match (after, until) {
        (RetainAfter::Full, RetainFor::Dob25) => "These records are kept here until the pupil's 25th birthday, then reviewed.",
        (RetainAfter::Full, RetainFor::OneYear) => "These records are kept here for a year after the receipt, then reviewed.",
        (RetainAfter::Chronology, RetainFor::Dob25) => {
            "Once the receipt comes back only the chronology is kept here (dates, kinds, categories, outcomes; no message \
             text or attachments), until the pupil's 25th birthday, then reviewed."
        }
        (RetainAfter::Chronology, RetainFor::OneYear) => {
            "Once the receipt comes back only the chronology is kept here (dates, kinds, categories, outcomes; no message \
             text or attachments), for a year, then reviewed."
        }
        (RetainAfter::None, _) => {
            "Once the receipt comes back these records are due for disposal here (`haven retention due`, then `haven dispose`)."
        }
    }
}

/// The mark on the pupil's records kept here: an entry, DSL team only, saying when and to whom
/// the file was transferred (with the bundle's manifest hash), filed when the send is recorded.
fn transferred_entry(
    app: &App,
    sealer: &crate::seal::Sealer,
    case: &TransferCase,
    staff: &crate::directory::Staff,
    destination: &str,
    to_haven: bool,
    now: DateTime<Utc>,
) -> Result<(Vec<u8>, crate::store::MessageRecord, crate::store::IncidentRecord), CliError> {
    use crate::pipeline::fields;
    let rules = super::load_rules(&app.config)?;
    let categories = rules.categories();
    let category = categories.iter().find(|c| c.safeguarding).unwrap_or_else(|| categories.default_category()).name.clone();
    let sha = case.bundle_sha256.clone().unwrap_or_default();
    let how = if to_haven { "encrypted to its Haven, through its intake" } else { "through the school's encrypted mail" };
    let text = format!(
        "Transferred on {} to {destination}: the child-protection file (transfer case #{}, {} files, manifest SHA-256 {sha}) \
         was sent {how} by {} {}. {} The receipt is recorded on the case (`haven transfers`).",
        now.with_timezone(&app.config.school.tz()).format("%a %-d %b %Y"),
        case.id,
        case.bundle_items.unwrap_or_default(),
        staff.first_name,
        staff.last_name,
        kept_words(app.config.transfer.retain_after, app.config.transfer.retain_for)
    );
    let raw = serde_json::to_vec(&serde_json::json!({"transfer_sent": {"case": case.id, "manifest_sha256": sha}})).unwrap_or_default();
    let seal = |field: &str, v: &str| sealer.seal_text_for(case.pupil_id, field, v).map_err(super::pupil_key_error);
    let message = crate::store::MessageRecord {
        sha256: Some(hex::encode(Sha256::digest(&raw))),
        message_id: None,
        source: "file",
        origin: format!("transfer case {}", case.id),
        imap_uid: None,
        received: now,
        size: raw.len() as u64,
        state: crate::store::MessageState::Filed,
        reason: format!("transfer case {}: the file was sent", case.id),
        duplicate_of: None,
        content_sha256: None,
    };
    let marker = crate::store::IncidentRecord {
        occurred: now,
        recorded: now,
        recorded_by: Some(staff.id),
        record_kind: "transfer".into(),
        category,
        priority: "normal".into(),
        visibility: "dsl-team".into(),
        note: None,
        original_from: None,
        original_name: None,
        original_subject: Some(seal(fields::SUBJECT, &format!("Transferred to {destination}"))?),
        body_text: seal(fields::BODY_TEXT, &text)?,
        body_html: None,
        pupils: vec![crate::store::PupilLink {
            pupil_id: case.pupil_id,
            role: "subject".into(),
            how: format!("transfer case {}", case.id),
        }],
        attachments: Vec::new(),
        outbox: Vec::new(),
        action: None,
        follows: None,
        date_note: None,
        backfilled: false,
        ai_read: false,
    };
    Ok((sealer.seal(fields::RAW, &raw), message, marker))
}
