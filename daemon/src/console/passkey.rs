//! Passkeys (WebAuthn through webauthn-rs), the stronger second factor: added and removed on
//! the Security page by someone fully signed in, offered on the code page to those who have
//! one. A passkey is always in addition to an enrolled TOTP, never instead: it is offered only
//! once TOTP is enrolled, and its failures count towards the same lock as wrong codes.
//!
//! Each ceremony's state is sealed with the console key and kept on the session in the
//! database (several daemons may serve one console), taken once and only within
//! [`CEREMONY_LIFETIME`]. The relying party is the host of `console.public_url`, which must
//! be a name (WebAuthn refuses IP addresses): with an address there, passkeys are not offered.

use super::peer::Peer;
use super::routes::{Fields, Shared, forged, locked, not_found, over_client_limit, render, signed, unavailable, wrong_code};
use super::session::Signed;
use super::{State, views};
use axum::extract::{ConnectInfo, Path};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use webauthn_rs::prelude::{Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential};
use webauthn_rs::prelude::{Url, Uuid, Webauthn, WebauthnBuilder};

/// How long a browser has to answer a challenge (the browser's own prompt times out sooner).
const CEREMONY_LIFETIME: chrono::Duration = chrono::Duration::minutes(5);

/// Longest passkey name kept (what a person types to tell their devices apart).
const NAME_CHARS: usize = 60;

/// The one script the console serves: it asks the browser for a passkey and posts the answer.
const SCRIPT: &str = include_str!("../../templates/passkey.js");

/// The relying party for `public_url`, or None (logged) when its host is not a name.
pub fn relying_party(public_url: &str) -> Option<Webauthn> {
    let url = Url::parse(public_url).ok()?;
    let Some(host) = url.domain() else {
        tracing::warn!("console: passkeys are off: console.public_url must name the host (WebAuthn does not accept an IP address)");
        return None;
    };
    match WebauthnBuilder::new(host, &url).and_then(|b| b.rp_name("Haven").build()) {
        Ok(rp) => Some(rp),
        Err(e) => {
            tracing::warn!(error = %e, "console: passkeys are off: console.public_url is not usable by WebAuthn");
            None
        }
    }
}

pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

/// A staff member's WebAuthn user handle: stable, derived from their id, naming nobody.
fn user_handle(staff_id: i64) -> Uuid {
    let h = super::auth::hash(&format!("haven console staff {staff_id}"));
    let bytes: [u8; 16] = hex::decode(&h[..32]).ok().and_then(|b| b.try_into().ok()).unwrap_or_default();
    Uuid::from_bytes(bytes)
}

/// A registered passkey, opened.
struct Opened {
    record: crate::store::PasskeyRecord,
    passkey: Passkey,
}

/// `staff_id`'s passkeys, opened; one that does not open (another console key) is left out.
async fn opened(st: &State, staff_id: i64) -> Result<Vec<Opened>, crate::store::StoreError> {
    let records = st.store.console_passkeys(staff_id).await?;
    Ok(records
        .into_iter()
        .filter_map(|record| {
            let passkey = serde_json::from_slice(&st.key.open(&record.sealed_passkey)?).ok()?;
            Some(Opened { record, passkey })
        })
        .collect())
}

/// Whether the code page offers a passkey to `staff_id`.
pub async fn offered(st: &State, staff_id: i64) -> bool {
    st.passkeys.is_some() && st.store.console_passkeys(staff_id).await.is_ok_and(|p| !p.is_empty())
}

fn json(body: &impl serde::Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => unavailable(),
    }
}

/// Keeps a ceremony's state, sealed, on the session.
async fn begin(st: &State, s: &Signed, kind: &str, state: &impl serde::Serialize, now: DateTime<Utc>) -> Result<(), Response> {
    let sealed = serde_json::to_vec(state).map(|v| st.key.seal(&v)).map_err(|_| unavailable())?;
    st.store.console_ceremony_begin(&s.id_hash, kind, &sealed, now).await.map_err(|_| unavailable())
}

/// Takes the session's ceremony of `kind` (once), opened.
async fn take<T: serde::de::DeserializeOwned>(st: &State, s: &Signed, kind: &str, now: DateTime<Utc>) -> Option<T> {
    let sealed = st.store.console_ceremony_take(&s.id_hash, kind, now - CEREMONY_LIFETIME).await.ok()??;
    serde_json::from_slice(&st.key.open(&sealed)?).ok()
}

/// Refuses a form without this session's CSRF token (audited).
async fn csrf_checked(st: &State, s: &Signed, f: &Fields, form: &str) -> Result<(), Response> {
    if f.get("csrf") == Some(&s.csrf) {
        return Ok(());
    }
    let _ = st.audit(st.clock.now(), &format!("staff:{}", s.staff.id), "console_csrf_refused", "console", form).await;
    Err(forged())
}

