//! The keyring, under a running daemon and under kill -9, on SQLite and on PostgreSQL: a key
//! rotated while `haven run` files 500 messages leaves every record readable, the old key is
//! retired only once nothing needs it, and no command ever overwrites or deletes a key file.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, Run, school_fixtures, wait_for};

const DSL: &str = "dsl@school.example";

fn forward(i: usize) -> Vec<u8> {
    let template = std::fs::read_to_string(school_fixtures().join("mail/forward-contact.eml")).unwrap();
    template.replace("fwd-contact-1@", &format!("fwd-keys-{i}@")).into_bytes()
}

fn deliver(env: &HavenEnv, from: usize, to: usize) {
    for i in from..to {
        env.deliver(&format!("{:010}.M{i}P1.keys", 1_700_000_000 + i), &forward(i));
    }
}

fn settled(env: &HavenEnv) -> usize {
    std::fs::read_dir(env.path("mail/intake/cur")).map(|d| d.count()).unwrap_or(0)
}

/// Every key file under `secrets/` (storage, keyring, reply, audit and pupils' keys) and what
/// it holds.
fn key_files(env: &HavenEnv) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().unwrap().to_string_lossy().contains(".key")
                && !p.file_name().unwrap().to_string_lossy().starts_with('.')
            {
                // A pupil's own key is sealed again under each new storage key (its key stays
                // the same): it must not disappear, but its file changes.
                let content = if p.parent().is_some_and(|d| d.ends_with("pupils")) {
                    "a pupil's key, re-sealed in place".to_string()
                } else {
                    std::fs::read_to_string(&p).unwrap()
                };
                out.insert(p.display().to_string(), content);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&env.path("secrets"), &mut out);
    out
}

/// Files that existed before must still exist with the same content.
fn assert_no_key_file_lost(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) {
    for (path, content) in before {
        assert_eq!(after.get(path), Some(content), "key file {path} was overwritten or deleted");
    }
}

/// The key ids `haven key verify`/`reseal` count values under ("N under ID, M under ID").
fn key_ids_in(run: &Run) -> Vec<String> {
    let words: Vec<&str> = run.stdout.split(|c: char| c.is_whitespace() || c == ',' || c == ';').filter(|w| !w.is_empty()).collect();
    words
        .windows(3)
        .filter(|w| w[0].parse::<u64>().is_ok() && w[1] == "under" && w[2].len() == 8 && w[2].chars().all(|c| c.is_ascii_hexdigit()))
        .map(|w| w[2].to_string())
        .collect()
}

/// The current key `haven key verify` names ("current key ID; …").
fn current_key_in(run: &Run) -> String {
    run.stdout.split("current key ").nth(1).map(|r| r.chars().take(8).collect()).unwrap_or_default()
}

fn ok(run: Run, what: &str) -> Run {
    assert_eq!(run.code, 0, "{what}: {}{}", run.stdout, run.stderr);
    run
}

