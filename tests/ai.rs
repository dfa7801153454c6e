//! AI suggestions (issue 23) with a real model server: llama.cpp's `llama-server` and
//! SmolLM2-135M-Instruct (tests/support/llama.sh). A 135M model's judgement is poor, so these
//! tests assert the plumbing, never what the model thinks: a suggestion arrives after filing,
//! parses, is labelled with the model, quotes only the text and names only pupils on the roll; a frozen server holds up neither
//! filing nor alerts; a dead one is retried with backoff and nothing of the text is logged; a
//! restart mid-queue loses no job and does none twice. Both engines.

mod support;

use haven::store::Store;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, wait_for};
use support::llama::{LlamaServer, MODEL};

const OLIVER: &str = "A100000000002";
/// The pupils of tests/fixtures/school, all on the roll.
const ON_ROLL: [&str; 4] = ["Jane Smith", "Oliver Brown", "Amira Khan", "Tom Price"];

/// A staff note about Oliver Brown, `n` making its Message-ID and words its own.
fn note(n: usize) -> Vec<u8> {
    format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\n\
         Subject: Note about Oliver Brown ({n})\r\nDate: Wed, 11 Nov 2026 09:{n:02}:00 +0000\r\n\
         Message-ID: <ai-note-{n}@mail.school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Pupil: Oliver Brown\r\n\r\n\
         Olly arrived with a bruise on his forearm (visit {n}) and was reluctant to say how it happened. \
         He said he had not eaten since yesterday.\r\n"
    )
    .into_bytes()
}

/// An installation on `db`, with `[ai]` pointing at `server` when given.
fn installation(db: &TestDb, ai: Option<(&LlamaServer, &str)>) -> HavenEnv {
    let env = HavenEnv::new(&db.url, "");
    if let Some((server, timeout)) = ai {
        let mut config = std::fs::read_to_string(&env.config).unwrap();
        config.push_str(&server.ai_config(env.dir.path(), timeout));
        std::fs::write(&env.config, config).unwrap();
    }
    env.import_school();
    env
}

/// Oliver's chronology as the DSL sees it, as JSON.
fn chronology(env: &HavenEnv) -> Value {
    let r = env.haven(&["chronology", OLIVER, "--json", "--as", "dsl@school.example"]);
    assert_eq!(r.code, 0, "chronology: {}", r.stderr);
    serde_json::from_str(&r.stdout).expect("chronology --json is JSON")
}

/// (To, Subject) of every email the outbox delivered.
fn alerts(env: &HavenEnv) -> BTreeSet<(String, String)> {
    let Ok(dir) = std::fs::read_dir(env.path("var/outbox/new")) else { return BTreeSet::new() };
    dir.filter_map(|e| e.ok())
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let header = |name: &str| text.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string())).unwrap_or_default();
            (header("To:"), header("Subject:"))
        })
        .collect()
}

async fn jobs(store: &Store) -> Vec<haven::store::AiJobState> {
    store.ai_jobs().await.expect("read the AI queue")
}

fn block_on_jobs(store: &Store) -> Vec<haven::store::AiJobState> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(jobs(store)))
}

