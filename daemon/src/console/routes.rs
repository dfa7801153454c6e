//! The console's routes and the layers every response gets: a strict Content-Security-Policy
//! (no inline script, no remote loads), no framing, no MIME sniffing, no referrer, and a small
//! request body limit. Every form carries a CSRF token. Handlers render views; they must not
//! build HTML by hand.

use super::peer::Peer;
use super::session::{self, NoSession, Signed};
use super::{State, auth, views};
use crate::directory::{Role, Staff};
use crate::store::OutboxRecord;
use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub(super) type Shared = axum::extract::State<Arc<State>>;
pub(super) type Fields = Form<HashMap<String, String>>;

/// No inline script: only this origin's one script (`/passkey.js`, which fetches passkey
/// options from here), styles only from this origin, forms post only here, never framed; the
/// only frame is this origin's sandboxed original message (`files::message_frame`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Forms are a few short fields; anything larger is refused with 413.
pub const MAX_BODY: usize = 16 * 1024;

/// At most this many sign-in links per address in [`LINK_WINDOW`]; further requests send nothing.
const LINKS_PER_WINDOW: i64 = 5;
const LINK_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// Pupils shown at most for one search.
const SEARCH_RESULTS: usize = 50;

const STYLESHEET: &str = include_str!("../../templates/console.css");

pub fn router(state: Arc<State>) -> Router {
    let headers: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let mut router = Router::new()
        .route("/", get(sign_in_page))
        .route("/sign-in", post(ask_for_link))
        .route("/sign-in/{token}", get(follow_link))
        .route("/totp", get(totp_page).post(totp_check))
        .route("/home", get(home))
        .route("/sign-out", post(sign_out))
        .route("/pupils", get(pupils))
        .route("/pupils/{upn}", get(chronology))
        .route("/incidents/{id}", get(incident))
        .route("/incidents/{id}/outcome", post(record_outcome))
        .route("/incidents/{id}/link", post(super::actions::change_link))
        .route("/incidents/{id}/ai-feedback", post(super::actions::ai_feedback))
        .route("/incidents/{id}/message", get(super::files::message_frame))
        .route("/incidents/{id}/attachments/{n}", get(super::files::attachment))
        .route("/pupils/{upn}/export", get(super::files::export))
        .route("/pupils/{upn}/multiagency", get(super::reports::multiagency))
        .route("/reports", get(super::reports::reports_page))
        .route("/reports/summary", get(super::reports::summary))
        .route("/reports/inspection", get(super::reports::inspection))
        .route("/messages/{id}", get(super::actions::message_page))
        .route("/messages/{id}/release", post(super::actions::release))
        .route("/messages/{id}/triage", post(super::actions::answer_triage))
        .route("/access", get(super::access::access_log))
        .route("/sign-out-everywhere", post(sign_out_everywhere))
        .route("/totp/passkey/options", post(super::passkey::sign_in_options))
        .route("/totp/passkey", post(super::passkey::sign_in))
        .route("/security", get(super::passkey::security_page))
        .route("/security/passkeys/options", post(super::passkey::register_options))
        .route("/security/passkeys", post(super::passkey::register))
        .route("/security/passkeys/{id}/remove", post(super::passkey::remove))
        .route("/passkey.js", get(super::passkey::script))
        .route("/console.css", get(stylesheet))
        .fallback(not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY));
    // A response that sets its own (the sandboxed message frame, a download) keeps it.
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    router
}

/// Staff whose roles let them read records, or run the governors' report (SLT and the head),
/// get past sign-in (with two factors like everyone); the others are "write only".
fn may_see_records(staff: &Staff) -> bool {
    staff.is_dsl_team()
        || staff.has_role(Role::Housem)
        || staff.has_role(Role::Esafety)
        || crate::cli::report::may_run(staff, crate::report::summary::Audience::Governors)
}

async fn sign_in_page(axum::extract::State(st): Shared, headers: HeaderMap) -> Response {
    let now = st.clock.now();
    match session::current(&st, &headers, now).await {
        Ok(s) if s.stage == "ok" => return Redirect::to("/home").into_response(),
        Ok(_) => return Redirect::to("/totp").into_response(),
        Err(_) => {}
    }
    let (browser, set) = match session::cookie(&headers, st.cookies.browser) {
        Some(b) => (b, None),
        None => {
            let b = auth::random_token();
            let c = st.cookies.set(st.cookies.browser, &b, None);
            (b, Some(c))
        }
    };
    let page = render(&views::SignIn { csrf: st.key.csrf(&browser), notice: None });
    match set {
        Some(c) => ([(header::SET_COOKIE, c)], page).into_response(),
        None => page,
    }
}

