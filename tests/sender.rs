//! Forged senders, end to end through the real `haven` binary on SQLite and on PostgreSQL
//! (issue 17, defects 3 and 4): a "pass" smuggled into the trusted server's
//! Authentication-Results, or a From that is not the one the server authenticated, is
//! quarantined with its reason, which `haven messages` shows; a genuine pass is still filed.

mod support;

use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, school_fixtures};

const FROM: &str = "From: Dana Lead <dsl@school.example>\n";

/// The test school's note from the DSL about Amira, as a mail server delivers it with `ar`
/// (an Authentication-Results value, or none) on top and its From header replaced by `from`.
fn variant(n: usize, ar: Option<&str>, from: &str) -> String {
    let raw = std::fs::read_to_string(school_fixtures().join("mail/spoofed.eml")).unwrap();
    assert!(raw.starts_with(FROM), "spoofed.eml starts with the DSL's From");
    let top = ar.map(|v| format!("Authentication-Results: {v}\n")).unwrap_or_default();
    format!("{top}{from}{}", &raw[FROM.len()..]).replace("spoof-1@", &format!("sender-{n}@"))
}

/// Ingests one message and returns the state and reason `haven messages --json` shows for it.
fn ingest(env: &HavenEnv, n: usize, raw: &str) -> (String, String) {
    let p = env.path(&format!("sender-{n}.eml"));
    std::fs::write(&p, raw).unwrap();
    let r = env.haven(&["ingest", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    let r = env.haven(&["messages", "--json"]);
    assert_eq!(r.code, 0, "messages: {}", r.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    let newest = rows.iter().max_by_key(|m| m["id"].as_i64()).expect("a recorded message");
    (newest["state"].as_str().unwrap().to_string(), newest["reason"].as_str().unwrap_or("").to_string())
}

/// With `trusted_authserv_id` set: each forgery is quarantined with a reason that says what
/// was wrong, nothing of theirs is filed, and a message with a genuine pass is filed.
async fn forged_senders_are_quarantined_and_a_genuine_pass_filed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, r#"trusted_authserv_id = "mx.school.example""#);
    env.import_school();

    let cases: [(&str, Option<&str>, &str, &str); 7] = [
        (
            "the server said dmarc=fail; a quoted envelope sender carries ';dmarc=pass'",
            Some(r#"mx.school.example; dmarc=fail header.from=school.example; spf=pass smtp.mailfrom="x;dmarc=pass x"@evil.example"#),
            FROM,
            "no DMARC pass or aligned DKIM pass",
        ),
        (
            "an unterminated quote in the trusted header",
            Some(r#"mx.school.example; dmarc=pass header.from=school.example; spf=pass smtp.mailfrom="x@evil.example"#),
            FROM,
            "could not be read (spf: smtp.mailfrom: unterminated quoted string opened at character 82), so it shows no pass",
        ),
        (
            "two From headers; the server vouched for the attacker's",
            Some("mx.school.example; dmarc=pass header.from=evil.example"),
            "From: Dana Lead <dsl@school.example>\nFrom: Mallory <mallory@evil.example>\n",
            "the message has 2 From headers",
        ),
        (
            "a From group",
            Some("mx.school.example; dmarc=pass header.from=evil.example"),
            "From: Staff: dsl@school.example, mallory@evil.example;\n",
            "the From header is a group",
        ),
        (
            "a From naming two addresses",
            Some("mx.school.example; dmarc=pass header.from=evil.example"),
            "From: dsl@school.example, mallory@evil.example\n",
            "the From header names 2 addresses",
        ),
        (
            "a From whose domain is not the header.from the pass was for",
            Some("mx.school.example; dkim=pass header.d=school.example; dmarc=pass header.from=evil.example"),
            FROM,
            "DMARC result is for header.from=evil.example, not for the From domain school.example",
        ),
        (
            "a genuine pass",
            Some(
                "mx.school.example 1; dkim=pass (2048-bit key) header.d=school.example; spf=pass smtp.mailfrom=\"dana lead\"@school.example; dmarc=pass (p=reject) header.from=school.example",
            ),
            FROM,
            "",
        ),
    ];
    // Every case is tried before any is judged, so a failure lists all that went wrong.
    let mut wrong = Vec::new();
    for (n, (what, ar, from, reason)) in cases.iter().enumerate() {
        let (state, got) = ingest(&env, n, &variant(n, *ar, from));
        let ok = if reason.is_empty() { state == "filed" } else { state == "quarantined" && got.contains(reason) };
        if !ok {
            wrong.push(format!("{what}: {state} ({got}); expected {}", if reason.is_empty() { "filed" } else { reason }));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    let s = env.status();
    assert_eq!(s["messages"]["quarantined"], 6, "{s}");
    assert_eq!(s["messages"]["filed"], 1, "{s}");
    assert_eq!(s["incidents"], 1, "only the genuine message files an incident: {s}");

    // The technician's list says why, one line each.
    let r = env.haven(&["messages", "--state", "quarantined"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("the From header is a group: Haven files only a message with one sender"), "{}", r.stdout);
    db.cleanup().await;
}

/// With sender authentication off, a From that names several senders is still refused:
/// Haven would otherwise file it as whichever came first.
async fn several_senders_are_refused_with_authentication_off(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let two = "From: Dana Lead <dsl@school.example>\nFrom: Mallory <mallory@evil.example>\n";
    let (state, reason) = ingest(&env, 1, &variant(1, None, two));
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("quarantined", "the message has 2 From headers: Haven files only a message with one sender")
    );
    let (state, reason) = ingest(&env, 2, &variant(2, None, FROM));
    assert_eq!(state, "filed", "one sender, authentication off: {reason}");
    db.cleanup().await;
}

backend_tests!(forged_senders_are_quarantined_and_a_genuine_pass_filed, several_senders_are_refused_with_authentication_off,);