async fn a_filed_message_gets_a_suggestion_that_parses(backend: Backend) {
    let server = LlamaServer::start();
    let db = TestDb::new(backend).await;
    let env = installation(&db, Some((&server, "120s")));
    env.deliver("n1.eml", &note(1));
    let daemon = env.start();
    let entry = tokio::task::block_in_place(|| {
        wait_for("an AI suggestion on the chronology", Duration::from_secs(300), || {
            // The job first: once it is done, the chronology read after it shows its result.
            let jobs = block_on_jobs(&db.store);
            let job = match jobs.first() {
                Some(j) if j.state == "done" => j.clone(),
                other => return Err(format!("job {other:?}; daemon log:\n{}", daemon.log())),
            };
            let c = chronology(&env);
            let e = c["incidents"].get(0).cloned().ok_or_else(|| "no incident filed".to_string())?;
            Ok((e, job))
        })
    });
    let (entry, job) = entry;
    // The plumbing, not the model's judgement: the answer parsed (or was recorded as not
    // parsing), and what is shown is labelled, bounded and quoted from the text.
    assert!(matches!(job.outcome.as_deref(), Some("suggested" | "no_suggestion")), "{job:?}");
    if job.outcome.as_deref() == Some("suggested") {
        let ai = &entry["ai_suggestion"];
        assert_eq!(ai["label"], format!("AI suggestion ({MODEL})"), "{entry:#}");
        assert_eq!(ai["model"], MODEL);
        assert!(["none", "low", "medium", "high", "urgent"].contains(&ai["risk"].as_str().unwrap()), "{ai:#}");
        let words = |v: &Value| v.as_str().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
        let text = [words(&entry["original_subject"]), words(&entry["note"]), words(&entry["body"])];
        for r in ai["reasons"].as_array().unwrap() {
            let r = words(r);
            assert!(text.iter().any(|t| t.contains(&r)), "a reason not found word for word in the text: {r:?} in {text:?}");
        }
        assert!(ai["reasons"].as_array().unwrap().len() <= 3);
        assert!(ai["summary"].as_str().unwrap().chars().count() <= 300);
        // Pupils mentioned, if any: each a pupil on the roll, named once, within the bound.
        let ids: Vec<i64> = ai["pupils"].as_array().expect("a list of pupils").iter().map(|v| v.as_i64().unwrap()).collect();
        let names: Vec<&str> = ai["pupil_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(ids.len() <= 5 && ids.iter().collect::<BTreeSet<_>>().len() == ids.len(), "{ai:#}");
        assert_eq!(names.len(), ids.len(), "every pupil kept is on the roll, shown by name: {ai:#}");
        for n in &names {
            assert!(ON_ROLL.contains(n), "a pupil not on the roll kept: {n:?}");
        }
        let text = env.haven(&["chronology", OLIVER, "--as", "dsl@school.example"]);
        assert!(text.stdout.contains(&format!("AI suggestion ({MODEL}): risk ")), "{}", text.stdout);
    } else {
        assert!(entry["ai_suggestion"].is_null(), "{entry:#}");
    }
    // Sealed at rest: the column holds no readable text.
    let raw: Option<String> = match &db.store {
        Store::Sqlite(p) => sqlx::query_scalar("SELECT ai_suggestion FROM incidents").fetch_one(p).await.unwrap(),
        Store::Postgres(p) => sqlx::query_scalar("SELECT ai_suggestion FROM incidents").fetch_one(p).await.unwrap(),
    };
    if let Some(raw) = raw {
        assert!(!raw.contains("risk") && !raw.contains(MODEL), "the suggestion is stored in clear: {raw}");
    }
    daemon.stop();
    drop(server);
    db.cleanup().await;
}

async fn a_frozen_server_holds_up_neither_filing_nor_alerts(backend: Backend) {
    let server = LlamaServer::start();
    let (with_ai, without_ai) = (TestDb::new(backend).await, TestDb::new(backend).await);
    let env = installation(&with_ai, Some((&server, "60s")));
    let control = installation(&without_ai, None);
    server.pause();
    env.deliver("n1.eml", &note(1));
    control.deliver("n1.eml", &note(1));
    let (daemon, control_daemon) = (env.start(), control.start());
    let control_alerts = tokio::task::block_in_place(|| {
        wait_for("the alerts without AI", Duration::from_secs(30), || {
            let a = alerts(&control);
            if a.is_empty() { Err("no alert yet".to_string()) } else { Ok(a) }
        })
    });
    // With the model frozen, the same alerts leave as quickly, and the incident is filed the same.
    let ai_alerts = tokio::task::block_in_place(|| {
        wait_for("the same alerts with the AI server frozen", Duration::from_secs(30), || {
            let a = alerts(&env);
            if a == control_alerts { Ok(a) } else { Err(format!("{a:?} (without AI: {control_alerts:?})")) }
        })
    });
    assert_eq!(ai_alerts, control_alerts);
    let (c, k) = (chronology(&env), chronology(&control));
    for field in ["category", "priority", "visibility", "role"] {
        assert_eq!(c["incidents"][0][field], k["incidents"][0][field], "{field}");
    }
    let pending = jobs(&with_ai.store).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].state, "pending", "no answer can come from a frozen server: {pending:?}");
    assert!(jobs(&without_ai.store).await.is_empty(), "nothing is queued without [ai]");

    server.resume();
    let done = tokio::task::block_in_place(|| {
        wait_for("the job done once the server runs again", Duration::from_secs(300), || {
            let j = block_on_jobs(&with_ai.store);
            if j[0].state == "done" { Ok(j) } else { Err(format!("{j:?}")) }
        })
    });
    assert!(matches!(done[0].outcome.as_deref(), Some("suggested" | "no_suggestion")), "{done:?}");
    // The suggestion changed nothing that was decided.
    assert_eq!(alerts(&env), control_alerts, "no alert added or removed by the suggestion");
    let c = chronology(&env);
    for field in ["category", "priority", "visibility"] {
        assert_eq!(c["incidents"][0][field], k["incidents"][0][field], "{field} after the suggestion");
    }
    daemon.stop();
    control_daemon.stop();
    drop(server);
    with_ai.cleanup().await;
    without_ai.cleanup().await;
}

