//! The rules with `when.ai_risk`, evaluated again for an incident after filing: once its
//! suggestion is stored (the job's completion), or once a rule's `ai_timeout` has passed with
//! none. They read the message as filed (its stored bytes, read again), the pupils and category
//! filing gave it, and the suggestion's risk; what they ask for is only ever added (alerts to
//! staff not yet alerted, a raised priority, an outcome deadline), never removed or lowered, and
//! is written once (see `store::ai_rules`). The model's words never reach an alert: only its
//! risk level and name.

use super::suggestion::{Risk, Suggestion};
use crate::alert::{self, AlertSettings};
use crate::identify::{Identification, PupilMatch, PupilRole};
use crate::pipeline::fields;
use crate::read::Limits;
use crate::rules::{Facts, Filed, LiveRules, Priority, RiskLevel, format_duration};
use crate::store::{AiIncident, AiOutcome, AiRaise, AiRaised, DirectoryCache, LiveKeys, Store, StoreError};
use crate::visibility::Visibility;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A waiting incident is looked at this long after its longest `ai_timeout` at most: a rules
/// change never alerts about an incident filed long ago.
const WAIT_HORIZON: chrono::Duration = chrono::Duration::days(1);
/// Incidents acted on per pass.
const WAIT_BATCH: i64 = 200;

/// Why the rules could not be evaluated again. The job is then retried.
#[derive(Debug, thiserror::Error)]
pub enum AiRulesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("incident {0}: its message cannot be read again: {1}")]
    Unreadable(i64, String),
}

/// What evaluating the AI rules needs.
pub struct AiRules {
    pub store: Store,
    pub keys: Arc<LiveKeys>,
    pub rules: Arc<LiveRules>,
    pub limits: Limits,
    pub alerts: AlertSettings,
    pub directory: DirectoryCache,
}

/// The level `when.ai_risk` compares with: a suggestion of no risk meets no condition.
pub fn risk_level(risk: Risk) -> Option<RiskLevel> {
    match risk {
        Risk::None => None,
        Risk::Low => Some(RiskLevel::Low),
        Risk::Medium => Some(RiskLevel::Medium),
        Risk::High => Some(RiskLevel::High),
        Risk::Urgent => Some(RiskLevel::Urgent),
    }
}

impl AiRules {
    pub fn new(config: &crate::config::Config, store: Store, keys: Arc<LiveKeys>, rules: Arc<LiveRules>) -> AiRules {
        let settings = crate::cli::filing_settings(config);
        AiRules { store, keys, rules, limits: settings.limits, alerts: settings.alerts, directory: DirectoryCache::default() }
    }

