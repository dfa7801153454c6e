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
    /// Shown on first sign-in only: the secret in base32 and the otpauth URL.
    pub enrol: Option<(String, String)>,
    pub error: Option<String>,
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
    pub entries: Vec<EntryRow>,
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
}

/// One incident, with the form to record its outcome.
#[derive(Template)]
#[template(path = "incident.html")]
pub struct Incident {
    pub csrf: String,
    pub pupil_upn: String,
    pub pupil_name: String,
    /// The incident (named `e` for the shared entry.html).
    pub e: EntryRow,
    pub notice: Option<String>,
}
