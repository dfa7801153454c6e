//! `haven transfer receive BUNDLE --by DSL [--key FINGERPRINT]`: another school's
//! child-protection file, as `haven transfer prepare` writes it (a folder or its .zip).
//!
//! Nothing is filed unless all of it holds: the manifest's signature (with the key the sending
//! DSL named, when given), every file's SHA-256 and size, no file missing or added, and the
//! pupil found here by UPN. Then, in one transaction: each entry of the chronology filed on the
//! pupil, DSL team only, under "Previous school: NAME" with its original date (and who recorded
//! it there, and its outcome there), its attachments with it; an email to the DSL team (and the
//! SENCO for a pupil with SEN) saying a file arrived, without names; and the receipt to the
//! sending school's receipt address (`Received: NAME, ROLE`), sent by the daemon's outbox. A
//! bundle received twice files nothing the second time.

use super::chronology::find_pupil;
use super::transfer::dsl_team;
use super::{App, CliError};
use crate::directory::{Role, Staff};
use crate::pipeline::fields;
use crate::seal::Sealer;
use crate::store::{
    ActionRecord, AttachmentRecord, IncidentRecord, MessageRecord, MessageState, OutboxRecord, PupilLink, Recorded, RungRecord,
};
use crate::transfer::bundle::{self, Manifest};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Every file of a bundle, by its path inside the bundle.
pub fn read_bundle(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    if path.is_dir() {
        read_folder(path, path, &mut files)?;
        return Ok(files);
    }
    let data = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    read_zip(&data)
}

/// Every file of a bundle's .zip, by its path under the bundle's folder.
pub fn read_zip(data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(|e| format!("is neither a folder nor a zip archive: {e}"))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format!("the zip archive is damaged: {e}"))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(|e| format!("the zip archive has an unreadable file name: {e}"))?.to_string();
        // Everything sits under one folder named after the bundle.
        let inner = name.split_once('/').map_or(name.as_str(), |(_, rest)| rest).to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| format!("{name}: cannot be read from the archive: {e}"))?;
        files.insert(inner, data);
    }
    Ok(files)
}

/// Where a bundle comes from: a folder or .zip, or a message the intake kept (Haven to Haven,
/// encrypted to this school's transfer key).
#[derive(Debug, Clone, Copy)]
pub enum BundleFrom<'a> {
    Path(&'a Path),
    Message(i64),
}

async fn bundle_files(app: &App, sealer: &Sealer, from: BundleFrom<'_>) -> Result<BTreeMap<String, Vec<u8>>, String> {
    match from {
        BundleFrom::Path(path) => read_bundle(path),
        BundleFrom::Message(id) => {
            let Some((_, sealed)) = app.store.message_raw(id).await.map_err(|e| e.to_string())? else {
                return Err("Haven holds no such message".into());
            };
            let raw = sealer.open(fields::RAW, &sealed).map_err(|e| format!("cannot be opened: {e}"))?;
            let msg = crate::read::read_message(&raw).map_err(|e| format!("cannot be read: {e}"))?;
            let key = crate::transfer::crypt::EncryptionKey::from_key_file(&app.config.storage.key_file).map_err(|e| e.to_string())?;
            let zip = crate::transfer::crypt::open(&key, &msg.text).map_err(|e| e.to_string())?;
            read_zip(&zip)
        }
    }
}

fn read_folder(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: cannot be read: {e}", dir.display()))? {
        let path = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            read_folder(root, &path, files)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            files.insert(rel, std::fs::read(&path).map_err(|e| format!("{}: cannot be read: {e}", path.display()))?);
        }
    }
    Ok(())
}

/// One entry of the sending school's chronology.json (the fields this needs).
#[derive(Debug, Deserialize)]
struct SentEntry {
    incident: i64,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    recorded_by: Option<String>,
    kind: String,
    category: String,
    priority: String,
    note: Option<String>,
    original_from: Option<String>,
    original_name: Option<String>,
    original_subject: Option<String>,
    body: String,
    outcome: Option<String>,
    outcome_by: Option<String>,
    outcome_at: Option<DateTime<Utc>>,
    follows: Option<i64>,
    #[serde(default)]
    attachments: Vec<SentAttachment>,
}

