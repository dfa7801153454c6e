//! `haven sar collect|items|decide`: gathering what the school holds about a request's subject,
//! showing it with what Haven can tell about each item, and recording a person's decision on
//! each one.
//!
//! Collect gathers first and excludes nothing (the ICO's order: gather, then apply
//! exemptions): for a pupil, their chronology at every visibility; for an adult, every incident
//! whose message they sent or that names them (their address or their full name, in the
//! note, the subject or the text); the messages kept but never filed (awaiting triage,
//! quarantined), read again from their sealed raw bytes, that the subject sent or that name
//! them; then the emails Haven sent about those incidents and the audit trail of each incident
//! (and of the pupil's record). Each item is a sealed snapshot,
//! so what is decided is what is exported. Running it again adds only what is new.

use super::chronology::{Chronology, Entry, View, open_entry, pupils_line};
use super::sar::{adult_name, authorised, day, load, staff_name};
use super::{App, CliError, load_rules};
use crate::directory::Directory;
use crate::pipeline::fields;
use crate::sar::doc::{Fact, ItemContent};
use crate::sar::flags::{self, Facts, Flag};
use crate::sar::redact::occurs;
use crate::sar::{Decision, Exemption, reference};
use crate::seal::Sealer;
use crate::store::{HoldOn, HoldReason, NewSarItem, RequestKind, SarDecision, SarRequest, SarSubject, sar_fields};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%-d %b %Y %H:%M").to_string()
}

/// Who the request is about, opened.
struct Subject {
    /// The subject's own pupils: the pupil, or an adult's children.
    own_pupils: Vec<i64>,
    email: Option<String>,
    name: Option<String>,
}

fn subject_of(r: &SarRequest, dir: &Directory, sealer: &Sealer) -> Result<Subject, CliError> {
    Ok(match &r.subject {
        SarSubject::Pupil(p) => Subject { own_pupils: vec![*p], email: None, name: dir.pupil(*p).map(|p| p.full_name()) },
        SarSubject::Adult(sealed) => {
            let email = sealer
                .open_text(sar_fields::SUBJECT_EMAIL, sealed)
                .map_err(|e| CliError::Other(anyhow::anyhow!("request #{}: the subject's address: {e}", r.id)))?;
            let own_pupils = dir.contacts_by_email(&email).flat_map(|c| c.pupil_ids.iter().copied()).collect();
            Subject { own_pupils, name: adult_name(dir, &email), email: Some(email) }
        }
    })
}

fn open_text(sealer: &Sealer, field: &str, value: &str, incident: i64) -> Result<String, CliError> {
    crate::blind::open_or_clear(sealer, field, value).map_err(|e| CliError::Other(anyhow::anyhow!("incident {incident}: {e}")))
}

/// The incidents an adult sent (the original message is theirs) or that name them.
async fn incidents_of_adult(app: &App, sealer: &Sealer, email: &str, name: Option<&str>) -> Result<BTreeSet<i64>, CliError> {
    let mut found = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = app.store.incident_texts(after, 500).await?;
        let Some(last) = page.last().map(|t| t.id) else { break };
        after = last;
        for t in page {
            let from = t.original_from.as_deref().map(|f| open_text(sealer, fields::ORIGINAL_FROM, f, t.id)).transpose()?;
            if from.as_deref().is_some_and(|f| f.trim().eq_ignore_ascii_case(email)) {
                found.insert(t.id);
                continue;
            }
            let mut text = open_text(sealer, fields::BODY_TEXT, &t.body, t.id)?;
            for (field, value) in [(fields::NOTE, &t.note), (fields::SUBJECT, &t.subject), (fields::ORIGINAL_NAME, &t.original_name)] {
                if let Some(v) = value {
                    text.push('\n');
                    text.push_str(&open_text(sealer, field, v, t.id)?);
                }
            }
            if occurs(&text, email) || name.is_some_and(|n| occurs(&text, n)) {
                found.insert(t.id);
            }
        }
    }
    Ok(found)
}

/// "Piotr Nowak <p.nowak@example.com>"
fn address_line(a: &crate::message::Address) -> String {
    match &a.name {
        Some(n) if !n.trim().is_empty() => format!("{n} <{}>", a.address),
        _ => a.address.clone(),
    }
}

