//! The DSL team's actions on messages and links, each through the same code and authority as
//! its CLI or email path: release a quarantined message (`Filer::release`, as `haven messages
//! release`), answer triage (`Filer::answer_triage`, the emailed answer's `triage::answered`
//! and rules), confirm or remove a mentioned pupil (`cli::link::run`), say whether the AI's
//! suggestion was right (`Tx::record_ai_feedback`, as an "AI: right" reply). Each form carries the
//! session's CSRF token; each refusal is shown in plain words and nothing is changed.

use super::routes::{Fields, Shared, forged, incident_view, message, not_found, render, signed, unavailable, visible_incident};
use super::session::Signed;
use super::{State, views};
use crate::identify::PupilRole;
use crate::pipeline::{AnswerError, ReleaseError, fields};
use crate::store::MessageState;
use axum::extract::{Form, Path};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// The roles a pupil may be given when triage is answered here.
const ROLES: [PupilRole; 5] = [PupilRole::Subject, PupilRole::Victim, PupilRole::Perpetrator, PupilRole::Witness, PupilRole::Linked];

/// Rows of the triage form: pupils that can be named at once.
const TRIAGE_ROWS: usize = 3;

/// The signed-in member of the DSL team, or the response to give instead (404 for anyone
/// else, as for a record they may not see).
async fn dsl_team(st: &State, headers: &HeaderMap) -> Result<Signed, Response> {
    let s = signed(st, headers, "ok").await?;
    if !s.staff.is_dsl_team() {
        return Err(not_found().await);
    }
    Ok(s)
}

fn csrf_ok(s: &Signed, f: &std::collections::HashMap<String, String>) -> bool {
    f.get("csrf") == Some(&s.csrf)
}

async fn refuse_forged(st: &State, s: &Signed, subject: &str, form: &str) -> Response {
    let _ = st.audit(st.clock.now(), &format!("staff:{}", s.staff.id), "console_csrf_refused", subject, form).await;
    forged()
}

pub async fn message_page(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let s = match dsl_team(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    message_view(&st, &s, id, None).await
}

/// A message awaiting triage or in quarantine: what it says, why it is there, and the form
/// to settle it. Opening it is audited.
async fn message_view(st: &State, s: &Signed, id: i64, notice: Option<String>) -> Response {
    let now = st.clock.now();
    let Ok(rows) = st.store.messages(None).await else { return unavailable() };
    let Some(summary) = rows.into_iter().find(|m| m.id == id) else { return not_found().await };
    let read = match st.store.message_raw(id).await {
        Ok(Some((_, sealed))) => st.sealer().await.open(fields::RAW, &sealed).ok().and_then(|raw| crate::read::read_message(&raw).ok()),
        Ok(None) => None,
        Err(_) => return unavailable(),
    };
    let (from, subject, text) = match &read {
        Some(m) => {
            let shown = m.forwarded.as_ref();
            let from = m.from.as_ref().map(|a| a.address.clone()).unwrap_or_default();
            let subject = m.subject.clone().unwrap_or_default();
            let mut text = m.note.clone().map(|n| format!("{n}\n\n")).unwrap_or_default();
            text.push_str(&shown.map_or_else(|| m.text.clone(), |f| f.body.clone()));
            (from, subject, text)
        }
        None => (String::new(), String::new(), "Haven holds no readable copy of this message.".to_string()),
    };
    let _ = st.audit(now, &format!("staff:{}", s.staff.id), "console_message_view", &format!("message:{id}"), "").await;
    render(&views::MessagePage {
        csrf: s.csrf.clone(),
        id,
        state: summary.state.as_str().replace('_', " "),
        reason: summary.reason,
        from,
        subject,
        text,
        triage: summary.state == MessageState::AwaitingTriage,
        release: summary.state == MessageState::Quarantined && read.is_some(),
        rows: (0..TRIAGE_ROWS).collect(),
        roles: ROLES.iter().map(|r| r.as_str()).collect(),
        notice,
    })
}

/// Releases a quarantined message with `haven messages release`'s own check (DSL team, a
/// reason) and pipeline.
pub async fn release(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>, Form(f): Fields) -> Response {
    let s = match dsl_team(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &f) {
        return refuse_forged(&st, &s, &format!("message:{id}"), "release form").await;
    }
    let reason = f.get("reason").map(String::as_str).unwrap_or_default();
    match st.filer.release(id, s.staff.email(), reason).await {
        Ok(r) => {
            st.wake_outbox.notify_one();
            let text = match r.incident {
                Some(incident) => format!("Message {id} was released and filed as incident #{incident}."),
                None => format!("Message {id} was released: {}.", r.reason),
            };
            message_view(&st, &s, id, Some(text)).await
        }
        Err(ReleaseError::Store(e)) => {
            tracing::error!(error = %e, message = id, "console: cannot release a message");
            unavailable()
        }
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, message_view(&st, &s, id, Some(format!("Not released: {e}."))).await).into_response(),
    }
}