/// The refusal for a form without its CSRF token (or with another browser's).
pub(super) fn forged() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "This form could not be accepted",
        "The form did not come from this page in this browser (its security token is missing or out of date). Nothing was changed. Go back, reload the page and try again.",
    )
}

/// Counts a sign-in attempt from the request's client; the refusal to give when that client
/// has made too many (audited with its address, never shown who it was for).
pub(super) async fn over_client_limit(st: &State, peer: Peer, headers: &HeaderMap, form: &str) -> Option<Response> {
    let now = st.clock.now();
    let ip = super::peer::client_ip(st.settings.trusted_proxy, peer.0, headers);
    if st.attempts.allow(ip, now) {
        return None;
    }
    let _ = st.audit(now, "console", "console_client_rate_limited", "console", &format!("client {ip}, {form}")).await;
    Some(message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts",
        "Too many sign-in attempts came from your network in the last 15 minutes. Nothing was sent. Wait a while, then try again.",
    ))
}

async fn ask_for_link(
    axum::extract::State(st): Shared,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(f): Fields,
) -> Response {
    let now = st.clock.now();
    if let Some(refused) = over_client_limit(&st, peer, &headers, "sign-in form").await {
        return refused;
    }
    let Some(browser) = session::cookie(&headers, st.cookies.browser) else {
        return forged();
    };
    if f.get("csrf").is_none_or(|c| *c != st.key.csrf(&browser)) {
        let _ = st.audit(now, "console", "console_csrf_refused", "console", "sign-in form").await;
        return forged();
    }
    let email = f.get("email").map(|e| e.trim().to_lowercase()).unwrap_or_default();
    let staff = match st.staff_directory().await {
        Ok(d) => d.staff.into_iter().find(|s| s.active && s.emails.contains(&email)),
        Err(e) => {
            tracing::error!(error = %e, "console: cannot load the directory");
            return unavailable();
        }
    };
    let limited = match &staff {
        Some(staff) => {
            st.store.console_links_sent_since(staff.email(), now - LINK_WINDOW).await.map(|n| n >= LINKS_PER_WINDOW).unwrap_or(true)
        }
        None => false,
    };
    match staff {
        Some(staff) if limited => {
            let _ = st.audit(now, &format!("staff:{}", staff.id), "console_link_rate_limited", "console", "").await;
        }
        Some(staff) => {
            let nonce = auth::random_token();
            let lifetime = chrono::Duration::from_std(st.settings.link_lifetime).unwrap_or(chrono::Duration::minutes(10));
            let token = st.key.sign_link(staff.id, now + lifetime, &nonce, &browser);
            let minutes = (lifetime.num_seconds() + 59) / 60;
            let email = OutboxRecord {
                purpose: "signin",
                recipient: staff.email().to_string(),
                email_message_id: format!("haven.console-link.{}@{}", &nonce[..16], st.mail_domain),
                subject: "Haven: your sign-in link".into(),
                body: format!(
                    "Someone (we hope you) asked to sign in to the Haven safeguarding console.\n\n\
                     Sign in: {}/sign-in/{token}\n\n\
                     The link works once, for {minutes} minutes, and only in the browser where your \
                     address was typed. If this was not you, ignore this email and tell the DSL.\n",
                    st.settings.public_url
                ),
            };
            let queued = async {
                let mut tx = st.store.begin().await?;
                tx.queue_email(None, &email, now).await?;
                tx.append_audit(now, &format!("staff:{}", staff.id), "console_link_sent", "console", "").await?;
                tx.commit().await
            };
            if let Err(e) = queued.await {
                tracing::error!(error = %e, "console: cannot queue a sign-in link");
                return unavailable();
            }
            st.wake_outbox.notify_one();
        }
        None => {
            let _ = st.audit(now, "console", "console_link_refused", "console", "unknown or inactive address").await;
        }
    }
    // The same answer either way, so the page does not tell who is on the staff list.
    message(
        StatusCode::OK,
        "Check your email",
        "If that address belongs to a member of staff, Haven has emailed it a sign-in link. Open it in this browser.",
    )
}

