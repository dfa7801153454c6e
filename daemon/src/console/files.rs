//! What leaves the console as a file or a frame: attachments (always downloaded, never shown
//! inline, as opaque bytes), the original message's sanitised HTML in a sandboxed frame that
//! may load nothing, and chronology exports (`haven export`'s own bundle, zipped). Each is
//! checked against `visibility` first and audited.

use super::routes::{Shared, message, not_found, signed, unavailable, visible_incident};
use crate::cli::export::{ExportRequest, Format};
use crate::pipeline::fields;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::ValueEnum;

/// The framed original message: a sandbox (no script, no forms, its own origin), nothing
/// loaded from anywhere but images inlined as data: URLs, framed only by the console.
pub const FRAME_POLICY: &str = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'";

/// `GET /incidents/{id}/message`: the sanitised HTML Haven stored (ammonia's output), or the
/// text when there was none.
pub async fn message_frame(axum::extract::State(st): Shared, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = visible_incident(&st, &s, id).await {
        return r;
    }
    let sealed = match st.store.console_incident_html(id).await {
        Ok(Some(h)) => h,
        Ok(None) => return not_found().await,
        Err(_) => return unavailable(),
    };
    let html = match st.sealer().await.open_text(fields::BODY_HTML, &sealed) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, incident = id, "console: an incident's HTML does not open");
            return unavailable();
        }
    };
    let _ = st.audit(st.clock.now(), &format!("staff:{}", s.staff.id), "console_message_frame", &format!("incident:{id}"), "").await;
    let page = format!("<!doctype html><meta charset=\"utf-8\"><base target=\"_blank\">{html}");
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FRAME_POLICY)),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN")),
        ],
        page,
    )
        .into_response()
}

/// A `Content-Disposition: attachment` header for `name`: an ASCII fallback and the UTF-8
/// name (RFC 6266), with nothing that could end the header or the quoted string.
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Bytes to save, never to show: opaque type, `attachment`, no sniffing, no caching.
pub(super) fn download(name: &str, data: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::CONTENT_DISPOSITION, disposition(name)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        data,
    )
        .into_response()
}

/// `GET /incidents/{id}/attachments/{n}`: the n-th attachment (as the incident page lists
/// them), audited with its hash.
pub async fn attachment(axum::extract::State(st): Shared, headers: HeaderMap, Path((id, n)): Path<(i64, usize)>) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = visible_incident(&st, &s, id).await {
        return r;
    }
    let files = match st.store.attachment_files(id).await {
        Ok(f) => f,
        Err(_) => return unavailable(),
    };
    let Some(a) = files.into_iter().nth(n) else {
        return not_found().await;
    };
    let sealer = st.sealer().await;
    let opened = sealer
        .open(fields::ATTACHMENT, &a.sealed)
        .map_err(|e| e.to_string())
        .and_then(|data| Ok((data, crate::blind::open_or_clear(&sealer, fields::FILENAME, &a.filename).map_err(|e| e.to_string())?)));
    let (data, name) = match opened {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, incident = id, "console: an attachment does not open");
            return unavailable();
        }
    };
    let detail = format!("attachment {n} sha256={}", a.sha256);
    if st
        .audit(st.clock.now(), &format!("staff:{}", s.staff.id), "console_attachment_download", &format!("incident:{id}"), &detail)
        .await
        .is_err()
    {
        // A download that cannot be audited is not given.
        return unavailable();
    }
    download(&name, data)
}

#[derive(serde::Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    format: String,
}

/// `GET /pupils/{upn}/export?format=html|json|pdf`: `haven export`'s bundle (what this person may
/// see, attachments and SHA-256 manifest, audited as `export`) as one zip file. The format
/// is `haven export --format`'s, so a format added there is offered here.
pub async fn export(
    axum::extract::State(st): Shared,
    headers: HeaderMap,
    Path(upn): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Response {
    let s = match signed(&st, &headers, "ok").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(format) = Format::from_str(&q.format, true) else {
        return message(StatusCode::BAD_REQUEST, "Cannot export", "Choose a format for the export: html, json or pdf.");
    };
    let now = st.clock.now();
    let req = ExportRequest { query: &upn, viewer: s.staff.email(), format, out: None, school: &st.school, tz: st.tz, now };
    match crate::cli::export::bundle(&st.store, &st.sealer().await, &st.blind, &req).await {
        Ok(bundle) => {
            let zipped = match super::bundle::zip(&bundle.name, &bundle.files) {
                Ok(z) => z,
                Err(e) => {
                    tracing::error!(error = %e, "console: cannot zip an export");
                    return unavailable();
                }
            };
            let _ = st
                .audit(now, &format!("staff:{}", s.staff.id), "console_export_download", "console", &format!("format={}", q.format))
                .await;
            download(&format!("{}.zip", bundle.name), zipped)
        }
        Err(crate::cli::CliError::Usage(m)) if m.starts_with("no pupil") || m.contains("not an active") => not_found().await,
        Err(crate::cli::CliError::Usage(m)) => message(StatusCode::BAD_REQUEST, "Cannot export", &m),
        Err(e) => {
            tracing::error!(error = %e, "console: cannot export a chronology");
            unavailable()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_name_cannot_break_out_of_its_header() {
        let h = disposition("report \"final\".pdf\r\nX: y");
        let s = h.to_str().unwrap();
        assert!(
            s.starts_with("attachment; filename=\"report _final_.pdf__X: y\"; filename*=UTF-8''report%20%22final%22.pdf%0D%0AX%3A%20y"),
            "{s}"
        );
        assert!(disposition("Zoë.docx").to_str().unwrap().ends_with("Zo%C3%AB.docx"));
    }
}
