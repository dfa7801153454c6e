//! `haven sar open|list|extend|close`: subject access requests. A request names its subject (a
//! pupil, or an adult by address), when it was received and so when the answer is due (one
//! calendar month, `crate::sar::deadline`); it may be extended once, by up to two more months,
//! with a reason, while the first month runs. While it is open it holds (the existing holds,
//! reason `sar`) what it is about, so nothing of the subject can be disposed of; closing
//! releases them. Only the DSL team and the DPO may do any of this; every step and every
//! refusal is audited. Collecting and deciding items: `cli::sar_items`; the export and the
//! disclosure log: `cli::sar_export`.

use super::{App, CliError};
use crate::directory::{Directory, Role, Staff};
use crate::sar::{deadline, latest_extension, reference};
use crate::seal::Sealer;
use crate::store::{HoldOn, HoldReason, RequestKind, SarRequest, SarSubject, sar_fields};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// Who may handle subject access requests: the DSL team and the data protection officer.
pub fn may_answer(staff: &Staff) -> bool {
    staff.is_dsl_team() || staff.has_role(Role::Dpo)
}

/// The active member of staff `email`, allowed to handle requests; a refusal is audited
/// against `subject` (`sar:ID`, or `sar` before one exists).
pub(crate) async fn authorised<'a>(app: &App, dir: &'a Directory, email: &str, action: &str, subject: &str) -> Result<&'a Staff, CliError> {
    let staff = dir
        .active_staff_by_email(email)
        .ok_or_else(|| CliError::Usage(format!("--by {email}: not an active member of staff; nothing was done")))?;
    if !may_answer(staff) {
        app.store
            .audit(app.now(), &format!("staff:{}", staff.id), "sar_refused", subject, &format!("{action}: not DSL team or DPO"))
            .await?;
        return Err(CliError::Usage(format!(
            "--by {email}: only the DSL team or the data protection officer may handle subject access requests; nothing was done"
        )));
    }
    Ok(staff)
}

/// The request numbered `id`.
pub(crate) async fn load(app: &App, id: i64) -> Result<SarRequest, CliError> {
    app.store
        .sar(id)
        .await?
        .ok_or_else(|| CliError::Usage(format!("there is no subject access request #{id} (see `haven sar list`); nothing was done")))
}

/// Today in the school's zone.
pub(crate) fn today(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

pub(crate) fn day(d: NaiveDate) -> String {
    d.format("%-d %b %Y").to_string()
}

/// Who a request is about, as the DSL sees it: "Piotr Nowak <p.nowak@example.com>" or
/// "Zofia Nowak (E100000000007)".
pub(crate) fn subject_line(dir: &Directory, sealer: &Sealer, r: &SarRequest) -> String {
    match &r.subject {
        SarSubject::Pupil(p) => {
            dir.pupil(*p).map_or_else(|| format!("pupil #{p} (no longer in the directory)"), |p| format!("{} ({})", p.full_name(), p.upn))
        }
        SarSubject::Adult(sealed) => {
            let email = sealer.open_text(sar_fields::SUBJECT_EMAIL, sealed).unwrap_or_else(|_| "(unreadable with this keyring)".into());
            match adult_name(dir, &email) {
                Some(n) => format!("{n} <{email}>"),
                None => email,
            }
        }
    }
}

/// An adult's name, from the contacts or the staff list.
pub(crate) fn adult_name(dir: &Directory, email: &str) -> Option<String> {
    dir.contacts_by_email(email).find_map(|c| c.name.clone()).or_else(|| {
        dir.staff
            .iter()
            .find(|s| s.emails.iter().any(|e| e.eq_ignore_ascii_case(email)))
            .map(|s| format!("{} {}", s.first_name, s.last_name))
    })
}

/// The subject named on the command line: a pupil (UPN or full name) or an adult's address,
/// which must be a contact's or a member of staff's.
fn resolve_subject(dir: &Directory, query: &str) -> Result<Resolved, CliError> {
    let q = query.trim();
    if q.contains('@') {
        let email = q.to_ascii_lowercase();
        let children: Vec<i64> = dir.contacts_by_email(&email).flat_map(|c| c.pupil_ids.iter().copied()).collect();
        let known = dir.contacts_by_email(&email).next().is_some() || dir.staff.iter().any(|s| s.emails.contains(&email));
        if !known {
            return Err(CliError::Usage(format!(
                "--subject {q}: no contact and no member of staff has this address (check it against the directory, \
                 or give the pupil's UPN); nothing was done"
            )));
        }
        return Ok(Resolved { email: Some(email), pupil: None, held_pupils: children });
    }
    let p = super::chronology::find_pupil(dir, q).map_err(|e| CliError::Usage(format!("--subject: {e}; nothing was done")))?;
    Ok(Resolved { email: None, pupil: Some(p.id), held_pupils: vec![p.id] })
}

struct Resolved {
    email: Option<String>,
    pupil: Option<i64>,
    /// The pupils whose records the request holds from the start: the pupil, or an adult's children.
    held_pupils: Vec<i64>,
}

/// What a request asks for, as `haven sar open --kind` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Kind {
    /// The subject's personal data (UK GDPR Art 15): one calendar month.
    #[default]
    SubjectAccess,
    /// A parent's request for their child's educational record (maintained schools in England):
    /// 15 school days, without the safeguarding chronology.
    EducationalRecord,
}