async fn follow_link(axum::extract::State(st): Shared, headers: HeaderMap, Path(token): Path<String>) -> Response {
    let now = st.clock.now();
    let browser = session::cookie(&headers, st.cookies.browser).unwrap_or_default();
    let read = st.key.read_link(&token, &browser, now);
    let checked = match read {
        Ok((staff_id, nonce)) => match st.store.console_use_link(&nonce, now).await {
            Ok(true) => Ok(staff_id),
            Ok(false) => Err((Some(staff_id), auth::LinkError::Used)),
            Err(e) => {
                tracing::error!(error = %e, "console: cannot record a used link");
                return unavailable();
            }
        },
        Err(e) => Err((token.split('.').next().and_then(|s| s.parse().ok()), e)),
    };
    let staff_id = match checked {
        Ok(id) => id,
        Err((who, e)) => {
            let actor = who.map_or_else(|| "console".to_string(), |id: i64| format!("staff:{id}"));
            let _ = st.audit(now, &actor, "console_sign_in_failed", "console", e.as_str()).await;
            return message(StatusCode::BAD_REQUEST, "This sign-in link cannot be used", &e.to_string());
        }
    };
    let staff = st.store.staff_member(staff_id).await.ok().flatten().filter(|s| s.active);
    let Some(staff) = staff else {
        let _ = st.audit(now, &format!("staff:{staff_id}"), "console_sign_in_failed", "console", "inactive").await;
        return message(StatusCode::FORBIDDEN, "You cannot sign in", "Your account is not active in the school directory.");
    };
    if !may_see_records(&staff) {
        let _ = st.audit(now, &format!("staff:{staff_id}"), "console_sign_in_refused", "console", "write-only role").await;
        return render(&views::WriteOnly { intake_address: st.intake_address.clone() });
    }
    let id = auth::random_token();
    if let Err(e) = st.store.console_session_create(&auth::hash(&id), staff_id, &auth::random_token()[..32], now).await {
        tracing::error!(error = %e, "console: cannot create a session");
        return unavailable();
    }
    let _ = st.audit(now, &format!("staff:{staff_id}"), "console_link_used", "console", "").await;
    let cookie = st.cookies.set(st.cookies.session, &id, None);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/totp")).into_response()
}

/// The request's session, or the response to give instead (back to sign-in, with why).
pub(super) async fn signed(st: &State, headers: &HeaderMap, stage: &str) -> Result<Signed, Response> {
    let now = st.clock.now();
    match session::current(st, headers, now).await {
        Ok(s) if s.stage == stage => Ok(s),
        Ok(s) if s.stage == "ok" => Err(Redirect::to("/home").into_response()),
        Ok(_) => Err(Redirect::to("/totp").into_response()),
        Err(NoSession::None) => Err(Redirect::to("/").into_response()),
        Err(NoSession::Expired) => Err(message(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "You were signed out because the console was not used for a while, or you had been signed in for the longest a session lasts. Sign in again.",
        )),
        Err(NoSession::Deactivated) => Err(message(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "You were signed out because your account is no longer active in the school directory.",
        )),
    }
}

pub(super) fn locked() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Sign-in locked",
        "Too many wrong codes were entered, so sign-in with this account is locked. The DSL has been told; ask them to unlock it.",
    )
}

async fn totp_page(axum::extract::State(st): Shared, headers: HeaderMap) -> Response {
    let s = match signed(&st, &headers, "totp").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let record = match st.store.console_totp(s.staff.id).await {
        Ok(r) => r,
        Err(_) => return unavailable(),
    };
    let enrol = match record {
        Some(r) if r.locked => return locked(),
        Some(r) if r.enrolled => None,
        pending => {
            // A secret already shown (a reload, a second tab) is shown again, not replaced.
            let secret = match pending.and_then(|r| st.key.open(&r.sealed_secret)) {
                Some(secret) => secret,
                None => {
                    let secret = auth::new_totp_secret();
                    if st.store.console_totp_begin(s.staff.id, &st.key.seal(&secret)).await.is_err() {
                        return unavailable();
                    }
                    secret
                }
            };
            let Some(t) = auth::totp(&secret, s.staff.email()) else {
                return unavailable();
            };
            let url = t.to_url().unwrap_or_default();
            let qr = super::qr::svg_data_url(&url);
            Some((totp_rs::Secret::from(secret).to_base32(), url, qr))
        }
    };
    let passkey = enrol.is_none() && super::passkey::offered(&st, s.staff.id).await;
    render(&views::Totp { csrf: s.csrf, enrol, passkey, error: None })
}

