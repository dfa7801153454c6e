//! `haven chronology PUPIL --as STAFF [--json]`: a pupil's incidents in occurred-at order, only
//! what that member of staff may see (the one visibility rule in `crate::visibility`). `--as` is
//! required: the command line must say who is looking. Every view is written to the audit log
//! under the member of staff, beside the operating-system user who ran the command.

use super::CliError;
use crate::blind::BlindIndex;
use crate::directory::{Directory, Pupil};
use crate::pipeline::fields;
use crate::read::kind::kind_label;
use crate::seal::Sealer;
use crate::store::{AuditWriter, ChronologyEntry, Store};
use crate::visibility;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Finds a pupil by UPN or by name ("Jane Smith", preferred names too), case-insensitive.
pub fn find_pupil<'a>(dir: &'a Directory, query: &str) -> Result<&'a Pupil, CliError> {
    let q = query.trim().to_lowercase();
    if let Some(p) = dir.pupils.iter().find(|p| p.upn.to_lowercase() == q) {
        return Ok(p);
    }
    let matches: Vec<&Pupil> = dir
        .pupils
        .iter()
        .filter(|p| {
            let last = p.last_name.to_lowercase();
            let firsts = [Some(&p.first_name), p.preferred_name.as_ref()];
            firsts.iter().flatten().any(|f| format!("{} {last}", f.to_lowercase()) == q)
        })
        .collect();
    match matches.as_slice() {
        [p] => Ok(p),
        [] => Err(CliError::Usage(format!("no pupil matches {query:?} (give a UPN or a full name)"))),
        many => Err(CliError::Usage(format!(
            "{} pupils match {query:?}; give a UPN: {}",
            many.len(),
            many.iter()
                .map(|p| format!("{} (Year {})", p.upn, p.year_group.map_or("?".into(), |y| y.to_string())))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A pupil's chronology as one viewer may see it, opened (decrypted) and audited.
pub struct View {
    pub dir: Directory,
    pub pupil: Pupil,
    /// The entries asked for (see [`Window`]), oldest first.
    pub entries: Vec<ChronologyEntry>,
    /// How many entries the viewer may see in all.
    pub total: usize,
    /// Where `entries` start among those `total` (0 for the whole chronology).
    pub offset: usize,
}

/// Which of the entries a viewer may see are opened: all of them (the CLI, exports), one page
/// of `size` (the console; pages count from the oldest, and no page means the latest), or one
/// incident. Only what is shown is decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    All,
    Page { number: Option<usize>, size: usize },
    Incident(i64),
}

impl Window {
    /// The range of `total` visible entries this window shows, given the incidents in order.
    fn range(self, incidents: &[i64]) -> std::ops::Range<usize> {
        let total = incidents.len();
        match self {
            Window::All => 0..total,
            Window::Page { number, size } => {
                let size = size.max(1);
                let pages = total.div_ceil(size).max(1);
                let page = number.unwrap_or(pages).clamp(1, pages);
                let start = (page - 1) * size;
                start..(start + size).min(total)
            }
            Window::Incident(id) => incidents.iter().position(|i| *i == id).map_or(0..0, |at| at..at + 1),
        }
    }
}

/// The pupils `e`'s AI suggestion names. They are the DSL team's, like a pupil only mentioned:
/// for anyone else (`dsl_team` false) they are taken out of the suggestion and none returned.
fn ai_pupils(e: &mut ChronologyEntry, dsl_team: bool) -> Vec<i64> {
    let Some(mut s) = e.ai_suggestion.as_deref().and_then(|json| serde_json::from_str::<crate::ai::Suggestion>(json).ok()) else {
        return Vec::new();
    };
    if dsl_team {
        return s.pupils;
    }
    if !s.pupils.is_empty() {
        s.pupils.clear();
        e.ai_suggestion = serde_json::to_string(&s).ok();
    }
    Vec::new()
}

/// Loads the chronology of the pupil `query` names, keeps what `viewer` (a staff email) may see,
/// and writes `audit_action` (chronology_view, export) to the audit log.
pub async fn load_view(
    store: &Store,
    sealer: &Sealer,
    blind: &BlindIndex,
    query: &str,
    viewer: &str,
    audit_action: &str,
    now: DateTime<Utc>,
) -> Result<View, CliError> {
    let (view, seen) = load(store, sealer, blind, query, viewer, "", Window::All, Staffing::Viewer).await?;
    store.audit(now, &seen.actor, audit_action, &seen.subject, &seen.detail).await?;
    Ok(view)
}

/// [`load_view`] for a [`Window`] of the chronology: only its entries are opened, and the audit
/// entry says which (`entries=100 of 500 from=400`, `incident=12`).
#[allow(clippy::too_many_arguments)]
pub async fn load_window(
    store: &Store,
    sealer: &Sealer,
    blind: &BlindIndex,
    query: &str,
    viewer: &str,
    audit_action: &str,
    window: Window,
    now: DateTime<Utc>,
    auditor: &AuditWriter,
) -> Result<View, CliError> {
    // An incident's page names who was alerted and who has viewed it: every member of staff.
    let staffing = if matches!(window, Window::Incident(_)) { Staffing::All } else { Staffing::Viewer };
    let (view, seen) = load(store, sealer, blind, query, viewer, "", window, staffing).await?;
    auditor.append(now, &seen.actor, audit_action, &seen.subject, &seen.detail).await?;
    Ok(view)
}

/// [`load_view`], with `note` (`id=…` for an export) added to the audit entry's detail, and
/// every member of staff in the view's directory (an export names who was alerted).
#[allow(clippy::too_many_arguments)]
pub async fn load_view_noted(
    store: &Store,
    sealer: &Sealer,
    blind: &BlindIndex,
    query: &str,
    viewer: &str,
    audit_action: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<View, CliError> {
    let (view, seen) = load(store, sealer, blind, query, viewer, note, Window::All, Staffing::All).await?;
    store.audit(now, &seen.actor, audit_action, &seen.subject, &seen.detail).await?;
    Ok(view)
}

/// What a view's audit entry says: who looked, at which pupil, at what. The caller writes it
/// before the view is shown.
struct Seen {
    actor: String,
    subject: String,
    detail: String,
}

/// Which staff a view's directory holds: the viewer alone (a chronology: its entries carry the
/// names of who recorded them), or everyone (a view that names staff by address).
enum Staffing {
    Viewer,
    All,
}

#[allow(clippy::too_many_arguments)]
async fn load(
    store: &Store,
    sealer: &Sealer,
    blind: &BlindIndex,
    query: &str,
    viewer: &str,
    note: &str,
    window: Window,
    staffing: Staffing,
) -> Result<(View, Seen), CliError> {
    // Only the pupils shown are opened: the ones the query names (found through the blind
    // indexes, never by opening every pupil), then those on the entries. A trust's staff list
    // (thousands) is read only where the view names staff.
    let named = store.find_pupils(blind, query).await?;
    let (staff, dir) = match staffing {
        Staffing::All => {
            let dir = store.load_directory_with_pupils(sealer, &named).await?;
            (dir.active_staff_by_email(viewer).cloned(), dir)
        }
        Staffing::Viewer => {
            let staff = store.staff_by_email(viewer).await?.filter(|s| s.active);
            let pupils = store.load_pupils(sealer, &named).await?;
            (staff.clone(), Directory::new(pupils, staff.into_iter().collect(), Vec::new()))
        }
    };
    let staff = staff.ok_or_else(|| CliError::Usage(format!("--as {viewer}: not an active member of staff; nothing was shown")))?;
    let pupil = find_pupil(&dir, query)?.clone();
    // Who may see which entry is decided on the index (incident, visibility, the pupil's role);
    // the incidents' other pupils are read, and opened, only where the viewer's audience turns
    // on them (a HouseM's or tutor's), and only the entries the window shows are read whole.
    let mut index = store.chronology_index(pupil.id).await?;
    let relative: Vec<i64> = index.iter().filter(|e| visibility::needs_pupils(&e.visibility, &staff)).map(|e| e.incident).collect();
    let links = if relative.is_empty() { HashMap::new() } else { store.incident_pupils(&relative).await? };
    let linked: Vec<i64> = links.values().flatten().map(|(id, _)| *id).chain([pupil.id]).collect();
    let dir = with_pupils(store, sealer, dir, linked).await?;
    index.retain(|e| match links.get(&e.incident) {
        Some(pupils) => visibility::may_see_entry(&e.visibility, &staff, &dir, pupils, pupil.id),
        None => visibility::may_see_entry(&e.visibility, &staff, &dir, &[(pupil.id, e.role.clone())], pupil.id),
    });
    let total = index.len();
    let range = window.range(&index.iter().map(|e| e.incident).collect::<Vec<_>>());
    let offset = range.start;
    let ids: Vec<i64> = index[range].iter().map(|e| e.incident).collect();
    let mut entries = store.chronology_entries(pupil.id, &ids).await?;
    let on_entries: Vec<i64> = entries.iter().flat_map(|e| e.pupils.iter().map(|(id, _)| *id)).collect();
    let dir = with_pupils(store, sealer, dir, on_entries).await?;
    // Checked again as read whole: an entry whose visibility changed in between is not shown.
    entries.retain(|e| visibility::may_see_entry(&e.visibility, &staff, &dir, &e.pupils, pupil.id));
    if !staff.is_dsl_team() {
        // A pupil only mentioned is the DSL team's to confirm: nobody else sees the link.
        for e in &mut entries {
            e.pupils.retain(|(_, role)| role != "mentioned");
        }
    }
    let mut named: Vec<i64> = Vec::new();
    for e in &mut entries {
        open_entry(e, sealer)?;
        named.extend(ai_pupils(e, staff.is_dsl_team()));
    }
    // The pupils an AI suggestion names, not on an entry, are opened for the DSL team's view.
    let dir = with_pupils(store, sealer, dir, named).await?;
    let shown = match window {
        Window::All => format!("entries={}", entries.len()),
        Window::Page { .. } => format!("entries={} of {total} from={offset}", entries.len()),
        Window::Incident(id) => format!("incident={id}"),
    };
    let seen = Seen {
        actor: viewer.to_ascii_lowercase(),
        subject: format!("pupil:{}", pupil.id),
        detail: format!("{shown}{}{note}", if note.is_empty() { "" } else { " " }),
    };
    Ok((View { dir, pupil, entries, total, offset }, seen))
}

/// `dir` with the pupils `ids` opened too (those it has not opened yet; the staff kept).
async fn with_pupils(store: &Store, sealer: &Sealer, dir: Directory, mut ids: Vec<i64>) -> Result<Directory, CliError> {
    ids.retain(|id| dir.pupil(*id).is_none());
    if ids.is_empty() {
        return Ok(dir);
    }
    ids.sort_unstable();
    ids.dedup();
    let mut pupils = dir.pupils;
    pupils.extend(store.load_pupils(sealer, &ids).await?);
    pupils.sort_by_key(|p| p.id);
    Ok(Directory::new(pupils, dir.staff, Vec::new()))
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: &Store,
    sealer: &Sealer,
    blind: &BlindIndex,
    query: &str,
    viewer: &str,
    tz: Tz,
    now: DateTime<Utc>,
    as_json: bool,
) -> Result<String, CliError> {
    let view = load_view(store, sealer, blind, query, viewer, "chronology_view", now).await?;
    let chronology = Chronology::build(&view);
    if as_json {
        return Ok(serde_json::to_string_pretty(&chronology).unwrap_or_default());
    }
    Ok(chronology.render_text(tz))
}

/// The chronology view: one model, rendered as JSON (`--json`), as text and in the export.
#[derive(Debug, Clone, Serialize)]
pub struct Chronology {
    pub pupil: PupilView,
    /// Every entry in occurred-at order; a follow-up names the incident it answers (`follows`).
    pub incidents: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PupilView {
    pub upn: String,
    pub name: String,
    pub preferred_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub year_group: Option<i64>,
    pub tutor_group: Option<String>,
    pub house: Option<String>,
    pub on_roll: bool,
    pub left_on: Option<String>,
}

/// One incident or follow-up as the view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub incident: i64,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: Option<String>,
    /// As stored: email, conversation, phone_call, observation, reply (a follow-up).
    pub kind: String,
    /// How it is shown: "phone call", "direct conversation", "follow-up", …
    pub kind_label: String,
    pub category: String,
    pub priority: String,
    pub visibility: String,
    /// This pupil's role.
    pub role: String,
    pub pupils: Vec<PupilOnEntry>,
    /// What the member of staff wrote (for a follow-up, its words are in `body`).
    pub note: Option<String>,
    pub original_from: Option<String>,
    pub original_name: Option<String>,
    pub original_subject: Option<String>,
    /// The text filed: the original message's words for an email, else the staff's own text.
    pub body: String,
    pub attachments: Vec<String>,
    pub outcome: Option<String>,
    /// The decision the outcome records (`NFA`, `REFERRED-CSC`, …), when its text starts with one.
    pub outcome_code: Option<String>,
    pub outcome_by: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
    /// The incident this entry follows up.
    pub follows: Option<i64>,
    /// The follow-ups on this incident that are in the view.
    pub follow_ups: Vec<i64>,
    /// Why `occurred_at` is the filing time: the original's date could not be trusted.
    pub date_note: Option<String>,
    /// Why the category is not the one staff named.
    pub category_note: Option<String>,
    /// What the AI model suggested (when `[ai]` is on and it has read the incident): a
    /// suggestion, labelled with the model's name; it never changed the routing.
    pub ai_suggestion: Option<AiShown>,
}

/// An AI suggestion as the chronology shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AiShown {
    /// "AI suggestion (MODEL)": how it is shown everywhere.
    pub label: String,
    #[serde(flatten)]
    pub suggestion: crate::ai::Suggestion,
    /// The full names of `suggestion.pupils` (the DSL team's view only; empty for others).
    pub pupil_names: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PupilOnEntry {
    pub upn: Option<String>,
    pub name: Option<String>,
    pub role: String,
}

impl Entry {
    /// The words of whoever recorded it: the note, or a follow-up's text.
    pub fn own_words(&self) -> Option<&str> {
        match &self.note {
            Some(n) if !n.trim().is_empty() => Some(n),
            _ if self.follows.is_some() || !self.carries_a_message() => Some(self.body.as_str()).filter(|b| !b.trim().is_empty()),
            _ => None,
        }
    }

    /// The original message's words, when there is one and they are not the note again.
    pub fn original_text(&self) -> Option<&str> {
        let body = self.body.trim();
        if body.is_empty() || self.own_words().is_some_and(|w| w.trim() == body) {
            return None;
        }
        let note = self.note.as_deref().map(str::trim);
        if !self.carries_a_message() && note.is_some_and(|n| body.contains(n) || n.contains(body)) {
            // A member of staff's own note: the body is the note with its marker lines.
            return None;
        }
        Some(self.body.as_str())
    }

    /// Whether the record carries someone else's message (a forward, a reply quoting a parent).
    fn carries_a_message(&self) -> bool {
        self.original_from.is_some() || self.kind == "email"
    }

    /// "Rukhsana Khan <r.khan@example.net>", or the address alone.
    pub fn original_sender(&self) -> Option<String> {
        let from = self.original_from.as_deref()?;
        Some(match &self.original_name {
            Some(n) if !n.trim().is_empty() => format!("{n} <{from}>"),
            _ => from.to_string(),
        })
    }
}

impl Chronology {
    pub fn build(view: &View) -> Chronology {
        let p = &view.pupil;
        let mut incidents: Vec<Entry> = view.entries.iter().map(|e| entry(e, &view.dir)).collect();
        let present: HashSet<i64> = incidents.iter().map(|e| e.incident).collect();
        let links: Vec<(i64, i64)> =
            incidents.iter().filter_map(|e| e.follows.filter(|f| present.contains(f)).map(|f| (f, e.incident))).collect();
        for (parent, child) in links {
            if let Some(e) = incidents.iter_mut().find(|e| e.incident == parent) {
                e.follow_ups.push(child);
            }
        }
        Chronology {
            pupil: PupilView {
                upn: p.upn.clone(),
                name: p.full_name(),
                preferred_name: p.preferred_name.clone(),
                date_of_birth: p.date_of_birth.map(|d| d.to_string()),
                year_group: p.year_group.map(i64::from),
                tutor_group: p.tutor_group.clone(),
                house: p.house.clone(),
                on_roll: p.on_roll(),
                left_on: p.left_on.map(|d| d.to_string()),
            },
            incidents,
        }
    }

    /// The text view: each incident with everything on it, its follow-ups under it.
    pub fn render_text(&self, tz: Tz) -> String {
        let p = &self.pupil;
        let at = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
        let tops: Vec<&Entry> = self.incidents.iter().filter(|e| !self.is_nested(e)).collect();
        let mut out = format!(
            "{} ({}), Year {}, {}, house {}{}\n{} incident(s), {} follow-up(s)\n",
            p.name,
            p.upn,
            p.year_group.map_or("?".into(), |y| y.to_string()),
            p.tutor_group.as_deref().unwrap_or("no tutor group"),
            p.house.as_deref().unwrap_or("none"),
            match (&p.on_roll, &p.left_on) {
                (false, Some(d)) => format!(", left {d}"),
                (false, None) => ", left".to_string(),
                (true, _) => String::new(),
            },
            tops.len(),
            self.incidents.len() - tops.len(),
        );
        for e in tops {
            out.push_str(&format!(
                "\n#{} {} — {} ({}, {}, {})\n",
                e.incident,
                at(&e.occurred_at),
                e.category,
                e.kind_label,
                e.role,
                e.priority
            ));
            if let Some(f) = e.follows {
                out.push_str(&format!("  follow-up to incident #{f}\n"));
            }
            out.push_str(&format!("  recorded {} by {}\n", at(&e.recorded_at), e.recorded_by.as_deref().unwrap_or("unknown")));
            out.push_str(&format!("  pupils: {}\n", pupils_line(&e.pupils)));
            if let Some(d) = &e.date_note {
                out.push_str(&format!("  date: {d}; dated when filed\n"));
            }
            if let Some(n) = &e.category_note {
                out.push_str(&format!("  category: {n}\n"));
            }
            push_body(&mut out, e, &at, "  ");
            push_ai(&mut out, e, "  ");
            for child in e.follow_ups.iter().filter_map(|id| self.incidents.iter().find(|c| c.incident == *id)) {
                out.push_str(&format!(
                    "  follow-up #{} {} by {} ({}), recorded {}\n",
                    child.incident,
                    at(&child.occurred_at),
                    child.recorded_by.as_deref().unwrap_or("unknown"),
                    child.kind_label,
                    at(&child.recorded_at),
                ));
                push_body(&mut out, child, &at, "    ");
            }
            match &e.outcome {
                Some(o) => out.push_str(&format!(
                    "  outcome{} ({}, {}):\n{}",
                    e.outcome_code.as_ref().map(|c| format!(" {c}")).unwrap_or_default(),
                    e.outcome_by.as_deref().unwrap_or("unknown"),
                    e.outcome_at.as_ref().map(&at).unwrap_or_else(|| "time not recorded".into()),
                    indent(o, "    ")
                )),
                None => out.push_str("  outcome: none recorded\n"),
            }
        }
        out
    }

    /// A follow-up shown under its incident (the incident is in the view).
    fn is_nested(&self, e: &Entry) -> bool {
        e.follows.is_some_and(|f| self.incidents.iter().any(|p| p.incident == f && p.follow_ups.contains(&e.incident)))
    }
}

/// "Amira Khan (subject), Grace Okafor (witness)"
pub fn pupils_line(pupils: &[PupilOnEntry]) -> String {
    pupils
        .iter()
        .map(|p| format!("{} ({})", p.name.as_deref().or(p.upn.as_deref()).unwrap_or("unknown pupil"), p.role))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The note, the original message (sender, date, subject, text) and the attachments.
fn push_body(out: &mut String, e: &Entry, at: &dyn Fn(&DateTime<Utc>) -> String, pad: &str) {
    if let Some(w) = e.own_words() {
        out.push_str(&format!("{pad}note:\n{}", indent(w, &format!("{pad}  "))));
    }
    if let Some(sender) = e.original_sender() {
        out.push_str(&format!("{pad}original message from {sender}, sent {}\n", at(&e.occurred_at)));
    } else if e.original_subject.is_some() && e.original_text().is_some() {
        out.push_str(&format!("{pad}message as received:\n"));
    }
    if let Some(s) = &e.original_subject {
        out.push_str(&format!("{pad}subject: {s}\n"));
    }
    if let Some(t) = e.original_text() {
        out.push_str(&format!("{pad}text:\n{}", indent(t, &format!("{pad}  "))));
    }
    if !e.attachments.is_empty() {
        out.push_str(&format!("{pad}attachments: {}\n", e.attachments.join(", ")));
    }
}

/// The AI suggestion, labelled as one with the model's name.
fn push_ai(out: &mut String, e: &Entry, pad: &str) {
    let Some(ai) = &e.ai_suggestion else { return };
    let s = &ai.suggestion;
    out.push_str(&format!(
        "{pad}{}: risk {}, category {}\n",
        ai.label,
        s.risk.as_str(),
        s.category.as_deref().unwrap_or("none of the school's")
    ));
    if !s.summary.is_empty() {
        out.push_str(&format!("{pad}  summary: {}\n", s.summary));
    }
    for r in &s.reasons {
        out.push_str(&format!("{pad}  quote: \"{r}\"\n"));
    }
    if !ai.pupil_names.is_empty() {
        out.push_str(&format!("{pad}  pupils mentioned: {}\n", ai.pupil_names.join(", ")));
    }
}

/// Every line of `text` under `pad`, ending in a newline.
fn indent(text: &str, pad: &str) -> String {
    let mut out = String::new();
    for line in text.trim_end().lines().map(str::trim_end) {
        if !line.is_empty() {
            out.push_str(pad);
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn entry(e: &ChronologyEntry, dir: &Directory) -> Entry {
    Entry {
        incident: e.incident,
        occurred_at: e.occurred_at,
        recorded_at: e.recorded_at,
        recorded_by: e.recorded_by.clone(),
        kind: e.record_kind.clone(),
        kind_label: kind_label(&e.record_kind).to_string(),
        category: e.category.clone(),
        priority: e.priority.clone(),
        visibility: e.visibility.clone(),
        role: e.role.clone(),
        pupils: e
            .pupils
            .iter()
            .map(|(id, role)| PupilOnEntry {
                upn: dir.pupil(*id).map(|p| p.upn.clone()),
                name: dir.pupil(*id).map(|p| p.full_name()),
                role: role.clone(),
            })
            .collect(),
        note: e.note.clone(),
        original_from: e.original_from.clone(),
        original_name: e.original_name.clone(),
        original_subject: e.original_subject.clone(),
        body: e.body.clone(),
        attachments: e.attachments.clone(),
        outcome: e.outcome.clone(),
        outcome_code: e.outcome_code.clone(),
        outcome_by: e.outcome_by.clone(),
        outcome_at: e.outcome_at,
        follows: e.follows,
        follow_ups: Vec::new(),
        date_note: e.date_note.clone(),
        category_note: e.category_note.clone(),
        ai_suggestion: e.ai_suggestion.as_deref().and_then(|json| serde_json::from_str::<crate::ai::Suggestion>(json).ok()).map(|s| {
            AiShown {
                label: format!("AI suggestion ({})", s.model),
                pupil_names: s.pupils.iter().filter_map(|id| dir.pupil(*id).map(|p| p.full_name())).collect(),
                suggestion: s,
            }
        }),
    }
}

/// Opens the sealed fields of an entry.
pub(crate) fn open_entry(e: &mut ChronologyEntry, sealer: &Sealer) -> Result<(), CliError> {
    let open =
        |field: &str, v: &str| sealer.open_text(field, v).map_err(|err| CliError::Other(anyhow::anyhow!("incident {}: {err}", e.incident)));
    let note = e.note.as_deref().map(|n| open(fields::NOTE, n)).transpose()?;
    let subject = e.original_subject.as_deref().map(|s| open(fields::SUBJECT, s)).transpose()?;
    let body = open(fields::BODY_TEXT, &e.body)?;
    // Sealed since migration 0007; older rows may still hold clear text.
    let open_new = |field: &str, v: &str| {
        crate::blind::open_or_clear(sealer, field, v).map_err(|err| CliError::Other(anyhow::anyhow!("incident {}: {err}", e.incident)))
    };
    let from = e.original_from.as_deref().map(|f| open_new(fields::ORIGINAL_FROM, f)).transpose()?;
    let name = e.original_name.as_deref().map(|n| open_new(fields::ORIGINAL_NAME, n)).transpose()?;
    let outcome = e.outcome.as_deref().map(|o| open_new(fields::OUTCOME, o)).transpose()?;
    let attachments = e.attachments.iter().map(|a| open_new(fields::FILENAME, a)).collect::<Result<Vec<_>, _>>()?;
    e.note = note;
    e.original_subject = subject;
    e.body = body;
    e.original_from = from;
    e.original_name = name;
    e.outcome = outcome;
    e.attachments = attachments;
    e.ai_suggestion = e.ai_suggestion.as_deref().map(|s| open(fields::AI_SUGGESTION, s)).transpose()?;
    Ok(())
}