impl From<Kind> for RequestKind {
    fn from(k: Kind) -> RequestKind {
        match k {
            Kind::SubjectAccess => RequestKind::SubjectAccess,
            Kind::EducationalRecord => RequestKind::EducationalRecord,
        }
    }
}

/// School days a maintained school has to answer a request for the educational record
/// (Education (Pupil Information) (England) Regulations 2005, reg 5).
pub const EDUCATIONAL_RECORD_DAYS: u32 = 15;

/// When the answer to a request of `kind` received on `received` is due.
fn due_on(app: &App, kind: RequestKind, received: NaiveDate) -> Result<NaiveDate, CliError> {
    match kind {
        RequestKind::SubjectAccess => Ok(deadline(received)),
        RequestKind::EducationalRecord => {
            let terms = app.config.terms.as_ref().ok_or_else(|| {
                CliError::Config(
                    "school.terms_file is not set: an educational record request is answered within 15 school days, so Haven needs                      the school's terms; add `terms_file = \"terms.toml\"` under [school] (examples/eaton/terms.toml shows the format),                      then run the command again"
                        .into(),
                )
            })?;
            terms.add_school_days(received, EDUCATIONAL_RECORD_DAYS).ok_or_else(|| {
                CliError::Config(format!(
                    "school.terms_file has no term {EDUCATIONAL_RECORD_DAYS} school days after {received}: add the coming terms to the \
                     terms file, then run the command again"
                ))
            })
        }
    }
}

pub struct OpenRequest<'a> {
    pub kind: Kind,
    pub subject: &'a str,
    pub received: NaiveDate,
    pub by: &'a str,
    pub requester: Option<&'a str>,
}

pub async fn open(app: &App, req: OpenRequest<'_>) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let staff = authorised(app, &dir, req.by, "open", "sar").await?;
    let today = today(now, tz);
    if req.received > today {
        return Err(CliError::Usage(format!(
            "--received {}: that is in the future (today is {today}); give the day the request reached the school; nothing was done",
            req.received
        )));
    }
    let subject = resolve_subject(&dir, req.subject)?;
    let kind = RequestKind::from(req.kind);
    if kind == RequestKind::EducationalRecord && subject.pupil.is_none() {
        return Err(CliError::Usage(format!(
            "--subject {}: an educational record is a pupil's: give the pupil's UPN or full name; nothing was done",
            req.subject
        )));
    }
    let due = due_on(app, kind, req.received)?;
    let stored = match (&subject.pupil, &subject.email) {
        (Some(p), _) => SarSubject::Pupil(*p),
        (None, Some(e)) => SarSubject::Adult(sealer.seal_text(sar_fields::SUBJECT_EMAIL, e)),
        (None, None) => unreachable!("a subject is a pupil or an address"),
    };
    let requester = req.requester.map(str::trim).filter(|r| !r.is_empty()).map(|r| sealer.seal_text(sar_fields::REQUESTER, r));
    let mut tx = app.store.begin().await?;
    let id = tx.open_sar(kind, &stored, requester.as_deref(), req.received, due, staff.id, now).await?;
    let note = sealer.seal_text(crate::store::retention_fields::HOLD_NOTE, &format!("{} {}", kind.title().to_lowercase(), reference(id)));
    for pupil in &subject.held_pupils {
        let hold = tx.set_hold(HoldOn::Pupil(*pupil), HoldReason::Sar, &note, staff.id, now).await?;
        tx.add_sar_hold(id, hold).await?;
    }
    tx.commit().await?;
    let r = load(app, id).await?;
    let days = (due - today).num_days();
    let counted = match kind {
        RequestKind::SubjectAccess => String::new(),
        RequestKind::EducationalRecord => format!("{EDUCATIONAL_RECORD_DAYS} school days, "),
    };
    Ok(format!(
        "{} #{id} ({}) opened about {}: received {}, answer due {} ({counted}{}); {} hold(s) placed, so nothing of theirs \
         can be disposed of while it is open. Next: `haven sar collect {id} --by EMAIL`",
        kind.title().to_lowercase(),
        reference(id),
        subject_line(&dir, &sealer, &r),
        day(req.received),
        day(due),
        standing(days),
        subject.held_pupils.len()
    ))
}

