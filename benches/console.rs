//! The console under load: a database of 100,000 incidents (HAVEN_BENCH_INCIDENTS), 500 of
//! them on one pupil (HAVEN_BENCH_PUPIL_INCIDENTS), filed through the store's batch filing
//! API; the real `haven run` serving the console on loopback; a member of the DSL team signed
//! in over HTTP (the emailed link read from a real SMTP server, the TOTP code computed); then
//! `wrk` (Debian package wrk) with that session's cookie against the pupil's chronology page
//! and the DSL home page. Prints requests per second, median and p99 latency for each, on
//! SQLite and PostgreSQL (target p99 < 50 ms).
//!
//!     cargo bench --bench console           # HAVEN_BENCH_INCIDENTS=10000 for a quicker run
//!     HAVEN_BENCH_BACKEND=sqlite cargo bench --bench console

#[path = "../tests/support/db.rs"]
#[allow(dead_code)]
mod db;
#[path = "../tests/support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
#[path = "../tests/support/haven.rs"]
#[allow(dead_code)]
mod haven_env;
#[path = "../tests/support/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use chrono::{Duration, TimeZone, Utc};
use db::{Backend, TestDb};
use haven::pipeline::fields;
use haven::seal::Sealer;
use haven::store::{ActionRecord, IncidentRecord, MessageRecord, MessageState, PupilLink, ToRecord};
use haven_env::{HavenEnv, wait_for};
use smtp::{SmtpServer, free_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

/// Incidents per filing transaction.
const BATCH: usize = 1000;
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// The pupil whose chronology is read (Jane, in the test school).
const UPN: &str = "A100000000001";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Files `total` incidents, `on_pupil` of them about `UPN` and the rest spread over the other
/// pupils; one in 500 still waits for an outcome (the home page lists those).
async fn fill(env: &HavenEnv, total: usize, on_pupil: usize) {
    let config = haven::config::Config::load(&env.config).expect("config");
    let store = haven::cli::open_store(&config).await.expect("store");
    let sealer = Sealer::from_key_file(&config.storage.key_file).expect("key");
    let dir = store.load_directory(&sealer).await.expect("directory");
    let jane = dir.pupils.iter().find(|p| p.upn == UPN).expect("Jane").id;
    let others: Vec<i64> = dir.pupils.iter().filter(|p| p.id != jane).map(|p| p.id).collect();
    let dsl = dir.staff.iter().find(|s| s.is_dsl_team()).expect("a DSL").id;
    let base = Utc.with_ymd_and_hms(2025, 9, 1, 8, 0, 0).unwrap();
    let body = sealer
        .seal_text(fields::BODY_TEXT, "Mum rang to say the older girls on the bus keep taking lunch money. Spoke to the pupil at break.");
    let started = std::time::Instant::now();
    for first in (0..total).step_by(BATCH) {
        let range = first..(first + BATCH).min(total);
        let raws: Vec<Vec<u8>> = range.clone().map(|i| format!("bench message {i}").into_bytes()).collect();
        let messages: Vec<MessageRecord> = range
            .clone()
            .map(|i| {
                let at = base + Duration::minutes(i as i64);
                MessageRecord {
                    sha256: Some(format!("{:064x}", i + 1)),
                    message_id: Some(format!("bench-{i}@school.example")),
                    source: "file",
                    origin: format!("bench/{i}"),
                    imap_uid: None,
                    received: at,
                    size: 40,
                    state: MessageState::Filed,
                    reason: "filed under Pastoral issue".into(),
                    duplicate_of: None,
                    content_sha256: Some(format!("{:064x}", i + 1)),
                }
            })
            .collect();
        let incidents: Vec<IncidentRecord> = range
            .clone()
            .map(|i| {
                let at = base + Duration::minutes(i as i64);
                // Jane's incidents are spread evenly through the whole history.
                let pupil = if i % (total / on_pupil.max(1)).max(1) == 0 { jane } else { others[i % others.len()] };
                IncidentRecord {
                    occurred: at,
                    recorded: at,
                    recorded_by: Some(dsl),
                    record_kind: "email".into(),
                    category: "Pastoral issue".into(),
                    priority: "normal".into(),
                    visibility: "dsl-team".into(),
                    note: None,
                    original_from: None,
                    original_name: None,
                    original_subject: None,
                    body_text: body.clone(),
                    body_html: None,
                    pupils: vec![PupilLink { pupil_id: pupil, role: "subject".into(), how: "bench".into() }],
                    attachments: Vec::new(),
                    outbox: Vec::new(),
                    backfilled: false,
                    ai_read: false,
                    action: (i % 500 == 0).then(|| ActionRecord { owner: Some(dsl), due: at + Duration::days(1), rungs: Vec::new() }),
                    follows: None,
                    date_note: None,
                }
            })
            .collect();
        let batch: Vec<ToRecord<'_>> = raws
            .iter()
            .zip(&messages)
            .zip(&incidents)
            .map(|((raw, message), incident)| ToRecord { raw, message, incident: Some(incident), settles: None, question: None })
            .collect();
        let mut tx = store.begin().await.expect("begin");
        tx.record_messages(&batch, "bench").await.expect("file a batch");
        tx.commit().await.expect("commit");
    }
    println!("  filed {total} incidents ({on_pupil} on one pupil) in {:.1} s", started.elapsed().as_secs_f64());
    store.close().await;
}

/// One HTTP/1.1 request on loopback; the whole response as text.
fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of cookie `name` set by `response`.
fn set_cookie(response: &str, name: &str) -> String {
    let prefix = format!("set-cookie: {name}=");
    response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .and_then(|l| l[prefix.len()..].split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {response}"))
        .to_string()
}

/// The value of the form field `name` in `html`.
fn field(html: &str, marker: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("{marker} not in {html}")) + marker.len();
    html[at..].split(['"', '<']).next().unwrap_or_default().to_string()
}

fn post(port: u16, path: &str, cookies: &str, body: &str) -> String {
    http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookies}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Signs the DSL in as a browser would and returns the session cookie's value.
fn sign_in(port: u16, smtp: &SmtpServer) -> String {
    let page = http(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let browser = set_cookie(&page, "haven_browser");
    let csrf = field(&page, "name=\"csrf\" value=\"");
    let cookies = format!("haven_browser={browser}");
    post(port, "/sign-in", &cookies, &format!("csrf={csrf}&email=dsl%40school.example"));
    let link = wait_for("the sign-in email", WAIT, || {
        smtp.messages()
            .iter()
            .filter_map(|raw| Some(mail_parser::MessageParser::default().parse(raw.as_bytes())?.body_text(0)?.into_owned()))
            .find_map(|body| body.find("/sign-in/").map(|i| body[i..].split_whitespace().next().unwrap_or_default().to_string()))
            .ok_or_else(|| "no email yet".to_string())
    });
    let followed = http(port, &format!("GET {link} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookies}\r\nConnection: close\r\n\r\n"));
    let session = set_cookie(&followed, "haven_session");
    let cookies = format!("{cookies}; haven_session={session}");
    let totp = http(port, &format!("GET /totp HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookies}\r\nConnection: close\r\n\r\n"));
    let secret = field(&totp, "id=\"secret\">");
    let csrf = field(&totp, "name=\"csrf\" value=\"");
    let key = totp_rs::Secret::try_from_base32(&secret).expect("a base32 key");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let code = totp_rs::Builder::new().with_secret(key).build().expect("totp").generate(now);
    let done = post(port, "/totp", &cookies, &format!("csrf={csrf}&code={code}"));
    assert!(done.contains("Your recovery codes"), "signed in: {done}");
    session
}

/// `wrk` for `seconds` against `path`; (requests/s, median ms, p99 ms).
fn wrk(port: u16, cookie: &str, path: &str, seconds: u32) -> (f64, f64, f64) {
    let out = Command::new("wrk")
        // wrk's own 2 s timeout would drop the slow requests from the figures: wait 60 s.
        .args(["-t2", "-c4", &format!("-d{seconds}s"), "--timeout", "60s", "--latency", "-H", &format!("Cookie: haven_session={cookie}")])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("wrk: install the Debian package wrk (tests/run.sh does it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let ms = |label: &str| {
        let line = text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("no {label} in {text}"));
        let v = line.split_whitespace().nth(1).unwrap_or_default();
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = n.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            _ => n,
        }
    };
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let failed = text.lines().find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    assert!(failed.is_none(), "every request must succeed in time: {text}");
    (rps, ms("50%"), ms("99%"))
}

