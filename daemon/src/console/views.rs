//! One askama template per page (daemon/templates/*.html, auto-escaped). Views are plain data;
//! they must not read the store.

use askama::Template;

/// Where staff type their address to be emailed a sign-in link.
#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignIn {
    pub csrf: String,
    pub notice: Option<String>,
}

/// A short page with a heading, a message and a way back (link sent, refusals).
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub title: String,
    pub text: String,
}

/// Staff whose roles do not let them see records ("write only").
#[derive(Template)]
#[template(path = "write_only.html")]
pub struct WriteOnly {
    pub intake_address: String,
}

/// The second factor: enrolment (with the secret) or a code.
#[derive(Template)]
#[template(path = "totp.html")]
pub struct Totp {
    pub csrf: String,
    /// Shown on first sign-in only: the secret in base32, the otpauth URL and its QR code
    /// (a data: URL of an SVG image).
    pub enrol: Option<(String, String, String)>,
    /// Whether "Use your passkey" is offered (enrolled, with a passkey added).
    pub passkey: bool,
    pub error: Option<String>,
}

/// The Security page: the signed-in person's passkeys, and the form to add one.
#[derive(Template)]
#[template(path = "security.html")]
pub struct Security {
    pub csrf: String,
    /// Whether passkeys can be used here (`console.public_url` names the host).
    pub available: bool,
    pub passkeys: Vec<PasskeyRow>,
    pub notice: Option<String>,
}

pub struct PasskeyRow {
    pub id: i64,
    pub name: String,
    pub added: String,
    pub last_used: String,
}

/// The recovery codes, shown once after enrolment.
#[derive(Template)]
#[template(path = "recovery.html")]
pub struct Recovery {
    pub codes: Vec<String>,
}

/// The signed-in home page: what the DSL team sees first.
#[derive(Template)]
#[template(path = "home.html")]
pub struct Home {
    pub csrf: String,
    pub name: String,
    /// Whether the messages awaiting triage and in quarantine are shown (DSL team only).
    pub dsl_team: bool,
    /// Whether the reports page is offered (the DSL team, SLT and the head).
    pub reports: bool,
    /// Outcomes outstanding that this person may see, overdue first.
    pub outcomes: Vec<OutcomeRow>,
    pub awaiting_triage: Vec<MessageRow>,
    pub quarantined: Vec<MessageRow>,
}

/// One outstanding outcome: incident number, category and owner, never a pupil or text.
pub struct OutcomeRow {
    pub incident: i64,
    pub category: String,
    pub priority: String,
    pub owner: String,
    pub due: String,
    pub standing: String,
    pub overdue: bool,
}

/// One message and why it is where it is.
pub struct MessageRow {
    pub id: i64,
    pub source: String,
    pub reason: String,
}

/// Pupil search: name, preferred name or UPN.
#[derive(Template)]
#[template(path = "pupils.html")]
pub struct Pupils {
    pub q: String,
    pub results: Vec<PupilRow>,
}

pub struct PupilRow {
    pub upn: String,
    pub name: String,
    pub year: String,
}

/// A pupil's chronology, as `visibility` lets the signed-in person see it.
#[derive(Template)]
#[template(path = "chronology.html")]
pub struct Chronology {
    pub name: String,
    pub upn: String,
    pub details: String,
    /// Every entry the viewer may see, on all pages.
    pub total: usize,
    pub pages: Pages,
    pub entries: Vec<EntryRow>,
}

/// Where a chronology page is among its pages (numbered from the oldest).
pub struct Pages {
    pub page: usize,
    pub of: usize,
    /// Entries `first..=last` (counted from 1, oldest first) are on this page.
    pub first: usize,
    pub last: usize,
}

impl Pages {
    pub fn new(total: usize, offset: usize, size: usize) -> Pages {
        let size = size.max(1);
        let shown = total.saturating_sub(offset).min(size);
        Pages { page: offset / size + 1, of: total.div_ceil(size).max(1), first: offset + 1, last: offset + shown }
    }

    pub fn earlier(&self) -> Option<usize> {
        (self.page > 1).then(|| self.page - 1)
    }

    pub fn later(&self) -> Option<usize> {
        (self.page < self.of).then(|| self.page + 1)
    }
}