/// "in 12 days", "today", "3 days overdue".
fn standing(days: i64) -> String {
    match days {
        0 => "due today".into(),
        d if d > 0 => format!("in {d} day(s)"),
        d => format!("{} day(s) overdue", -d),
    }
}

/// One request as `haven sar list` shows it: one model, rendered as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: i64,
    pub kind: RequestKind,
    pub reference: String,
    /// open | closed
    pub state: &'static str,
    pub subject: String,
    pub requester: Option<String>,
    pub received_on: NaiveDate,
    pub due_on: NaiveDate,
    /// The first month's date, when the deadline was extended.
    pub extended_from: Option<NaiveDate>,
    /// Days until the answer is due (negative: overdue), while the request is open.
    pub days_left: Option<i64>,
    pub items: usize,
    pub undecided: usize,
    pub disclosures: usize,
    pub closed_by: Option<String>,
    pub closed_on: Option<NaiveDate>,
}

impl Listed {
    fn line(&self) -> String {
        let mut line = format!("#{} {} {} {}: {}", self.id, self.reference, self.kind.title().to_lowercase(), self.state, self.subject);
        line.push_str(&format!("; received {}, due {}", day(self.received_on), day(self.due_on)));
        if let Some(first) = self.extended_from {
            line.push_str(&format!(" (extended from {})", day(first)));
        }
        if let Some(days) = self.days_left {
            line.push_str(&format!(" ({})", standing(days)));
        }
        if let Some(who) = &self.requester {
            line.push_str(&format!("; requester: {who}"));
        }
        line.push_str(&format!("; {} item(s), {} undecided; {} export(s)", self.items, self.undecided, self.disclosures));
        if let (Some(by), Some(on)) = (&self.closed_by, self.closed_on) {
            line.push_str(&format!("; closed {} by {by}", day(on)));
        }
        line
    }
}

pub async fn list(app: &App, by: &str, json_out: bool) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let staff = authorised(app, &dir, by, "list", "sar").await?;
    let all = app.store.sars().await?;
    app.store.audit(now, &format!("staff:{}", staff.id), "sar_list", "sar", &format!("requests={}", all.len())).await?;
    let today = today(now, tz);
    let mut listed = Vec::new();
    for r in &all {
        let items = app.store.sar_items(r.id).await?;
        listed.push(Listed {
            id: r.id,
            kind: r.kind,
            reference: reference(r.id),
            state: if r.open { "open" } else { "closed" },
            subject: subject_line(&dir, &sealer, r),
            requester: r
                .sealed_requester
                .as_deref()
                .map(|s| sealer.open_text(sar_fields::REQUESTER, s).unwrap_or_else(|_| "(unreadable with this keyring)".into())),
            received_on: r.received_on,
            due_on: r.due(),
            extended_from: r.extended.as_ref().map(|_| r.due_on),
            days_left: r.open.then(|| (r.due() - today).num_days()),
            items: items.len(),
            undecided: items.iter().filter(|i| i.decision.is_none()).count(),
            disclosures: app.store.sar_disclosures(r.id).await?.len(),
            closed_by: r.closed.map(|(by, _)| staff_name(&dir, by)),
            closed_on: r.closed.map(|(_, at)| at.with_timezone(&tz).date_naive()),
        });
    }
    if json_out {
        return Ok(serde_json::to_string_pretty(&listed).unwrap_or_default());
    }
    if listed.is_empty() {
        return Ok("no subject access requests have been opened".into());
    }
    Ok(listed.iter().map(Listed::line).collect::<Vec<_>>().join("\n"))
}

