//! Answering a triage question in the console: a member of the DSL team picks the pupil(s) a
//! message awaiting triage is about, each with a role, and the message goes on to the rules
//! exactly as if its forwarder had answered the emailed question (`triage::answered`, then the
//! same `decide`): the same category, alerts, deadline and escalation. The incident, the
//! message's new state and the audit entry are written in one transaction.

use super::{Filer, ForRules, Seen, fields, occurred};
use crate::authenticate::{self, SenderCheck};
use crate::history;
use crate::identify::{self, Identification, PupilMatch, PupilRole};
use crate::read;
use crate::store::{MessageRecord, MessageState, StoreError};
use crate::triage;

/// Why a triage answer was not filed. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("{0} is not an active member of staff")]
    NotStaff(String),
    #[error("{0} is not on the DSL team: only the DSL team may answer triage here")]
    NotDslTeam(String),
    #[error("pick at least one pupil the message is about")]
    NoPupils,
    #[error("there is no message {0}")]
    NotFound(i64),
    #[error("message {id} is {state}, not awaiting triage (someone may have answered it already)")]
    NotAwaiting { id: i64, state: &'static str },
    #[error("message {id} cannot be read again: {reason}")]
    Unreadable { id: i64, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A triage answer that was filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub incident: i64,
    pub category: String,
}

impl Filer {
    /// Files message `id`, awaiting triage, on `pupils` (pupil id, role), on the word of
    /// `by_email`, a member of the DSL team.
    pub async fn answer_triage(&self, id: i64, by_email: &str, pupils: &[(i64, PupilRole)]) -> Result<Answered, AnswerError> {
        let now = self.clock.now();
        let rules = self.rules.current();
        let sealer = self.keys.current(&self.store).await?;
        let directory = self.store.load_directory(&sealer).await?;
        let by = directory.active_staff_by_email(by_email).ok_or_else(|| AnswerError::NotStaff(by_email.to_string()))?;
        if !by.is_dsl_team() {
            return Err(AnswerError::NotDslTeam(by_email.to_string()));
        }
        let picked: Vec<PupilMatch> = pupils
            .iter()
            .filter(|(p, _)| directory.pupil(*p).is_some())
            .map(|(p, role)| PupilMatch { pupil_id: *p, role: *role, how: "picked in the console".into() })
            .collect();
        if picked.is_empty() {
            return Err(AnswerError::NoPupils);
        }
        let (state, sealed) = self.store.message_raw(id).await?.ok_or(AnswerError::NotFound(id))?;
        if state != MessageState::AwaitingTriage {
            return Err(AnswerError::NotAwaiting { id, state: state.as_str() });
        }
        let raw = self.sealer().open(fields::RAW, &sealed).map_err(|e| AnswerError::Unreadable { id, reason: e.to_string() })?;
        let msg =
            read::read_message_with(&raw, &self.settings.limits).map_err(|e| AnswerError::Unreadable { id, reason: e.to_string() })?;
        let before = identify::identify(&msg, &directory, rules.categories(), &self.settings.intake_address);
        let answer = Identification { pupils: picked, ..Identification::default() };
        let ident = triage::answered(&answer, &before, by).map_err(|_| AnswerError::NoPupils)?;
        // The incident is recorded by whoever forwarded the message, as for an emailed answer.
        let forwarder = match authenticate::check_sender(&msg, &directory, None) {
            SenderCheck::Staff(s) => s.id,
            SenderCheck::Refused(_) => by.id,
        };
        let pupil_ids = ident.pupils.iter().map(|p| p.pupil_id).collect();
        let earlier = history::earlier(&self.store, &rules, pupil_ids, occurred(&msg, now).0).await?;
        // `decide` needs a message record only for the state and reason it sets; the stored
        // row keeps everything else.
        let record = MessageRecord {
            sha256: None,
            message_id: None,
            source: "file",
            origin: String::new(),
            imap_uid: None,
            received: now,
            size: 0,
            state,
            reason: String::new(),
            duplicate_of: None,
            content_sha256: None,
        };
        let assessed = self.decide(
            ForRules { record, msg, ident, sender: forwarder, settles: None, live: true },
            &directory,
            &rules,
            now,
            &earlier,
            &Seen::default(),
        )?;
        let Some(incident) = assessed.incident else {
            return Err(AnswerError::Unreadable { id, reason: "the rules filed no incident".into() });
        };
        let reason = format!("{}; triaged in the console by {} {}", assessed.record.reason, by.first_name, by.last_name);
        let category = incident.category.clone();
        let mut tx = self.store.begin().await?;
        let number = tx.file_triaged(id, &reason, &incident, by.email(), now).await?;
        if let Some(note) = &assessed.category_note {
            tx.set_category_note(number, note).await?;
        }
        tx.commit().await?;
        tracing::info!(message = id, incident = number, "message filed from triage in the console");
        Ok(Answered { incident: number, category })
    }
}
