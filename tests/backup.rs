//! examples/backup/haven-backup and haven-restore on both engines: back up a working
//! installation, file more, restore; the audit chain verifies against the restored anchor, and
//! the restored daemon files only what the backup did not hold.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, school_fixtures, wait_for};

fn script(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/backup").join(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{said}");
    said
}

fn messages_total(env: &HavenEnv) -> u64 {
    let s = env.status();
    s["messages"].as_object().unwrap().values().filter_map(|v| v.as_u64()).sum()
}

fn mail(name: &str) -> Vec<u8> {
    std::fs::read(school_fixtures().join("mail").join(name)).unwrap()
}

async fn back_up_file_more_restore_and_file_only_what_is_new(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store.close().await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let r = env.haven(&["ingest", school_fixtures().join("mail/forward-contact.eml").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(messages_total(&env), 1);

    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().join("haven-backup");
    run(Command::new(script("haven-backup")).arg(&db.url).arg(env.dir.path()).arg(&dest));
    for f in ["secrets/haven.key", "secrets/reply.key", "secrets/audit.key", "secrets/audit.head", "haven.toml", "rules"] {
        assert!(dest.join(f).exists(), "the backup lacks {f}");
    }

    // More is filed after the backup.
    let r = env.haven(&["ingest", school_fixtures().join("mail/phone-reply.eml").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(messages_total(&env), 2);

    run(Command::new(script("haven-restore")).arg(&dest).arg(&db.url).arg(env.dir.path()));
    assert_eq!(messages_total(&env), 1, "the restored database is the backup's");
    let verify = env.haven(&["audit", "verify"]);
    assert_eq!(verify.code, 0, "audit verify after the restore:\n{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("intact"), "{}", verify.stdout);

    // Both messages arrive again at the intake: the daemon files the new one and recognises
    // the one the backup already held.
    env.deliver("again-forward.eml", &mail("forward-contact.eml"));
    env.deliver("again-phone.eml", &mail("phone-reply.eml"));
    let mut daemon = env.start();
    wait_for("the intake to be drained", Duration::from_secs(30), || {
        daemon.assert_running();
        let left = std::fs::read_dir(env.path("mail/intake/new")).map(|d| d.count()).unwrap_or(0);
        if left == 0 { Ok(()) } else { Err(format!("{left} left in new/")) }
    });
    daemon.stop();
    let s = env.status();
    assert_eq!(messages_total(&env), 2, "one new message filed, the other not twice: {s}");
    let verify = env.haven(&["audit", "verify"]);
    assert_eq!(verify.code, 0, "audit verify after filing on the restore:\n{}{}", verify.stdout, verify.stderr);
    db.cleanup().await;
}

backend_tests!(back_up_file_more_restore_and_file_only_what_is_new);
