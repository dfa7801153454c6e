//! `haven console unlock STAFF --by DSL [--reset]`: a member of the DSL team unlocks a
//! colleague's console second factor after five wrong codes (the DSL team was emailed when it
//! locked), or resets it when the phone is lost: they then enrol again at their next sign-in,
//! and every console session of theirs ends. Refusals and changes are audited.

use super::CliError;
use crate::seal::Sealer;
use crate::store::Store;
use chrono::{DateTime, Utc};

pub async fn unlock(
    store: &Store,
    sealer: &Sealer,
    email: &str,
    by_email: &str,
    reset: bool,
    now: DateTime<Utc>,
) -> Result<String, CliError> {
    let dir = store.load_directory(sealer).await?;
    let by = dir
        .active_staff_by_email(by_email)
        .ok_or_else(|| CliError::Usage(format!("--by {by_email}: not an active member of staff; nothing was changed")))?;
    let actor = format!("staff:{}", by.id);
    if !by.is_dsl_team() {
        store.audit(now, &actor, "console_unlock_refused", "console", "not DSL team").await?;
        return Err(CliError::Usage(format!("--by {by_email}: only the DSL team may unlock console sign-in; nothing was changed")));
    }
    let staff = dir
        .staff
        .iter()
        .find(|s| s.emails.iter().any(|e| e.eq_ignore_ascii_case(email.trim())))
        .ok_or_else(|| CliError::Usage(format!("{email}: no member of staff has this address; nothing was changed")))?;
    let changed = store.console_totp_unlock(staff.id, reset).await?;
    if !changed {
        return Err(CliError::Usage(format!("{email} has not set up console sign-in; nothing was changed")));
    }
    let subject = format!("staff:{}", staff.id);
    if reset {
        let ended = store.console_sessions_end_all(staff.id).await?;
        store.audit(now, &actor, "console_totp_reset", &subject, &format!("sessions ended={ended}")).await?;
        Ok(format!("{email}: authenticator reset; they set up a new one at their next sign-in ({ended} session(s) ended)"))
    } else {
        store.audit(now, &actor, "console_totp_unlock", &subject, "").await?;
        Ok(format!("{email}: console sign-in unlocked"))
    }
}