async fn a_restart_mid_queue_loses_no_job_and_does_none_twice(backend: Backend) {
    const N: usize = 4;
    let server = LlamaServer::start();
    let db = TestDb::new(backend).await;
    let env = installation(&db, Some((&server, "120s")));
    for n in 1..=N {
        env.deliver(&format!("n{n}.eml"), &note(n));
    }
    let daemon = env.start();
    tokio::task::block_in_place(|| {
        wait_for("every note filed and the first job done", Duration::from_secs(300), || {
            let j = block_on_jobs(&db.store);
            if j.len() == N && j.iter().any(|j| j.state == "done") { Ok(()) } else { Err(format!("{j:?}")) }
        })
    });
    daemon.stop();
    let at_stop = jobs(&db.store).await;
    assert!(at_stop.iter().any(|j| j.state == "pending"), "the restart must come mid-queue: {at_stop:?}");

    let daemon = env.start();
    let done = tokio::task::block_in_place(|| {
        wait_for("every job done after the restart", Duration::from_secs(600), || {
            let j = block_on_jobs(&db.store);
            if j.iter().all(|j| j.state == "done") { Ok(j) } else { Err(format!("{j:?}")) }
        })
    });
    daemon.stop();
    assert_eq!(done.len(), N, "no job lost: {done:?}");
    // Each job completed once: one audit entry per incident, and a stored suggestion exactly
    // where the job says one was made.
    let audit = db.store.audit_tail(10_000).await.unwrap();
    for j in &done {
        let subject = format!("incident:{}", j.incident_id);
        let entries: Vec<_> = audit.iter().filter(|e| e.actor == "ai" && e.subject == subject).collect();
        assert_eq!(entries.len(), 1, "incident {} completed {} times: {entries:?}", j.incident_id, entries.len());
        assert_eq!(entries[0].action, format!("ai_{}", j.outcome.as_deref().unwrap()));
        assert_eq!(entries[0].detail, format!("model={MODEL}"));
    }
    let c = chronology(&env);
    let shown = c["incidents"].as_array().unwrap().iter().filter(|e| !e["ai_suggestion"].is_null()).count();
    let suggested = done.iter().filter(|j| j.outcome.as_deref() == Some("suggested")).count();
    assert_eq!(shown, suggested, "{c:#}");
    drop(server);
    db.cleanup().await;
}

