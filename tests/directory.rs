//! The directory import guard, end to end through the real `haven` binary on SQLite and on
//! PostgreSQL (issue 16, defect 3): an import that would mark too many pupils as left or
//! deactivate too many staff is refused with the counts unless `--allow-mass-change` is given;
//! one that leaves no active member of the DSL team is always refused; a refusal changes
//! nothing and is audited; a leaver's contact row is kept with a warning.

mod support;

use haven::directory::Directory;
use std::path::{Path, PathBuf};
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, Run, school_fixtures};

/// The example school's directory: 30 pupils, 13 staff, 16 contacts, in MIS spellings.
fn eaton(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/eaton/directory").join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The header and the data rows of a CSV file.
fn rows(path: &Path) -> (String, Vec<String>) {
    let text = read(path);
    let mut lines = text.lines().map(str::to_string);
    let header = lines.next().expect("a header row");
    (header, lines.filter(|l| !l.trim().is_empty()).collect())
}

/// Writes `header` and `rows` as `name` in the installation's directory.
fn write_csv(env: &HavenEnv, name: &str, header: &str, rows: &[String]) -> PathBuf {
    let path = env.path(name);
    let mut text = format!("{header}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn import(env: &HavenEnv, pupils: &Path, staff: &Path, contacts: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "directory",
        "import",
        "--pupils",
        pupils.to_str().unwrap(),
        "--staff",
        staff.to_str().unwrap(),
        "--contacts",
        contacts.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.haven(&args)
}

fn import_eaton(env: &HavenEnv) {
    let r = import(env, &eaton("pupils.csv"), &eaton("staff.csv"), &eaton("contacts.csv"), &[]);
    assert_eq!(r.code, 0, "the example directory must import: {}{}", r.stdout, r.stderr);
    // Off a terminal, progress is a closing line on stderr: every pupil of the file written.
    let pupils = std::fs::read_to_string(eaton("pupils.csv")).unwrap().lines().skip(1).filter(|l| !l.trim().is_empty()).count();
    let done = format!("haven: {pupils} of {pupils} pupils imported, ");
    assert!(r.stderr.lines().any(|l| l.starts_with(&done)), "{done:?} on stderr: {}", r.stderr);
}

fn on_roll(dir: &Directory) -> usize {
    dir.pupils.iter().filter(|p| p.on_roll()).count()
}

fn active_staff(dir: &Directory) -> Vec<String> {
    dir.staff.iter().filter(|s| s.active).map(|s| s.email().to_string()).collect()
}

/// The test installation's keyring, to read its sealed directory.
fn sealer_of(env: &HavenEnv) -> haven::seal::Sealer {
    haven::seal::Sealer::from_key_file(&env.path("secrets/haven.key")).expect("the test key")
}

/// The audit log's newest entries' actions, oldest first.
async fn audit_actions(db: &TestDb) -> Vec<(String, String)> {
    db.store.audit_tail(20).await.unwrap().into_iter().map(|e| (e.action, e.detail)).collect()
}

fn assert_audit_chain_holds(env: &HavenEnv) {
    let r = env.haven(&["audit", "verify"]);
    assert_eq!(r.code, 0, "audit verify: {}{}", r.stdout, r.stderr);
}

/// A staff export holding only its header row would deactivate all 7 staff, the DSL team
/// included: refused (exit 65, with the counts on stderr), even with --allow-mass-change; every
/// member of staff is still active, so a teacher's forward is still filed (not quarantined as
/// from a stranger); both refusals are in the audit log, whose chain still holds.
async fn header_only_staff_file_is_refused_and_everyone_stays_active(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let f = school_fixtures();
    let before = db.store.load_directory(&sealer_of(&env)).await.unwrap();
    assert_eq!(active_staff(&before).len(), 7);

    let (header, _) = rows(&f.join("staff.csv"));
    let staff = write_csv(&env, "staff.csv", &header, &[]);
    let r = import(&env, &f.join("pupils.csv"), &staff, &f.join("contacts.csv"), &[]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    let s = staff.display();
    assert!(
        r.stderr.contains(&format!(
            "haven: {s}: would leave no active member of the DSL team (role dsl or ddsl), so nobody could record outcomes; \
             this is refused even with --allow-mass-change;\n\
             {s}: would deactivate 7 of 7 active staff (100 %), over the 10 % limit; nothing was changed; check the file"
        )),
        "{}",
        r.stderr
    );
    let after = db.store.load_directory(&sealer_of(&env)).await.unwrap();
    assert_eq!(active_staff(&after), active_staff(&before), "a refused import must deactivate nobody");

    let r = import(&env, &f.join("pupils.csv"), &staff, &f.join("contacts.csv"), &["--allow-mass-change"]);
    assert_eq!(r.code, 65, "no DSL team is refused even with the flag: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("would leave no active member of the DSL team"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed; check the file"), "{}", r.stderr);
    assert!(!r.stderr.contains("would deactivate"), "the flag allows the mass change itself: {}", r.stderr);
    let after = db.store.load_directory(&sealer_of(&env)).await.unwrap();
    assert_eq!(active_staff(&after).len(), 7);

    let mail = f.join("mail/forward-contact.eml");
    let r = env.haven(&["ingest", mail.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    let status = env.status();
    assert_eq!(status["messages"]["filed"], 1, "the teacher is still staff: {status}");

    let audit = audit_actions(&db).await;
    let refused: Vec<&(String, String)> = audit.iter().filter(|(a, _)| a == "directory_import_refused").collect();
    assert_eq!(refused.len(), 2, "{audit:?}");
    assert!(refused[0].1.contains("staff 7 of 7 would be deactivated"), "{audit:?}");
    assert!(refused[0].1.contains("0 of the DSL team would stay active"), "{audit:?}");
    assert_audit_chain_holds(&env);
    db.cleanup().await;
}

/// A pupils export cut to 3 of 30 rows is refused with the counts, and the whole import
/// with it (an edited pupil and a new one in the same file are not applied either); with
/// --allow-mass-change it is applied: 27 pupils left, their contacts kept with a warning.
async fn pupils_cut_to_3_of_30_are_refused_then_accepted_with_the_flag(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    import_eaton(&env);

    let (header, all) = rows(&eaton("pupils.csv"));
    assert_eq!(all.len(), 30);
    let mut kept: Vec<String> = all[..3].to_vec();
    // The same file also moves pupil 1 to another tutor group: one transaction, so no.
    assert!(kept[0].contains(",5K,"), "{}", kept[0]);
    kept[0] = kept[0].replace(",5K,", ",5F,");
    let pupils = write_csv(&env, "pupils.csv", &header, &kept);

    let r = import(&env, &pupils, &eaton("staff.csv"), &eaton("contacts.csv"), &[]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "haven: {}: would mark 27 of 30 pupils as left (90 %), over the 10 % limit; nothing was changed; \
             check the file or pass --allow-mass-change",
            pupils.display()
        )),
        "{}",
        r.stderr
    );
    let dir = db.store.load_directory(&sealer_of(&env)).await.unwrap();
    assert_eq!(on_roll(&dir), 30, "a refused import marks nobody as left");
    let jane = dir.pupils.iter().find(|p| p.upn == "E100000000001").unwrap();
    assert_eq!(jane.tutor_group.as_deref(), Some("5K"), "a refused import changes nothing at all");
    let audit = audit_actions(&db).await;
    let last = audit.last().unwrap();
    assert_eq!(last.0, "directory_import_refused", "{audit:?}");
    assert!(last.1.contains("pupils 27 of 30 would leave"), "{audit:?}");
    assert!(!last.1.contains("Jane") && !last.1.contains("Smith"), "no names in the audit detail: {audit:?}");

    let r = import(&env, &pupils, &eaton("staff.csv"), &eaton("contacts.csv"), &["--allow-mass-change"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("27 left"), "{}", r.stdout);
    assert!(r.stderr.contains("haven: warning: "), "contacts of leavers are named: {}", r.stderr);
    let dir = db.store.load_directory(&sealer_of(&env)).await.unwrap();
    assert_eq!(on_roll(&dir), 3);
    assert_eq!(dir.pupils.len(), 30, "leavers are kept, never deleted");
    let jane = dir.pupils.iter().find(|p| p.upn == "E100000000001").unwrap();
    assert_eq!(jane.tutor_group.as_deref(), Some("5F"));
    assert_eq!(dir.contacts.len(), 16, "every contact is kept");
    assert_eq!(audit_actions(&db).await.last().unwrap().0, "directory_import");
    assert_audit_chain_holds(&env);
    db.cleanup().await;
}

/// Taking the DSL and the deputy out of the staff file is refused even with
/// --allow-mass-change, and so is keeping them but dropping their DSL-team roles; both stay
/// active, with their roles.
async fn removing_the_dsl_team_is_refused_even_with_the_flag(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    import_eaton(&env);

    let (header, all) = rows(&eaton("staff.csv"));
    let without: Vec<String> = all.iter().filter(|l| !l.starts_with("dsl@") && !l.starts_with("ddsl@")).cloned().collect();
    assert_eq!(without.len(), 11);
    let staff = write_csv(&env, "staff.csv", &header, &without);
    let r = import(&env, &eaton("pupils.csv"), &staff, &eaton("contacts.csv"), &["--allow-mass-change"]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("would leave no active member of the DSL team"), "{}", r.stderr);

    let demoted: Vec<String> = all.iter().map(|l| l.replace(",dsl;slt,", ",slt,").replace(",ddsl,", ",teacher,")).collect();
    let staff = write_csv(&env, "staff.csv", &header, &demoted);
    let r = import(&env, &eaton("pupils.csv"), &staff, &eaton("contacts.csv"), &["--allow-mass-change"]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("would leave no active member of the DSL team"), "{}", r.stderr);

    let dir = db.store.load_directory(&sealer_of(&env)).await.unwrap();
    let team: Vec<String> = dir.staff.iter().filter(|s| s.active && s.is_dsl_team()).map(|s| s.email().to_string()).collect();
    assert_eq!(team, vec!["dsl@eaton.sch.example", "ddsl@eaton.sch.example"]);
    assert_eq!(active_staff(&dir).len(), 13);

    // One of the two may go: the team is not empty and 1 of 13 is within the limit.
    let without_deputy: Vec<String> = all.iter().filter(|l| !l.starts_with("ddsl@")).cloned().collect();
    let staff = write_csv(&env, "staff.csv", &header, &without_deputy);
    let r = import(&env, &eaton("pupils.csv"), &staff, &eaton("contacts.csv"), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("12 active, 1 deactivated"), "{}", r.stdout);
    db.cleanup().await;
}

/// A pupil missing from the pupils file whose parent is still in contacts.csv (with a
/// sibling on roll) does not fail the import: the pupil is marked as left, the contact is
/// kept, linked to both, and a warning names the row.
async fn a_leavers_contact_row_does_not_fail_the_import(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    import_eaton(&env);

    let (header, all) = rows(&eaton("pupils.csv"));
    let without: Vec<String> = all.iter().filter(|l| !l.starts_with("E100000000004,")).cloned().collect();
    let pupils = write_csv(&env, "pupils.csv", &header, &without);
    let contacts = eaton("contacts.csv");
    let r = import(&env, &pupils, &eaton("staff.csv"), &contacts, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("29 updated, 1 left"), "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "haven: warning: {}:17: UPN E100000000004 is not in the pupils file, so that pupil has left; \
             the contact is kept and stays linked to their record",
            contacts.display()
        )),
        "{}",
        r.stderr
    );
    let dir = db.store.load_directory(&sealer_of(&env)).await.unwrap();
    let id = |upn: &str| dir.pupils.iter().find(|p| p.upn == upn).unwrap();
    assert!(!id("E100000000004").on_roll());
    assert!(id("E100000000030").on_roll());
    let price = dir.contacts.iter().find(|c| c.email == "price.home@example.com").unwrap();
    assert_eq!(price.pupil_ids, vec![id("E100000000004").id, id("E100000000030").id]);

    // A UPN Haven has never seen is still a mistake in the file: named, nothing imported.
    let (cheader, mut crows) = rows(&contacts);
    crows.push("new.parent@example.com,New Parent,mother,E199999999999".into());
    let contacts = write_csv(&env, "contacts.csv", &cheader, &crows);
    let r = import(&env, &eaton("pupils.csv"), &eaton("staff.csv"), &contacts, &[]);
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{}:18: UPN E199999999999 is not in the pupils file and is not a pupil Haven knows\nnothing was imported",
            contacts.display()
        )),
        "{}",
        r.stderr
    );
    assert!(!db.store.load_directory(&sealer_of(&env)).await.unwrap().pupils.iter().find(|p| p.upn == "E100000000004").unwrap().on_roll());
    db.cleanup().await;
}

