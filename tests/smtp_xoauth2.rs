//! Alerts through Microsoft 365 or Google: SMTP with SASL XOAUTH2 against a real aiosmtpd that
//! takes nothing else (tests/support/smtp_xoauth2.py). The token comes from a file, is read
//! again when the server rejects it, and pooled connections mean a burst of alerts logs in once.

mod support;

use haven::outbox::smtp::SmtpSender;
use haven::outbox::{Security, SmtpSettings};
use haven::source::imap::TokenSource;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, school_fixtures, wait_for};
use support::smtp::{SmtpServer, free_port, header};

const USER: &str = "safeguarding@school.example";

fn message(n: u32) -> lettre::Message {
    lettre::Message::builder()
        .from(USER.parse().unwrap())
        .to("dsl@school.example".parse().unwrap())
        .subject(format!("test {n}"))
        .body(format!("body {n}\r\n"))
        .unwrap()
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_logs_in_once_and_a_rejected_token_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let (server_tokens, haven_token) = (dir.path().join("valid"), dir.path().join("token"));
    write(&server_tokens, "token-A\n");
    write(&haven_token, "token-A\n");
    let port = free_port();
    let server = SmtpServer::xoauth2_on(port, &server_tokens);
    let sender = SmtpSender::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        username: Some(USER.into()),
        password: None,
        xoauth2_token: Some(TokenSource::File(haven_token.clone())),
    })
    .unwrap();
    for n in 0..10 {
        sender.send(message(n)).await.unwrap_or_else(|e| panic!("send {n}: {e:?}"));
    }
    assert_eq!(server.messages().len(), 10);
    // A connection goes back to the pool a moment after its send, so a send right behind it
    // may open a second one; never one per alert.
    let logins = server.auth_log();
    eprintln!("10 alerts sent back to back: {} logins", logins.len());
    assert!(logins.iter().all(|l| *l == format!("ok {USER} token-A")), "{logins:?}");
    assert!(logins.len() <= 3, "ten alerts, {} logins: not pooled", logins.len());

    // The token expires: the server now takes only token-B, which the refresher has written.
    // The pooled connection is gone with the old server; the new login with token-A is
    // refused, Haven reads the file again and the alert goes with token-B at once.
    drop(server);
    write(&server_tokens, "token-B\n");
    write(&haven_token, "token-B\n");
    let server = SmtpServer::xoauth2_on(port, &server_tokens);
    sender.send(message(3)).await.unwrap_or_else(|e| panic!("send after refresh: {e:?}"));
    assert_eq!(server.auth_log(), vec![format!("rejected {USER} token-A"), format!("ok {USER} token-B")]);
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(header(&got[0], "X-Auth-Token").as_deref(), Some("token-B"));
    assert_eq!(header(&got[0], "Subject").as_deref(), Some("test 3"));
}

/// Points the installation's outbox at the XOAUTH2 server with a token file.
fn use_xoauth2(env: &HavenEnv, token: &str) {
    write(&env.path("secrets/smtp-token"), &format!("{token}\n"));
    let config = std::fs::read_to_string(&env.config).unwrap();
    assert!(config.contains("security = \"plain\"\n"), "the test config changed shape");
    let config = config.replacen(
        "security = \"plain\"\n",
        &format!("security = \"plain\"\nusername = \"{USER}\"\nauth = \"xoauth2\"\ntoken_file = \"secrets/smtp-token\"\n"),
        1,
    );
    write(&env.config, &config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sends_alerts_with_xoauth2_and_check_reports_the_login() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let server_tokens = dir.path().join("valid");
    write(&server_tokens, "token-A\n");
    let port = free_port();
    let server = SmtpServer::xoauth2_on(port, &server_tokens);
    let env = HavenEnv::with_smtp(&db.url, "", port);

    use_xoauth2(&env, "token-expired");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let smtp: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("FAIL smtp")).collect();
    assert!(smtp.len() == 1 && smtp[0].contains("535"), "{}", r.stdout);
    assert!(!r.stdout.contains("token-expired"), "the token must not be printed:\n{}", r.stdout);

    write(&env.path("secrets/smtp-token"), "token-A\n");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("ok   smtp     authenticated to 127.0.0.1:{port} as {USER}")), "{}", r.stdout);

    // The refused check read the token twice (a rejected token is read again), then passed.
    let checks = server.auth_log();
    assert_eq!(checks.len(), 3, "{checks:?}");

    env.import_school();
    let daemon = env.start();
    let raw = std::fs::read(school_fixtures().join("mail/forward-contact.eml")).unwrap();
    env.deliver("forward.eml", &raw);
    let got = wait_for("an alert through XOAUTH2", Duration::from_secs(30), || {
        let got = server.messages();
        if got.is_empty() { Err(format!("auth log {:?}\n{}", server.auth_log(), daemon.log())) } else { Ok(got) }
    });
    assert_eq!(header(&got[0], "X-Auth-Token").as_deref(), Some("token-A"));
    // A second report a few seconds later is another outbox pass: its alerts go over the
    // connection the first pass logged in on (the worker keeps one pooled client).
    let first = got.len();
    std::thread::sleep(Duration::from_secs(2));
    let second = String::from_utf8(raw).unwrap().replace("fwd-contact-1@", "fwd-contact-2@");
    env.deliver("forward-2.eml", second.as_bytes());
    wait_for("the second report's alerts", Duration::from_secs(30), || {
        let n = server.messages().len();
        if n > first { Ok(()) } else { Err(format!("{n} messages\n{}", daemon.log())) }
    });
    let logins = server.auth_log().split_off(checks.len());
    assert_eq!(logins, vec![format!("ok {USER} token-A")], "two outbox passes, one login");
    daemon.stop();
    db.cleanup().await;
}

#[test]
fn xoauth2_settings_are_checked_when_the_config_loads() {
    let base = std::path::Path::new("/etc/haven");
    let config = |smtp: &str| {
        format!(
            "[school]\nname = \"S\"\nintake_address = \"s@school.example\"\n[database]\nurl = \"sqlite://h.db\"\n\
             [storage]\ndir = \"d\"\nkey_file = \"k\"\n[intake]\nsource = \"maildir\"\n[intake.maildir]\npath = \"m\"\n\
             [smtp]\ntransport = \"smtp\"\nhost = \"smtp.office365.com\"\nfrom = \"s@school.example\"\n{smtp}\n[rules]\ndir = \"r\"\n"
        )
    };
    let good =
        haven::config::Config::parse(&config(&format!("username = \"{USER}\"\nauth = \"xoauth2\"\ntoken_command = \"get-token\"")), base);
    assert!(good.is_ok(), "{:?}", good.err());
    let errors = |smtp: &str| haven::config::Config::parse(&config(smtp), base).err().unwrap_or_default().join("\n");
    assert!(errors("auth = \"xoauth2\"\nusername = \"u\"").contains("needs exactly one of token_file, token_command"));
    assert!(errors("auth = \"xoauth2\"\ntoken_file = \"t\"").contains("smtp.username: missing"));
    assert!(errors("auth = \"oauth\"").contains("smtp.auth: expected \"password\" or \"xoauth2\", found \"oauth\""));
    assert!(errors("token_file = \"t\"").contains("need auth = \"xoauth2\""));
}
