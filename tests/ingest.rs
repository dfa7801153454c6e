//! `haven ingest` of a mailbox export: the example school's eighteen messages spread over a
//! Maildir++ folder (top folder and a `.Archive` subfolder) and an mbox file are filed exactly
//! as the daemon files them (EXPECTED.md: 14 filed, 1 awaiting triage, 1 quarantined, 1
//! duplicate, 1 ignored), and filing the same export again records nothing. On both engines.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::db::{Backend, TestDb};
use support::haven::HavenEnv;

const INTAKE: &str = "safeguarding@eaton.sch.example";

fn eaton() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/eaton")
}

/// The example messages, in their numbered order.
fn example_messages() -> Vec<PathBuf> {
    let dir = eaton().join("mail/intake/new");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 18, "the example intake changed");
    files
}

/// The example school's installation on `db_url`, its directory imported.
fn eaton_school(db_url: &str) -> HavenEnv {
    let env = HavenEnv::new(db_url, "");
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, config.replace("safeguarding@school.example", INTAKE)).unwrap();
    let d = eaton().join("directory");
    let r = env.haven(&[
        "directory",
        "import",
        "--pupils",
        d.join("pupils.csv").to_str().unwrap(),
        "--staff",
        d.join("staff.csv").to_str().unwrap(),
        "--contacts",
        d.join("contacts.csv").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "directory import: {}{}", r.stdout, r.stderr);
    env
}

/// Messages 1–6 in `Maildir/cur`, 7–9 in `Maildir/new` (9 repeats 1, so order matters), 10–13
/// in `Maildir/.Archive/cur`, and 14–18 in `archive.mbox` with mboxrd quoting.
fn export(into: &Path) -> (PathBuf, PathBuf) {
    let messages = example_messages();
    let maildir = into.join("Maildir");
    for sub in ["cur", "new", "tmp", ".Archive/cur", ".Archive/new", ".Archive/tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for (i, m) in messages.iter().enumerate() {
        let folder = match i {
            0..=5 => "cur",
            6..=8 => "new",
            _ => ".Archive/cur",
        };
        if i < 13 {
            std::fs::copy(m, maildir.join(folder).join(format!("17000000{i:02}.M1P1.host:2,S"))).unwrap();
        }
    }
    let mut mbox = Vec::new();
    for m in &messages[13..] {
        mbox.extend_from_slice(b"From staff@eaton.sch.example Mon Dec  7 09:00:00 2026\n");
        for line in std::fs::read(m).unwrap().split_inclusive(|b| *b == b'\n') {
            if line[line.iter().take_while(|b| **b == b'>').count()..].starts_with(b"From ") {
                mbox.push(b'>');
            }
            mbox.extend_from_slice(line);
        }
        mbox.extend_from_slice(b"\n");
    }
    let mbox_path = into.join("archive.mbox");
    std::fs::write(&mbox_path, mbox).unwrap();
    (maildir, mbox_path)
}

fn ingest_json(env: &HavenEnv, paths: &[&Path]) -> (Value, String) {
    let mut args = vec!["ingest", "--json"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let r = env.haven(&args);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    (serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout)), r.stderr)
}

async fn maildir_and_mbox_file_as_the_daemon_would_and_only_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    let (maildir, mbox) = export(env.dir.path());

    let (summary, progress) = ingest_json(&env, &[&maildir, &mbox]);
    assert_eq!(summary["messages"], 18, "{summary}");
    let recorded = &summary["recorded"];
    assert_eq!(
        (&recorded["filed"], &recorded["awaiting_triage"], &recorded["quarantined"], &recorded["duplicate"], &recorded["ignored"]),
        (&Value::from(14), &Value::from(1), &Value::from(1), &Value::from(1), &Value::from(1)),
        "as EXPECTED.md says the daemon files them: {summary}"
    );
    assert_eq!(summary["already_recorded"], 0);
    assert!(progress.contains("haven: 18 of 18 messages"), "a closing progress line on stderr: {progress}");

    let status = env.status();
    assert_eq!(status["messages"]["filed"], 14, "{status}");
    assert_eq!(status["incidents"], 14, "{status}");

    // The same export again: every message is recognised, nothing new is written.
    let (again, _) = ingest_json(&env, &[&maildir, &mbox]);
    assert_eq!(again["already_recorded"], 18, "{again}");
    assert!(again["recorded"].as_object().unwrap().values().all(|v| v == 0), "{again}");
    let status = env.status();
    assert_eq!(status["messages"]["filed"], 14, "nothing filed twice: {status}");
    assert_eq!(status["incidents"], 14);
    let r = env.haven(&["messages", "--json"]);
    let listed: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 18, "one record per message");
    assert!(maildir.join("new").read_dir().unwrap().count() == 3, "ingest moves nothing");
    db.cleanup().await;
}

async fn an_unreadable_path_is_named_and_nothing_is_filed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    let r = env.haven(&["ingest", "/nonexistent/haven-export"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("cannot read /nonexistent/haven-export: No such file or directory"), "{}", r.stderr);
    assert_eq!(env.status()["messages"]["filed"], 0);
    db.cleanup().await;
}

backend_tests!(maildir_and_mbox_file_as_the_daemon_would_and_only_once, an_unreadable_path_is_named_and_nothing_is_filed);