/// A message never filed, read again from its sealed raw bytes, when the subject sent it or it
/// names them: its content and who it came from.
struct Unfiled {
    id: i64,
    at: DateTime<Utc>,
    content: ItemContent,
    sender: Option<String>,
}

/// The messages awaiting triage or quarantined that the subject sent (an adult) or that name
/// them (their address or full name).
async fn unfiled_of(app: &App, sealer: &Sealer, subject: &Subject, tz: Tz) -> Result<Vec<Unfiled>, CliError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = app.store.unfiled_messages(after, 200).await?;
        let Some(last) = page.last().map(|m| m.id) else { break };
        after = last;
        for m in page {
            let raw = sealer.open(fields::RAW, &m.sealed_raw).map_err(|e| CliError::Other(anyhow::anyhow!("message {}: {e}", m.id)))?;
            let Ok(msg) = crate::read::read_message(&raw) else { continue };
            let original = msg.forwarded.as_ref();
            let senders: Vec<&str> =
                [msg.from.as_ref(), original.and_then(|f| f.from.as_ref())].into_iter().flatten().map(|a| a.address.as_str()).collect();
            let mut words = vec![msg.subject.clone().unwrap_or_default(), msg.note.clone().unwrap_or_default(), msg.text.clone()];
            if let Some(f) = original {
                words.push(f.body.clone());
                words.push(f.subject.clone().unwrap_or_default());
            }
            let words = words.join("\n");
            let sent = subject.email.as_deref().is_some_and(|e| senders.iter().any(|s| s.eq_ignore_ascii_case(e)));
            let named =
                subject.email.as_deref().is_some_and(|e| occurs(&words, e)) || subject.name.as_deref().is_some_and(|n| occurs(&words, n));
            if !sent && !named {
                continue;
            }
            let fact = |label: &str, value: String| Fact { label: label.into(), value };
            let mut facts = Vec::new();
            facts.extend(msg.from.as_ref().map(|a| fact("From", address_line(a))));
            if !msg.to.is_empty() {
                facts.push(fact("To", msg.to.iter().map(address_line).collect::<Vec<_>>().join(", ")));
            }
            facts.extend(msg.subject.clone().map(|s| fact("Subject", s)));
            if let Some(f) = original {
                facts.extend(f.from.as_ref().map(|a| fact("Forwarded from", address_line(a))));
                facts.extend(f.subject.clone().map(|s| fact("Forwarded subject", s)));
            }
            let mut parts = Vec::new();
            if let Some(n) = msg.note.as_deref().filter(|n| !n.trim().is_empty()) {
                parts.push(format!("Note:\n{}", n.trim_end()));
            }
            let body = original.map_or(msg.text.as_str(), |f| f.body.as_str());
            if !body.trim().is_empty() && msg.note.as_deref().map(str::trim) != Some(body.trim()) {
                parts.push(format!("Message:\n{}", body.trim_end()));
            }
            let at = original.and_then(|f| f.date).or(msg.date).map_or(m.received_at, |d| d.with_timezone(&Utc));
            let state = if m.state == "quarantined" { "quarantined" } else { "awaiting triage" };
            out.push(Unfiled {
                id: m.id,
                at,
                content: ItemContent {
                    title: format!("Message #{} ({state}, never filed)", m.id),
                    date: local(at, tz),
                    facts,
                    text: (!parts.is_empty()).then(|| parts.join("\n\n")),
                },
                sender: original.and_then(|f| f.from.as_ref()).or(msg.from.as_ref()).map(|a| a.address.clone()),
            });
        }
    }
    Ok(out)
}

/// Whether an entry of `pupil`'s chronology is part of their educational record, as a request
/// for it gathers: not in a safeguarding category and not for the DSL team only (information
/// relevant to child abuse is not part of it: the 2005 Regulations), and written by the school's
/// staff or sent by the pupil's own parent or carer (what another child's parent or an agency
/// sent is not: the ICO). Alerts, unfiled messages and audit trails are Haven's own, not it.
fn in_educational_record(e: &Entry, categories: &crate::category::Categories, dir: &Directory, pupil: i64) -> bool {
    let safeguarding = categories.find(&e.category).is_none_or(|c| c.safeguarding);
    let from_school_or_family = match e.original_from.as_deref() {
        None => true,
        Some(from) => {
            dir.staff.iter().any(|s| s.emails.iter().any(|x| x.eq_ignore_ascii_case(from)))
                || dir.contacts_by_email(&from.to_ascii_lowercase()).any(|c| c.pupil_ids.contains(&pupil))
        }
    };
    !safeguarding && e.visibility != "dsl-team" && from_school_or_family
}