/// Files a message awaiting triage on the pupils picked (UPN or full name, with a role each).
pub async fn answer_triage(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>, Form(f): Fields) -> Response {
    let s = match dsl_team(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &f) {
        return refuse_forged(&st, &s, &format!("message:{id}"), "triage form").await;
    }
    let queries: Vec<&str> =
        (0..TRIAGE_ROWS).filter_map(|row| f.get(&format!("pupil_{row}")).map(|q| q.trim()).filter(|q| !q.is_empty())).collect();
    let Ok(dir) = st.directory_naming(&queries).await else { return unavailable() };
    let mut picked = Vec::new();
    for row in 0..TRIAGE_ROWS {
        let Some(query) = f.get(&format!("pupil_{row}")).map(|q| q.trim()).filter(|q| !q.is_empty()) else { continue };
        let pupil = match crate::cli::chronology::find_pupil(&dir, query) {
            Ok(p) => p,
            Err(e) => {
                let text = format!("Not filed: {}.", e.to_string().trim_end_matches('.'));
                return (StatusCode::UNPROCESSABLE_ENTITY, message_view(&st, &s, id, Some(text)).await).into_response();
            }
        };
        let role = f
            .get(&format!("role_{row}"))
            .and_then(|r| ROLES.iter().find(|x| x.as_str() == r.as_str()))
            .copied()
            .unwrap_or(PupilRole::Subject);
        picked.push((pupil.id, role));
    }
    match st.filer.answer_triage(id, s.staff.email(), &picked).await {
        Ok(a) => {
            st.wake_outbox.notify_one();
            incident_view(&st, &s, a.incident, Some(format!("Message {id} was filed as this incident under {}.", a.category))).await
        }
        Err(AnswerError::Store(e)) => {
            tracing::error!(error = %e, message = id, "console: cannot file a triage answer");
            unavailable()
        }
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, message_view(&st, &s, id, Some(format!("Not filed: {e}."))).await).into_response(),
    }
}

/// Confirms or removes a pupil only mentioned on an incident, with `haven link`'s own check.
pub async fn change_link(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>, Form(f): Fields) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &f) {
        return refuse_forged(&st, &s, &format!("incident:{id}"), "link form").await;
    }
    if let Err(r) = visible_incident(&st, &s, id).await {
        return r;
    }
    let action = match f.get("action").map(String::as_str) {
        Some("confirm") => crate::cli::link::LinkAction::Confirm,
        Some("remove") => crate::cli::link::LinkAction::Remove,
        _ => {
            return message(StatusCode::BAD_REQUEST, "Nothing was changed", "The form did not say whether to confirm or remove the pupil.");
        }
    };
    let pupil = f.get("pupil").map(String::as_str).unwrap_or_default();
    let now = st.clock.now();
    match crate::cli::link::run(&st.store, &st.sealer().await, action, id, pupil, s.staff.email(), now).await {
        Ok(done) => incident_view(&st, &s, id, Some(capitalise(&done) + ".")).await,
        Err(crate::cli::CliError::Usage(msg)) => {
            let shown = msg.split_once(": ").filter(|_| msg.starts_with("--by")).map_or(msg.as_str(), |(_, m)| m).to_string();
            (StatusCode::FORBIDDEN, incident_view(&st, &s, id, Some(capitalise(&shown) + ".")).await).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, incident = id, "console: cannot change a mentioned pupil's link");
            unavailable()
        }
    }
}

/// Records the DSL team member's verdict on the incident's AI suggestion ("AI was right" /
/// "AI was wrong") through the same transaction as an emailed "AI: right" reply: one verdict
/// per person and incident (a second replaces the first), audited `ai_feedback`, counted by
/// `haven ai report`.
pub async fn ai_feedback(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>, Form(f): Fields) -> Response {
    let s = match dsl_team(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &f) {
        return refuse_forged(&st, &s, &format!("incident:{id}"), "AI feedback form").await;
    }
    if let Err(r) = visible_incident(&st, &s, id).await {
        return r;
    }
    let right = match f.get("verdict").map(String::as_str) {
        Some("right") => true,
        Some("wrong") => false,
        _ => return message(StatusCode::BAD_REQUEST, "Nothing was recorded", "The form did not say whether the AI was right or wrong."),
    };
    let recorded = async {
        let mut tx = st.store.begin().await?;
        let recorded = tx.record_ai_feedback(id, s.staff.id, s.staff.email(), right, st.clock.now()).await?;
        tx.commit().await?;
        Ok::<bool, crate::store::StoreError>(recorded)
    };
    match recorded.await {
        Ok(true) => {
            let text = if right { "Recorded: the AI was right." } else { "Recorded: the AI was wrong." };
            incident_view(&st, &s, id, Some(text.into())).await
        }
        Ok(false) => {
            (StatusCode::UNPROCESSABLE_ENTITY, incident_view(&st, &s, id, Some("This incident has no AI suggestion.".into())).await)
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, incident = id, "console: cannot record a verdict on an AI suggestion");
            unavailable()
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}
