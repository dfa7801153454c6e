//! `haven check` against real parts: a real Dovecot for the IMAP login, a real aiosmtpd for the
//! SMTP connection, both database engines. All ok exits 0; each broken part fails with its own
//! line naming what is wrong, and the exit code says so to a monitoring system.

mod support;

use support::db::{Backend, TestDb};
use support::dovecot::{Dovecot, PASSWORD, USER};
use support::haven::{HavenEnv, Run};
use support::smtp::{SmtpServer, free_port};

/// Points the installation's intake at `d` (plain IMAP on loopback) with `password`.
fn use_imap(env: &HavenEnv, d: &Dovecot, password: &str) {
    std::fs::write(env.path("secrets/imap-password"), format!("{password}\n")).unwrap_or_else(|e| panic!("{e}"));
    let config = std::fs::read_to_string(&env.config).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.contains("source = \"maildir\""), "the test config changed shape");
    let config = config.replace("source = \"maildir\"", "source = \"imap\"")
        + &format!(
            "\n[intake.imap]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             username = \"{USER}\"\nauth = \"password\"\npassword_file = \"secrets/imap-password\"\n",
            d.port
        );
    std::fs::write(&env.config, config).unwrap_or_else(|e| panic!("{e}"));
}

fn append_config(env: &HavenEnv, text: &str) {
    let config = std::fs::read_to_string(&env.config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&env.config, config + text).unwrap_or_else(|e| panic!("{e}"));
}

/// The lines of `haven check` that start with `status` and name `part`.
fn lines<'a>(r: &'a Run, status: &str, part: &str) -> Vec<&'a str> {
    r.stdout.lines().filter(|l| l.split_whitespace().next() == Some(status) && l.split_whitespace().nth(1) == Some(part)).collect()
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
}

/// A working installation with IMAP intake and SMTP alerts: every check passes, exit 0.
async fn every_part_working_passes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dovecot = Dovecot::start();
    let smtp = SmtpServer::start();
    let env = HavenEnv::with_smtp(&db.url, "", smtp.port);
    use_imap(&env, &dovecot, PASSWORD);
    append_config(&env, "\n[[digest]]\nto = \"role:dsl\"\ncron = \"0 30 7 * * Mon-Fri\"\n");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 0, "haven check failed:\n{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("FAIL"), "{}", r.stdout);
    for part in ["config", "keys", "rules", "digests", "database", "imap", "smtp"] {
        assert!(!lines(&r, "ok", part).is_empty(), "no ok line for {part}:\n{}", r.stdout);
    }
    assert_eq!(lines(&r, "ok", "keys").len(), 3, "storage, reply and audit key:\n{}", r.stdout);
    let imap = lines(&r, "ok", "imap");
    assert!(imap[0].contains(&format!("logged in to {USER}@127.0.0.1:{}", dovecot.port)), "{}", imap[0]);
    assert!(lines(&r, "ok", "smtp")[0].contains(&format!("127.0.0.1:{}", smtp.port)), "{}", r.stdout);
    let database = lines(&r, "ok", "database");
    assert!(
        database[0].contains(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }) && database[0].contains("none pending"),
        "{}",
        database[0]
    );
    assert!(lines(&r, "ok", "digests")[0].contains("next"), "{}", r.stdout);
    assert!(smtp.messages().is_empty(), "haven check must not send mail");
    db.cleanup().await;
}

/// A migration this binary carries but the database lacks is reported as pending; a version
/// the database has that this binary does not know fails.
async fn pending_and_unknown_migrations_are_reported(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    let latest: i64 = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let v = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1").bind(v).execute(&pool).await.unwrap();
            pool.close().await;
            v
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let v = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1").bind(v).execute(&pool).await.unwrap();
            pool.close().await;
            v
        }
    };
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 0, "a pending migration is not a failure:\n{}{}", r.stdout, r.stderr);
    let database = lines(&r, "ok", "database");
    assert!(database[0].contains(&format!("1 pending ({latest:04} ")), "{}", r.stdout);

    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (9999, 'from the future', TRUE, $1, 0)";
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(insert).bind(vec![0u8; 4]).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(insert).bind(vec![0u8; 4]).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let database = lines(&r, "FAIL", "database");
    assert!(database[0].contains("newer Haven") && database[0].contains("9999"), "{}", r.stdout);
    db.cleanup().await;
}

