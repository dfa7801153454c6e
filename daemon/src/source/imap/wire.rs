//! Pure helpers that turn Haven's values into IMAP command arguments: UID sets, quoted strings,
//! folder names in the server's hierarchy, and the loopback check for plain connections.
//! No I/O here, so every rule is unit-tested.

use std::net::IpAddr;

/// A UID set in ascending order with consecutive runs folded (`1:3,7,9:10`), so a batch of
/// fifty messages is one short command argument. Duplicates are ignored.
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut run: Option<(u32, u32)> = None;
    for uid in sorted {
        run = match run {
            Some((first, last)) if last.checked_add(1) == Some(uid) => Some((first, uid)),
            Some(done) => {
                push_run(&mut out, done);
                Some((uid, uid))
            }
            None => Some((uid, uid)),
        };
    }
    if let Some(done) = run {
        push_run(&mut out, done);
    }
    out
}

fn push_run(out: &mut String, (first, last): (u32, u32)) {
    if !out.is_empty() {
        out.push(',');
    }
    if first == last {
        out.push_str(&first.to_string());
    } else {
        out.push_str(&format!("{first}:{last}"));
    }
}

/// An IMAP quoted string (for LIST patterns, which async-imap passes through unquoted).
pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A configured folder name (always written with `/`, as in the SPEC) as the server spells
/// it: in its own hierarchy (Dovecot's Maildir++ default separator is `.`, Exchange and Gmail
/// use `/`) and in IMAP's modified UTF-7, so `Haven/Classé` works too.
pub(crate) fn server_folder(configured: &str, delimiter: Option<&str>) -> String {
    let local = match delimiter {
        Some(d) if d != "/" && !d.is_empty() => configured.replace('/', d),
        _ => configured.to_string(),
    };
    modified_utf7(&local)
}

/// RFC 3501 5.1.3: printable ASCII stands for itself (`&` as `&-`); any other run of
/// characters is UTF-16BE in base64 with `,` for `/`, between `&` and `-`.
pub(crate) fn modified_utf7(name: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::GeneralPurpose::new(&base64::alphabet::IMAP_MUTF7, base64::engine::general_purpose::NO_PAD);
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if !run.is_empty() {
            let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&engine.encode(bytes));
            out.push('-');
            run.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Whether a plain (unencrypted) connection may go to `host`: only to this machine, where the
/// password never crosses a network.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The SASL XOAUTH2 initial response (before base64, which async-imap adds).
pub(crate) fn xoauth2_payload(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_fold_runs_and_sort() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[u32::MAX, u32::MAX - 1]), format!("{}:{}", u32::MAX - 1, u32::MAX));
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn folders_follow_the_server_delimiter() {
        assert_eq!(server_folder("Haven/Filed", Some(".")), "Haven.Filed");
        assert_eq!(server_folder("Haven/Filed", Some("/")), "Haven/Filed");
        assert_eq!(server_folder("Haven/Filed", None), "Haven/Filed");
    }

    #[test]
    fn folder_names_use_modified_utf7() {
        // RFC 3501's own example, and the cases that trip encoders up.
        assert_eq!(modified_utf7("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(modified_utf7("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(modified_utf7("Classé"), "Class&AOk-");
        assert_eq!(modified_utf7("INBOX"), "INBOX");
        assert_eq!(modified_utf7("😀"), "&2D3eAA-");
        assert_eq!(server_folder("Haven/Classé", Some(".")), "Haven.Class&AOk-");
    }

    #[test]
    fn only_loopback_hosts_count_as_local() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.3.4.5", "::1", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["imap.example.org", "10.0.0.1", "localhost.example.org", "", "::2"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn xoauth2_payload_has_the_sasl_shape() {
        assert_eq!(xoauth2_payload("u@x", "t0k"), "user=u@x\x01auth=Bearer t0k\x01\x01");
    }
}