async fn totp_check(
    axum::extract::State(st): Shared,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(f): Fields,
) -> Response {
    let now = st.clock.now();
    if let Some(refused) = over_client_limit(&st, peer, &headers, "code form").await {
        return refused;
    }
    let s = match signed(&st, &headers, "totp").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if f.get("csrf") != Some(&s.csrf) {
        let _ = st.audit(now, &format!("staff:{}", s.staff.id), "console_csrf_refused", "console", "totp form").await;
        return forged();
    }
    let actor = format!("staff:{}", s.staff.id);
    let Ok(Some(record)) = st.store.console_totp(s.staff.id).await else {
        return Redirect::to("/totp").into_response();
    };
    if record.locked {
        let _ = st.audit(now, &actor, "console_sign_in_failed", "console", "totp locked").await;
        return locked();
    }
    let Some(secret) = st.key.open(&record.sealed_secret) else {
        return unavailable();
    };
    let code = f.get("code").map(String::as_str).unwrap_or_default();
    let step = auth::totp_step(&secret, code, now);
    let recovered = step.is_none()
        && record.enrolled
        && code.contains('-')
        && st.store.console_use_recovery_code(s.staff.id, &auth::recovery_hash(code), now).await.unwrap_or(false);
    if step.is_none() && !recovered {
        return wrong_code(&st, s, now, "That code is not right.", "console_totp_failed").await;
    }
    let (codes, hashes) = if record.enrolled { (Vec::new(), Vec::new()) } else { auth::recovery_codes() };
    match st.store.console_totp_passed(s.staff.id, step, &hashes, now).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = st.audit(now, &actor, "console_totp_reused", "console", "").await;
            let text = "That code has been used already: each code signs in once. Wait for the next code from your authenticator app.";
            return wrong_code(&st, s, now, text, "console_totp_failed").await;
        }
        Err(_) => return unavailable(),
    }
    if st.store.console_session_touch(&s.id_hash, "ok", now).await.is_err() {
        return unavailable();
    }
    let detail = if record.enrolled { "" } else { "totp enrolled" };
    let _ = st.audit(now, &actor, "console_sign_in", "console", detail).await;
    if record.enrolled { Redirect::to("/home").into_response() } else { render(&views::Recovery { codes }) }
}

/// A refused code (wrong, or used already) or passkey: counted towards the lock, audited as
/// `action`, and the form shown again with `why` and how many tries are left.
pub(super) async fn wrong_code(st: &State, s: Signed, now: chrono::DateTime<chrono::Utc>, why: &str, action: &str) -> Response {
    let actor = format!("staff:{}", s.staff.id);
    let failures = st.store.console_totp_failed(s.staff.id, auth::TOTP_LOCK_AFTER, now).await.unwrap_or(auth::TOTP_LOCK_AFTER);
    let _ = st.audit(now, &actor, action, "console", &format!("failure {failures}")).await;
    if failures >= auth::TOTP_LOCK_AFTER {
        let _ = st.audit(now, &actor, "console_totp_locked", "console", "").await;
        tell_dsl_team_locked(st, &s.staff, now).await;
        return locked();
    }
    let left = auth::TOTP_LOCK_AFTER - failures;
    let error = format!("{why} {left} more wrong codes lock sign-in.");
    let passkey = super::passkey::offered(st, s.staff.id).await;
    (StatusCode::UNAUTHORIZED, render(&views::Totp { csrf: s.csrf, enrol: None, passkey, error: Some(error) })).into_response()
}

/// Tells every active member of the DSL team that someone's second factor is locked.
async fn tell_dsl_team_locked(st: &State, who: &Staff, now: chrono::DateTime<chrono::Utc>) {
    let queued = async {
        let dir = st.staff_directory().await?;
        let mut tx = st.store.begin().await?;
        for dsl in dir.staff.iter().filter(|s| s.active && s.is_dsl_team()) {
            let email = OutboxRecord {
                purpose: "notice",
                recipient: dsl.email().to_string(),
                email_message_id: format!("haven.console-locked.{}.{}.{}@{}", who.id, now.timestamp(), dsl.id, st.mail_domain),
                subject: "Haven: console sign-in locked after wrong codes".into(),
                body: format!(
                    "Five wrong authenticator codes (or refused passkeys) were entered for {} {} ({}), so their console sign-in is locked. \
                     If it was not them, someone else has their sign-in link.\n",
                    who.first_name,
                    who.last_name,
                    who.email()
                ),
            };
            tx.queue_email(None, &email, now).await?;
        }
        tx.commit().await
    };
    if let Err(e) = queued.await {
        tracing::error!(error = %e, "console: cannot queue the locked-sign-in notice");
    }
    st.wake_outbox.notify_one();
}

