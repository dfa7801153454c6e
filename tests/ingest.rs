//! `haven ingest` of a mailbox export: the example school's eighteen messages spread over a
//! Maildir++ folder (top folder and a `.Archive` subfolder) and an mbox file, filed in one
//! batch, end in exactly the states (and reasons, in the same order) they reach when each is
//! filed on its own, and filing the same export again records nothing. On both engines.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::db::{Backend, TestDb};
use support::eaton::{eaton_env, example_messages};
use support::haven::HavenEnv;

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

/// Every recorded message's state and reason, in the order recorded.
fn states(env: &HavenEnv) -> Vec<(String, String)> {
    let r = env.haven(&["messages", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listed: Value = serde_json::from_str(&r.stdout).unwrap();
    let mut rows: Vec<&Value> = listed.as_array().unwrap().iter().collect();
    rows.sort_by_key(|m| m["id"].as_i64());
    rows.iter().map(|m| (m["state"].as_str().unwrap().to_string(), m["reason"].as_str().unwrap().to_string())).collect()
}

async fn maildir_and_mbox_file_as_one_message_at_a_time_would_and_only_once(backend: Backend) {
    // The reference: each message filed by a command of its own (one transaction each), as
    // `haven ingest` used to file them.
    let (db_one, db_export) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let one = eaton_env(&db_one.url);
    for m in example_messages() {
        let r = one.haven(&["ingest", m.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    let expected = states(&one);
    assert_eq!(expected.len(), 18);

    let env = eaton_env(&db_export.url);
    let (maildir, mbox) = export(env.dir.path());
    let (summary, progress) = ingest_json(&env, &[&maildir, &mbox]);
    assert_eq!(summary["messages"], 18, "{summary}");
    assert_eq!(states(&env), expected, "the same states and reasons, in the same order");
    let count = |state: &str| expected.iter().filter(|(s, _)| s == state).count();
    for state in ["filed", "awaiting_triage", "quarantined", "duplicate", "ignored"] {
        assert_eq!(summary["recorded"][state], count(state), "{state}: {summary}");
    }
    assert!(count("filed") >= 14, "the example's messages are mostly filed: {expected:?}");
    assert_eq!(summary["already_recorded"], 0);
    assert!(progress.contains("haven: 18 of 18 messages"), "a closing progress line on stderr: {progress}");
    let incidents = env.status()["incidents"].clone();
    assert_eq!(incidents, one.status()["incidents"]);

    // The same export again: every message is recognised, nothing new is written.
    let (again, _) = ingest_json(&env, &[&maildir, &mbox]);
    assert_eq!(again["already_recorded"], 18, "{again}");
    assert!(again["recorded"].as_object().unwrap().values().all(|v| v == 0), "{again}");
    assert_eq!(states(&env).len(), 18, "one record per message");
    assert_eq!(env.status()["incidents"], incidents, "nothing filed twice");
    assert_eq!(maildir.join("new").read_dir().unwrap().count(), 3, "ingest moves nothing");
    db_one.cleanup().await;
    db_export.cleanup().await;
}

async fn an_unreadable_path_is_named_and_nothing_is_filed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_env(&db.url);
    let r = env.haven(&["ingest", "/nonexistent/haven-export"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("cannot read /nonexistent/haven-export: No such file or directory"), "{}", r.stderr);
    assert_eq!(env.status()["messages"]["filed"], 0);
    db.cleanup().await;
}

backend_tests!(maildir_and_mbox_file_as_one_message_at_a_time_would_and_only_once, an_unreadable_path_is_named_and_nothing_is_filed);