async fn a_dead_server_is_retried_with_backoff_and_nothing_is_logged_of_the_text(backend: Backend) {
    // A server that was there and is gone: its port refuses connections.
    let server = LlamaServer::start();
    let db = TestDb::new(backend).await;
    let env = installation(&db, Some((&server, "30s")));
    drop(server);
    env.deliver("n1.eml", &note(1));
    let mut daemon = env.start_env(&[("RUST_LOG", "debug")]);
    tokio::task::block_in_place(|| {
        // Bounded generously: the neighbouring tests keep three model servers busy on two cores.
        wait_for("the alert, with the model server dead", Duration::from_secs(120), || {
            if alerts(&env).is_empty() { Err(format!("no alert yet; daemon log:\n{}", daemon.log())) } else { Ok(()) }
        })
    });
    let retried = tokio::task::block_in_place(|| {
        wait_for("a second failed attempt, after the backoff", Duration::from_secs(60), || {
            let j = block_on_jobs(&db.store);
            match j.first() {
                Some(job) if job.attempts >= 2 => Ok(job.clone()),
                other => Err(format!("{other:?}; daemon log:\n{}", daemon.log())),
            }
        })
    });
    assert_eq!(retried.state, "pending", "a dead server is retried, not given up at once: {retried:?}");
    daemon.assert_running();
    let log = daemon.log();
    assert!(log.contains("AI suggestion failed; will retry"), "{log}");
    for words in ["bruise", "forearm", "not eaten", "Oliver"] {
        assert!(!log.contains(words), "the daemon log shows the message's words ({words:?}):\n{log}");
    }
    daemon.stop();
    db.cleanup().await;
}

/// With a rule on `when.ai_risk`, the real model's suggestion and what the rule added agree:
/// the HouseM's alert from the AI triage is there exactly when the stored suggestion meets the
/// rule (the model's judgement is not asserted, only the consistency). `haven rules test --ai`
/// shows the suggestion.
async fn the_ai_rule_alerts_exactly_when_the_stored_suggestion_meets_it(backend: Backend) {
    let server = LlamaServer::start();
    let db = TestDb::new(backend).await;
    let env = installation(&db, Some((&server, "120s")));
    std::fs::write(
        env.path("rules/40-ai.toml"),
        "[[rule]]\nname = \"The AI reader is worried\"\nwhen.ai_risk = \"medium\"\nalert = [\"housem-of-pupil\"]\n",
    )
    .unwrap();
    env.deliver("n1.eml", &note(1));
    let daemon = env.start();
    let entry = tokio::task::block_in_place(|| {
        wait_for("the job done and any alert it adds sent", Duration::from_secs(300), || {
            let jobs = block_on_jobs(&db.store);
            match jobs.first() {
                Some(j) if j.state == "done" => {}
                other => return Err(format!("job {other:?}; daemon log:\n{}", daemon.log())),
            }
            let c = chronology(&env);
            let e = c["incidents"][0].clone();
            let wants = e["ai_suggestion"]["risk"].as_str().is_some_and(|r| ["medium", "high", "urgent"].contains(&r));
            let sent = alerts(&env).iter().any(|(to, _)| to.contains("heron@school.example"));
            // The added alert goes through the outbox: wait for it to be delivered.
            if wants && !sent { Err(format!("the HouseM's alert is not delivered yet: {e:#}")) } else { Ok(e) }
        })
    });
    daemon.stop();
    let wants = entry["ai_suggestion"]["risk"].as_str().is_some_and(|r| ["medium", "high", "urgent"].contains(&r));
    let heron = alerts(&env).iter().filter(|(to, _)| to.contains("heron@school.example")).count();
    assert_eq!(heron, usize::from(wants), "alert present iff the stored suggestion meets the rule: {entry:#}");
    let audit = db.store.audit_tail(100).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "ai_rules").count(), usize::from(wants), "{audit:?}");

    let path = env.path("n2.eml");
    std::fs::write(&path, note(2)).unwrap();
    let r = env.haven(&["rules", "test", path.to_str().unwrap(), "--ai"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("AI suggestion ({MODEL}): risk ")) || r.stdout.contains("AI suggestion: none"), "{}", r.stdout);
    let r = env.haven(&["rules", "test", path.to_str().unwrap(), "--ai", "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert!(v.get("ai_suggestion").is_some() && v.get("ai_error").is_some(), "{v:#}");
    drop(server);
    db.cleanup().await;
}

backend_tests!(
    the_ai_rule_alerts_exactly_when_the_stored_suggestion_meets_it,
    a_filed_message_gets_a_suggestion_that_parses,
    a_frozen_server_holds_up_neither_filing_nor_alerts,
    a_restart_mid_queue_loses_no_job_and_does_none_twice,
    a_dead_server_is_retried_with_backoff_and_nothing_is_logged_of_the_text,
);
