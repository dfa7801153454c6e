//! `haven referral add INCIDENT --agency CSC|LADO|POLICE|EARLY-HELP|OTHER [--reference TEXT]
//! --on DATE --by STAFF` and `haven referrals --as STAFF`: the referrals the DSL team made to
//! other agencies, which reports count and inspectors list. Only the DSL team records or lists
//! them; every referral and every refusal is audited. The reference is sealed.

use super::CliError;
use crate::directory::{Directory, Staff};
use crate::seal::Sealer;
use crate::store::Store;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::json;

/// Field name of a sealed referral reference.
pub const REFERENCE_FIELD: &str = "referral.reference";

/// The agencies a referral goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Agency {
    /// Children's social care (including the MASH).
    #[value(name = "CSC", alias = "csc")]
    Csc,
    /// The local authority designated officer (an allegation against staff).
    #[value(name = "LADO", alias = "lado")]
    Lado,
    #[value(name = "POLICE", alias = "police")]
    Police,
    #[value(name = "EARLY-HELP", alias = "early-help")]
    EarlyHelp,
    #[value(name = "OTHER", alias = "other")]
    Other,
}

impl Agency {
    pub fn as_str(self) -> &'static str {
        match self {
            Agency::Csc => "CSC",
            Agency::Lado => "LADO",
            Agency::Police => "POLICE",
            Agency::EarlyHelp => "EARLY-HELP",
            Agency::Other => "OTHER",
        }
    }
}

/// The active member of the DSL team `email`; anyone else is refused, and the refusal audited.
pub(crate) async fn dsl_team<'a>(
    store: &Store,
    dir: &'a Directory,
    email: &str,
    flag: &str,
    action: &str,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<&'a Staff, CliError> {
    let staff = dir
        .active_staff_by_email(email)
        .ok_or_else(|| CliError::Usage(format!("{flag} {email}: not an active member of staff; nothing was done")))?;
    if !staff.is_dsl_team() {
        store.audit(now, &format!("staff:{}", staff.id), &format!("{action}_refused"), subject, "not DSL team").await?;
        return Err(CliError::Usage(format!("{flag} {email}: only the DSL team may do this; nothing was done")));
    }
    Ok(staff)
}

pub struct AddReferral<'a> {
    pub incident: i64,
    pub agency: Agency,
    pub reference: Option<&'a str>,
    pub on: NaiveDate,
    pub by: &'a str,
}

pub async fn add(store: &Store, sealer: &Sealer, req: AddReferral<'_>, tz: Tz, now: DateTime<Utc>) -> Result<String, CliError> {
    let today = now.with_timezone(&tz).date_naive();
    if req.on > today {
        return Err(CliError::Usage(format!("--on {} is in the future; nothing was recorded", req.on)));
    }
    let dir = store.load_directory_with_pupils(sealer, &[]).await?;
    let subject = format!("incident:{}", req.incident);
    let staff = dsl_team(store, &dir, req.by, "--by", "referral", &subject, now).await?;
    if store.incident_facts(req.incident).await?.is_none() {
        return Err(CliError::Usage(format!("there is no incident #{}; nothing was recorded", req.incident)));
    }
    let reference = req.reference.map(str::trim).filter(|r| !r.is_empty()).map(|r| sealer.seal_text(REFERENCE_FIELD, r));
    let mut tx = store.begin().await?;
    let id = tx.add_referral(req.incident, req.agency.as_str(), reference.as_deref(), req.on, staff.id, now).await?;
    tx.commit().await?;
    Ok(format!("referral #{id} of incident #{} to {} on {} recorded", req.incident, req.agency.as_str(), req.on))
}

pub async fn list(store: &Store, sealer: &Sealer, viewer: &str, json_out: bool, now: DateTime<Utc>) -> Result<String, CliError> {
    let dir = store.load_directory_with_pupils(sealer, &[]).await?;
    let staff = dsl_team(store, &dir, viewer, "--as", "referrals", "referrals", now).await?;
    let referrals = store.referrals(None).await?;
    store.audit(now, &format!("staff:{}", staff.id), "referrals_view", "referrals", &format!("count={}", referrals.len())).await?;
    let name = |id: i64| {
        dir.staff.iter().find(|s| s.id == id).map_or_else(|| format!("staff #{id}"), |s| format!("{} {}", s.first_name, s.last_name))
    };
    let reference = |sealed: &Option<String>| {
        sealed.as_deref().map(|s| sealer.open_text(REFERENCE_FIELD, s).unwrap_or_else(|_| "(unreadable with this keyring)".into()))
    };
    if json_out {
        let v: Vec<_> = referrals
            .iter()
            .map(|r| {
                json!({"id": r.id, "incident": r.incident_id, "agency": r.agency, "reference": reference(&r.sealed_reference),
                       "referred_on": r.referred_on.to_string(), "by": name(r.created_by)})
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    if referrals.is_empty() {
        return Ok("no referrals have been recorded".into());
    }
    Ok(referrals
        .iter()
        .map(|r| {
            let refer = reference(&r.sealed_reference).map(|t| format!(" ref {t}")).unwrap_or_default();
            format!(
                "referral #{} · incident #{} · {}{refer} · {} · by {}",
                r.id,
                r.incident_id,
                r.agency,
                r.referred_on,
                name(r.created_by)
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}
