//! Cookies and server-side sessions: which browser and which signed-in member of staff a
//! request comes from. Idle timeout (30 minutes) and absolute timeout (12 hours) come from
//! `[console]`; staff deactivated in the directory are signed out at their next request.
//! Every end of a session is audited.

use super::State;
use crate::directory::Staff;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

/// The cookie names. `__Host-` cookies need HTTPS, so over loopback HTTP (no reverse proxy
/// with TLS in front) plain names are used; behind an `https://` public_url the `__Host-`
/// names with `Secure`.
pub struct CookieNames {
    pub session: &'static str,
    pub browser: &'static str,
    pub secure: bool,
}

impl CookieNames {
    pub fn for_url(public_url: &str) -> CookieNames {
        if public_url.starts_with("https://") {
            CookieNames { session: "__Host-haven", browser: "__Host-haven-browser", secure: true }
        } else {
            CookieNames { session: "haven_session", browser: "haven_browser", secure: false }
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/ (and Secure over HTTPS).
    pub fn set(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
        if let Some(s) = max_age {
            c.push_str(&format!("; Max-Age={s}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(axum::http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name && !v.is_empty()).then(|| v.to_string())
    })
}

/// The session behind a request.
pub struct Signed {
    pub id_hash: String,
    pub staff: Staff,
    pub stage: String,
    pub csrf: String,
}

/// Why a request has no usable session.
pub enum NoSession {
    None,
    Expired,
    Deactivated,
}

/// Loads, checks and touches the request's session.
pub async fn current(state: &State, headers: &HeaderMap, now: DateTime<Utc>) -> Result<Signed, NoSession> {
    let Some(id) = cookie(headers, state.cookies.session) else { return Err(NoSession::None) };
    let id_hash = super::auth::hash(&id);
    let Ok(Some(s)) = state.store.console_session(&id_hash).await else { return Err(NoSession::None) };
    let actor = format!("staff:{}", s.staff_id);
    let idle = chrono::Duration::from_std(state.settings.idle_timeout).unwrap_or(chrono::Duration::minutes(30));
    let absolute = chrono::Duration::from_std(state.settings.absolute_timeout).unwrap_or(chrono::Duration::hours(12));
    if now - s.last_seen > idle || now - s.created > absolute {
        let _ = state.store.console_session_end(&id_hash).await;
        let why = if now - s.created > absolute { "absolute timeout" } else { "idle timeout" };
        let _ = state.audit(now, &actor, "console_session_expired", "console", why).await;
        return Err(NoSession::Expired);
    }
    let staff = state.store.staff_member(s.staff_id).await.ok().flatten();
    let Some(staff) = staff.filter(|st| st.active) else {
        let _ = state.store.console_session_end(&id_hash).await;
        let _ = state.audit(now, &actor, "console_sign_out", "console", "deactivated in the directory").await;
        return Err(NoSession::Deactivated);
    };
    // Activity is written at most once per sixtieth of the idle timeout (30 s of 30 minutes):
    // a page of requests is one write, not one each, and a session still ends no more than
    // that sixtieth early.
    if now - s.last_seen >= idle / 60 {
        let _ = state.store.console_session_touch(&id_hash, &s.stage, now).await;
    }
    Ok(Signed { id_hash, staff, stage: s.stage, csrf: s.csrf })
}
