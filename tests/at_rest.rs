//! A stolen database reveals nothing (issue 17, defect 2): tests/at-rest.sh fills each engine
//! with the example school and searches a copy of the database and storage folder for every
//! name, address, subject, note and outcome; the database and key files are private; a reply
//! key others can read stops the daemon; values an older version kept in clear are sealed.

mod support;

use haven::store::Store;
use sqlx::Row;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::db::{Backend, TestDb};
use support::haven::HavenEnv;

/// Runs tests/at-rest.sh on `pg_url` (SQLite when None) and fails with what it found.
fn at_rest_script(pg_url: Option<&str>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/at-rest.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(env!("CARGO_BIN_EXE_haven"));
    if let Some(url) = pg_url {
        cmd.arg(url);
    }
    let out = cmd.output().expect("run tests/at-rest.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tests/at-rest.sh ({}):\n{stdout}{stderr}", out.status);
    assert!(stdout.contains("nothing found"), "{stdout}{stderr}");
    println!("{stdout}");
}

#[test]
fn a_copy_of_the_sqlite_database_reveals_nothing() {
    at_rest_script(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_postgres_database_reveals_nothing() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || at_rest_script(Some(&url))).await.expect("the script ran");
    db.cleanup().await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn the_database_keys_and_storage_folder_are_private() {
    let db_dir = tempfile::tempdir().expect("temp dir");
    let db_file = db_dir.path().join("haven.db");
    let env = HavenEnv::new(&format!("sqlite://{}", db_file.display()), "");
    env.import_school();
    assert_eq!(mode(&db_file), 0o600, "haven.db is created readable by its owner only");
    let daemon = env.start();
    let wal = db_dir.path().join("haven.db-wal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(wal.exists() && daemon.log().contains("haven running")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for f in ["haven.db", "haven.db-wal", "haven.db-shm"] {
        assert_eq!(mode(&db_dir.path().join(f)), 0o600, "{f} while the daemon runs");
    }
    daemon.stop();

    // A database file left readable by others (an older version made it 0644) is narrowed.
    std::fs::set_permissions(&db_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = env.haven(&["status"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&db_file), 0o600, "an existing haven.db readable by others is narrowed to 0600");

    let site = tempfile::tempdir().expect("temp dir");
    let r = env.haven(&["init", site.path().join("school").to_str().unwrap()]);
    assert_eq!(r.code, 0, "haven init: {}{}", r.stdout, r.stderr);
    let school = site.path().join("school");
    for key in ["secrets/haven.key", "secrets/reply.key", "secrets/audit.key"] {
        assert_eq!(mode(&school.join(key)), 0o600, "{key} from haven init");
    }
    assert_eq!(mode(&school.join("secrets")), 0o700);
}

#[test]
fn a_reply_key_others_can_read_stops_the_daemon() {
    let db_dir = tempfile::tempdir().expect("temp dir");
    let env = HavenEnv::new(&format!("sqlite://{}", db_dir.path().join("haven.db").display()), "");
    let key = env.path("secrets/reply.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["run", "--config"])
        .arg(&env.config)
        .current_dir(env.path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start haven run");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for haven run") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("haven run started with a reply key that others can read");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("haven run output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(78), "configuration error exit code; stderr: {stderr}");
    assert!(stderr.contains("reply.key is readable by group or others; run: chmod 600"), "the error names the file and the fix: {stderr}");
}

/// What a row holds as stored.
async fn stored(store: &Store, sql: &str) -> Vec<Option<String>> {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match store {
        Store::Sqlite(p) => sqlx::query(sql).fetch_all(p).await.unwrap().iter().map(|r| r.get(0)).collect(),
        Store::Postgres(p) => sqlx::query(sql).fetch_all(p).await.unwrap().iter().map(|r| r.get(0)).collect(),
    }
}

/// A database written by a version that kept the directory and sent alerts in clear is sealed
/// at the next start, and reads back the same.
async fn clear_values_from_an_older_version_are_sealed(backend: Backend) {
    let db = TestDb::new(backend).await;
    for sql in [
        "INSERT INTO pupils (upn, first_name, last_name, preferred_name, date_of_birth, updated_us) \
         VALUES ('A123456789012', 'Jane', 'Smith', 'Janey', '2016-03-02', 0)",
        "INSERT INTO contacts (email, name, relationship) VALUES ('mary.smith@example.com', 'Mary Smith', 'mother')",
        "INSERT INTO outbox (purpose, recipient, email_message_id, subject, body, created_us, state, next_attempt_us) \
         VALUES ('alert', 'dsl@school.example', 'm1@school.example', 'Jane Smith', 'Jane Smith was upset', 0, 'sent', 0)",
    ] {
        haven::store::on_pool_for_tests(&db.store, sql).await;
    }
    let (sealer, blind) = (support::db::sealer(), support::db::blind());
    let sealed = db.store.seal_clear_values(&sealer, &blind).await.expect("seal what is clear");
    assert_eq!(sealed, 3, "a pupil, a contact and a sent email");
    for sql in [
        "SELECT upn FROM pupils",
        "SELECT first_name FROM pupils",
        "SELECT last_name FROM pupils",
        "SELECT preferred_name FROM pupils",
        "SELECT date_of_birth FROM pupils",
        "SELECT email FROM contacts",
        "SELECT name FROM contacts",
    ] {
        let v = stored(&db.store, sql).await.remove(0).unwrap_or_default();
        assert!(v.starts_with("enc1:"), "{sql}: {v}");
    }
    assert_eq!(stored(&db.store, "SELECT body FROM outbox").await, vec![Some(String::new())], "a sent alert's text is deleted");
    let index = stored(&db.store, "SELECT email_index FROM contacts").await.remove(0);
    assert_eq!(index, Some(blind.index(haven::blind::kinds::CONTACT_EMAIL, "Mary.Smith@example.com")));

    let dir = db.store.load_directory(&sealer).await.expect("load the sealed directory");
    assert_eq!((dir.pupils[0].first_name.as_str(), dir.pupils[0].last_name.as_str()), ("Jane", "Smith"));
    assert_eq!(dir.pupils[0].upn, "A123456789012");
    assert_eq!(dir.contacts[0].email, "mary.smith@example.com");
    assert_eq!(db.store.seal_clear_values(&sealer, &blind).await.unwrap(), 0, "nothing is left to seal");

    // Another key cannot read the roll, and says so rather than showing garbage.
    let other = haven::seal::Sealer::from_key(&[9; 32]);
    let err = db.store.load_directory(&other).await.expect_err("another key");
    assert!(err.to_string().contains("not in the keyring"), "{err}");
    db.cleanup().await;
}

backend_tests!(clear_values_from_an_older_version_are_sealed);

/// After `haven key rotate` the sealed roll, senders and outcome still read, and the next
/// directory import matches every pupil and contact by its opened value (the blind indexes
/// were made under the old key): nobody is added twice.
async fn a_key_rotation_keeps_the_sealed_directory_and_outcomes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    // A parent's forward (a sender to seal) and a DSL-only note that needs an outcome.
    let mail = support::haven::school_fixtures().join("mail");
    for m in ["forward-contact.eml", "note-named.eml"] {
        let r = env.haven(&["ingest", mail.join(m).to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    let r = env.haven(&["outcome", "2", "Spoke to Mr Brown; referred to the school nurse", "--by", "dsl@school.example"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = env.haven(&["key", "rotate"]);
    assert_eq!(r.code, 0, "rotate: {}{}", r.stdout, r.stderr);

    let chronology = |upn: &str| {
        let r = env.haven(&["chronology", upn, "--json", "--as", "dsl@school.example"]);
        assert_eq!(r.code, 0, "chronology after rotation: {}", r.stderr);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    let jane = chronology("A100000000001");
    assert_eq!(jane["pupil"]["name"], "Jane Smith");
    assert_eq!(jane["incidents"][0]["original_from"], "parent.smith@example.com", "{jane}");
    let oliver = chronology("A100000000002");
    assert_eq!(oliver["incidents"][0]["outcome"], "Spoke to Mr Brown; referred to the school nurse", "{oliver}");

    let f = support::haven::school_fixtures();
    let r = env.haven(&[
        "directory",
        "import",
        "--pupils",
        f.join("pupils.csv").to_str().unwrap(),
        "--staff",
        f.join("staff.csv").to_str().unwrap(),
        "--contacts",
        f.join("contacts.csv").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("pupils: 0 added"), "the re-import matches every pupil: {}", r.stdout);
    let ring = haven::seal::Sealer::load(&haven::seal::KeyFiles::new(&env.path("secrets/haven.key")), None, &[]).unwrap();
    let dir = db.store.load_directory(&ring).await.unwrap();
    let pupils = std::fs::read_to_string(f.join("pupils.csv")).unwrap().lines().count() - 1;
    let contacts = std::fs::read_to_string(f.join("contacts.csv")).unwrap().lines().count() - 1;
    assert_eq!((dir.pupils.len(), dir.contacts.len()), (pupils, contacts), "nobody added twice");
    db.cleanup().await;
}

mod rotation {
    use super::*;
    backend_tests!(a_key_rotation_keeps_the_sealed_directory_and_outcomes);
}
