//! The daemon records its health in the database and `haven status` shows it: a refused IMAP
//! login is "IMAP login failing since HH:MM: …", the fixed password "IMAP connected since
//! HH:MM", a clean stop "stopped". Runs the real binary against a real Dovecot, on both
//! databases.

mod support;

use std::time::Duration;
use support::db::{Backend, TestDb};
use support::dovecot::{Dovecot, PASSWORD};
use support::haven::{HavenEnv, wait_for};

/// The `health.intake` object of `haven status --json`.
fn intake_health(env: &HavenEnv) -> serde_json::Value {
    env.status()["health"]["intake"].clone()
}

async fn a_refused_login_shows_in_status_until_the_password_is_fixed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dovecot = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    env.import_school();

    let before = env.haven(&["status"]);
    assert!(before.stdout.contains("no health recorded: the daemon has not run"), "{}", before.stdout);

    env.use_imap(dovecot.port, "wrong", "");
    let mut daemon = env.start();
    let failing = wait_for("the intake recorded as failing", Duration::from_secs(30), || {
        daemon.assert_running();
        let h = intake_health(&env);
        (h["state"] == "failing").then_some(h.clone()).ok_or_else(|| h.to_string())
    });
    assert_eq!(failing["what"], "IMAP login", "{failing}");
    let error = failing["last_error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("refused the login"), "{failing}");
    let text = env.haven(&["status"]).stdout;
    let line = text.lines().find(|l| l.starts_with("intake: ")).unwrap_or_default().to_string();
    assert!(line.starts_with("intake: IMAP login failing since "), "{text}");
    assert!(line.contains(&format!(": {error}")), "the error is shown: {text}");
    // Written on change, not on every retry: the failing-since time stays put.
    let since = failing["since"].clone();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(intake_health(&env)["since"], since, "failing since the first refusal");
    daemon.stop();
    assert_eq!(intake_health(&env)["state"], "stopped", "a clean stop is recorded");

    // The technician fixes the password and restarts: connected, and the last error kept.
    std::fs::write(env.path("secrets/imap-password"), format!("{PASSWORD}\n")).unwrap();
    let mut daemon = env.start();
    let connected = wait_for("the intake recorded as connected", Duration::from_secs(30), || {
        daemon.assert_running();
        let h = intake_health(&env);
        (h["state"] == "ok").then_some(h.clone()).ok_or_else(|| h.to_string())
    });
    assert_eq!(connected["what"], "IMAP connected", "{connected}");
    assert_eq!(connected["last_error"].as_str(), Some(error.as_str()), "the last error is kept: {connected}");
    assert_eq!(connected["backlog"], 0, "{connected}");
    let text = env.haven(&["status"]).stdout;
    assert!(text.lines().any(|l| l.starts_with("intake: IMAP connected since ")), "{text}");
    let json = env.status();
    assert_eq!(json["health"]["outbox"]["state"], "ok", "{json}");
    assert_eq!(json["health"]["scheduler"]["state"], "ok", "{json}");
    daemon.stop();
    db.cleanup().await;
}

backend_tests!(a_refused_login_shows_in_status_until_the_password_is_fixed);