/// A pupil's chronology, opened, as the chronology view builds it.
async fn entries_of(app: &App, sealer: &Sealer, dir: &Directory, pupil: i64) -> Result<Vec<Entry>, CliError> {
    let Some(p) = dir.pupil(pupil) else { return Ok(Vec::new()) };
    let mut entries = app.store.chronology(pupil).await?;
    for e in &mut entries {
        open_entry(e, sealer)?;
    }
    let total = entries.len();
    let view = View { dir: dir.clone(), pupil: p.clone(), entries, total, offset: 0 };
    Ok(Chronology::build(&view).incidents)
}

fn incident_content(e: &Entry, tz: Tz) -> ItemContent {
    let fact = |label: &str, value: String| Fact { label: label.into(), value };
    let mut facts = vec![
        fact("Kind", e.kind_label.clone()),
        fact("Category", e.category.clone()),
        fact("Recorded", format!("{} by {}", local(e.recorded_at, tz), e.recorded_by.as_deref().unwrap_or("unknown"))),
        fact("Pupils", pupils_line(&e.pupils)),
    ];
    if let Some(s) = e.original_sender() {
        facts.push(fact("From", s));
    }
    if let Some(s) = &e.original_subject {
        facts.push(fact("Subject", s.clone()));
    }
    if !e.attachments.is_empty() {
        facts.push(fact("Attachments", e.attachments.join(", ")));
    }
    if let Some(o) = &e.outcome {
        let by = e.outcome_by.as_deref().unwrap_or("unknown");
        let at = e.outcome_at.map(|t| local(t, tz)).unwrap_or_default();
        facts.push(fact("Outcome", format!("{o} ({by}, {at})")));
    }
    let mut parts = Vec::new();
    if let Some(w) = e.own_words() {
        parts.push(format!("Note:\n{}", w.trim_end()));
    }
    if let Some(t) = e.original_text() {
        parts.push(format!("Message:\n{}", t.trim_end()));
    }
    ItemContent {
        title: match e.follows {
            Some(f) => format!("Follow-up #{} to incident #{f}", e.incident),
            None => format!("Incident #{}: {}", e.incident, e.category),
        },
        date: local(e.occurred_at, tz),
        facts,
        text: (!parts.is_empty()).then(|| parts.join("\n\n")),
    }
}

/// "Dana Lead <dsl@eaton.sch.example>" for a member of staff's address, else the address.
fn staff_address(dir: &Directory, address: &str) -> String {
    match dir.staff.iter().find(|s| s.emails.iter().any(|e| e.eq_ignore_ascii_case(address))) {
        Some(s) => format!("{} {} <{address}>", s.first_name, s.last_name),
        None => address.to_string(),
    }
}

/// Who an audit entry's actor is, by name where Haven knows it.
fn actor_name(dir: &Directory, actor: &str) -> String {
    if let Some(id) = actor.strip_prefix("staff:").and_then(|i| i.parse::<i64>().ok()) {
        return staff_name(dir, id);
    }
    if actor.contains('@') {
        return staff_address(dir, actor);
    }
    actor.to_string()
}

fn seal_item(sealer: &Sealer, r: &SarRequest, content: &ItemContent) -> Result<(String, String), CliError> {
    let json = serde_json::to_string(content).unwrap_or_default();
    let sha = hex::encode(Sha256::digest(json.as_bytes()));
    let sealed = match r.subject {
        SarSubject::Pupil(p) => sealer.seal_text_for(p, sar_fields::ITEM, &json).map_err(super::pupil_key_error)?,
        SarSubject::Adult(_) => sealer.seal_text(sar_fields::ITEM, &json),
    };
    Ok((sealed, sha))
}

