//! Releasing a quarantined message (`haven messages release`): a member of the DSL team
//! vouches for it, and its stored raw bytes go through the pipeline again as if the sender
//! check had passed. The message's own row changes state (no second row is written) and its
//! incident and alerts are filed with it, and the audit entry, in one transaction.
//!
//! A message quarantined unread (over a limit, unreadable) cannot be released: there is no
//! reading of it to file. Only the sender check is waived; everything after it (duplicates,
//! replies' tokens, pupils, rules) runs as for any message.

use super::{Assessment, Filer, ForRules, Hashes, Known, Prepared, Seen, content_sha256, fields, occurred};
use crate::history;
use crate::read;
use crate::source::{Incoming, Origin, Payload};
use crate::store::{MessageState, Release, StoreError};
use sha2::{Digest, Sha256};

/// Why a message was not released. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0} is not an active member of staff")]
    NotStaff(String),
    #[error("{0} is not on the DSL team: only the DSL team may release a quarantined message")]
    NotDslTeam(String),
    #[error("give the reason for the release with --reason")]
    NoReason,
    #[error("there is no message {0}")]
    NotFound(i64),
    #[error("message {id} is {state}, not quarantined: only a quarantined message can be released")]
    NotQuarantined { id: i64, state: &'static str },
    #[error("message {0} was too large to fetch, so Haven does not hold it: it cannot be released")]
    NotHeld(i64),
    #[error("message {id} cannot be released: {reason}")]
    Unreadable { id: i64, reason: String },
    #[error("message {id} was not released: on release it would be quarantined again ({reason})")]
    QuarantinedAgain { id: i64, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of a released message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub state: MessageState,
    pub incident: Option<i64>,
    /// The message's new reason, as `haven messages` shows it.
    pub reason: String,
}

impl Filer {
    /// Releases quarantined message `id` on the word of `by_email`, a member of the DSL team,
    /// for `reason` (kept in the audit log).
    pub async fn release(&self, id: i64, by_email: &str, reason: &str) -> Result<Released, ReleaseError> {
        let now = self.clock.now();
        let rules = self.rules.current();
        let sealer = self.keys.current(&self.store).await?;
        let directory = self.directory.current(&self.store, &sealer).await?;
        let by = directory.active_staff_by_email(by_email).ok_or_else(|| ReleaseError::NotStaff(by_email.to_string()))?;
        if !by.is_dsl_team() {
            return Err(ReleaseError::NotDslTeam(by_email.to_string()));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ReleaseError::NoReason);
        }
        let (state, was, sealed) = self.store.message_for_release(id).await?.ok_or(ReleaseError::NotFound(id))?;
        if state != MessageState::Quarantined {
            return Err(ReleaseError::NotQuarantined { id, state: state.as_str() });
        }
        let sealed = sealed.ok_or(ReleaseError::NotHeld(id))?;
        let raw = self
            .sealer()
            .open(fields::RAW, &sealed)
            .map_err(|e| ReleaseError::Unreadable { id, reason: format!("its stored bytes do not open: {e}") })?;
        let msg = read::read_message_with(&raw, &self.settings.limits)
            .map_err(|e| ReleaseError::Unreadable { id, reason: format!("it is unreadable or over a limit: {e}") })?;

        let hashes = Hashes { raw: hex::encode(Sha256::digest(&raw)), content: content_sha256(&raw) };
        let incoming = Incoming { origin: Origin::File { path: format!("message {id}").into() }, payload: Payload::Raw(raw) };
        let prepared = Prepared { read: Some((hashes, Ok(msg))), sealed_raw: Vec::new() };
        let known: Known = self.look_up(std::slice::from_ref(&incoming), std::slice::from_ref(&prepared)).await?;
        let mut seen = Seen::default();
        let assessment = self.assess_read(&incoming, prepared.read, &directory, &rules, now, &known, &mut seen, Some(by)).await?;
        let mut assessed = match assessment {
            Assessment::Decided(a) => *a,
            Assessment::ToRules(mut r) => {
                r.live = true;
                let ForRules { msg, ident, .. } = &*r;
                let pupils = ident.pupils.iter().map(|p| p.pupil_id).collect();
                let earlier = history::earlier(&self.store, &rules, pupils, occurred(msg, now).0).await?;
                self.decide(*r, &directory, &rules, now, &earlier, &seen)?
            }
        };
        if assessed.record.state == MessageState::Quarantined {
            return Err(ReleaseError::QuarantinedAgain { id, reason: assessed.record.reason });
        }
        assessed.record.reason =
            format!("{}; released from quarantine by {} {} (quarantined: {was})", assessed.record.reason, by.first_name, by.last_name);
        let release = Release {
            message: id,
            record: &assessed.record,
            incident: assessed.incident.as_ref(),
            settles: assessed.settles,
            question: assessed.question.as_ref(),
            by: by.id,
            actor: by.email(),
            reason,
            at: now,
        };
        let mut tx = self.store.begin().await?;
        let incident = tx.release_message(&release).await?;
        for (incident, staff, text, code) in &assessed.outcomes {
            tx.record_coded_outcome(*incident, *staff, text, *code, now).await?;
        }
        if let Some((case, signed, removed)) = &assessed.receipt {
            tx.record_transfer_receipt(*case, signed, removed, by.email(), now).await?;
        }
        tx.commit().await?;
        tracing::info!(message_id = id, incident = ?incident, state = assessed.record.state.as_str(), "message released from quarantine");
        Ok(Released { state: assessed.record.state, incident, reason: assessed.record.reason })
    }
}