    /// Completes a job with `suggestion` (sealed onto the incident) and what the AI rules add
    /// for it, in one transaction. None when the claim was lost: nothing was written.
    pub async fn complete(
        &self,
        incident: i64,
        claim: &str,
        suggestion: Option<&Suggestion>,
        model: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<AiRaised>, AiRulesError> {
        let sealer = self.keys.current(&self.store).await?;
        // Like the incident's own text: under the pupil's own key when it is about one pupil,
        // so crypto-shredding at disposal covers the suggestion too.
        let only = match self.store.ai_incident(incident).await?.map(|f| f.pupils) {
            Some(p) if p.len() == 1 => p[0].0,
            _ => 0,
        };
        let sealed = match suggestion.map(serde_json::to_string) {
            Some(Ok(json)) => Some(
                sealer
                    .seal_text_for(only, fields::AI_SUGGESTION, &json)
                    .map_err(|source| StoreError::Sealed { what: format!("the suggestion on incident {incident}"), source })?,
            ),
            _ => None,
        };
        let outcome = if sealed.is_some() { AiOutcome::Suggested } else { AiOutcome::NoSuggestion };
        let raise = match suggestion.and_then(|s| risk_level(s.risk).map(|r| (r, s))) {
            Some((risk, s)) => self.raise(incident, Some(risk), None, &format!("risk={} model={}", s.risk.as_str(), s.model)).await?,
            None => None,
        };
        Ok(self.store.complete_ai_job(incident, claim, outcome, sealed.as_deref(), model, raise.as_ref(), at).await?)
    }

    /// Acts on the rules' `ai_timeout`s that have passed at `now` for incidents with no
    /// suggestion; how many incidents were acted on.
    pub async fn act_on_waits(&self, now: DateTime<Utc>) -> Result<usize, AiRulesError> {
        let timeouts = self.rules.current().ai_timeouts();
        let (Some(&shortest), Some(&longest)) = (timeouts.first(), timeouts.last()) else { return Ok(0) };
        let waiting = self.store.ai_waiting(now - longest - WAIT_HORIZON, now - shortest, longest, WAIT_BATCH).await?;
        let mut acted = 0;
        for w in waiting {
            // The longest wait that has passed: every rule up to it holds.
            let Some(&passed) = timeouts.iter().rev().find(|&&t| w.queued + t <= now) else { continue };
            if passed <= w.waited {
                continue;
            }
            let cause = format!("no suggestion after {}", format_duration(passed));
            let raise = self.raise(w.incident_id, None, Some(passed), &cause).await?;
            if self.store.act_on_ai_wait(w.incident_id, w.waited, passed, raise.as_ref(), now).await?.is_some() {
                tracing::info!(incident = w.incident_id, after = %format_duration(passed), "AI suggestion late: the rules' ai_timeout acted on");
                acted += 1;
            }
        }
        Ok(acted)
    }

    /// What the rules with `when.ai_risk` ask to add to `incident`, with the suggestion's
    /// `risk`, or after `waited` with none. None when no such rule holds.
    pub async fn raise(
        &self,
        incident: i64,
        risk: Option<RiskLevel>,
        waited: Option<chrono::Duration>,
        cause: &str,
    ) -> Result<Option<AiRaise>, AiRulesError> {
        let rules = self.rules.current();
        if !rules.has_ai_rules() {
            return Ok(None);
        }
        let Some(filed) = self.store.ai_incident(incident).await? else { return Ok(None) };
        let sealer = self.keys.current(&self.store).await?;
        let Some((_, sealed)) = self.store.message_raw(filed.message_id).await? else {
            return Err(AiRulesError::Unreadable(incident, "its stored bytes are gone".into()));
        };
        let raw = sealer.open(fields::RAW, &sealed).map_err(|e| AiRulesError::Unreadable(incident, e.to_string()))?;
        let msg = crate::read::read_message_with(&raw, &self.limits).map_err(|e| AiRulesError::Unreadable(incident, e.to_string()))?;
        let directory = self.directory.current(&self.store, &sealer).await?;
        let ident = identification(&filed);
        let pupils = ident.pupils.iter().map(|p| p.pupil_id).collect();
        let earlier = crate::history::earlier(&self.store, &rules, pupils, filed.occurred).await?;
        let earlier = without_itself(earlier, &filed);
        let history = crate::history::counts(&rules, &ident, filed.occurred, earlier.iter());
        let visibility = Visibility::parse(&filed.visibility).unwrap_or_else(Visibility::dsl_team);
        let facts = Facts { message: &msg, identification: &ident, directory: &directory, history: &history, ai_risk: risk };
        let decision = rules.evaluate_ai(&facts, &Filed { category: &filed.category, visibility: &visibility, waited });
        Ok(raise_of(decision, &filed, &ident, &msg, &directory, &self.alerts, cause))
    }
}

/// What an incident's AI rules decided, as additions: alerts marked as the rules' answer to the
/// suggestion (their own Message-IDs, so they never collide with filing's), the priority, and
/// an outcome due from when the incident was recorded.
#[allow(clippy::too_many_arguments)]
fn raise_of(
    mut decision: crate::rules::Decision,
    filed: &AiIncident,
    ident: &Identification,
    msg: &crate::message::Message,
    directory: &crate::directory::Directory,
    settings: &AlertSettings,
    cause: &str,
) -> Option<AiRaise> {
    if decision.matched.is_empty() {
        return None;
    }
    let urgent = decision.priority == Priority::Urgent;
    // An alert says the incident's priority as it now stands: never lower than filed.
    decision.priority = decision.priority.max(Priority::parse(&filed.priority).unwrap_or_default());
    let why = format!(
        "\nWhy this alert comes now: rule {} of the school's rules, on the AI triage ({cause}). The AI's \
         reading is a suggestion, not a decision.\n",
        decision.matched.join(", ")
    );
    let alerts = alert::alerts_for(&decision, ident, msg, filed.recorded_by.unwrap_or_default(), directory, settings)
        .into_iter()
        .map(|mut a| {
            a.email_message_id = a.email_message_id.replacen(".alert.", ".ai-alert.", 1);
            a.body = match a.body.find("\nWhat to do:") {
                Some(i) => format!("{}{why}{}", &a.body[..i], &a.body[i..]),
                None => format!("{}{why}", a.body),
            };
            a
        })
        .collect();
    Some(AiRaise {
        rules: decision.matched.clone(),
        alerts,
        urgent,
        action: alert::action_for(&decision, filed.recorded),
        cause: cause.to_string(),
    })
}

/// The pupils and category filing gave the incident.
fn identification(filed: &AiIncident) -> Identification {
    let pupils =
        filed.pupils.iter().map(|(id, role, how)| PupilMatch { pupil_id: *id, role: pupil_role(role), how: how.clone() }).collect();
    Identification { pupils, category: Some(filed.category.clone()), category_how: None, triage: None }
}

fn pupil_role(s: &str) -> PupilRole {
    match s {
        "victim" => PupilRole::Victim,
        "perpetrator" => PupilRole::Perpetrator,
        "witness" => PupilRole::Witness,
        "linked" => PupilRole::Linked,
        "mentioned" => PupilRole::Mentioned,
        _ => PupilRole::Subject,
    }
}

/// The history counts each earlier incident and the incident itself; the store now holds the
/// incident too, so one copy of it per pupil is taken out.
fn without_itself(mut earlier: Vec<crate::store::EarlierIncident>, filed: &AiIncident) -> Vec<crate::store::EarlierIncident> {
    for (pupil, role, _) in &filed.pupils {
        if role == "mentioned" {
            continue;
        }
        if let Some(i) = earlier.iter().position(|e| e.pupil == *pupil && e.occurred == filed.occurred && e.category == filed.category) {
            earlier.swap_remove(i);
        }
    }
    earlier
}