pub async fn collect(app: &App, id: i64, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let r = load(app, id).await?;
    let staff = authorised(app, &dir, by, "collect", &r.audit_subject()).await?;
    if !r.open {
        return Err(CliError::Usage(format!("request #{id} is closed: open a new request to collect again; nothing was done")));
    }
    let categories = load_rules(&app.config)?.categories().clone();
    let subject = subject_of(&r, &dir, &sealer)?;
    // Which incidents, and whose chronology shows each (the subject's own where it can).
    let educational = r.kind == RequestKind::EducationalRecord;
    let incidents: BTreeSet<i64> = match &r.subject {
        SarSubject::Pupil(p) if educational => entries_of(app, &sealer, &dir, *p)
            .await?
            .iter()
            .filter(|e| in_educational_record(e, &categories, &dir, *p))
            .map(|e| e.incident)
            .collect(),
        SarSubject::Pupil(p) => entries_of(app, &sealer, &dir, *p).await?.iter().map(|e| e.incident).collect(),
        SarSubject::Adult(_) => {
            incidents_of_adult(app, &sealer, subject.email.as_deref().unwrap_or_default(), subject.name.as_deref()).await?
        }
    };
    let mut chronologies: HashMap<i64, Vec<Entry>> = HashMap::new();
    let other_pupil_names: Vec<String> = dir.pupils.iter().filter(|p| !subject.own_pupils.contains(&p.id)).map(|p| p.full_name()).collect();
    let other_adults: Vec<String> = dir
        .contacts
        .iter()
        .filter(|c| subject.email.as_deref() != Some(c.email.as_str()))
        .flat_map(|c| c.name.iter().cloned().chain(std::iter::once(c.email.clone())))
        .collect();
    let mut items: Vec<NewSarItem> = Vec::new();
    let mut on_pupils: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut trails: Vec<(String, String)> = Vec::new();
    if let (SarSubject::Pupil(p), false) = (&r.subject, educational) {
        trails.push((format!("pupil:{p}"), "Audit trail of the pupil's record".into()));
    }
    let mut flagged = 0;
    for incident in &incidents {
        let Some(facts) = app.store.incident_facts(*incident).await? else { continue };
        let pupils: Vec<i64> = facts.pupils.iter().map(|(p, _)| *p).collect();
        let viewer = pupils.iter().copied().find(|p| subject.own_pupils.contains(p)).or(pupils.first().copied());
        let Some(viewer) = viewer else { continue };
        if let std::collections::hash_map::Entry::Vacant(v) = chronologies.entry(viewer) {
            v.insert(entries_of(app, &sealer, &dir, viewer).await?);
        }
        let Some(e) = chronologies.get(&viewer).and_then(|es| es.iter().find(|e| e.incident == *incident)) else { continue };
        let content = incident_content(e, tz);
        let text = content.all_text();
        let from = e.original_from.as_deref();
        let f = flags::flags(&Facts {
            visibility: &facts.visibility,
            safeguarding: categories.find(&e.category).is_some_and(|c| c.safeguarding),
            pupils: &pupils,
            own_pupils: &subject.own_pupils,
            text: &text,
            original_from: from,
            subject_email: subject.email.as_deref(),
            from_staff: from.is_some_and(|f| dir.staff.iter().any(|s| s.emails.iter().any(|x| x.eq_ignore_ascii_case(f)))),
            other_pupil_names: &other_pupil_names,
            other_adults: &other_adults,
        });
        if f.iter().any(|f| !matches!(f, Flag::StaffSource)) {
            flagged += 1;
        }
        let (sealed, sha) = seal_item(&sealer, &r, &content)?;
        items.push(NewSarItem {
            kind: "incident",
            source: format!("incident:{incident}"),
            at: e.occurred_at,
            flags: flags::join(&f),
            sealed_content: sealed,
            sha256: sha,
        });
        on_pupils.insert(*incident, pupils);
        if educational {
            continue;
        }
        // The emails Haven sent about it.
        let emails = app.store.emails_about(*incident).await?;
        if let Some(first) = emails.first() {
            let lines: Vec<String> = emails
                .iter()
                .map(|m| {
                    let sent = m.sent_at.map(|t| format!(", sent {}", local(t, tz))).unwrap_or_default();
                    format!("{} {} to {} ({}{sent})", local(m.created_at, tz), m.purpose, staff_address(&dir, &m.recipient), m.state)
                })
                .collect();
            let content = ItemContent {
                title: format!("Emails Haven sent about incident #{incident}"),
                date: local(first.created_at, tz),
                facts: Vec::new(),
                text: Some(lines.join("\n")),
            };
            let (sealed, sha) = seal_item(&sealer, &r, &content)?;
            items.push(NewSarItem {
                kind: "alert",
                source: format!("incident:{incident}"),
                at: first.created_at,
                flags: String::new(),
                sealed_content: sealed,
                sha256: sha,
            });
        }
        trails.push((format!("incident:{incident}"), format!("Audit trail of incident #{incident}")));
    }
    // Messages kept but never filed: sent by the subject or naming them.
    let unfiled = if educational { Vec::new() } else { unfiled_of(app, &sealer, &subject, tz).await? };
    for m in &unfiled {
        let text = m.content.all_text();
        let f = flags::flags(&Facts {
            visibility: "dsl-team",
            safeguarding: false,
            pupils: &[],
            own_pupils: &subject.own_pupils,
            text: &text,
            original_from: m.sender.as_deref(),
            subject_email: subject.email.as_deref(),
            from_staff: m.sender.as_deref().is_some_and(|f| dir.staff.iter().any(|s| s.emails.iter().any(|x| x.eq_ignore_ascii_case(f)))),
            other_pupil_names: &other_pupil_names,
            other_adults: &other_adults,
        });
        let (sealed, sha) = seal_item(&sealer, &r, &m.content)?;
        items.push(NewSarItem {
            kind: "message",
            source: format!("message:{}", m.id),
            at: m.at,
            flags: flags::join(&f),
            sealed_content: sealed,
            sha256: sha,
        });
    }
    for (about, title) in trails {
        let entries = app.store.audit_about(&about).await?;
        let Some(first) = entries.first() else { continue };
        let lines: Vec<String> = entries
            .iter()
            .map(|a| {
                let detail = if a.detail.is_empty() { String::new() } else { format!(" ({})", a.detail) };
                format!("{} {} by {}{detail}", local(a.at, tz), a.action, actor_name(&dir, &a.actor))
            })
            .collect();
        let content = ItemContent { title, date: local(first.at, tz), facts: Vec::new(), text: Some(lines.join("\n")) };
        let (sealed, sha) = seal_item(&sealer, &r, &content)?;
        items.push(NewSarItem { kind: "audit", source: about, at: first.at, flags: String::new(), sealed_content: sealed, sha256: sha });
    }
    // Hold every incident none of whose pupils this request already holds.
    let mine = app.store.sar_holds(id).await?;
    let held: Vec<HoldOn> = app.store.holds(false).await?.into_iter().filter(|h| mine.contains(&h.id)).map(|h| h.on).collect();
    let note = sealer.seal_text(crate::store::retention_fields::HOLD_NOTE, &format!("subject access request {}", reference(id)));
    let mut tx = app.store.begin().await?;
    let added = tx.add_sar_items(id, &items, staff.id, now).await?;
    let mut new_holds = 0;
    for (incident, pupils) in &on_pupils {
        let covered = held.iter().any(|h| match h {
            HoldOn::Incident(i) => i == incident,
            HoldOn::Pupil(p) => pupils.contains(p),
        });
        if !covered {
            let hold = tx.set_hold(HoldOn::Incident(*incident), HoldReason::Sar, &note, staff.id, now).await?;
            tx.add_sar_hold(id, hold).await?;
            new_holds += 1;
        }
    }
    tx.commit().await?;
    let count = |k: &str| items.iter().filter(|i| i.kind == k).count();
    Ok(format!(
        "request #{id} ({}): {} item(s) gathered, {added} of them new: {} incident(s), {} unfiled message(s), {} list(s) of emails, {} audit trail(s); \
         {flagged} incident(s) flagged for review; {new_holds} more hold(s) placed. Next: `haven sar items {id} --by EMAIL`, \
         then decide each item with `haven sar decide {id} ITEM …`",
        reference(id),
        items.len(),
        count("incident"),
        count("message"),
        count("alert"),
        count("audit"),
    ))
}

