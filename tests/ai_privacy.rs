//! What leaves the school when AI triage is on (issue 23), checked on the wire: a recording
//! proxy on loopback stands in front of the real `llama-server` and keeps every request body.
//! With `ai.redact`, no name from the roll (pupils, parents, staff), no address, postcode, phone
//! number or email address appears in any request; without it they do (so the check can fail).
//! Nothing of the message or the answer is in the daemon's log. Both engines.

mod support;

use haven::store::Store;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, wait_for};
use support::llama::{LlamaServer, MODEL, RecordingProxy};

/// Every name on the test school's roll, its staff and its parents, with this message's
/// address, postcode, phone number and parent's email.
const PERSONAL: &[&str] = &[
    "Jane",
    "Smith",
    "Oliver",
    "Olly",
    "Brown",
    "Amira",
    "Khan",
    "Tom",
    "Price",
    "Mary",
    "Sam",
    "Terry",
    "Teach",
    "Dana",
    "Harriet",
    "Mill Lane",
    "LS6 2QT",
    "07700 900456",
    "brown.family@example.com",
];

fn note() -> Vec<u8> {
    "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\n\
     Subject: Oliver Brown - worried\r\nDate: Wed, 11 Nov 2026 09:15:00 +0000\r\n\
     Message-ID: <ai-privacy-1@mail.school.example>\r\nMIME-Version: 1.0\r\n\
     Content-Type: text/plain; charset=utf-8\r\n\r\n\
     Pupil: Oliver Brown\r\n\r\n\
     Olly told me his dad Sam Brown has moved out to 14 Mill Lane, Leeds LS6 2QT and he is staying \
     there with no food in the house. Jane Smith and Tom Price said the same. Call Sam on 07700 900456 \
     or brown.family@example.com.\r\n\r\nTerry Teach\r\n"
        .as_bytes()
        .to_vec()
}

fn block_on_jobs(store: &Store) -> Vec<haven::store::AiJobState> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(store.ai_jobs())).expect("read the AI queue")
}

/// Files the note with `[ai]` through a recording proxy (`redact` as given), waits for the
/// job, and returns (what the proxy recorded, the daemon's log).
async fn file_through_the_proxy(backend: Backend, server: &LlamaServer, redact: bool) -> (String, String) {
    let proxy = RecordingProxy::start(server.port);
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    std::fs::write(env.path("secrets/ai.key"), format!("{}\n", server.key)).unwrap();
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!(
        "\n[ai]\nprovider = \"llamacpp\"\nbase_url = \"{}\"\napi_key_file = \"secrets/ai.key\"\nmodel = \"{MODEL}\"\ntimeout = \"120s\"\nredact = {redact}\nmax_chars = 2000\n",
        proxy.base_url()
    ));
    std::fs::write(&env.config, config).unwrap();
    env.import_school();
    env.deliver("n1.eml", &note());
    let daemon = env.start_env(&[("RUST_LOG", "debug")]);
    tokio::task::block_in_place(|| {
        wait_for("the AI job done", Duration::from_secs(300), || {
            let jobs = block_on_jobs(&db.store);
            match jobs.first() {
                Some(j) if j.state == "done" => Ok(()),
                other => Err(format!("{other:?}; daemon log:\n{}", daemon.log())),
            }
        })
    });
    let log = daemon.log();
    daemon.stop();
    let recorded = proxy.recorded();
    db.cleanup().await;
    (recorded, log)
}

async fn with_redaction_nothing_personal_reaches_the_model_server(backend: Backend) {
    let server = LlamaServer::start();
    let (recorded, log) = file_through_the_proxy(backend, &server, true).await;
    assert!(recorded.contains("=== POST /v1/chat/completions"), "the proxy saw the call:\n{recorded}");
    assert!(recorded.contains("PUPIL_") && recorded.contains("ADULT_") && recorded.contains("PHONE_1"), "{recorded}");
    assert!(recorded.contains("no food in the house"), "the rest of the text is sent:\n{recorded}");
    for word in PERSONAL {
        assert!(!recorded.contains(word), "{word:?} reached the model server:\n{recorded}");
        assert!(!log.contains(word), "{word:?} is in the daemon log:\n{log}");
    }
    assert!(!log.contains("no food"), "the message's text is in the daemon log:\n{log}");
    drop(server);
}

async fn without_redaction_the_recording_shows_the_names(backend: Backend) {
    // The control: the same message on loopback with `redact = false` (the loopback default).
    let server = LlamaServer::start();
    let (recorded, log) = file_through_the_proxy(backend, &server, false).await;
    assert!(recorded.contains("Oliver Brown") && recorded.contains("07700 900456"), "{recorded}");
    assert!(!log.contains("no food") && !log.contains("Oliver"), "nothing of the text is logged, redacted or not:\n{log}");
    drop(server);
}

backend_tests!(with_redaction_nothing_personal_reaches_the_model_server, without_redaction_the_recording_shows_the_names);