#[derive(Debug, Deserialize)]
struct SentAttachment {
    filename: String,
    content_type: String,
    sha256: String,
    path: String,
}

#[derive(Debug, Deserialize)]
struct SentChronology {
    incidents: Vec<SentEntry>,
}

/// "Previous school: NAME", who recorded it there and when, its outcome there, then the note.
fn previous_school_note(from: &str, e: &SentEntry) -> String {
    let mut s = format!(
        "Previous school: {from}\nRecorded there {} by {}",
        e.recorded_at.format("%-d %b %Y %H:%M UTC"),
        e.recorded_by.as_deref().unwrap_or("(not named)")
    );
    if let Some(f) = e.follows {
        s.push_str(&format!("; a follow-up to their entry #{f}"));
    }
    s.push_str(&format!(" (their entry #{})", e.incident));
    if let Some(o) = &e.outcome {
        s.push_str(&format!("\nOutcome there: {o}"));
        if let Some(by) = &e.outcome_by {
            s.push_str(&format!(" ({by}{})", e.outcome_at.map(|t| t.format(", %-d %b %Y").to_string()).unwrap_or_default()));
        }
    }
    if let Some(n) = e.note.as_deref().filter(|n| !n.trim().is_empty()) {
        s.push_str(&format!("\n\n{n}"));
    }
    s
}

fn seal_for(sealer: &Sealer, pupil: i64, mut inc: IncidentRecord) -> Result<IncidentRecord, CliError> {
    let seal = |field: &str, v: &str| sealer.seal_text_for(pupil, field, v).map_err(super::pupil_key_error);
    inc.note = inc.note.map(|n| seal(fields::NOTE, &n)).transpose()?;
    inc.original_subject = inc.original_subject.map(|s| seal(fields::SUBJECT, &s)).transpose()?;
    inc.body_text = seal(fields::BODY_TEXT, &inc.body_text)?;
    inc.original_from = inc.original_from.map(|f| seal(fields::ORIGINAL_FROM, &f)).transpose()?;
    inc.original_name = inc.original_name.map(|n| seal(fields::ORIGINAL_NAME, &n)).transpose()?;
    for a in &mut inc.attachments {
        a.data = sealer.seal(fields::ATTACHMENT, &a.data);
        a.filename = seal(fields::FILENAME, &a.filename)?;
    }
    Ok(inc)
}