async fn home(axum::extract::State(st): Shared, headers: HeaderMap) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match home_view(&st, s).await {
        Ok(v) => render(&v),
        Err(e) => {
            tracing::error!(error = %e, "console: cannot read the home page's lists");
            unavailable()
        }
    }
}

/// The same queries as `haven outcomes` and `haven messages`; outcomes filtered by
/// `visibility` (HouseM and E-Safety see only incidents they may see).
async fn home_view(st: &State, s: Signed) -> Result<views::Home, crate::store::StoreError> {
    use crate::store::MessageState;
    let now = st.clock.now();
    let mut open = st.store.open_actions().await?;
    // Only the pupils of those actions are opened (visibility reads their house and tutor group).
    let mut ids: Vec<i64> = open.iter().flat_map(|a| a.pupils.iter().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    let dir = st.directory_with_pupils(&ids).await?;
    open.retain(|a| {
        let pupils: Vec<&crate::directory::Pupil> = a.pupils.iter().filter_map(|id| dir.pupil(*id)).collect();
        crate::visibility::Visibility::parse(&a.visibility).is_some_and(|v| v.allows(&s.staff, &pupils))
    });
    // Overdue first (oldest due first), then the rest by due time.
    open.sort_by_key(|a| (a.due >= now, a.due, a.action_id));
    let outcomes = open
        .iter()
        .map(|a| views::OutcomeRow {
            incident: a.incident_id,
            category: a.category.clone(),
            priority: a.priority.clone(),
            owner: a.owner_name.clone().unwrap_or_else(|| "none".into()),
            due: a.due.with_timezone(&st.tz).format("%a %-d %b %Y %H:%M").to_string(),
            standing: crate::schedule::due::describe_due(a.due, now),
            overdue: a.due < now,
        })
        .collect();
    let dsl_team = s.staff.is_dsl_team();
    let rows = |state: MessageState| async move {
        let rows = st.store.messages(Some(state)).await?;
        Ok::<_, crate::store::StoreError>(
            rows.into_iter().map(|m| views::MessageRow { id: m.id, source: m.source, reason: m.reason }).collect::<Vec<_>>(),
        )
    };
    let (awaiting_triage, quarantined) = if dsl_team {
        (rows(MessageState::AwaitingTriage).await?, rows(MessageState::Quarantined).await?)
    } else {
        (Vec::new(), Vec::new())
    };
    let _ = st.audit(now, &format!("staff:{}", s.staff.id), "console_view", "console:home", "").await;
    Ok(views::Home {
        csrf: s.csrf,
        name: format!("{} {}", s.staff.first_name, s.staff.last_name),
        reports: crate::cli::report::may_run(&s.staff, crate::report::summary::Audience::Governors),
        dsl_team,
        outcomes,
        awaiting_triage,
        quarantined,
    })
}

#[derive(serde::Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn pupils(
    axum::extract::State(st): Shared,
    headers: HeaderMap,
    axum::extract::Query(search): axum::extract::Query<Search>,
) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = search.q.trim();
    // A UPN, or every word typed found among a pupil's names, through the blind indexes:
    // only the pupils found are opened.
    let found = async {
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<i64> = st.store.pupil_by_upn(&st.blind, q).await?.into_iter().collect();
        if ids.is_empty() {
            ids = st.store.pupils_by_name_words(&st.blind, q, SEARCH_RESULTS).await?;
        }
        Ok::<_, crate::store::StoreError>(st.directory_with_pupils(&ids).await?.pupils)
    };
    let Ok(found) = found.await else { return unavailable() };
    let results: Vec<views::PupilRow> = found
        .iter()
        .map(|p| views::PupilRow {
            upn: p.upn.clone(),
            name: p.full_name(),
            year: p.year_group.map_or_else(|| "year unknown".into(), |y| format!("Year {y}")),
        })
        .collect();
    let _ = st
        .audit(st.clock.now(), &format!("staff:{}", s.staff.id), "console_pupil_search", "console", &format!("results={}", results.len()))
        .await;
    render(&views::Pupils { q: search.q, results })
}