/// One incident as shown on a chronology or its own page.
pub struct EntryRow {
    pub incident: i64,
    pub occurred: String,
    pub recorded: String,
    pub kind: String,
    pub category: String,
    pub priority: String,
    pub role: String,
    pub others: String,
    pub from: String,
    pub subject: String,
    pub note: String,
    pub body: String,
    pub attachments: String,
    pub outcome: Option<String>,
    /// The AI model's suggestion, when it has read the incident.
    pub ai: Option<AiRow>,
}

/// An AI suggestion as the console shows it: always labelled as a suggestion with the
/// model's name; it never changed who was told or how urgent the incident is.
pub struct AiRow {
    /// "AI suggestion (MODEL) — a suggestion, not a decision"
    pub label: String,
    pub risk: String,
    /// The school's category suggested, or "none of the school's".
    pub category: String,
    /// Quotes from the text.
    pub reasons: Vec<String>,
    pub summary: String,
    /// The pupils it names, on the roll: the DSL team's only ("" for anyone else).
    pub pupils: String,
}

/// One incident, with what it is about, what was sent, who has seen it, and the forms the
/// signed-in person may use (outcome; confirm or remove a mentioned pupil for the DSL team).
#[derive(Template)]
#[template(path = "incident.html")]
pub struct Incident {
    pub csrf: String,
    pub pupil_upn: String,
    pub pupil_name: String,
    /// The incident (named `e` for the shared entry.html).
    pub e: EntryRow,
    pub notice: Option<String>,
    pub dsl_team: bool,
    pub pupils: Vec<PupilOnIncident>,
    pub attachments: Vec<AttachmentRow>,
    /// Whether the original message had HTML, shown in the sandboxed frame.
    pub has_html: bool,
    pub follow_ups: Vec<FollowUpRow>,
    pub alerted: Vec<AlertedRow>,
    /// Who recorded the outcome and when ("" while outstanding).
    pub outcome_by: String,
    pub viewers: Vec<AccessRow>,
    /// Whether the "AI was right / wrong" buttons are shown: the DSL team, on a suggestion.
    pub ai_feedback: bool,
    /// The signed-in person's verdict on the suggestion so far ("right" or "wrong").
    pub ai_verdict: Option<String>,
}

pub struct PupilOnIncident {
    pub upn: String,
    pub name: String,
    pub role: String,
    /// Only mentioned in the text: the DSL team's to confirm or remove.
    pub mentioned: bool,
}

/// An attachment, downloaded by its position `n` on the incident.
pub struct AttachmentRow {
    pub n: usize,
    pub name: String,
    pub size: u64,
}

pub struct FollowUpRow {
    pub incident: i64,
    pub occurred: String,
    pub note: String,
}

/// An email Haven queued about the incident and to whom.
pub struct AlertedRow {
    pub who: String,
    pub purpose: String,
    pub state: String,
    pub when: String,
}

/// One line of the access log.
pub struct AccessRow {
    pub when: String,
    pub who: String,
    pub what: String,
    pub which: String,
}

/// A message awaiting triage or quarantined, with the form that settles it.
#[derive(Template)]
#[template(path = "message_page.html")]
pub struct MessagePage {
    pub csrf: String,
    pub id: i64,
    pub state: String,
    pub reason: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    /// Awaiting triage: the form to pick pupils and roles.
    pub triage: bool,
    /// Quarantined (and held): the form to release it.
    pub release: bool,
    /// The triage form's rows (0, 1, 2).
    pub rows: Vec<usize>,
    pub roles: Vec<&'static str>,
    pub notice: Option<String>,
}

/// The access log: per pupil or per member of staff.
#[derive(Template)]
#[template(path = "access.html")]
pub struct Access {
    pub pupil: String,
    pub staff: String,
    pub heading: String,
    pub rows: Vec<AccessRow>,
}

/// Reports to download: the summary's form, and the inspection lists for the DSL team.
#[derive(Template)]
#[template(path = "reports.html")]
pub struct Reports {
    /// The school's terms, newest first (none without `school.terms_file`).
    pub terms: Vec<String>,
    /// Whether the DSL's own report and the inspection lists are offered.
    pub dsl_team: bool,
}
