//! Finding a pupil by name opens only the pupils found (issue 25): `haven chronology "Jane
//! Smith"` looks the words up in the blind name index, through the real binary on SQLite and
//! PostgreSQL. The index holds keyed hashes, never a name; it follows a re-import that renames a
//! pupil, still answers after `haven key rotate`, and a database whose pupils were imported
//! before the index existed is indexed when the daemon starts.

mod support;

use haven::store::Store;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, Run, school_fixtures, wait_for};

const DSL: &str = "dsl@school.example";

fn chronology(env: &HavenEnv, who: &str) -> Run {
    env.haven(&["chronology", who, "--as", DSL, "--json"])
}

/// The pupil a successful `chronology --json` shows: their UPN.
fn found(r: &Run) -> String {
    assert_eq!(r.code, 0, "found: {}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    v["pupil"]["upn"].as_str().unwrap_or_default().to_string()
}

async fn exec(store: &Store, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match store {
        Store::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Store::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn tokens(store: &Store) -> Vec<String> {
    let sql = "SELECT token FROM pupil_name_tokens ORDER BY token";
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await,
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await,
    }
    .expect("the name index")
}

/// By full name and by preferred name, whatever the case; a name nobody has is refused; the
/// index holds only hashes. Every other pupil's sealed names are then damaged: Jane is still
/// found by name, so nobody else's name was opened to find her.
async fn a_pupil_is_found_by_name_opening_only_that_pupil(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();

    assert_eq!(found(&chronology(&env, "Jane Smith")), "A100000000001");
    assert_eq!(found(&chronology(&env, " jane SMITH ")), "A100000000001");
    assert_eq!(found(&chronology(&env, "Olly Brown")), "A100000000002", "by preferred name");
    assert_eq!(found(&chronology(&env, "Oliver Brown")), "A100000000002");
    let r = chronology(&env, "Jane Brown");
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no pupil matches \"Jane Brown\""), "{}", r.stderr);

    let t = tokens(&db.store).await;
    // jane, smith, oliver, olly, brown, amira, khan, tom, price
    assert_eq!(t.len(), 9, "one row per pupil and word: {t:?}");
    assert!(t.iter().all(|t| t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit())), "only keyed hashes: {t:?}");

    exec(&db.store, "UPDATE pupils SET first_name = 'enc1:AAAA', last_name = 'enc1:AAAA' WHERE id <> (SELECT MIN(id) FROM pupils)").await;
    assert_eq!(found(&chronology(&env, "Jane Smith")), "A100000000001");
    assert_eq!(found(&chronology(&env, "A100000000001")), "A100000000001", "by UPN, through its index");
    db.cleanup().await;
}

/// A re-import that renames a pupil moves them in the index: the old name finds nobody, the
/// new one finds them; a key rotation leaves the index answering.
async fn the_index_follows_imports_and_key_rotation(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let f = school_fixtures();
    let renamed = std::fs::read_to_string(f.join("pupils.csv")).unwrap().replace("Jane,Smith,,", "Janet,Smith-Jones,Jan,");
    std::fs::write(env.path("pupils.csv"), renamed).unwrap();
    let r = env.haven(&[
        "directory",
        "import",
        "--pupils",
        env.path("pupils.csv").to_str().unwrap(),
        "--staff",
        f.join("staff.csv").to_str().unwrap(),
        "--contacts",
        f.join("contacts.csv").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(chronology(&env, "Jane Smith").code, 2, "the old name is gone from the index");
    assert_eq!(found(&chronology(&env, "Janet Smith-Jones")), "A100000000001");
    assert_eq!(found(&chronology(&env, "Jan Smith-Jones")), "A100000000001");

    let r = env.haven(&["key", "rotate"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(found(&chronology(&env, "janet smith-jones")), "A100000000001", "after a key rotation");
    db.cleanup().await;
}

/// Pupils imported before the name index existed (its rows deleted here) are indexed when the
/// daemon starts, and are then found by name.
async fn pupils_from_before_the_index_are_indexed_at_start(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    exec(&db.store, "DELETE FROM pupil_name_tokens").await;
    assert_eq!(chronology(&env, "Jane Smith").code, 2, "not in the index yet");
    let mut daemon = env.start();
    let rt = tokio::runtime::Handle::current();
    wait_for("the name index", Duration::from_secs(60), || {
        daemon.assert_running();
        let n = tokio::task::block_in_place(|| rt.block_on(tokens(&db.store))).len();
        if n == 9 { Ok(()) } else { Err(format!("{n} rows")) }
    });
    daemon.stop();
    assert_eq!(found(&chronology(&env, "Jane Smith")), "A100000000001");
    db.cleanup().await;
}

backend_tests!(
    a_pupil_is_found_by_name_opening_only_that_pupil,
    the_index_follows_imports_and_key_rotation,
    pupils_from_before_the_index_are_indexed_at_start,
);