pub(crate) fn staff_name(dir: &Directory, id: i64) -> String {
    dir.staff.iter().find(|s| s.id == id).map_or_else(|| format!("staff #{id}"), |s| format!("{} {}", s.first_name, s.last_name))
}

pub async fn extend(app: &App, id: i64, to: NaiveDate, reason: &str, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let tz = app.config.school.tz();
    if reason.trim().is_empty() {
        return Err(CliError::Usage(
            "--reason is empty: say why the request needs longer (complex, many requests); nothing was done".into(),
        ));
    }
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let r = load(app, id).await?;
    let staff = authorised(app, &dir, by, "extend", &r.audit_subject()).await?;
    if !r.open {
        return Err(CliError::Usage(format!("request #{id} is closed; nothing was done")));
    }
    if r.kind == RequestKind::EducationalRecord {
        return Err(CliError::Usage(format!(
            "request #{id} is for the educational record, which the regulations give {EDUCATIONAL_RECORD_DAYS} school days and no \
             extension; nothing was done"
        )));
    }
    let today = today(now, tz);
    if today > r.due_on {
        return Err(CliError::Usage(format!(
            "request #{id}: an extension must be decided (and the requester told) within the first month, which ended on {}; \
             nothing was done",
            day(r.due_on)
        )));
    }
    let latest = latest_extension(r.received_on);
    if to <= r.due() {
        return Err(CliError::Usage(format!("--to {to}: the answer is already due on {}; give a later date; nothing was done", r.due())));
    }
    if to > latest {
        return Err(CliError::Usage(format!(
            "--to {to}: the law allows at most two further months, to {latest} for a request received on {}; nothing was done",
            r.received_on
        )));
    }
    let mut tx = app.store.begin().await?;
    if !tx.extend_sar(id, to, &sealer.seal_text(sar_fields::EXTEND_REASON, reason.trim()), staff.id, now).await? {
        return Err(CliError::Usage(format!("request #{id} was closed meanwhile; nothing was done")));
    }
    tx.commit().await?;
    Ok(format!(
        "request #{id} ({}) extended: the answer is now due {} (was {}); tell the requester why within the first month",
        reference(id),
        day(to),
        day(r.due_on)
    ))
}

pub async fn close(app: &App, id: i64, by: &str) -> Result<String, CliError> {
    let now = app.now();
    let sealer = app.sealer().await?;
    let dir = app.store.load_directory(&sealer).await?;
    let r = load(app, id).await?;
    let staff = authorised(app, &dir, by, "close", &r.audit_subject()).await?;
    if !r.open {
        return Err(CliError::Usage(format!("request #{id} is already closed; nothing was done")));
    }
    let holds = app.store.sar_holds(id).await?;
    let note = sealer.seal_text(crate::store::retention_fields::HOLD_RELEASE_NOTE, &format!("{} closed", reference(id)));
    let mut tx = app.store.begin().await?;
    if !tx.close_sar(id, staff.id, now).await? {
        return Err(CliError::Usage(format!("request #{id} was closed meanwhile; nothing was done")));
    }
    let mut released = 0;
    for hold in holds {
        if tx.release_hold(hold, &note, staff.id, now).await?.is_some() {
            released += 1;
        }
    }
    tx.commit().await?;
    let exported = app.store.sar_disclosures(id).await?.len();
    Ok(format!(
        "request #{id} ({}) closed; {released} hold(s) it placed released{}",
        reference(id),
        if exported == 0 { "; nothing was exported for it" } else { "" }
    ))
}