fn open_item(sealer: &Sealer, sealed: &str, item: i64) -> Result<ItemContent, CliError> {
    let json = sealer.open_text(sar_fields::ITEM, sealed).map_err(|e| CliError::Other(anyhow::anyhow!("item {item}: {e}")))?;
    serde_json::from_str(&json).map_err(|e| CliError::Other(anyhow::anyhow!("item {item} cannot be read: {e}")))
}

pub(crate) fn open_redactions(sealer: &Sealer, sealed: Option<&str>, item: i64) -> Result<Vec<String>, CliError> {
    let Some(s) = sealed else { return Ok(Vec::new()) };
    let json = sealer.open_text(sar_fields::REDACTIONS, s).map_err(|e| CliError::Other(anyhow::anyhow!("item {item}: {e}")))?;
    serde_json::from_str(&json).map_err(|e| CliError::Other(anyhow::anyhow!("item {item}'s redactions cannot be read: {e}")))
}

/// Every item opened, with its decision: what the export lays out.
pub(crate) async fn opened_items(app: &App, sealer: &Sealer, id: i64) -> Result<Vec<(crate::store::SarItem, ItemContent)>, CliError> {
    let mut out = Vec::new();
    for it in app.store.sar_items(id).await? {
        let content = open_item(sealer, &it.sealed_content, it.item)?;
        out.push((it, content));
    }
    Ok(out)
}

