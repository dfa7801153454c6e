//! Mail that must never become an incident and never be answered: auto-replies, bounces,
//! delivery reports, list mail and Haven's own messages (RFC 3834, RFC 3464 and common
//! vendor headers). Pure.

use crate::message::Message;

/// Why the message is noise, or None when it is a person writing.
pub fn ignore_reason(msg: &Message, own_domain: &str) -> Option<String> {
    if let Some(v) = msg.header("Auto-Submitted") {
        let v = v.trim().to_ascii_lowercase();
        if !v.starts_with("no") {
            return Some(format!("automatic message (Auto-Submitted: {v})"));
        }
    }
    if let Some(v) = msg.header("Precedence") {
        let v = v.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            return Some(format!("bulk or list mail (Precedence: {v})"));
        }
    }
    for h in ["X-Autoreply", "X-Autorespond", "X-Auto-Response"] {
        if msg.header(h).is_some() {
            return Some(format!("automatic reply ({h} header)"));
        }
    }
    if msg
        .header("X-Auto-Response-Suppress")
        .is_some_and(|v| v.to_ascii_lowercase().contains("all"))
        && msg.header("X-Haven-Incident").is_some()
    {
        return Some("Haven's own message".into());
    }
    if let Some(v) = msg.header("Return-Path") {
        if v.trim() == "<>" {
            return Some("bounce (empty Return-Path)".into());
        }
    }
    if let Some(ct) = msg.header("Content-Type") {
        let ct = ct.to_ascii_lowercase();
        if ct.contains("multipart/report") || ct.contains("message/delivery-status") {
            return Some("delivery status report".into());
        }
    }
    if let Some(mid) = &msg.message_id {
        if mid.starts_with("haven.") && mid.ends_with(&format!("@{own_domain}")) {
            return Some("Haven's own message".into());
        }
    }
    let subject = msg.subject.as_deref().unwrap_or("").to_ascii_lowercase();
    let from = msg.from.as_ref().map(|a| a.address.as_str()).unwrap_or("");
    if from.starts_with("mailer-daemon@") || from.starts_with("postmaster@") {
        return Some("bounce (from the mail system)".into());
    }
    const AUTO_SUBJECTS: [&str; 6] = [
        "automatic reply:",
        "auto-reply:",
        "autoreply:",
        "out of office:",
        "undeliverable:",
        "delivery status notification",
    ];
    if AUTO_SUBJECTS.iter().any(|p| subject.starts_with(p)) {
        return Some("automatic reply (subject)".into());
    }
    None
}