pub(super) fn entry_row(st: &State, e: &crate::store::ChronologyEntry, dir: &crate::directory::Directory, pupil: i64) -> views::EntryRow {
    let others: Vec<String> = e
        .pupils
        .iter()
        .filter(|(id, _)| *id != pupil)
        .filter_map(|(id, role)| dir.pupil(*id).map(|p| format!("{} ({role})", p.full_name())))
        .collect();
    views::EntryRow {
        incident: e.incident,
        occurred: e.occurred_at.with_timezone(&st.tz).format("%a %-d %b %Y %H:%M").to_string(),
        recorded: format!(
            "{} by {}",
            e.recorded_at.with_timezone(&st.tz).format("%a %-d %b %Y %H:%M"),
            e.recorded_by.as_deref().unwrap_or("unknown")
        ),
        kind: e.record_kind.clone(),
        category: e.category.clone(),
        priority: e.priority.clone(),
        role: e.role.clone(),
        others: others.join(", "),
        from: e.original_from.clone().unwrap_or_default(),
        subject: e.original_subject.clone().unwrap_or_default(),
        note: e.note.clone().unwrap_or_default(),
        body: e.body.clone(),
        attachments: e.attachments.join(", "),
        outcome: e.outcome.clone(),
        ai: e.ai_suggestion.as_deref().and_then(|json| ai_row(json, dir)),
    }
}

/// The suggestion as shown; its pupils are already only in the DSL team's view (the
/// chronology's `load` takes them out for anyone else).
fn ai_row(json: &str, dir: &crate::directory::Directory) -> Option<views::AiRow> {
    let s: crate::ai::Suggestion = serde_json::from_str(json).ok()?;
    let pupils: Vec<String> = s.pupils.iter().filter_map(|id| dir.pupil(*id).map(|p| p.full_name())).collect();
    Some(views::AiRow {
        label: format!("AI suggestion ({}) — a suggestion, not a decision", s.model),
        risk: s.risk.as_str().to_string(),
        category: s.category.unwrap_or_else(|| "none of the school's".to_string()),
        reasons: s.reasons,
        summary: s.summary,
        pupils: pupils.join(", "),
    })
}

/// The chronology through the CLI's own `load_view`: the same visibility rule, opened and
/// audited the same way.
/// How many entries one chronology page shows: a long chronology is read a page at a time
/// (the latest first), and exported whole.
pub(super) const PAGE_SIZE: usize = 100;

#[derive(serde::Deserialize)]
struct PageQuery {
    page: Option<usize>,
}

