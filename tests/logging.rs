//! What a technician can see without being let into the records: the log, and the wire to
//! PostgreSQL.
//!
//! The log: the example school's messages (examples/eaton, HTML-only forward included, plus
//! the test school's messages) filed with `haven ingest` and by `haven run` (from a Maildir and
//! from IMAP) under `RUST_LOG=trace`, on both engines. Nothing in stderr may name a pupil, a parent or carer, an
//! address from the directory (staff addresses included: they are not pupil data, but the log
//! promise says no addresses), a subject or a line of any message. `HAVEN_LOG_THIRD_PARTY=1`
//! lifts the cap on other crates' logs, says so, and then the same check does find pupil data
//! (which shows the check can see a leak).
//!
//! The wire: Haven reaches the local PostgreSQL (it has `ssl = on`) over TLS.

mod support;

use haven::store::Store;
use regex::Regex;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::dovecot::{self, Dovecot};
use support::eaton::{eaton, eaton_env, emails_in};
use support::haven::{HavenEnv, school_fixtures, wait_for};

const WAIT: Duration = Duration::from_secs(60);

/// Every message the test files: the example school's eighteen, then the test school's.
fn messages() -> Vec<PathBuf> {
    let mut all = Vec::new();
    for dir in [eaton().join("mail/intake/new"), school_fixtures().join("mail")] {
        all.extend(emails_in(&dir));
    }
    assert!(all.len() >= 21, "the example school's messages: {all:?}");
    all
}

/// One thing the log must not hold, and what it is (for the failure message).
struct Needle {
    what: String,
    pattern: Regex,
}

impl Needle {
    /// A name: a whole word, case as written ("Ruby" but not "ruby", "Leo" but not "Leopard").
    fn word(what: &str, text: &str) -> Needle {
        Needle { what: format!("{what} {text:?}"), pattern: Regex::new(&format!(r"\b{}\b", regex::escape(text))).unwrap() }
    }

    /// An address, a subject or a line of text: anywhere, any case.
    fn text(what: &str, text: &str) -> Needle {
        Needle { what: format!("{what} {text:?}"), pattern: Regex::new(&format!("(?i){}", regex::escape(text))).unwrap() }
    }
}

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = r.headers().unwrap().clone();
    let mut rows = vec![headers];
    rows.extend(r.records().map(|x| x.unwrap()));
    rows
}

/// The cells of `path` whose header (lower-cased) contains one of `columns`.
fn cells(path: &Path, columns: &[&str]) -> Vec<String> {
    let rows = csv_rows(path);
    let wanted: Vec<usize> =
        rows[0].iter().enumerate().filter(|(_, h)| columns.iter().any(|c| h.to_lowercase().contains(c))).map(|(i, _)| i).collect();
    assert!(!wanted.is_empty(), "{}: no column like {columns:?}", path.display());
    rows[1..]
        .iter()
        .flat_map(|row| {
            wanted.iter().filter_map(|&i| row.get(i)).map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect::<Vec<_>>()
        })
        .collect()
}

/// Everything of the example school and its messages that the log must not hold.
fn needles() -> Vec<Needle> {
    let mut out = Vec::new();
    for dir in [eaton().join("directory"), school_fixtures()] {
        for name in cells(&dir.join("pupils.csv"), &["forename", "surname", "first_name", "last_name", "preferred"]) {
            out.push(Needle::word("pupil name", &name));
        }
        for c in cells(&dir.join("contacts.csv"), &["email"]) {
            out.push(Needle::text("contact address", &c));
        }
        for c in cells(&dir.join("contacts.csv"), &["name"]) {
            for part in c.split_whitespace() {
                out.push(Needle::word("contact name", part));
            }
        }
        for s in cells(&dir.join("staff.csv"), &["email"]) {
            out.push(Needle::text("staff address", &s));
        }
    }
    // What Haven reads of each message: subjects, the text (HTML converted), the note, the
    // forwarded message's body.
    for file in messages() {
        let r = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["inspect", "--json"])
            .arg(&file)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(r.status.success(), "inspect {}: {}", file.display(), String::from_utf8_lossy(&r.stderr));
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        let mut texts: Vec<&serde_json::Value> = vec![&v["subject"], &v["text"], &v["note"], &v["reply_text"]];
        let chain = v["forward_chain"].as_array().into_iter().flatten().chain(v["forwarded"].as_object().map(|_| &v["forwarded"]));
        for f in chain {
            texts.push(&f["subject"]);
            texts.push(&f["body"]);
        }
        for t in texts.into_iter().filter_map(|t| t.as_str()) {
            for line in t.lines() {
                let line = line.trim_start_matches(['>', ' ']).trim();
                if line.chars().count() >= 20 {
                    out.push(Needle::text(&format!("line of {}", file.file_name().unwrap().to_string_lossy()), line));
                }
            }
        }
        if let Some(s) = v["subject"].as_str().filter(|s| s.chars().count() >= 8) {
            out.push(Needle::text("subject", s));
        }
    }
    dedup(out)
}