backend_tests!(every_part_working_passes, pending_and_unknown_migrations_are_reported);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_imap_password_fails_the_imap_line() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dovecot = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    use_imap(&env, &dovecot, "not-the-password");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let imap = lines(&r, "FAIL", "imap");
    assert_eq!(imap.len(), 1, "{}", r.stdout);
    assert!(imap[0].contains(&format!("{USER}@127.0.0.1:{}", dovecot.port)) && imap[0].contains("refused the login"), "{}", imap[0]);
    assert!(!imap[0].contains("not-the-password"), "the password must not be printed: {}", imap[0]);
    assert!(r.stderr.contains("1 of ") && r.stderr.contains("checks failed"), "{}", r.stderr);
    // The other parts are still checked and pass.
    assert!(!lines(&r, "ok", "rules").is_empty() && !lines(&r, "ok", "database").is_empty(), "{}", r.stdout);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_server_that_is_down_fails_the_smtp_line() {
    let db = TestDb::new(Backend::Sqlite).await;
    let port = free_port();
    let env = HavenEnv::with_smtp(&db.url, "", port);
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let smtp = lines(&r, "FAIL", "smtp");
    assert_eq!(smtp.len(), 1, "{}", r.stdout);
    assert!(smtp[0].contains(&format!("127.0.0.1:{port}")) && smtp[0].to_lowercase().contains("connect"), "{}", smtp[0]);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_others_can_read_fails_with_the_fix() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = HavenEnv::new(&db.url, "");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for (file, what) in [("secrets/haven.key", "storage"), ("secrets/reply.key", "reply"), ("secrets/audit.key", "audit")] {
        chmod(&env.path(file), 0o644);
        let r = env.haven(&["check"]);
        assert_eq!(r.code, 1, "{what} key 0644:\n{}{}", r.stdout, r.stderr);
        let keys = lines(&r, "FAIL", "keys");
        assert_eq!(keys.len(), 1, "{what} key 0644:\n{}", r.stdout);
        assert!(keys[0].contains(file) && keys[0].contains("chmod 600"), "{what}: {}", keys[0]);
        chmod(&env.path(file), 0o600);
    }
    // A key that rotation added to the keyring folder is checked too.
    let ring = env.path("secrets/haven.keyring");
    std::fs::create_dir(&ring).unwrap();
    chmod(&ring, 0o700);
    let extra = ring.join("0123456789abcdef.key");
    std::fs::write(&extra, format!("{}\n", "ab".repeat(32))).unwrap();
    chmod(&extra, 0o644);
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let keys = lines(&r, "FAIL", "keys");
    assert!(keys.len() == 1 && keys[0].contains("0123456789abcdef.key"), "{}", r.stdout);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rule_fails_the_rules_line_with_file_and_line() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = HavenEnv::new(&db.url, "");
    std::fs::write(env.path("rules/99-broken.toml"), "# a technician's edit\n[[rule]\nname = \"x\"\n").unwrap();
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(lines(&r, "FAIL", "rules").len(), 1, "{}", r.stdout);
    assert!(r.stdout.contains("99-broken.toml:2"), "the error names file and line:\n{}", r.stdout);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_schedule_that_never_fires_fails() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = HavenEnv::new(&db.url, "");
    append_config(&env, "\n[[digest]]\nto = \"role:dsl\"\ncron = \"0 0 9 30 Feb *\"\n");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let digests = lines(&r, "FAIL", "digests");
    assert!(digests.len() == 1 && digests[0].contains("never fires"), "{}", r.stdout);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_fails_every_error_and_exits_78() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = HavenEnv::new(&db.url, "");
    append_config(&env, "\n[[digest]]\nto = \"role:dsl\"\ncron = \"every morning\"\n");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    let config = lines(&r, "FAIL", "config");
    assert!(config.len() == 1 && config[0].contains("digest[0].cron"), "{}", r.stdout);
    db.cleanup().await;
}

/// Right after `haven init` the SQLite file does not exist yet: that passes (Haven creates
/// it), and the check does not create it; a folder that is not there fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_not_yet_created_passes_and_is_left_alone() {
    let db = TestDb::new(Backend::Sqlite).await;
    let url = format!("sqlite://{}", db.dir.path().join("not-yet.db").display());
    let env = HavenEnv::new(&url, "");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let database = lines(&r, "ok", "database");
    assert!(database[0].contains("not-yet.db does not exist yet"), "{}", r.stdout);
    assert!(!db.dir.path().join("not-yet.db").exists(), "haven check created the database");

    let url = format!("sqlite://{}", db.dir.path().join("no-such-folder/haven.db").display());
    let env = HavenEnv::new(&url, "");
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(lines(&r, "FAIL", "database")[0].contains("its folder does not exist"), "{}", r.stdout);
    db.cleanup().await;
}

/// `school.terms_file` is read with the config: a good file passes; an overlap, a half-term
/// outside its term and a bad date are each named with their term, and a missing file says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_terms_file_fails_the_config_line_with_each_mistake() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = HavenEnv::new(&db.url, "");
    let config = std::fs::read_to_string(&env.config).unwrap_or_else(|e| panic!("{e}"));
    let with_terms = config.replace(
        "intake_address = \"safeguarding@school.example\"\n",
        "intake_address = \"safeguarding@school.example\"\nterms_file = \"terms.toml\"\n",
    );
    assert_ne!(config, with_terms, "the test config changed shape");
    std::fs::write(&env.config, with_terms).unwrap_or_else(|e| panic!("{e}"));

    let r = env.haven(&["check"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(lines(&r, "FAIL", "config")[0].contains("school.terms_file") && r.stdout.contains("cannot be read"), "{}", r.stdout);

    std::fs::copy(support::eaton::eaton().join("terms.toml"), env.path("terms.toml")).unwrap_or_else(|e| panic!("{e}"));
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 0, "the example school's terms: {}{}", r.stdout, r.stderr);

    std::fs::write(
        env.path("terms.toml"),
        "[[term]]\nname = \"Autumn 2026\"\nstarts = 2026-09-02\nends = 2026-12-18\nhalf_term = [2026-12-21, 2026-12-23]\n\n\
         [[term]]\nname = \"Spring 2027\"\nstarts = 2026-12-01\nends = 2027-03-26\n\n\
         [[term]]\nname = \"Summer 2027\"\nstarts = \"after Easter\"\nends = 2027-07-21\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = env.haven(&["check"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    for part in [
        "term \"Autumn 2026\": half_term [2026-12-21, 2026-12-23] must run forwards inside the term",
        "term \"Spring 2027\" overlaps term \"Autumn 2026\"",
        "term \"Summer 2027\": starts: expected a date such as 2026-09-02, found \"after Easter\"",
    ] {
        assert!(r.stdout.contains(part), "missing {part:?}:\n{}", r.stdout);
    }
    db.cleanup().await;
}