async fn chronology(
    axum::extract::State(st): Shared,
    headers: HeaderMap,
    Path(upn): Path<String>,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Response {
    if session::cookie(&headers, st.cookies.session).is_none() {
        return not_found().await;
    }
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = st.clock.now();
    let window = crate::cli::chronology::Window::Page { number: q.page, size: PAGE_SIZE };
    let view = match crate::cli::chronology::load_window(
        &st.store,
        &st.sealer().await,
        &st.blind,
        &upn,
        s.staff.email(),
        "console_chronology_view",
        window,
        now,
        &st.auditor,
    )
    .await
    {
        Ok(v) => v,
        Err(crate::cli::CliError::Usage(_)) => return not_found().await,
        Err(e) => {
            tracing::error!(error = %e, "console: cannot load a chronology");
            return unavailable();
        }
    };
    let p = &view.pupil;
    let details = format!(
        "{}, {}, house {}",
        p.year_group.map_or_else(|| "year unknown".into(), |y| format!("Year {y}")),
        p.tutor_group.as_deref().unwrap_or("no tutor group"),
        p.house.as_deref().unwrap_or("none")
    );
    let entries = view.entries.iter().map(|e| entry_row(&st, e, &view.dir, p.id)).collect();
    let pages = views::Pages::new(view.total, view.offset, PAGE_SIZE);
    render(&views::Chronology { name: p.full_name(), upn: p.upn.clone(), details, total: view.total, pages, entries })
}

/// Incident `id`'s facts, the directory and the UPN of its first pupil, if `visibility` lets
/// this person see it; otherwise the 404 to give, exactly as if there were no such incident
/// (the refusal is audited).
pub(super) async fn visible_incident(
    st: &State,
    s: &Signed,
    id: i64,
) -> Result<(crate::store::IncidentFacts, crate::directory::Directory, String), Response> {
    let now = st.clock.now();
    let Ok(Some(facts)) = st.store.incident_facts(id).await else {
        return Err(not_found().await);
    };
    let ids: Vec<i64> = facts.pupils.iter().map(|(pid, _)| *pid).collect();
    let Ok(dir) = st.directory_with_pupils(&ids).await else {
        return Err(not_found().await);
    };
    let pupils: Vec<&crate::directory::Pupil> = facts.pupils.iter().filter_map(|(pid, _)| dir.pupil(*pid)).collect();
    let allowed = crate::visibility::Visibility::parse(&facts.visibility).is_some_and(|v| v.allows(&s.staff, &pupils));
    let Some(upn) = pupils.first().filter(|_| allowed).map(|p| p.upn.clone()) else {
        let _ = st.audit(now, &format!("staff:{}", s.staff.id), "console_incident_refused", &format!("incident:{id}"), "not visible").await;
        return Err(not_found().await);
    };
    Ok((facts, dir, upn))
}

/// One incident, if `visibility` lets this person see it; otherwise 404, exactly as if there
/// were no such incident.
pub(super) async fn incident_view(st: &State, s: &Signed, id: i64, notice: Option<String>) -> Response {
    let now = st.clock.now();
    let upn = match visible_incident(st, s, id).await {
        Ok((_, _, upn)) => upn,
        Err(r) => return r,
    };
    let sealer = st.sealer().await;
    let one = crate::cli::chronology::Window::Incident(id);
    let view = match crate::cli::chronology::load_window(
        &st.store,
        &sealer,
        &st.blind,
        &upn,
        s.staff.email(),
        "console_incident_view",
        one,
        now,
        &st.auditor,
    )
    .await
    {
        Ok(v) => v,
        Err(_) => return unavailable(),
    };
    let Some(e) = view.entries.iter().find(|e| e.incident == id) else {
        return not_found().await;
    };
    match incident_detail(st, s, e, &view, &sealer, notice).await {
        Ok(page) => render(&page),
        Err(err) => {
            tracing::error!(error = %err, incident = id, "console: cannot read an incident's details");
            unavailable()
        }
    }
}

/// Everything the incident page shows beyond the chronology entry: its pupils and roles,
/// attachments, follow-ups, who was emailed, the outcome's author and who has viewed it.
async fn incident_detail(
    st: &State,
    s: &Signed,
    e: &crate::store::ChronologyEntry,
    view: &crate::cli::chronology::View,
    sealer: &crate::seal::Sealer,
    notice: Option<String>,
) -> Result<views::Incident, crate::store::StoreError> {
    let dir = &view.dir;
    let when = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&st.tz).format("%a %-d %b %Y %H:%M").to_string();
    let pupils = e
        .pupils
        .iter()
        .filter_map(|(id, role)| {
            let p = dir.pupil(*id)?;
            Some(views::PupilOnIncident { upn: p.upn.clone(), name: p.full_name(), role: role.clone(), mentioned: role == "mentioned" })
        })
        .collect();
    let mut attachments = Vec::new();
    for (n, a) in st.store.attachment_files(e.incident).await?.iter().enumerate() {
        let name = crate::blind::open_or_clear(sealer, crate::pipeline::fields::FILENAME, &a.filename)
            .map_err(|err| crate::store::StoreError::Invalid(format!("an attachment's name does not open: {err}")))?;
        attachments.push(views::AttachmentRow { n, name, size: a.size });
    }
    let follow_ups = view
        .entries
        .iter()
        .filter(|f| f.follows == Some(e.incident))
        .map(|f| views::FollowUpRow {
            incident: f.incident,
            occurred: when(f.occurred_at),
            note: f.note.clone().unwrap_or_else(|| f.body.clone()),
        })
        .collect();
    let staff_name = |address: &str| {
        dir.staff
            .iter()
            .find(|st| st.emails.iter().any(|e| e.eq_ignore_ascii_case(address)))
            .map_or_else(|| address.to_string(), |st| format!("{} {}", st.first_name, st.last_name))
    };
    let alerted = st
        .store
        .console_sent_about(e.incident)
        .await?
        .into_iter()
        .map(|m| views::AlertedRow { who: staff_name(&m.recipient), purpose: m.purpose, state: m.state, when: when(m.created) })
        .collect();
    let outcome_by = match (&e.outcome_by, e.outcome_at) {
        (Some(who), Some(at)) => format!("{who}, {}", when(at)),
        _ => String::new(),
    };
    let viewers = super::access::viewers(st, e, dir).await?;
    let ai_feedback = s.staff.is_dsl_team() && e.ai_suggestion.is_some();
    let ai_verdict = if ai_feedback { st.store.ai_verdict_of(e.incident, s.staff.id).await? } else { None };
    Ok(views::Incident {
        csrf: s.csrf.clone(),
        pupil_upn: view.pupil.upn.clone(),
        pupil_name: view.pupil.full_name(),
        e: entry_row(st, e, dir, view.pupil.id),
        notice,
        dsl_team: s.staff.is_dsl_team(),
        pupils,
        attachments,
        has_html: st.store.console_incident_html(e.incident).await?.is_some(),
        follow_ups,
        alerted,
        outcome_by,
        viewers,
        ai_feedback,
        ai_verdict: ai_verdict.map(|right| if right { "right" } else { "wrong" }.to_string()),
    })
}

