//! `haven ai eval` over the shipped labelled set (tests/fixtures/ai-eval) against the real
//! `llama-server`, and the `openai_compatible` provider against the same server (it speaks the
//! OpenAI API). A 135M model's figures are poor and are not asserted: the test checks that they
//! are printed and that the counts add up. `ollama` and `azure` cannot be run here (no such
//! server in the test environment): their configuration is checked in config.rs's tests.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, wait_for};
use support::llama::{LlamaServer, MODEL};

fn eval_set() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ai-eval")
}

/// Scenarios in the shipped set, counted from its files.
fn scenarios_shipped() -> usize {
    std::fs::read_dir(eval_set())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().matches("[[scenario]]").count())
        .sum()
}

fn installation(db: &TestDb, server: &LlamaServer, provider: &str) -> HavenEnv {
    let env = HavenEnv::new(&db.url, "");
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&server.ai_config(env.dir.path(), "120s").replace("provider = \"llamacpp\"", &format!("provider = \"{provider}\"")));
    std::fs::write(&env.config, config).unwrap();
    env.import_school();
    env
}

/// Runs `haven ai eval SET --json` and checks that its counts add up against the set's files.
fn eval_adds_up(env: &HavenEnv, set: &Path) -> Value {
    let files: Vec<String> = std::fs::read_dir(set)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let shipped: usize = files.iter().map(|t| t.matches("[[scenario]]").count()).sum();
    let labelled_high: usize = files.iter().map(|t| t.matches("risk = \"high\"").count() + t.matches("risk = \"urgent\"").count()).sum();
    let r = env.haven(&["ai", "eval", set.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let f: Value = serde_json::from_str(&r.stdout).expect("--json is JSON");
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("a count: {v} in {f:#}")) as usize;
    assert_eq!(f["model"], MODEL);
    assert_eq!(n(&f["scenarios"]), shipped);
    assert_eq!(n(&f["answered"]) + n(&f["failed"]), shipped, "{f:#}");
    assert_eq!(n(&f["valid_json"]["of"]), shipped);
    assert!(n(&f["valid_json"]["n"]) <= n(&f["answered"]), "{f:#}");
    let per = f["category_accuracy"].as_object().unwrap();
    assert_eq!(per.values().map(|r| n(&r["of"])).sum::<usize>(), shipped, "every scenario is in one category: {f:#}");
    assert_eq!(per.values().map(|r| n(&r["n"])).sum::<usize>(), n(&f["overall_accuracy"]["n"]));
    assert!(n(&f["overall_accuracy"]["n"]) <= n(&f["valid_json"]["n"]));
    assert_eq!(n(&f["high_risk_recall"]["of"]), labelled_high, "{f:#}");
    assert_eq!(f["high_risk_recall"]["n"], f["high_risk_precision"]["n"], "both count the same hits");
    assert!(n(&f["high_risk_precision"]["of"]) <= n(&f["valid_json"]["n"]));
    if n(&f["answered"]) > 0 {
        assert!(f["latency_median_ms"].as_u64().unwrap() <= f["latency_p90_ms"].as_u64().unwrap(), "{f:#}");
    }
    f
}

/// The whole shipped set, once (a 135M model on one thread takes several minutes over it): on
/// SQLite the full set; on PostgreSQL three of its scenarios, which is what the engine changes
/// (the directory read for redaction), with the text form of the figures.
async fn ai_eval_prints_figures_whose_counts_add_up(backend: Backend) {
    let server = LlamaServer::start();
    let db = TestDb::new(backend).await;
    let env = installation(&db, &server, "llamacpp");
    let shipped = scenarios_shipped();
    assert!(shipped >= 40, "the shipped set has at least 40 scenarios: {shipped}");
    match backend {
        Backend::Sqlite => {
            let started = Instant::now();
            let f = eval_adds_up(&env, &eval_set());
            eprintln!("haven ai eval over the shipped set ({:?}):\n{f:#}", started.elapsed());
        }
        Backend::Postgres => {
            let set = env.path("set");
            std::fs::create_dir_all(&set).unwrap();
            let text = std::fs::read_to_string(eval_set().join("10-disclosures.toml")).unwrap();
            let three: Vec<&str> = text.split("[[scenario]]").skip(1).take(3).collect();
            std::fs::write(set.join("three.toml"), format!("[[scenario]]{}", three.join("[[scenario]]"))).unwrap();
            eval_adds_up(&env, &set);
            let text = env.haven(&["ai", "eval", set.to_str().unwrap()]);
            assert_eq!(text.code, 0, "{}", text.stderr);
            for line in [
                "AI eval of smollm2-135m: 3 scenarios",
                "valid JSON: ",
                "category accuracy:",
                "high/urgent risk: recall ",
                "latency: median ",
            ] {
                assert!(text.stdout.contains(line), "{line:?} in:\n{}", text.stdout);
            }
        }
    }
    drop(server);
    db.cleanup().await;
}

async fn ai_eval_refuses_a_set_it_cannot_read(backend: Backend) {
    let server = LlamaServer::start();
    let db = TestDb::new(backend).await;
    let env = installation(&db, &server, "llamacpp");
    std::fs::create_dir_all(env.path("set")).unwrap();
    std::fs::write(env.path("set/a.toml"), "[[scenario]]\nid = \"1\"\ncategory = \"Weather\"\nrisk = \"low\"\ntext = \"x\"\n").unwrap();
    let r = env.haven(&["ai", "eval", "set"]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("a.toml: scenario \"1\": category \"Weather\" is not one of the school's categories ("), "{}", r.stderr);
    let r = env.haven(&["ai", "eval", "nowhere"]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert!(r.stderr.contains("cannot read nowhere"), "{}", r.stderr);
    drop(server);
    db.cleanup().await;
}

async fn the_openai_compatible_provider_speaks_to_the_same_server(backend: Backend) {
    let server = LlamaServer::start();
    let db = TestDb::new(backend).await;
    let env = installation(&db, &server, "openai_compatible");
    let check = env.haven(&["check"]);
    assert!(!check.stdout.contains("ai.") && !check.stderr.contains("ai."), "{}{}", check.stdout, check.stderr);
    env.deliver(
        "n1.eml",
        b"From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Note\r\n\
          Date: Wed, 11 Nov 2026 09:00:00 +0000\r\nMessage-ID: <ai-compat-1@mail.school.example>\r\n\r\n\
          Pupil: Oliver Brown\r\n\r\nOlly said he had not eaten since yesterday.\r\n",
    );
    let daemon = env.start();
    let job = tokio::task::block_in_place(|| {
        wait_for("the job done through openai_compatible", Duration::from_secs(300), || {
            let jobs = tokio::runtime::Handle::current().block_on(db.store.ai_jobs()).unwrap();
            match jobs.first() {
                Some(j) if j.state == "done" => Ok(j.clone()),
                other => Err(format!("{other:?}; log:\n{}", daemon.log())),
            }
        })
    });
    daemon.stop();
    assert!(matches!(job.outcome.as_deref(), Some("suggested" | "no_suggestion")), "the server answered: {job:?}");
    assert_eq!(job.attempts, 0, "no failed call: {job:?}");
    drop(server);
    db.cleanup().await;
}

backend_tests!(
    ai_eval_prints_figures_whose_counts_add_up,
    ai_eval_refuses_a_set_it_cannot_read,
    the_openai_compatible_provider_speaks_to_the_same_server,
);