/// Every incident on the pupil's chronology opens.
fn chronology_opens(env: &HavenEnv, n: usize) {
    let r = ok(env.haven(&["chronology", "A100000000001", "--as", DSL, "--json"]), "chronology");
    let chron: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let incidents = chron["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), n, "incidents on the chronology");
    assert!(incidents.iter().all(|e| e["body"].as_str().unwrap().contains("lunch money")));
}

/// `haven key rotate` while `haven run` files 500 messages: the daemon starts sealing with
/// the new key, every record opens with `haven key verify`, the old key is retired only then,
/// and no key file was overwritten.
async fn rotating_under_a_running_daemon_loses_nothing(backend: Backend) {
    const N: usize = 500;
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let before = key_files(&env);
    let first = ok(env.haven(&["key", "verify"]), "verify before");
    assert_eq!(key_ids_in(&first).len(), 1, "the imported directory is sealed under the one key: {}", first.stdout);
    let daemon = env.start();
    deliver(&env, 0, N / 2);
    wait_for("the first messages filed", Duration::from_secs(60), || {
        if settled(&env) >= 50 { Ok(()) } else { Err(settled(&env).to_string()) }
    });
    let delivering = {
        let root = env.dir.path().to_path_buf();
        std::thread::spawn(move || {
            for i in N / 2..N {
                let name = format!("{:010}.M{i}P1.keys", 1_700_000_000 + i);
                std::fs::write(root.join("mail/intake/tmp").join(&name), forward(i)).unwrap();
                std::fs::rename(root.join("mail/intake/tmp").join(&name), root.join("mail/intake/new").join(&name)).unwrap();
                std::thread::sleep(Duration::from_millis(4));
            }
        })
    };
    let rotated = ok(env.haven(&["key", "rotate"]), "rotate");
    let filed_at_rotation = settled(&env);
    delivering.join().unwrap();
    wait_for(
        "every message settled",
        Duration::from_secs(180),
        || {
            if settled(&env) == N { Ok(()) } else { Err(settled(&env).to_string()) }
        },
    );
    println!("rotated with {filed_at_rotation} of {N} settled:\n{}", rotated.stdout);
    let new_id = rotated.stdout.split_whitespace().nth(1).unwrap().to_string();
    // Off a terminal, the walk's progress is plain lines on stderr, ending with the count.
    let walked = rotated.stderr.lines().find(|l| l.starts_with("haven: ") && l.contains(" rows re-sealed, "));
    assert!(walked.is_some_and(|l| l.contains(" of ") && l.contains(" a second")), "progress on stderr: {}", rotated.stderr);
    assert!(daemon.log().contains("the keyring changed; sealing with the current key"), "{}", daemon.log());

    // Every value opens with the ring; then nothing needs the old key once re-sealed.
    ok(env.haven(&["key", "verify"]), "verify with the ring");
    let resealed = ok(env.haven(&["key", "reseal"]), "reseal");
    let ids = key_ids_in(&resealed);
    assert_eq!(ids, vec![new_id.clone()], "after the re-seal every value is under the new key: {}", resealed.stdout);
    let status = env.status();
    assert_eq!(status["incidents"], N, "{status}");
    let old = std::fs::read_to_string(env.path("secrets/haven.key")).unwrap();
    let old = haven_key_id(old.trim());
    let retired = ok(env.haven(&["key", "retire", &old]), "retire");
    assert!(retired.stdout.contains(&format!("key {old} retired")), "{}", retired.stdout);

    // The running daemon drops the retired key and keeps filing; everything still opens.
    env.deliver("9999999999.Mlast.keys", &forward(N));
    wait_for("the last message settled", Duration::from_secs(60), || {
        if settled(&env) == N + 1 { Ok(()) } else { Err(settled(&env).to_string()) }
    });
    daemon.stop();
    ok(env.haven(&["key", "verify"]), "verify after retiring");
    chronology_opens(&env, N + 1);
    assert_no_key_file_lost(&before, &key_files(&env));
    db.cleanup().await;
}

/// `haven key rotate` killed with SIGKILL at random moments, three times, while the daemon
/// files and is itself killed once: after each kill every record opens with the ring; the old
/// key cannot be retired while values still need it; `haven key reseal` finishes the job.
async fn a_rotation_killed_at_any_moment_leaves_every_record_readable(backend: Backend) {
    const N: usize = 300;
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let before = key_files(&env);
    deliver(&env, 0, N);
    let daemon = env.start();
    wait_for(
        "every message settled",
        Duration::from_secs(180),
        || {
            if settled(&env) == N { Ok(()) } else { Err(settled(&env).to_string()) }
        },
    );
    let original = haven_key_id(std::fs::read_to_string(env.path("secrets/haven.key")).unwrap().trim());
    let mut daemon = Some(daemon);
    for round in 0..3 {
        deliver(&env, N + round * 10, N + round * 10 + 10);
        let mut rotate = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["key", "rotate", "--config"])
            .arg(&env.config)
            .current_dir(env.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rand::random_range(50..600)));
        let _ = rotate.kill();
        let _ = rotate.wait();
        if round == 1 {
            drop(daemon.take()); // kill -9 the daemon too
            daemon = Some(env.start());
        }
        let verify = env.haven(&["key", "verify"]);
        assert_eq!(verify.code, 0, "after kill -9 of rotation {round}: {}{}", verify.stdout, verify.stderr);
    }
    // Retiring the original key is refused while it is current or any value still needs it
    // (the killed rotations may or may not have got that far).
    let verify = ok(env.haven(&["key", "verify"]), "verify");
    let current = current_key_in(&verify);
    let still_needed = key_ids_in(&verify).contains(&original);
    let retire = env.haven(&["key", "retire", &original]);
    if current == original {
        assert_eq!(retire.code, 2, "retiring the current key: {}{}", retire.stdout, retire.stderr);
    } else if still_needed {
        assert_eq!(retire.code, 65, "retiring a key still needed: {}{}", retire.stdout, retire.stderr);
        assert!(retire.stderr.contains("is still needed"), "{}", retire.stderr);
    } else {
        assert_eq!(retire.code, 0, "retiring a key nothing needs: {}{}", retire.stdout, retire.stderr);
    }
    let retired = retire.code == 0;
    let total = N + 30;
    wait_for("every message settled", Duration::from_secs(120), || {
        if settled(&env) == total { Ok(()) } else { Err(settled(&env).to_string()) }
    });
    daemon.take().unwrap().stop();

    // A rotation left to finish, then the original key retired.
    ok(env.haven(&["key", "rotate"]), "a whole rotation");
    let resealed = ok(env.haven(&["key", "reseal"]), "reseal");
    let current = current_key_in(&ok(env.haven(&["key", "verify"]), "verify"));
    assert_eq!(key_ids_in(&resealed), vec![current.clone()], "every value under the current key: {}", resealed.stdout);
    let refused = env.haven(&["key", "retire", &current]);
    assert_eq!(refused.code, 2, "the current key cannot be retired: {}", refused.stderr);
    if !retired {
        ok(env.haven(&["key", "verify", "--without", &original]), "verify without the original key");
        ok(env.haven(&["key", "retire", &original]), "retire once nothing needs it");
    }
    ok(env.haven(&["key", "verify"]), "verify with the remaining ring");
    chronology_opens(&env, total);
    assert_no_key_file_lost(&before, &key_files(&env));
    db.cleanup().await;
}

