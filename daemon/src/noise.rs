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
    if msg.header("X-Auto-Response-Suppress").is_some_and(|v| v.to_ascii_lowercase().contains("all"))
        && msg.header("X-Haven-Incident").is_some()
    {
        return Some("Haven's own message".into());
    }
    // The reader gives Return-Path without its angle brackets, so the null sender `<>` is "".
    if let Some(v) = msg.header("Return-Path")
        && v.trim().trim_matches(['<', '>']).trim().is_empty()
    {
        return Some("bounce (empty Return-Path)".into());
    }
    if let Some(ct) = msg.header("Content-Type") {
        let ct = ct.to_ascii_lowercase();
        if ct.contains("multipart/report") || ct.contains("message/delivery-status") {
            return Some("delivery status report".into());
        }
    }
    if let Some(mid) = &msg.message_id
        && mid.starts_with("haven.")
        && mid.ends_with(&format!("@{own_domain}"))
    {
        return Some("Haven's own message".into());
    }
    let subject = msg.subject.as_deref().unwrap_or("").to_ascii_lowercase();
    let from = msg.from.as_ref().map(|a| a.address.as_str()).unwrap_or("");
    if from.starts_with("mailer-daemon@") || from.starts_with("postmaster@") {
        return Some("bounce (from the mail system)".into());
    }
    const AUTO_SUBJECTS: [&str; 6] =
        ["automatic reply:", "auto-reply:", "autoreply:", "out of office:", "undeliverable:", "delivery status notification"];
    if AUTO_SUBJECTS.iter().any(|p| subject.starts_with(p)) {
        return Some("automatic reply (subject)".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(return_path: &str) -> Option<String> {
        let raw = format!(
            "Return-Path: {return_path}\r\nFrom: Dana Lead <dsl@school.example>\r\n\
             To: safeguarding@school.example\r\nSubject: Note\r\nMessage-ID: <n1@school.example>\r\n\r\nText.\r\n"
        );
        let msg = crate::read::read_message(raw.as_bytes()).map_err(|e| e.to_string());
        ignore_reason(&msg.unwrap_or_else(|e| panic!("{e}")), "school.example")
    }

    #[test]
    fn null_sender_is_a_bounce() {
        for null in ["<>", " <> ", ""] {
            assert_eq!(reason(null).as_deref(), Some("bounce (empty Return-Path)"), "{null:?}");
        }
    }

    #[test]
    fn a_real_return_path_is_not_noise() {
        for path in [
            "<dsl@school.example>",
            "dsl@school.example",
            "<dsl@school.example> (via relay)",
            "<\"dana lead\"@school.example>",
            "<SRS0=abcd=XY=school.example=dsl@relay.example>",
        ] {
            assert_eq!(reason(path), None, "{path:?}");
        }
    }
}