pub async fn security_page(axum::extract::State(st): Shared, headers: HeaderMap) -> Response {
    match signed(&st, &headers, "ok").await {
        Ok(s) => security_view(&st, &s, StatusCode::OK, None).await,
        Err(r) => r,
    }
}

async fn security_view(st: &State, s: &Signed, status: StatusCode, notice: Option<&str>) -> Response {
    let Ok(records) = st.store.console_passkeys(s.staff.id).await else { return unavailable() };
    let when = |t: DateTime<Utc>| t.with_timezone(&st.tz).format("%a %-d %b %Y %H:%M").to_string();
    let passkeys = records
        .iter()
        .map(|r| views::PasskeyRow {
            id: r.id,
            name: r.name.clone(),
            added: when(r.added),
            last_used: r.last_used.map_or_else(|| "never".into(), when),
        })
        .collect();
    let page = views::Security { csrf: s.csrf.clone(), available: st.passkeys.is_some(), passkeys, notice: notice.map(str::to_string) };
    (status, render(&page)).into_response()
}

/// The options for adding a passkey (JSON for `navigator.credentials.create`); the passkeys
/// this person already has are excluded, so one authenticator is not added twice.
pub async fn register_options(axum::extract::State(st): Shared, headers: HeaderMap, f: Fields) -> Response {
    let now = st.clock.now();
    let s = match full_session(&st, &headers, &f, "passkey options").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(rp) = &st.passkeys else { return not_found().await };
    let Ok(existing) = opened(&st, s.staff.id).await else { return unavailable() };
    let exclude = existing.iter().map(|o| o.passkey.cred_id().clone()).collect();
    let name = format!("{} {}", s.staff.first_name, s.staff.last_name);
    let Ok((options, state)) = rp.start_passkey_registration(user_handle(s.staff.id), s.staff.email(), &name, Some(exclude)) else {
        return unavailable();
    };
    if let Err(r) = begin(&st, &s, "register", &state, now).await {
        return r;
    }
    json(&options)
}

/// Adds the passkey the browser created for the session's pending registration.
pub async fn register(axum::extract::State(st): Shared, headers: HeaderMap, f: Fields) -> Response {
    let now = st.clock.now();
    let s = match full_session(&st, &headers, &f, "passkey add form").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(rp) = &st.passkeys else { return not_found().await };
    let state: Option<PasskeyRegistration> = take(&st, &s, "register", now).await;
    let answer: Option<RegisterPublicKeyCredential> = f.get("credential").and_then(|c| serde_json::from_str(c).ok());
    let passkey = match (state, answer) {
        (Some(state), Some(answer)) => rp.finish_passkey_registration(&answer, &state).ok(),
        _ => None,
    };
    let actor = format!("staff:{}", s.staff.id);
    let Some(passkey) = passkey else {
        let _ = st.audit(now, &actor, "console_passkey_refused", "console", "registration not verified").await;
        let text = "The passkey could not be added (the browser's answer was missing, late or not valid). Try again.";
        return security_view(&st, &s, StatusCode::BAD_REQUEST, Some(text)).await;
    };
    let typed: String = f.get("name").map(|n| n.trim()).unwrap_or_default().chars().take(NAME_CHARS).collect();
    let name = if typed.is_empty() { "Passkey".to_string() } else { typed };
    let Ok(sealed) = serde_json::to_vec(&passkey).map(|v| st.key.seal(&v)) else { return unavailable() };
    match st.store.console_passkey_add(s.staff.id, &hex::encode(passkey.cred_id()), &sealed, &name, now).await {
        Ok(true) => {
            let _ = st.audit(now, &actor, "console_passkey_added", "console", "").await;
            security_view(&st, &s, StatusCode::OK, Some("Passkey added. Next time you sign in, you can use it instead of a code.")).await
        }
        Ok(false) => security_view(&st, &s, StatusCode::CONFLICT, Some("That passkey is already registered.")).await,
        Err(_) => unavailable(),
    }
}

pub async fn remove(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>, f: Fields) -> Response {
    let now = st.clock.now();
    let s = match full_session(&st, &headers, &f, "passkey remove form").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match st.store.console_passkey_remove(s.staff.id, id).await {
        Ok(Some(_)) => {
            let _ = st.audit(now, &format!("staff:{}", s.staff.id), "console_passkey_removed", "console", "").await;
            security_view(&st, &s, StatusCode::OK, Some("Passkey removed.")).await
        }
        Ok(None) => not_found().await,
        Err(_) => unavailable(),
    }
}