pub async fn receive(app: &App, from: BundleFrom<'_>, by: &str, key: Option<&str>) -> Result<String, CliError> {
    let now = app.now();
    let sealer = app.sealer().await?;
    let staff_dir = app.store.load_directory_with_pupils(&sealer, &[]).await?;
    let staff = dsl_team(&app.store, &staff_dir, by, "transfer_receive", "transfer_in", now).await?.clone();
    let shown = match from {
        BundleFrom::Path(p) => p.display().to_string(),
        BundleFrom::Message(id) => format!("message {id}"),
    };
    let files = bundle_files(app, &sealer, from).await.map_err(|e| CliError::Data(format!("{shown}: {e}; nothing was filed")))?;
    let manifest = match bundle::verify(&files, key) {
        Ok(m) => m,
        Err(e) => {
            app.store.audit(now, &format!("staff:{}", staff.id), "transfer_receive_refused", "transfer_in", &e.to_string()).await?;
            return Err(CliError::Data(format!("{shown}: refused: {e}; nothing was filed")));
        }
    };
    let manifest_sha256 = hex::encode(Sha256::digest(&files[bundle::MANIFEST]));
    let ids = app.store.find_pupils(&app.blind_index()?, &manifest.pupil.upn).await?;
    let dir = app.store.load_directory_with_pupils(&sealer, &ids).await?;
    let pupil = find_pupil(&dir, &manifest.pupil.upn)
        .map_err(|_| {
            CliError::Data(format!(
                "{shown}: the file is for UPN {}, who is not in this school's directory: import the directory with them on roll, \
                 then receive it again; nothing was filed",
                manifest.pupil.upn
            ))
        })?
        .clone();
    let chronology: SentChronology = files
        .get("chronology.json")
        .ok_or_else(|| CliError::Data(format!("{shown}: the bundle has no chronology.json; nothing was filed")))
        .and_then(|d| {
            serde_json::from_slice(d)
                .map_err(|e| CliError::Data(format!("{shown}: chronology.json cannot be read: {e}; nothing was filed")))
        })?;
    let sealer = sealer.with_pupil_key(pupil.id).map_err(|e| CliError::Other(anyhow::anyhow!("pupil {}'s own key: {e}", pupil.id)))?;
    let from = manifest.from_school.clone();
    let rules = super::load_rules(&app.config)?;
    let categories = rules.categories();
    // An entry keeps its category when this school has it; else the first safeguarding one
    // (so its retention and visibility follow this school's rules), the original named in it.
    let cp = categories.iter().find(|c| c.safeguarding).unwrap_or_else(|| categories.default_category()).name.clone();
    let message = |raw: &[u8], what: &str| MessageRecord {
        sha256: Some(hex::encode(Sha256::digest(raw))),
        message_id: None,
        source: "file",
        origin: format!("transfer from {from} (their case {})", manifest.case),
        imap_uid: None,
        received: now,
        size: raw.len() as u64,
        state: MessageState::Filed,
        reason: format!("received in a transfer from {from}: {what}"),
        duplicate_of: None,
        content_sha256: None,
    };
    let mut records = Vec::new();
    let kept = received_entry(app, &files, &manifest, &manifest_sha256, &staff, &staff_dir, &cp, pupil.id, now);
    let raw = serde_json::to_vec(&serde_json::json!({"transfer": {"from_school": from, "case": manifest.case, "manifest_sha256": manifest_sha256, "entry": "received"}})).unwrap_or_default();
    records.push((sealer.seal(fields::RAW, &raw), message(&raw, "the file as received"), seal_for(&sealer, pupil.id, kept)?));
    for e in &chronology.incidents {
        let attachments = e
            .attachments
            .iter()
            .map(|a| {
                let data = files
                    .get(&a.path)
                    .cloned()
                    .ok_or_else(|| CliError::Data(format!("{shown}: {} is missing; nothing was filed", a.path)))?;
                Ok(AttachmentRecord {
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    sha256: a.sha256.clone(),
                    inline: false,
                    tnef: false,
                    data,
                })
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        let raw = serde_json::to_vec(&serde_json::json!({
            "transfer": {"from_school": from, "case": manifest.case, "manifest_sha256": manifest_sha256, "entry": e.incident},
        }))
        .unwrap_or_default();
        let category = categories.find(&e.category).map_or_else(|| cp.clone(), |c| c.name.clone());
        let mut note = previous_school_note(&from, e);
        if category != e.category {
            note = note.replacen('\n', &format!("\nCategory there: {}\n", e.category), 1);
        }
        let incident = IncidentRecord {
            occurred: e.occurred_at,
            recorded: now,
            recorded_by: Some(staff.id),
            record_kind: e.kind.clone(),
            category,
            priority: e.priority.clone(),
            // A file from another school is the DSL team's until they have reviewed it.
            visibility: "dsl-team".into(),
            note: Some(note),
            original_from: e.original_from.clone(),
            original_name: e.original_name.clone(),
            original_subject: e.original_subject.clone(),
            body_text: e.body.clone(),
            body_html: None,
            pupils: vec![PupilLink { pupil_id: pupil.id, role: "subject".into(), how: format!("transfer from {from}") }],
            attachments,
            outbox: Vec::new(),
            action: None,
            follows: None,
            date_note: None,
            backfilled: true,
            ai_read: false,
        };
        let what = format!("filed under \"Previous school: {from}\"");
        records.push((sealer.seal(fields::RAW, &raw), message(&raw, &what), seal_for(&sealer, pupil.id, incident)?));
    }
    let actor = format!("staff:{}", staff.id);
    let mut tx = app.store.begin().await?;
    // The first record is the file as received: already there, the bundle was received before.
    let mut new = Vec::with_capacity(records.len());
    for (raw, message, incident) in &records {
        new.push(matches!(tx.record_message(raw, message, Some(incident), &actor).await?, Recorded::New { .. }));
    }
    if !new.first().copied().unwrap_or(false) {
        drop(tx);
        return Ok(format!("{shown}: this file (their case {} from {from}) was received before; nothing new was filed", manifest.case));
    }
    let filed = new.iter().skip(1).filter(|n| **n).count();
    let told = alerts(app, &dir.staff, &pupil, &manifest_sha256, filed);
    for email in &told {
        tx.queue_email(None, email, now).await?;
    }
    let receipt = receipt_email(app, &manifest, &manifest_sha256, &staff, now);
    tx.queue_email(None, &receipt, now).await?;
    let detail = format!("from_case={} entries={filed} manifest_sha256={manifest_sha256} alerted={}", manifest.case, told.len());
    tx.append_audit(now, &actor, "transfer_receive", &format!("pupil:{}", pupil.id), &detail).await?;
    tx.commit().await?;
    let senco = if pupil.sen { " and the SENCO" } else { "" };
    Ok(format!(
        "received {from}'s child-protection file for {} (their case {}): {filed} entries filed under \"Previous school: {from}\" \
         with their original dates, visible to the DSL team; the DSL team{senco} alerted; the receipt to {} is queued (the daemon sends it).\n\
         Signed with key {}{}",
        pupil.upn,
        manifest.case,
        manifest.receipt_to,
        manifest.fingerprint(),
        if key.is_some() {
            ", the one given with --key"
        } else {
            ": compare it with the fingerprint the sending DSL gives you (or pass it as --key)"
        }
    ))
}

/// The file as received, kept whole on the pupil (sealed): the summary as its text; the
/// chronology PDF, front sheet, item list and signed manifest as its attachments; and, when the
/// school's terms are known, the DSL's review due in 5 school days (KCSIE: the receiving DSL
/// reads the file), reminded to the DSL team through the outcome ladder.
#[allow(clippy::too_many_arguments)]
fn received_entry(
    app: &App,
    files: &BTreeMap<String, Vec<u8>>,
    m: &Manifest,
    manifest_sha256: &str,
    staff: &Staff,
    dir: &crate::directory::Directory,
    category: &str,
    pupil: i64,
    now: DateTime<Utc>,
) -> IncidentRecord {
    let kept = [
        ("chronology.pdf", "application/pdf"),
        ("front-sheet.html", "text/html"),
        ("ITEMS.sha256", "text/plain"),
        (bundle::MANIFEST, "application/json"),
        (bundle::SIGNATURE, "text/plain"),
    ];
    let attachments = kept
        .iter()
        .filter_map(|(name, ct)| {
            let data = files.get(*name)?.clone();
            Some(AttachmentRecord {
                filename: (*name).to_string(),
                content_type: (*ct).to_string(),
                sha256: hex::encode(Sha256::digest(&data)),
                inline: false,
                tnef: false,
                data,
            })
        })
        .collect();
    let tz = app.config.school.tz();
    let review = app.config.terms.as_ref().and_then(|t| t.add_school_days(now.with_timezone(&tz).date_naive(), 5)).map(|day| {
        let due = crate::transfer::morning(day, tz);
        let dsl_team = dir.staff.iter().filter(|s| s.active && s.is_dsl_team()).map(|s| s.id).collect();
        ActionRecord { owner: Some(staff.id), due, rungs: vec![RungRecord { due, recipients: dsl_team }] }
    });
    IncidentRecord {
        occurred: now,
        recorded: now,
        recorded_by: Some(staff.id),
        record_kind: "transfer".into(),
        category: category.to_string(),
        priority: "normal".into(),
        visibility: "dsl-team".into(),
        note: Some(format!(
            "Previous school: {}\nChild-protection file received (their case {}, left {}), prepared by {}. Checked: the signed manifest \
             (SHA-256 {manifest_sha256}, signing key {}) and all {} files. The DSL's review of it is due{}. The summary of the \
             main concerns they wrote follows.",
            m.from_school,
            m.case,
            m.left_on,
            m.prepared_by,
            m.fingerprint(),
            m.items.len(),
            review.as_ref().map(|a| format!(" by {}", a.due.with_timezone(&tz).format("%a %-d %b %Y"))).unwrap_or_default()
        )),
        original_from: None,
        original_name: None,
        original_subject: Some(format!("Child-protection file from {}", m.from_school)),
        body_text: files.get("summary.txt").map(|d| String::from_utf8_lossy(d).trim().to_string()).unwrap_or_default(),
        body_html: None,
        pupils: vec![PupilLink { pupil_id: pupil, role: "subject".into(), how: format!("transfer from {}", m.from_school) }],
        attachments,
        outbox: Vec::new(),
        action: review,
        follows: None,
        date_note: None,
        backfilled: false,
        ai_read: false,
    }
}

/// The DSL team, and the SENCO for a pupil with SEN (KCSIE: the receiving school makes the DSL
/// and SENCO aware): a file arrived, with initials and year group only.
fn alerts(app: &App, staff: &[Staff], pupil: &crate::directory::Pupil, manifest_sha256: &str, entries: usize) -> Vec<OutboxRecord> {
    let year = pupil.year_group.map(|y| format!(", Year {y}")).unwrap_or_default();
    let subject = "Haven: a child-protection file arrived from a previous school".to_string();
    let body = format!(
        "{}: a child-protection file for pupil {}{year} arrived from their previous school and was filed on their chronology \
         ({entries} entries, DSL team only until reviewed). Review it with `haven chronology {} --as YOU`.{}\n",
        app.config.school.name,
        pupil.initials(),
        pupil.upn,
        if pupil.sen { " The pupil has special educational needs: the SENCO is told too." } else { "" }
    );
    staff
        .iter()
        .filter(|s| s.active && !s.email().is_empty() && (s.is_dsl_team() || (pupil.sen && s.has_role(Role::Senco))))
        .map(|s| OutboxRecord {
            purpose: "notice",
            recipient: s.email().to_string(),
            email_message_id: format!("haven.transfer-in.{}.{}@{}", &manifest_sha256[..16], s.id, app.config.school.mail_domain()),
            subject: subject.clone(),
            body: body.clone(),
        })
        .collect()
}

/// The receipt to the sending school's receipt address: its first line is what their Haven
/// (or their DSL) reads.
fn receipt_email(app: &App, m: &Manifest, manifest_sha256: &str, staff: &Staff, now: DateTime<Utc>) -> OutboxRecord {
    let role = if staff.has_role(Role::Dsl) { "Designated Safeguarding Lead" } else { "Deputy Designated Safeguarding Lead" };
    let school = &app.config.school.name;
    OutboxRecord {
        purpose: "notice",
        recipient: m.receipt_to.clone(),
        email_message_id: format!("haven.transfer-receipt.{}@{}", &manifest_sha256[..16], app.config.school.mail_domain()),
        subject: format!("Received: child-protection file, your transfer case #{}", m.case),
        body: format!(
            "Received: {} {}, {role}\n\n{school} received your transfer case #{} on {} and checked it: the signed manifest \
             (SHA-256 {manifest_sha256}) and all {} files verified.\n",
            staff.first_name,
            staff.last_name,
            m.case,
            now.with_timezone(&app.config.school.tz()).format("%a %-d %b %Y %H:%M"),
            m.items.len()
        ),
    }
}