pub async fn items(app: &App, id: i64, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let r = load(app, id).await?;
    let staff = authorised(app, &dir, by, "items", &r.audit_subject()).await?;
    let all = opened_items(app, &sealer, id).await?;
    app.store.audit(now, &format!("staff:{}", staff.id), "sar_items_view", &r.audit_subject(), &format!("items={}", all.len())).await?;
    if all.is_empty() {
        return Ok(format!("request #{id} has no items yet: `haven sar collect {id} --by EMAIL` gathers them"));
    }
    let mut out = Vec::new();
    for (it, c) in &all {
        let state = match (&it.decision, &it.exemption) {
            (None, _) => "undecided".to_string(),
            (Some(d), Some(e)) => format!("{d} ({e})"),
            (Some(d), None) => d.clone(),
        };
        let mut s = format!("item {} · {} · {} · {state}\n", it.item, it.kind, c.date);
        if !it.flags.is_empty() {
            s.push_str(&format!("  flags: {}\n", it.flags.replace(',', ", ")));
        }
        s.push_str(&format!("  {}\n", c.title));
        for f in &c.facts {
            s.push_str(&format!("  {}: {}\n", f.label, f.value));
        }
        if let Some(t) = &c.text {
            for l in t.lines() {
                s.push_str(&format!("  | {l}\n"));
            }
        }
        if let Some((who, at)) = it.decided {
            let reason = it
                .sealed_reason
                .as_deref()
                .map(|r| sealer.open_text(sar_fields::REASON, r).unwrap_or_else(|_| "(unreadable)".into()))
                .unwrap_or_default();
            let redactions = open_redactions(&sealer, it.sealed_redactions.as_deref(), it.item)?;
            let texts = if redactions.is_empty() { String::new() } else { format!("; withheld texts: {}", redactions.join(" | ")) };
            let consulted = it
                .sealed_consulted
                .as_deref()
                .map(|c| format!("; {}", sealer.open_text(sar_fields::CONSULTED, c).unwrap_or_else(|_| "(unreadable)".into())))
                .unwrap_or_default();
            s.push_str(&format!("  decided {} by {}: {reason}{texts}{consulted}\n", local(at, tz), staff_name(&dir, who)));
        }
        out.push(s);
    }
    Ok(format!("{} ({}), {} item(s):\n\n{}", reference(id), day(r.received_on), all.len(), out.join("\n")))
}

/// What to do with an item, as the command line gives it.
pub enum Choice {
    Disclose,
    Withhold,
    Redact(Vec<String>),
}

pub struct DecideRequest<'a> {
    pub id: i64,
    /// The items, each once, in order (`crate::sar::parse_items`).
    pub items: Vec<i64>,
    pub choice: Choice,
    pub exemption: Option<&'a str>,
    pub reason: &'a str,
    /// Who was consulted (social care, the police), when, and what they said.
    pub consulted: Option<&'a str>,
    /// Or why nobody was.
    pub no_consultation: Option<&'a str>,
    pub by: &'a str,
}

/// What the record says about consultation, when it was given.
fn consultation(req: &DecideRequest<'_>) -> Option<String> {
    let some = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    some(req.consulted).map(|c| format!("consulted: {c}")).or_else(|| some(req.no_consultation).map(|r| format!("not consulted: {r}")))
}