/// The small test school (4 pupils, 7 staff): a normal re-import with one leaver, whose
/// parent is still in contacts.csv, and one member of staff gone, works: one of each is
/// always allowed, although 1 of 4 is over 10 %.
async fn a_normal_reimport_with_one_leaver_works(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let f = school_fixtures();

    let (header, all) = rows(&f.join("pupils.csv"));
    assert_eq!(all.len(), 4);
    let pupils = write_csv(&env, "pupils.csv", &header, &all[..1].iter().chain(&all[2..]).cloned().collect::<Vec<_>>());
    let (sheader, sall) = rows(&f.join("staff.csv"));
    let staff = write_csv(&env, "staff.csv", &sheader, &sall[..sall.len() - 1]);
    let r = import(&env, &pupils, &staff, &f.join("contacts.csv"), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("3 updated, 1 left"), "{}", r.stdout);
    assert!(r.stdout.contains("6 active, 1 deactivated"), "{}", r.stdout);
    assert!(r.stderr.contains("UPN A100000000002 is not in the pupils file, so that pupil has left"), "{}", r.stderr);
    let dir = db.store.load_directory(&sealer_of(&env)).await.unwrap();
    assert_eq!(on_roll(&dir), 3);
    assert_eq!(active_staff(&dir).len(), 6);

    // The pupil comes back with the next export: on roll again.
    let r = import(&env, &f.join("pupils.csv"), &f.join("staff.csv"), &f.join("contacts.csv"), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 rejoined"), "{}", r.stdout);
    assert_eq!(on_roll(&db.store.load_directory(&sealer_of(&env)).await.unwrap()), 4);
    db.cleanup().await;
}

/// `[directory] max_change` sets the limit: at 95 % the cut file goes through without the
/// flag; a value that is not a percentage stops every command with the key named (exit 78).
async fn the_limit_comes_from_the_config(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    import_eaton(&env);
    let config = read(&env.config);

    std::fs::write(&env.config, format!("{config}\n[directory]\nmax_change = \"lots\"\n")).unwrap();
    let r = import(&env, &eaton("pupils.csv"), &eaton("staff.csv"), &eaton("contacts.csv"), &[]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("directory.max_change: expected a percentage from 0% to 100% such as \"10%\", found \"lots\""),
        "{}",
        r.stderr
    );

    std::fs::write(&env.config, format!("{config}\n[directory]\nmax_change = \"95%\"\n")).unwrap();
    let (header, all) = rows(&eaton("pupils.csv"));
    let pupils = write_csv(&env, "pupils.csv", &header, &all[..3]);
    let r = import(&env, &pupils, &eaton("staff.csv"), &eaton("contacts.csv"), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("27 left"), "{}", r.stdout);
    db.cleanup().await;
}

backend_tests!(
    header_only_staff_file_is_refused_and_everyone_stays_active,
    pupils_cut_to_3_of_30_are_refused_then_accepted_with_the_flag,
    removing_the_dsl_team_is_refused_even_with_the_flag,
    a_leavers_contact_row_does_not_fail_the_import,
    a_normal_reimport_with_one_leaver_works,
    the_limit_comes_from_the_config,
);