async fn incident(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    // Without a session (a teacher, who never gets one, or anyone signed out) a record's
    // address is "not found", so it does not even confirm the record exists.
    if session::cookie(&headers, st.cookies.session).is_none() {
        return not_found().await;
    }
    match signed(&st, &headers, "ok").await {
        Ok(s) => incident_view(&st, &s, id, None).await,
        Err(r) => r,
    }
}

/// Records an outcome with `haven outcome --by`'s own check and transaction.
async fn record_outcome(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>, Form(f): Fields) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if f.get("csrf") != Some(&s.csrf) {
        let _ = st
            .audit(st.clock.now(), &format!("staff:{}", s.staff.id), "console_csrf_refused", &format!("incident:{id}"), "outcome form")
            .await;
        return forged();
    }
    let text = f.get("outcome").map(String::as_str).unwrap_or_default();
    match crate::cli::outcome::record(&st.store, &st.sealer().await, id, text, s.staff.email(), st.clock.now()).await {
        Ok(_) => incident_view(&st, &s, id, Some("Outcome recorded.".into())).await,
        Err(crate::cli::CliError::Usage(msg)) => {
            let shown = msg.split_once(": ").filter(|_| msg.starts_with("--by")).map_or(msg.as_str(), |(_, m)| m).to_string();
            (StatusCode::FORBIDDEN, incident_view(&st, &s, id, Some(shown)).await).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "console: cannot record an outcome");
            unavailable()
        }
    }
}

async fn sign_out(axum::extract::State(st): Shared, headers: HeaderMap, Form(f): Fields) -> Response {
    let now = st.clock.now();
    let s = match session::current(&st, &headers, now).await {
        Ok(s) => s,
        Err(_) => return Redirect::to("/").into_response(),
    };
    if f.get("csrf") != Some(&s.csrf) {
        return forged();
    }
    let _ = st.store.console_session_end(&s.id_hash).await;
    let _ = st.audit(now, &format!("staff:{}", s.staff.id), "console_sign_out", "console", "").await;
    let clear = st.cookies.set(st.cookies.session, "", Some(0));
    ([(header::SET_COOKIE, clear)], message(StatusCode::OK, "Signed out", "You are signed out.")).into_response()
}

/// Ends every console session of the signed-in member of staff (a phone left signed in, a
/// shared computer), this one included.
async fn sign_out_everywhere(axum::extract::State(st): Shared, headers: HeaderMap, Form(f): Fields) -> Response {
    let now = st.clock.now();
    let s = match session::current(&st, &headers, now).await {
        Ok(s) => s,
        Err(_) => return Redirect::to("/").into_response(),
    };
    if f.get("csrf") != Some(&s.csrf) {
        return forged();
    }
    let ended = match st.store.console_sessions_end_all(s.staff.id).await {
        Ok(n) => n,
        Err(_) => return unavailable(),
    };
    let _ = st.audit(now, &format!("staff:{}", s.staff.id), "console_sign_out_everywhere", "console", &format!("sessions={ended}")).await;
    let clear = st.cookies.set(st.cookies.session, "", Some(0));
    let text = format!("You are signed out everywhere: {ended} session(s) ended, on this and every other device.");
    ([(header::SET_COOKIE, clear)], message(StatusCode::OK, "Signed out", &text)).into_response()
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLESHEET).into_response()
}

pub(super) async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not found", "There is nothing here, or nothing you may see.")
}

pub(super) fn unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again",
        "Haven could not reach its database just now. Nothing was changed; try again in a moment.",
    )
}

pub(super) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    (status, render(&views::Message { title: title.into(), text: text.into() })).into_response()
}

/// Renders a template, or a plain 500 (logged without the page's content).
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be shown; the error is in Haven's log.").into_response()
        }
    }
}
