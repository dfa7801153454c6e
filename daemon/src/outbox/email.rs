//! Building the RFC 5322 message for one outbox row. Pure: no I/O, and "now" is passed in.
//!
//! Every email Haven sends says it is automatic (`Auto-Submitted`, `X-Auto-Response-Suppress`)
//! so out-of-office robots stay quiet, and names its incident (`X-Haven-Incident`) so Haven
//! recognises its own mail coming back. Emails about one incident share a thread root
//! (`In-Reply-To`/`References: <haven.N.thread@domain>`) so mail clients group them. The
//! Reply-To carries a signed token so a reply can be matched to incident and recipient.

use crate::reply_token;
use crate::store::PendingEmail;
use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};

const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");
const AUTO_RESPONSE_SUPPRESS: HeaderName = HeaderName::new_from_ascii_str("X-Auto-Response-Suppress");
const HAVEN_INCIDENT: HeaderName = HeaderName::new_from_ascii_str("X-Haven-Incident");

/// Why a row cannot become an email. Retrying cannot help: the row is dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("the recipient address is not a valid email address")]
    Recipient,
    #[error("the configured sender (smtp.from) is not a valid address")]
    From,
    #[error("the school intake address is not a valid address")]
    Intake,
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// What the message builder needs besides the row.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// `Haven <safeguarding@school>`.
    pub from: &'a str,
    /// The school's intake address; replies go to it with a plus-tagged token.
    pub intake_address: &'a str,
    /// Domain of Haven's Message-IDs, for the thread root.
    pub mail_domain: &'a str,
    pub reply_key: &'a [u8],
}

/// The thread root shared by every email about `incident`.
pub fn thread_id(incident: i64, mail_domain: &str) -> String {
    format!("<haven.{incident}.thread@{mail_domain}>")
}

/// The message for `email`, dated `now`. `staff_id` is the recipient's directory id, used to
/// sign the reply token (for an incident, or for the message a triage question asks about);
/// without it, or without either, replies go to the plain intake address and cannot act on
/// anything.
pub fn build_message(email: &PendingEmail, staff_id: Option<i64>, env: &Envelope<'_>, now: DateTime<Utc>) -> Result<Message, EmailError> {
    let from: Mailbox = env.from.parse().map_err(|_| EmailError::From)?;
    let to: Mailbox = email.recipient.trim().parse().map_err(|_| EmailError::Recipient)?;
    let reply_to = match (email.incident_id, email.message_id, staff_id) {
        (Some(incident), _, Some(staff)) => {
            let token = reply_token::sign(env.reply_key, incident, staff);
            reply_token::reply_address(env.intake_address, &token).ok_or(EmailError::Intake)?
        }
        (None, Some(message), Some(staff)) if email.purpose == "triage" => {
            let token = reply_token::sign_triage(env.reply_key, message, staff);
            reply_token::triage_reply_address(env.intake_address, &token).ok_or(EmailError::Intake)?
        }
        (None, None, Some(staff)) if email.purpose == "digest" => {
            let token = reply_token::sign_digest(env.reply_key, staff);
            reply_token::digest_reply_address(env.intake_address, &token).ok_or(EmailError::Intake)?
        }
        _ => env.intake_address.trim().to_string(),
    };
    let reply_to = Mailbox::new(from.name.clone(), reply_to.parse().map_err(|_| EmailError::Intake)?);

    let mut builder = Message::builder()
        .message_id(Some(format!("<{}>", email.email_message_id)))
        .from(from)
        .reply_to(reply_to)
        .to(to)
        .subject(email.subject.clone())
        .date(now.into())
        .raw_header(HeaderValue::new(AUTO_SUBMITTED, "auto-generated".into()))
        .raw_header(HeaderValue::new(AUTO_RESPONSE_SUPPRESS, "All".into()));
    if let Some(incident) = email.incident_id {
        let root = thread_id(incident, env.mail_domain);
        builder = builder.in_reply_to(root.clone()).references(root).raw_header(HeaderValue::new(HAVEN_INCIDENT, incident.to_string()));
    }
    Ok(builder.header(ContentType::TEXT_PLAIN).body(email.body.clone())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> PendingEmail {
        PendingEmail {
            id: 1,
            incident_id: Some(12),
            message_id: None,
            purpose: "alert".into(),
            recipient: "dsl@school.example".into(),
            email_message_id: "haven.12.alert.7@school.example".into(),
            subject: "Haven incident #12: Neglect".into(),
            body: "Incident #12 has been recorded.\n".into(),
            attempts: 0,
            urgent: false,
        }
    }

    const ENV: Envelope<'static> = Envelope {
        from: "Haven <safeguarding@school.example>",
        intake_address: "safeguarding@school.example",
        mail_domain: "school.example",
        reply_key: b"key",
    };

    fn text(m: &Message) -> String {
        String::from_utf8_lossy(&m.formatted()).into_owned()
    }

    #[test]
    fn headers_for_an_alert() {
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let m = build_message(&row(), Some(7), &ENV, now).map_err(|e| e.to_string());
        let t = text(&m.unwrap_or_else(|e| panic!("{e}")));
        assert!(t.contains("Message-ID: <haven.12.alert.7@school.example>\r\n"), "{t}");
        assert!(t.contains("Auto-Submitted: auto-generated\r\n"), "{t}");
        assert!(t.contains("X-Auto-Response-Suppress: All\r\n"), "{t}");
        assert!(t.contains("X-Haven-Incident: 12\r\n"), "{t}");
        assert!(t.contains("In-Reply-To: <haven.12.thread@school.example>\r\n"), "{t}");
        assert!(t.contains("References: <haven.12.thread@school.example>\r\n"), "{t}");
        let token = reply_token::sign(b"key", 12, 7);
        assert!(t.contains(&format!("safeguarding+r-{token}@school.example")), "{t}");
        assert!(!t.contains("Precedence"), "{t}");
    }

    #[test]
    fn no_token_without_a_staff_id() {
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let t = text(&build_message(&row(), None, &ENV, now).unwrap_or_else(|e| panic!("{e}")));
        assert!(t.contains("Reply-To: Haven <safeguarding@school.example>\r\n"), "{t}");
    }

    #[test]
    fn a_triage_question_carries_a_triage_token_and_no_incident() {
        let mut r = row();
        (r.incident_id, r.message_id, r.purpose) = (None, Some(40), "triage".into());
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let t = text(&build_message(&r, Some(7), &ENV, now).unwrap_or_else(|e| panic!("{e}")));
        let token = reply_token::sign_triage(b"key", 40, 7);
        assert!(t.contains(&format!("safeguarding+t-{token}@school.example")), "{t}");
        assert!(!t.contains("X-Haven-Incident"), "{t}");
    }

    #[test]
    fn a_bad_recipient_is_an_error() {
        let mut r = row();
        r.recipient = "not an address".into();
        assert!(matches!(build_message(&r, None, &ENV, DateTime::<Utc>::default()), Err(EmailError::Recipient)));
    }
}
