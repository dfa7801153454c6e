//! A transfer receipt from the receiving school: a message to the intake's `+x-TOKEN` address
//! whose first `Received: NAME, ROLE` line confirms that a child-protection file arrived. The
//! sender is not staff here (nor is the receiving Haven's automatic receipt), so the signed
//! token alone vouches for which case it closes; it is read before the noise and sender checks.
//! The case is closed in the transaction that records the message (a repeated receipt changes
//! nothing), and the message is kept, filed with the reason, like any other.

use super::{Assessed, Filer};
use crate::directory::Directory;
use crate::message::Message;
use crate::reply_token;
use crate::store::{CaseState, MessageRecord, MessageState, OutboxRecord, StoreError, transfer_fields};

/// The receipt token the message is addressed to, if any.
pub(super) fn token_in(msg: &Message) -> Option<String> {
    msg.to.iter().chain(&msg.cc).find_map(|a| reply_token::find_receipt_in_address(&a.address).map(str::to_string))
}

/// The manifest SHA-256 a receiving Haven's receipt names ("(SHA-256 HEX)"), if any.
fn manifest_named(text: &str) -> Option<String> {
    let at = text.find("SHA-256 ")? + "SHA-256 ".len();
    let hex: String = text[at..].chars().take_while(char::is_ascii_hexdigit).collect();
    (hex.len() == 64).then(|| hex.to_ascii_lowercase())
}

/// What an entry says in place of its body once only the chronology is kept after a transfer.
pub fn removed_line(case: i64) -> String {
    format!(
        "(The text and attachments of this entry were removed when transfer case #{case}'s receipt came back: only the \
         chronology is kept here, [transfer] retain_after = \"chronology\".)"
    )
}

impl Filer {
    pub(super) async fn assess_receipt(&self, mut record: MessageRecord, msg: &Message, token: &str) -> Result<Assessed, StoreError> {
        let verified = self.settings.reply_key.as_deref().and_then(|key| reply_token::verify_receipt(key, token));
        let Some(case) = verified else {
            record.state = MessageState::Quarantined;
            record.reason = "transfer receipt token is invalid or was not signed by this Haven".into();
            return Ok(Assessed::only(record));
        };
        let text = msg.reply_text.clone().unwrap_or_else(|| msg.text.clone());
        let Some((name, role)) = crate::transfer::parse_receipt(&text) else {
            record.state = MessageState::Ignored;
            record.reason = format!("to transfer case {case}'s receipt address, but no \"Received: NAME, ROLE\" line: the case stays open");
            return Ok(Assessed::only(record));
        };
        let Some(found) = self.store.transfer_case(case).await? else {
            record.state = MessageState::Quarantined;
            record.reason = format!("transfer receipt for case {case}, which Haven does not hold");
            return Ok(Assessed::only(record));
        };
        let waiting = matches!(found.state, CaseState::Prepared | CaseState::Sent);
        record.state = MessageState::Filed;
        if !waiting {
            record.reason = format!("transfer receipt for case {case}, which was not waiting for one ({})", found.state.as_str());
            return Ok(Assessed::only(record));
        }
        // A receiving Haven names the manifest it checked: it must be the one sent.
        let named = manifest_named(&text);
        match (&named, &found.bundle_sha256) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                record.state = MessageState::Quarantined;
                record.reason = format!(
                    "transfer receipt for case {case} names manifest SHA-256 {theirs}, not the one prepared ({ours}): the case stays open"
                );
                return Ok(Assessed::only(record));
            }
            _ => {}
        }
        record.reason = match named {
            Some(_) => format!("transfer receipt: case {case} closed (the receiving Haven checked the manifest prepared here)"),
            None => format!("transfer receipt: case {case} closed"),
        };
        let sealed = |field: &str, v: &str| {
            self.sealer()
                .seal_text_for(found.pupil_id, field, v)
                .map_err(|source| StoreError::Sealed { what: format!("the receipt for transfer case {case}"), source })
        };
        let signed = sealed(transfer_fields::RECEIVED_BY, &format!("{name}, {role}"))?;
        let removed = sealed(crate::pipeline::fields::BODY_TEXT, &removed_line(case))?;
        tracing::info!(case, "transfer receipt: the case closes with this message");
        Ok(Assessed { receipt: Some((case, signed, removed)), ..Assessed::only(record) })
    }

    /// A child-protection file from another Haven school, encrypted to this one: kept (ignored,
    /// never filed by itself) for the DSL team to check and receive, and each of them told.
    pub(super) fn kept_transfer(&self, mut record: MessageRecord, directory: &Directory) -> Assessed {
        record.state = MessageState::Ignored;
        record.reason = "an encrypted child-protection file from another Haven school: the DSL team receives it with \
                         `haven transfer receive --message N --by DSL` (N is this message's number)"
            .into();
        let notices = directory
            .staff
            .iter()
            .filter(|s| s.active && s.is_dsl_team() && !s.email().is_empty())
            .map(|s| OutboxRecord {
                purpose: "notice",
                recipient: s.email().to_string(),
                email_message_id: format!("haven.transfer-in.{{message}}.{}@{}", s.id, self.settings.mail_domain),
                subject: "Haven: a child-protection file arrived from another school".into(),
                body: "An encrypted child-protection file arrived from another school's Haven and is kept as message {message}. \
                       Check and file it with: haven transfer receive --message {message} --by YOU\n"
                    .into(),
            })
            .collect();
        Assessed { notices, ..Assessed::only(record) }
    }
}

#[cfg(test)]
mod tests {
    use super::manifest_named;

    #[test]
    fn a_receipt_names_the_manifest_it_checked() {
        let sha = "ab".repeat(32);
        assert_eq!(manifest_named(&format!("Received: Bea, DSL\n\nchecked it: the signed manifest (SHA-256 {sha}) and all")), Some(sha));
        assert_eq!(manifest_named("Received: Bea, DSL"), None);
        assert_eq!(manifest_named("SHA-256 abc123"), None, "not a whole SHA-256");
    }
}