/// [`needles`] without repeats (a forward's body is also the message's text).
fn dedup(mut needles: Vec<Needle>) -> Vec<Needle> {
    let mut seen = std::collections::HashSet::new();
    needles.retain(|n| seen.insert(n.pattern.as_str().to_string()));
    needles
}

/// The needles found in `log`, each with the log line it was found in.
fn found_in(log: &str, needles: &[Needle]) -> Vec<String> {
    let mut found = Vec::new();
    for n in needles {
        if let Some(line) = log.lines().find(|l| n.pattern.is_match(l)) {
            let shown: String = line.chars().take(300).collect();
            found.push(format!("{} in: {shown}", n.what));
        }
    }
    found
}

fn assert_nothing_leaks(how: &str, log: &str) {
    let needles = needles();
    assert!(needles.len() > 150, "the check covers the whole school ({} needles)", needles.len());
    let found = found_in(log, &needles);
    assert!(
        found.is_empty(),
        "{how} under RUST_LOG=trace logged pupil data ({} of {} checks; {} bytes of log):\n{}",
        found.len(),
        needles.len(),
        log.len(),
        found.join("\n")
    );
}

/// The message states `haven status --json` counts, summed.
fn recorded(s: &serde_json::Value) -> u64 {
    s["messages"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum()
}

const TRACE: [(&str, &str); 2] = [("RUST_LOG", "trace"), ("HAVEN_LOG_THIRD_PARTY", "0")];

/// `haven ingest` of every message under `RUST_LOG=trace`: all recorded, nothing in the log.
async fn ingest_at_trace_logs_no_pupil_data(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    let files = messages();
    let mut args = vec!["ingest".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = env.haven_env(&args, &TRACE);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    let s = env.status();
    assert_eq!(recorded(&s), files.len() as u64, "every message recorded: {s}");
    assert!(s["messages"]["filed"].as_u64().unwrap() >= 12, "the example school's messages are filed: {s}");
    // Haven's own events still come through at every level.
    assert!(r.stderr.contains("message recorded"), "Haven's own events are logged: {}", r.stderr);
    assert_nothing_leaks("haven ingest", &r.stderr);
    db.cleanup().await;
}

/// `haven run` on the intake Maildir under `RUST_LOG=trace`: every message recorded and every
/// alert written, nothing in the log.
async fn daemon_at_trace_logs_no_pupil_data(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    let mut daemon = env.start_env(&TRACE);
    let files = messages();
    for f in &files {
        env.deliver(&f.file_name().unwrap().to_string_lossy(), &std::fs::read(f).unwrap());
    }
    wait_for("every message recorded and the outbox drained", WAIT, || {
        daemon.assert_running();
        let s = env.status();
        if recorded(&s) == files.len() as u64 && s["outbox"]["pending"] == 0 && s["outbox"]["sent"].as_u64() > Some(0) {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    let log = daemon.log();
    daemon.stop();
    assert!(log.contains("message recorded"), "Haven's own events are logged: {log}");
    assert_nothing_leaks("haven run", &log);
    db.cleanup().await;
}

/// `haven run` fetching from IMAP under `RUST_LOG=trace` (the IMAP client's trace holds every
/// byte it reads): every message recorded, nothing in the log.
async fn imap_daemon_at_trace_logs_no_pupil_data(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    let dovecot = Dovecot::start();
    let config = std::fs::read_to_string(&env.config).unwrap();
    assert!(config.contains("source = \"maildir\""), "the test config changed shape");
    std::fs::write(env.path("secrets/imap-password"), format!("{}\n", dovecot::PASSWORD)).unwrap();
    let config = config.replace("source = \"maildir\"", "source = \"imap\"")
        + &format!(
            "\n[intake.imap]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\nusername = \"{}\"\n\
             auth = \"password\"\npassword_file = \"secrets/imap-password\"\npoll_interval = \"1s\"\n",
            dovecot.port,
            dovecot::USER
        );
    std::fs::write(&env.config, config).unwrap();
    let files = messages();
    let raws: Vec<Vec<u8>> = files.iter().map(|f| crlf(&std::fs::read(f).unwrap())).collect();
    dovecot.append_all(&raws).await;

    let mut daemon = env.start_env(&TRACE);
    wait_for("every message fetched and recorded, the outbox drained", WAIT, || {
        daemon.assert_running();
        let s = env.status();
        if recorded(&s) == files.len() as u64 && s["outbox"]["pending"] == 0 { Ok(()) } else { Err(s.to_string()) }
    });
    let log = daemon.log();
    daemon.stop();
    assert!(log.contains("IMAP intake connected"), "Haven's own events are logged: {log}");
    assert_nothing_leaks("haven run on IMAP", &log);
    db.cleanup().await;
}

/// `raw` with CRLF line ends, as IMAP carries it.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The switch lifts the cap, says so loudly, and then the HTML parser's debug output does
/// hold pupil data (the check above would see a leak). A value it does not understand keeps
/// the cap and says why.
async fn the_third_party_switch_warns_and_lifts_the_cap(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    let html = eaton().join("mail/intake/new/12-outlook-html-bullying-two-pupils.eml");
    let html = html.to_str().unwrap();
    let needles = needles();

    let r = env.haven_env(&["ingest", html], &[("RUST_LOG", "trace"), ("HAVEN_LOG_THIRD_PARTY", "1")]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("WARN") && first.contains("HAVEN_LOG_THIRD_PARTY is set") && first.contains("WILL hold pupil names"),
        "the first log line warns: {first}"
    );
    let found = found_in(&r.stderr, &needles);
    assert!(
        found.iter().any(|f| f.starts_with("pupil name \"Zofia\"")) && found.iter().any(|f| f.starts_with("line of 12-")),
        "with the cap lifted, the HTML parser's trace holds the message: {found:?}"
    );

    // A value it does not understand: the cap stays (at trace, the HTML is read again as a
    // duplicate and nothing of it is logged), and the log says why.
    let r = env.haven_env(&["ingest", html], &[("RUST_LOG", "trace"), ("HAVEN_LOG_THIRD_PARTY", "maybe")]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "HAVEN_LOG_THIRD_PARTY is not understood (use 1 to lift the cap, 0 or unset to keep it); other crates' logs stay capped at warn"
        ) && r.stderr.contains("value=maybe"),
        "{}",
        r.stderr
    );
    let found = found_in(&r.stderr, &needles);
    assert!(found.is_empty(), "a switch Haven does not understand keeps the cap: {found:?}");

    // A RUST_LOG it cannot parse: logging at info, and the log says so.
    let r = env.haven_env(&["rules", "check"], &[("RUST_LOG", "haven=[[")]);
    assert_eq!(r.code, 0, "rules check: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("RUST_LOG is not understood; logging at info rust_log=haven=[["), "{}", r.stderr);
    db.cleanup().await;
}

/// `[logging] format = "json"`: `haven run` on the intake Maildir under `RUST_LOG=trace`
/// writes one JSON object per line (timestamp, level and the event's fields at the top
/// level), and the same privacy check finds nothing of the school in it.
async fn json_logs_are_one_object_per_line_and_hold_no_pupil_data(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{config}\n[logging]\nformat = \"json\"\n")).unwrap();
    let mut daemon = env.start_env(&TRACE);
    let files = messages();
    for f in &files {
        env.deliver(&f.file_name().unwrap().to_string_lossy(), &std::fs::read(f).unwrap());
    }
    wait_for("every message recorded and the outbox drained", WAIT, || {
        daemon.assert_running();
        let s = env.status();
        if recorded(&s) == files.len() as u64 && s["outbox"]["pending"] == 0 && s["outbox"]["sent"].as_u64() > Some(0) {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    let log = daemon.log();
    daemon.stop();
    let events: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"))).collect();
    assert!(events.len() > 20, "{log}");
    for e in &events {
        assert!(e["timestamp"].is_string() && e["level"].is_string() && e["message"].is_string(), "{e}");
    }
    let recorded_events: Vec<&serde_json::Value> = events.iter().filter(|e| e["message"] == "message recorded").collect();
    assert!(!recorded_events.is_empty(), "Haven's own events are logged: {log}");
    assert!(recorded_events.iter().all(|e| e["level"] == "DEBUG" || e["level"] == "INFO" || e["level"] == "TRACE"), "{recorded_events:?}");
    assert_nothing_leaks("haven run with JSON logs", &log);
    db.cleanup().await;
}

/// Text logs carry no colour codes when stderr is not a terminal, and under systemd
/// (`JOURNAL_STREAM` names stderr) no timestamp either: the journal stamps each line.
async fn text_logs_leave_timestamps_to_the_journal(backend: Backend) {
    use std::os::unix::fs::MetadataExt;
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    let file = messages().remove(0);
    let run = |name: &str, journal: bool| {
        let path = env.path(&format!("var/{name}.log"));
        let err = std::fs::File::create(&path).unwrap();
        let meta = err.metadata().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_haven"));
        cmd.args(["ingest"])
            .arg(&file)
            .arg("--config")
            .arg(&env.config)
            .env("RUST_LOG", "debug")
            .stdout(std::process::Stdio::null())
            .stderr(err);
        if journal {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        } else {
            cmd.env_remove("JOURNAL_STREAM");
        }
        assert!(cmd.status().unwrap().success());
        // Log events only: ingest's own progress lines ("haven: 1 of 1 messages…") share stderr.
        let all = std::fs::read_to_string(&path).unwrap();
        all.lines().filter(|l| !l.starts_with("haven: ")).map(|l| format!("{l}\n")).collect::<String>()
    };
    let stamped = Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}").unwrap();
    let journal = run("journal", true);
    assert!(journal.contains("message recorded"), "{journal}");
    let plain = run("plain", false);
    assert!(!plain.is_empty() && plain.lines().all(|l| stamped.is_match(l)), "timestamps without the journal:\n{plain}");
    assert!(
        journal.lines().all(|l| !stamped.is_match(l) && l.trim_start().starts_with(['D', 'I', 'W', 'E', 'T'])),
        "no timestamps for the journal:\n{journal}"
    );
    assert!(!plain.contains('\u{1b}') && !journal.contains('\u{1b}'), "no colour codes in a file");
    db.cleanup().await;
}

backend_tests!(
    json_logs_are_one_object_per_line_and_hold_no_pupil_data,
    text_logs_leave_timestamps_to_the_journal,
    ingest_at_trace_logs_no_pupil_data,
    daemon_at_trace_logs_no_pupil_data,
    imap_daemon_at_trace_logs_no_pupil_data,
    the_third_party_switch_warns_and_lifts_the_cap
);

/// Whether each of Haven's connections to `db` (its database name) is encrypted, asked of the
/// server through the admin connection.
async fn connections_use_ssl(db: &str) -> Vec<bool> {
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&support::db::admin_url()).await.unwrap();
    sqlx::query_scalar("SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.datname = $1")
        .bind(db)
        .fetch_all(&mut admin)
        .await
        .unwrap()
}

/// Whether the pool's own connection is encrypted, and with what.
async fn store_ssl(store: &Store) -> (bool, Option<String>) {
    let Store::Postgres(pool) = store else { panic!("a PostgreSQL store") };
    sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(pool).await.unwrap()
}

/// `sslmode=require` works and is encrypted; with no `sslmode` the daemon's connections are
/// encrypted too (the server offers TLS); `verify-full` with the server's certificate as
/// `sslrootcert` connects to the name on the certificate (`localhost`) and refuses, with a
/// clear error, an address the certificate does not name (`127.0.0.1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_are_encrypted() {
    let db = TestDb::new(Backend::Postgres).await;
    db.store.close().await;
    let (base, name) = db.url.split_once('?').map(|(u, _)| u).unwrap_or(&db.url).rsplit_once('/').unwrap();
    let name = name.to_string();
    assert!(
        base.contains("@127.0.0.1:"),
        "this test needs the local PostgreSQL (ssl = on, certificate for localhost) at 127.0.0.1; got {base}"
    );
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&support::db::admin_url()).await.unwrap();
    let cert: String =
        sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = 'ssl_cert_file'").fetch_one(&mut admin).await.unwrap();

    // sslmode=require: the binary opens the database, and the connection is encrypted.
    let require = format!("{}?sslmode=require", db.url);
    let env = HavenEnv::new(&require, "");
    assert_eq!(env.status()["database"], "postgres");
    let store = Store::open(&require).await.expect("sslmode=require opens the store");
    let (ssl, version) = store_ssl(&store).await;
    assert!(ssl, "sslmode=require is encrypted (pg_stat_ssl.ssl)");
    assert!(version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")), "{version:?}");
    store.close().await;

    // No sslmode (sqlx's default, prefer): the daemon's connections are encrypted as well.
    let env = HavenEnv::new(&db.url, "");
    let mut daemon = env.start();
    let seen = wait_for("the daemon running, and its connections", WAIT, || {
        daemon.assert_running();
        if !daemon.log().contains("haven running") {
            return Err(daemon.log());
        }
        let seen = futures_block(connections_use_ssl(&name));
        if seen.is_empty() { Err("no connection yet".to_string()) } else { Ok(seen) }
    });
    assert!(seen.iter().all(|&s| s), "every connection of haven run is encrypted: {seen:?}");
    daemon.stop();

    // verify-full: the certificate names localhost, so 127.0.0.1 is refused, clearly.
    let verify = format!("{}?sslmode=verify-full&sslrootcert={cert}", db.url);
    let env = HavenEnv::new(&verify, "");
    let r = env.haven(&["status"]);
    assert_ne!(r.code, 0, "verify-full to a name the certificate lacks must fail: {}", r.stdout);
    assert!(
        r.stderr.contains("cannot open the database") && r.stderr.contains("certificate") && r.stderr.contains("127.0.0.1"),
        "a clear refusal: {}",
        r.stderr
    );

    // A root certificate that is not there: the error says which setting to look at.
    let env = HavenEnv::new(&verify.replace(&format!("sslrootcert={cert}"), "sslrootcert=/nonexistent/ca.pem"), "");
    let r = env.haven(&["status"]);
    assert_ne!(r.code, 0, "a missing sslrootcert must fail: {}", r.stdout);
    assert!(r.stderr.contains("is the sslrootcert file in the database URL (or PGSSLROOTCERT) there?"), "{}", r.stderr);

    // verify-full to the name on the certificate: works, encrypted.
    let by_name = verify.replace("@127.0.0.1:", "@localhost:");
    let env = HavenEnv::new(&by_name, "");
    assert_eq!(env.status()["database"], "postgres");
    let store = Store::open(&by_name).await.expect("verify-full to localhost opens the store");
    assert!(store_ssl(&store).await.0, "verify-full is encrypted");
    store.close().await;

    // The check can tell: sslmode=disable is in clear.
    let store = Store::open(&format!("{}?sslmode=disable", db.url)).await.unwrap();
    assert!(!store_ssl(&store).await.0, "sslmode=disable is not encrypted");
    store.close().await;
    db.cleanup().await;
}

/// Runs a future to completion from inside a `wait_for` check (which is synchronous).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