async fn run(backend: Backend, label: &str, total: usize, on_pupil: usize, seconds: u32) {
    let db = TestDb::new(backend).await;
    let smtp = SmtpServer::start();
    let env = HavenEnv::with_smtp(&db.url, "", smtp.port);
    env.import_school();
    fill(&env, total, on_pupil).await;
    let port = free_port();
    let mut f = std::fs::OpenOptions::new().append(true).open(&env.config).expect("config");
    writeln!(f, "\n[console]\nlisten = \"127.0.0.1:{port}\"").expect("write config");
    let mut daemon = env.start();
    wait_for("the console", WAIT, || {
        daemon.assert_running();
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())
    });
    let cookie = sign_in(port, &smtp);
    for (page, path) in
        [(format!("chronology ({on_pupil} incidents)"), format!("/pupils/{UPN}")), ("DSL home".to_string(), "/home".to_string())]
    {
        let (rps, median, p99) = wrk(port, &cookie, &path, seconds);
        println!("  {label:<10} {page:<28} {rps:>8.0} req/s   median {median:>7.2} ms   p99 {p99:>7.2} ms");
    }
    daemon.stop();
    db.cleanup().await;
}

fn main() {
    let total = env_number("HAVEN_BENCH_INCIDENTS", 100_000);
    let on_pupil = env_number("HAVEN_BENCH_PUPIL_INCIDENTS", 500).min(total);
    let seconds = env_number("HAVEN_BENCH_SECONDS", 10) as u32;
    let which = std::env::var("HAVEN_BENCH_BACKEND").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        println!("console: {total} incidents, wrk -t2 -c4 for {seconds} s per page");
        if which.is_empty() || which == "sqlite" {
            run(Backend::Sqlite, "SQLite", total, on_pupil, seconds).await;
        }
        if which.is_empty() || which == "postgres" {
            run(Backend::Postgres, "PostgreSQL", total, on_pupil, seconds).await;
        }
    });
}
