//! `haven hold set|release` and `haven holds`: a hold (litigation, police, an inquiry, a subject
//! access request, a complaint) on a pupil or one incident. While it stands, nothing of theirs
//! may be decided for destruction. Set and released by the DSL team, the head or the DPO; every
//! change and every refusal is audited.

use super::CliError;
use super::chronology::find_pupil;
use crate::directory::{Directory, Role, Staff};
use crate::seal::Sealer;
use crate::store::{Hold, HoldOn, HoldReason, Store, retention_fields};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

/// Who may set, release and review: the DSL team, the head, the data protection officer.
pub(crate) fn may_manage_records(staff: &Staff) -> bool {
    staff.is_dsl_team() || staff.has_role(Role::Head) || staff.has_role(Role::Dpo)
}

/// The active member of staff `email`, allowed to manage holds and reviews; a refusal is
/// audited against `subject`.
pub(crate) async fn authorised<'a>(
    store: &Store,
    dir: &'a Directory,
    email: &str,
    action: &str,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<&'a Staff, CliError> {
    let staff = dir
        .active_staff_by_email(email)
        .ok_or_else(|| CliError::Usage(format!("--by {email}: not an active member of staff; nothing was changed")))?;
    if !may_manage_records(staff) {
        store.audit(now, &format!("staff:{}", staff.id), &format!("{action}_refused"), subject, "not DSL team, head or DPO").await?;
        return Err(CliError::Usage(format!("--by {email}: only the DSL team, the head or the DPO may do this; nothing was changed")));
    }
    Ok(staff)
}

/// What a hold is set on, as given on the command line.
pub enum Target<'a> {
    Pupil(&'a str),
    Incident(i64),
}

pub async fn set(
    store: &Store,
    sealer: &Sealer,
    target: Target<'_>,
    reason: HoldReason,
    note: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<String, CliError> {
    if note.trim().is_empty() {
        return Err(CliError::Usage("--note is empty: say what the hold is for (a case reference, who asked); nothing was changed".into()));
    }
    let dir = store.load_directory(sealer).await?;
    let (on, what) = match target {
        Target::Pupil(q) => {
            let p = find_pupil(&dir, q)?;
            (HoldOn::Pupil(p.id), format!("pupil {}", p.upn))
        }
        Target::Incident(id) => {
            if store.incident_facts(id).await?.is_none() {
                return Err(CliError::Usage(format!("there is no incident #{id}; nothing was changed")));
            }
            (HoldOn::Incident(id), format!("incident #{id}"))
        }
    };
    let subject = match on {
        HoldOn::Pupil(p) => format!("pupil:{p}"),
        HoldOn::Incident(i) => format!("incident:{i}"),
    };
    let staff = authorised(store, &dir, by, "hold_set", &subject, now).await?;
    let mut tx = store.begin().await?;
    let id = tx.set_hold(on, reason, &sealer.seal_text(retention_fields::HOLD_NOTE, note.trim()), staff.id, now).await?;
    tx.commit().await?;
    Ok(format!("hold #{id} set on {what} ({}): nothing of theirs can be decided for destruction until it is released", reason.as_str()))
}

pub async fn release(store: &Store, sealer: &Sealer, id: i64, note: &str, by: &str, now: DateTime<Utc>) -> Result<String, CliError> {
    if note.trim().is_empty() {
        return Err(CliError::Usage("--note is empty: say why the hold ends; nothing was changed".into()));
    }
    let dir = store.load_directory(sealer).await?;
    let staff = authorised(store, &dir, by, "hold_release", &format!("hold:{id}"), now).await?;
    let mut tx = store.begin().await?;
    let released = tx.release_hold(id, &sealer.seal_text(retention_fields::HOLD_RELEASE_NOTE, note.trim()), staff.id, now).await?;
    let Some(on) = released else {
        return Err(CliError::Usage(format!("there is no standing hold #{id} (see `haven holds --all`); nothing was changed")));
    };
    tx.commit().await?;
    Ok(format!("hold #{id} released ({})", describe(&dir, on)))
}

fn describe(dir: &Directory, on: HoldOn) -> String {
    match on {
        HoldOn::Pupil(p) => format!("pupil {}", dir.pupils.iter().find(|x| x.id == p).map_or("(left the directory)", |x| x.upn.as_str())),
        HoldOn::Incident(i) => format!("incident #{i}"),
    }
}

fn staff_name(dir: &Directory, id: i64) -> String {
    dir.staff.iter().find(|s| s.id == id).map_or_else(|| format!("staff #{id}"), |s| format!("{} {}", s.first_name, s.last_name))
}

/// One line of a hold, for `haven holds`, status and chronologies. The note is shown: every
/// place that prints it is one where the hold's subject may already be seen.
pub fn line(dir: &Directory, sealer: &Sealer, hold: &Hold, tz: Tz) -> String {
    let note =
        sealer.open_text(retention_fields::HOLD_NOTE, &hold.sealed_note).unwrap_or_else(|_| "(note unreadable with this keyring)".into());
    let mut s = format!(
        "hold #{} on {} ({}) since {} by {}: {note}",
        hold.id,
        describe(dir, hold.on),
        hold.reason,
        hold.set_at.with_timezone(&tz).format("%-d %b %Y"),
        staff_name(dir, hold.set_by)
    );
    if let Some((by, at)) = hold.released {
        s.push_str(&format!("; released {} by {}", at.with_timezone(&tz).format("%-d %b %Y"), staff_name(dir, by)));
    }
    s
}

pub async fn list(store: &Store, sealer: &Sealer, all: bool, tz: Tz, json_out: bool) -> Result<String, CliError> {
    let dir = store.load_directory(sealer).await?;
    let holds = store.holds(all).await?;
    if json_out {
        let list: Vec<_> = holds
            .iter()
            .map(|h| {
                let (kind, target) = match h.on {
                    HoldOn::Pupil(p) => ("pupil", dir.pupils.iter().find(|x| x.id == p).map(|x| x.upn.clone())),
                    HoldOn::Incident(i) => ("incident", Some(i.to_string())),
                };
                json!({
                    "id": h.id, "on": kind, "target": target, "reason": h.reason,
                    "set_by": staff_name(&dir, h.set_by), "set_at": h.set_at.to_rfc3339(),
                    "released_at": h.released.map(|(_, at)| at.to_rfc3339()),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&list).unwrap_or_default());
    }
    if holds.is_empty() {
        return Ok(if all { "no holds have been set" } else { "no holds stand" }.into());
    }
    Ok(holds.iter().map(|h| line(&dir, sealer, h, tz)).collect::<Vec<_>>().join("\n"))
}