pub async fn decide(app: &App, req: DecideRequest<'_>) -> Result<String, CliError> {
    let now = app.now();
    let id = req.id;
    let exemption =
        req.exemption.map(|e| Exemption::parse(e).map_err(|m| CliError::Usage(format!("{m}; nothing was done")))).transpose()?;
    let decision = match (&req.choice, exemption) {
        (Choice::Disclose, Some(_)) => {
            return Err(CliError::Usage("--exemption goes with --withhold or --redact, not --disclose; nothing was done".into()));
        }
        (Choice::Withhold | Choice::Redact(_), None) => {
            return Err(CliError::Usage(format!(
                "--exemption is needed to withhold or redact: one of {}; nothing was done",
                Exemption::ALL.iter().map(|e| e.code()).collect::<Vec<_>>().join(", ")
            )));
        }
        (Choice::Disclose, None) => Decision::Disclose,
        (Choice::Withhold, Some(_)) => Decision::Withhold,
        (Choice::Redact(_), Some(_)) => Decision::Redact,
    };
    if req.reason.trim().is_empty() {
        return Err(CliError::Usage("--reason is empty: say why (the disclosure log keeps it); nothing was done".into()));
    }
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let r = load(app, id).await?;
    let staff = authorised(app, &dir, req.by, "decide", &r.audit_subject()).await?;
    if !r.open {
        return Err(CliError::Usage(format!("request #{id} is closed; nothing was done")));
    }
    let items = app.store.sar_items(id).await?;
    let mut chosen = Vec::new();
    for n in &req.items {
        let Some(it) = items.iter().find(|i| i.item == *n) else {
            return Err(CliError::Usage(format!(
                "request #{id} has no item {n} (it has {}; see `haven sar items {id}`); nothing was done",
                items.len()
            )));
        };
        chosen.push(it);
    }
    // Local procedures consult social care or the police before deciding on child abuse data or
    // serious harm; the record says who, or why nobody was.
    let consulted = consultation(&req);
    let harm = matches!(exemption, Some(Exemption::SeriousHarm | Exemption::ChildAbuse));
    for it in &chosen {
        let abuse = it.flags.split(',').any(|f| f == Flag::ChildAbuseData.as_str());
        if consulted.is_none() && (abuse || harm) {
            return Err(CliError::Usage(format!(
                "item {} {}: say who was consulted (--consulted \"PC 1234, 2 Dec: opposes disclosure\") or why nobody was \
                 (--no-consultation-reason …); nothing was done",
                it.item,
                if abuse {
                    "may hold child abuse data (flag child_abuse_data)"
                } else {
                    "is decided on serious harm or a child's best interests"
                }
            )));
        }
    }
    let mut redactions = None;
    if let Choice::Redact(texts) = &req.choice {
        let texts: Vec<String> = texts.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
        if texts.is_empty() {
            return Err(CliError::Usage("--redact needs the text to withhold; nothing was done".into()));
        }
        for it in &chosen {
            let all = open_item(&sealer, &it.sealed_content, it.item)?.all_text();
            if let Some(missing) = texts.iter().find(|t| !occurs(&all, t)) {
                return Err(CliError::Usage(format!(
                    "--redact {missing:?} does not occur in item {} (see `haven sar items {id}`); nothing was done",
                    it.item
                )));
            }
        }
        redactions = Some(sealer.seal_text(sar_fields::REDACTIONS, &serde_json::to_string(&texts).unwrap_or_default()));
    }
    let reason = sealer.seal_text(sar_fields::REASON, req.reason.trim());
    let consulted = consulted.map(|c| sealer.seal_text(sar_fields::CONSULTED, &c));
    let mut tx = app.store.begin().await?;
    for it in &chosen {
        let d = SarDecision {
            item: it.item,
            decision: decision.as_str(),
            exemption: exemption.map(|e| e.code()),
            sealed_redactions: redactions.clone(),
            sealed_reason: reason.clone(),
            sealed_consulted: consulted.clone(),
            by: staff.id,
            at: now,
        };
        tx.decide_sar_item(id, &d).await?;
    }
    tx.commit().await?;
    let left = items.iter().filter(|i| i.decision.is_none() && !req.items.contains(&i.item)).count();
    let numbers = match req.items.as_slice() {
        [one] => format!("item {one}"),
        [first, .., last] if req.items.len() > 6 => format!("{} items ({first} to {last})", req.items.len()),
        many => format!("items {}", many.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")),
    };
    Ok(format!(
        "{numbers} of request #{id}: {}{}; {left} item(s) still undecided",
        match decision {
            Decision::Disclose => "disclosed",
            Decision::Withhold => "withheld",
            Decision::Redact => "disclosed with redactions",
        },
        exemption.map(|e| format!(" under {}", e.code())).unwrap_or_default()
    ))
}