/// A signed-in session past both factors, with the form's CSRF token checked: what adding or
/// removing a passkey needs.
async fn full_session(st: &State, headers: &HeaderMap, f: &Fields, form: &str) -> Result<Signed, Response> {
    let s = signed(st, headers, "ok").await?;
    csrf_checked(st, &s, f, form).await?;
    Ok(s)
}

/// The code page's session, if it may use a passkey now: TOTP enrolled and not locked.
async fn second_factor(st: &State, headers: &HeaderMap, f: &Fields, form: &str) -> Result<Signed, Response> {
    let s = signed(st, headers, "totp").await?;
    csrf_checked(st, &s, f, form).await?;
    let record = st.store.console_totp(s.staff.id).await.map_err(|_| unavailable())?;
    match record {
        Some(r) if r.locked => {
            let _ = st.audit(st.clock.now(), &format!("staff:{}", s.staff.id), "console_sign_in_failed", "console", "totp locked").await;
            Err(locked())
        }
        Some(r) if r.enrolled => Ok(s),
        _ => Err(Redirect::to("/totp").into_response()),
    }
}

/// The options for signing in with a passkey (JSON for `navigator.credentials.get`), allowing
/// only this person's passkeys.
pub async fn sign_in_options(
    axum::extract::State(st): Shared,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    f: Fields,
) -> Response {
    let now = st.clock.now();
    if let Some(refused) = over_client_limit(&st, peer, &headers, "passkey options").await {
        return refused;
    }
    let s = match second_factor(&st, &headers, &f, "passkey options").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(rp) = &st.passkeys else { return not_found().await };
    let Ok(keys) = opened(&st, s.staff.id).await else { return unavailable() };
    let keys: Vec<Passkey> = keys.into_iter().map(|o| o.passkey).collect();
    if keys.is_empty() {
        return not_found().await;
    }
    let Ok((options, state)) = rp.start_passkey_authentication(&keys) else { return unavailable() };
    if let Err(r) = begin(&st, &s, "authenticate", &state, now).await {
        return r;
    }
    json(&options)
}

/// Completes the second factor with a passkey, exactly as a right code does; a refused
/// answer counts towards the lock like a wrong code.
pub async fn sign_in(axum::extract::State(st): Shared, ConnectInfo(peer): ConnectInfo<Peer>, headers: HeaderMap, f: Fields) -> Response {
    let now = st.clock.now();
    if let Some(refused) = over_client_limit(&st, peer, &headers, "passkey form").await {
        return refused;
    }
    let s = match second_factor(&st, &headers, &f, "passkey form").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(rp) = &st.passkeys else { return not_found().await };
    let state: Option<PasskeyAuthentication> = take(&st, &s, "authenticate", now).await;
    let answer: Option<PublicKeyCredential> = f.get("credential").and_then(|c| serde_json::from_str(c).ok());
    let result = match (state, answer) {
        (Some(state), Some(answer)) => rp.finish_passkey_authentication(&answer, &state).ok(),
        _ => None,
    };
    let Ok(keys) = opened(&st, s.staff.id).await else { return unavailable() };
    let used = result.and_then(|r| keys.into_iter().find(|o| o.passkey.cred_id() == r.cred_id()).map(|o| (o, r)));
    let Some((mut key, result)) = used else {
        return wrong_code(&st, s, now, "That passkey was not accepted.", "console_passkey_failed").await;
    };
    // The signature counter and backup state, as the authenticator now reports them.
    key.passkey.update_credential(&result);
    let Ok(sealed) = serde_json::to_vec(&key.passkey).map(|v| st.key.seal(&v)) else { return unavailable() };
    let passed = async {
        st.store.console_passkey_used(key.record.id, &sealed, now).await?;
        // Forgets earlier wrong codes, as a right code does.
        st.store.console_totp_passed(s.staff.id, None, &[], now).await?;
        st.store.console_session_touch(&s.id_hash, "ok", now).await
    };
    if passed.await.is_err() {
        return unavailable();
    }
    let _ = st.audit(now, &format!("staff:{}", s.staff.id), "console_sign_in_passkey", "console", "").await;
    Redirect::to("/home").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_public_urls_host_and_never_an_address() {
        assert!(relying_party("http://localhost:8080").is_some());
        assert!(relying_party("https://haven.school.example").is_some());
        assert!(relying_party("http://127.0.0.1:8080").is_none(), "WebAuthn refuses an IP address as rp_id");
        assert_eq!(user_handle(7), user_handle(7));
        assert_ne!(user_handle(7), user_handle(8));
    }
}
