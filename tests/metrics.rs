//! `/metrics` and `/healthz` of a real `haven run` fetching from a real Dovecot, scraped over
//! HTTP as Prometheus would: the counts move while a batch is filed, the filing latency
//! histogram counts every message, and `/healthz` turns 503 once a refused IMAP login has
//! lasted longer than `healthz_grace`. Both databases.

mod support;

use std::io::{Read, Write};
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::dovecot::{Dovecot, PASSWORD};
use support::haven::{HavenEnv, wait_for};
use support::smtp::free_port;

const WAIT: Duration = Duration::from_secs(60);

/// `GET path` on 127.0.0.1:port: (status code, body).
fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).map_err(|e| format!("read: {e}"))?;
    let (head, body) = reply.split_once("\r\n\r\n").ok_or_else(|| format!("no header end in {reply:?}"))?;
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((code, body.to_string()))
}

/// The value of the sample named exactly `series` (with its labels) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
}

/// A scrape of `/metrics` that must succeed.
fn scrape(port: u16) -> Result<String, String> {
    match get(port, "/metrics")? {
        (200, body) => Ok(body),
        (code, body) => Err(format!("/metrics answered {code}: {body}")),
    }
}

/// `n` distinct notes about a pupil of the test school, each filed as its own incident that
/// alerts the DSL team.
fn notes(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\n\
                 Subject: Note {i}\r\nDate: Wed, 11 Nov 2026 09:30:00 +0000\r\n\
                 Message-ID: <metrics-{i}@mail.school.example>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\nPupil: Oliver Brown\r\nCategory: DSL Team Access Only\r\n\r\nObservation number {i}.\r\n"
            )
            .into_bytes()
        })
        .collect()
}

fn metrics_config(port: u16, grace: &str) -> String {
    format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\nhealthz_grace = \"{grace}\"\n")
}

async fn metrics_move_during_a_filing_run(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dovecot = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let port = free_port();
    env.use_imap(dovecot.port, PASSWORD, &metrics_config(port, "10m"));
    let mut daemon = env.start();
    let first = wait_for("a first scrape", WAIT, || {
        daemon.assert_running();
        scrape(port)
    });
    for (series, want) in [
        ("haven_messages{state=\"filed\"}", 0.0),
        ("haven_filing_latency_seconds_count", 0.0),
        ("haven_outbox_emails{state=\"pending\"}", 0.0),
        ("haven_outbox_emails{state=\"dead\"}", 0.0),
        ("haven_outcomes{state=\"overdue\"}", 0.0),
        ("haven_imap_reconnects_total", 0.0),
        ("haven_intake_failing", 0.0),
    ] {
        assert_eq!(sample(&first, series), Some(want), "{series} in:\n{first}");
    }
    assert_eq!(get(port, "/healthz").unwrap(), (200, "ok\n".to_string()));

    // The mail arrives in four deliveries while the daemon runs: after each, the filed count
    // and the latency histogram's count have moved by exactly that delivery.
    const ROUND: usize = 10;
    let all = notes(4 * ROUND);
    let mut last = first;
    for (round, delivery) in all.chunks(ROUND).enumerate() {
        dovecot.append_all(delivery).await;
        let want = ((round + 1) * ROUND) as f64;
        let text = wait_for("the delivery filed in /metrics", WAIT, || {
            daemon.assert_running();
            let text = scrape(port)?;
            let filed = sample(&text, "haven_messages{state=\"filed\"}").ok_or_else(|| text.clone())?;
            // The latency is observed just after the commit the count reads.
            let timed = sample(&text, "haven_filing_latency_seconds_count").unwrap_or_default();
            if filed == want && timed == want { Ok(text) } else { Err(format!("filed {filed}, timed {timed}, of {want}")) }
        });
        let before = sample(&last, "haven_filing_latency_seconds_count").unwrap_or_default();
        assert!(before < want, "the histogram moved: {before} before, {want} now");
        last = text;
    }
    let n = (4 * ROUND) as f64;
    let sum = sample(&last, "haven_filing_latency_seconds_sum").unwrap_or_default();
    assert!(sum > 0.0, "filing took some time: {sum}");
    assert_eq!(sample(&last, "haven_filing_latency_seconds_bucket{le=\"+Inf\"}"), Some(n), "{last}");
    let alerts = wait_for("the alerts sent", WAIT, || {
        let text = scrape(port)?;
        let sent = sample(&text, "haven_outbox_emails{state=\"sent\"}").unwrap_or_default();
        let pending = sample(&text, "haven_outbox_emails{state=\"pending\"}").unwrap_or(1.0);
        if sent > 0.0 && pending == 0.0 { Ok(sent) } else { Err(text) }
    });
    assert!(alerts >= n, "each incident alerted the DSL: {alerts}");
    assert_eq!(sample(&scrape(port).unwrap(), "haven_outcomes{state=\"overdue\"}"), Some(0.0));
    daemon.stop();
    db.cleanup().await;
}

async fn healthz_fails_once_the_intake_has_failed_longer_than_the_grace(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dovecot = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    let port = free_port();
    env.use_imap(dovecot.port, "wrong", &metrics_config(port, "3s"));
    let mut daemon = env.start();
    let body = wait_for("/healthz to answer 503", WAIT, || {
        daemon.assert_running();
        match get(port, "/healthz")? {
            (503, body) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(body.starts_with("IMAP login failing since ") && body.contains("refused the login"), "{body}");
    let text = wait_for("a reconnect counted", WAIT, || {
        let text = scrape(port)?;
        if sample(&text, "haven_imap_reconnects_total").unwrap_or_default() >= 1.0 { Ok(text) } else { Err(text) }
    });
    assert_eq!(sample(&text, "haven_intake_failing"), Some(1.0), "{text}");
    daemon.stop();

    // Not loopback: refused when the config is read, with the way out named.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, config.replace(&format!("127.0.0.1:{port}"), &format!("0.0.0.0:{port}"))).unwrap();
    let r = env.haven(&["run"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("is not a loopback address") && r.stderr.contains("metrics.allow_remote = true"), "{}", r.stderr);
    db.cleanup().await;
}

backend_tests!(metrics_move_during_a_filing_run, healthz_fails_once_the_intake_has_failed_longer_than_the_grace);
