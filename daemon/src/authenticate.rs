//! Who may file: the sender must be an active member of staff and, when the school names its
//! trusted mail server (`intake.trusted_authserv_id`), that server's topmost
//! Authentication-Results must show DMARC pass, or DKIM pass aligned with the From domain.
//! Pure: the verdict is made from headers already received and the directory.

use crate::directory::{Directory, Staff};
use crate::message::Message;

pub enum SenderCheck<'a> {
    Staff(&'a Staff),
    /// The quarantine reason.
    Refused(String),
}

pub fn check_sender<'a>(msg: &Message, dir: &'a Directory, trusted_authserv_id: Option<&str>) -> SenderCheck<'a> {
    let Some(from) = &msg.from else {
        return SenderCheck::Refused("no From address".into());
    };
    let Some(staff) = dir.active_staff_by_email(&from.address) else {
        return SenderCheck::Refused("sender is not an active member of staff".into());
    };
    if let Some(trusted) = trusted_authserv_id
        && let Err(reason) = authenticated_by(msg, trusted, &from.address)
    {
        return SenderCheck::Refused(reason);
    }
    SenderCheck::Staff(staff)
}

/// Checks the topmost Authentication-Results header added by `trusted`.
fn authenticated_by(msg: &Message, trusted: &str, from_address: &str) -> Result<(), String> {
    let from_domain = from_address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
    let header = msg
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Authentication-Results"))
        .map(|h| parse_authentication_results(&h.value))
        .find(|ar| ar.authserv_id.eq_ignore_ascii_case(trusted))
        .ok_or_else(|| format!("no Authentication-Results from the trusted server {trusted}"))?;
    let dmarc_pass = header.results.iter().any(|r| r.method == "dmarc" && r.result == "pass");
    let dkim_aligned = header.results.iter().any(|r| {
        r.method == "dkim"
            && r.result == "pass"
            && r.prop("header.d").is_some_and(|d| aligned(&d.to_ascii_lowercase(), &from_domain))
    });
    if dmarc_pass || dkim_aligned {
        Ok(())
    } else {
        Err("sender authentication failed (no DMARC pass or aligned DKIM pass from the trusted server)".into())
    }
}

/// Relaxed alignment: the signing domain is the From domain or a parent of it.
fn aligned(d: &str, from_domain: &str) -> bool {
    from_domain == d || from_domain.ends_with(&format!(".{d}"))
}

#[derive(Debug, PartialEq)]
struct AuthResults {
    authserv_id: String,
    results: Vec<MethodResult>,
}

#[derive(Debug, PartialEq)]
struct MethodResult {
    method: String,
    result: String,
    props: Vec<(String, String)>,
}

impl MethodResult {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// RFC 8601 `authserv-id [version] ; method=result prop=value … ; …`, comments removed.
fn parse_authentication_results(value: &str) -> AuthResults {
    let mut clean = String::with_capacity(value.len());
    let mut depth = 0u32;
    for ch in value.chars() {
        match ch {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => clean.push(ch),
            _ => {}
        }
    }
    let mut parts = clean.split(';');
    let authserv_id = parts
        .next()
        .and_then(|p| p.split_whitespace().next())
        .unwrap_or("")
        .to_string();
    let results = parts
        .filter_map(|p| {
            let mut words = p.split_whitespace();
            let (method, result) = words.next()?.split_once('=')?;
            let method = method.split('/').next().unwrap_or(method).to_ascii_lowercase();
            let props = words
                .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string())))
                .collect();
            Some(MethodResult { method, result: result.to_ascii_lowercase(), props })
        })
        .collect();
    AuthResults { authserv_id, results }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results_with_comments_and_version() {
        let ar = parse_authentication_results(
            "mx.school.example 1; dkim=pass (2048-bit key) header.d=school.example header.s=s1; \
             spf=pass smtp.mailfrom=school.example; dmarc=pass (p=quarantine) header.from=school.example",
        );
        assert_eq!(ar.authserv_id, "mx.school.example");
        assert_eq!(ar.results.len(), 3);
        assert_eq!(ar.results[0].prop("header.d"), Some("school.example"));
        assert_eq!(ar.results[2].method, "dmarc");
    }

    #[test]
    fn alignment_is_relaxed_but_not_suffix_spoofable() {
        assert!(aligned("school.example", "mail.school.example"));
        assert!(!aligned("evilschool.example", "school.example"));
        assert!(!aligned("school.example", "evilschool.example"));
    }
}