/// A key file that is readable by others, or a current key whose file is missing, stops
/// every command with the reason; nothing is filed with a key nobody holds.
async fn a_missing_current_key_is_named_and_nothing_is_filed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let rotated = ok(env.haven(&["key", "rotate"]), "rotate");
    let new_id = rotated.stdout.split_whitespace().nth(1).unwrap().to_string();
    let ring_file = env.path(&format!("secrets/haven.keyring/{new_id}.key"));
    assert!(ring_file.exists(), "{}", rotated.stdout);
    let aside = env.path("aside.key");
    std::fs::rename(&ring_file, &aside).unwrap();
    env.deliver("1.M1P1.keys", &forward(1));
    let r = env.haven(&["ingest", env.path("mail/intake/new/1.M1P1.keys").to_str().unwrap()]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&new_id) && r.stderr.contains("key backup"), "{}", r.stderr);
    assert_eq!(env.status()["messages"]["filed"], 0);
    std::fs::rename(&aside, &ring_file).unwrap();
    ok(env.haven(&["ingest", env.path("mail/intake/new/1.M1P1.keys").to_str().unwrap()]), "ingest");
    assert_eq!(env.status()["messages"]["filed"], 1);
    db.cleanup().await;
}

/// The key id Haven derives from a hex key: the first 4 bytes of its SHA-256.
fn haven_key_id(hex_key: &str) -> String {
    use sha2::Digest;
    let bytes = hex::decode(hex_key).unwrap();
    hex::encode(&sha2::Sha256::digest(&bytes)[..4])
}

backend_tests!(
    rotating_under_a_running_daemon_loses_nothing,
    a_rotation_killed_at_any_moment_leaves_every_record_readable,
    a_missing_current_key_is_named_and_nothing_is_filed,
);
