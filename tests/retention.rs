//! Retention and holds through the real `haven` binary, on SQLite and PostgreSQL: the schedule
//! checked like the rules, pupils falling due for review on their date of birth + 25 years,
//! review decisions, and holds that stop any decision to destroy while they stand.
//!
//! The test school (tests/fixtures/school): Oliver Brown (A…002) was born on 2013-11-20, so his
//! child-protection file falls due for review on 2038-11-20.

mod support;

use serde_json::Value;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, Run, school_fixtures};

const OLIVER: &str = "A100000000002";
const JANE: &str = "A100000000001";
const DSL: &str = "dsl@school.example";
const HEAD: &str = "head@school.example";
const TEACHER: &str = "teacher@school.example";

/// A school with one DSL-only incident about Oliver (a teacher's note), filed by `haven ingest`.
fn school(db: &TestDb) -> HavenEnv {
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let note = school_fixtures().join("mail/note-named.eml");
    let r = env.haven(&["ingest", note.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    env
}

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn incident_of(env: &HavenEnv, pupil: &str) -> i64 {
    let out = ok(env.haven(&["chronology", pupil, "--as", DSL, "--json"]), "chronology");
    let v: Value = serde_json::from_str(&out).expect("chronology --json");
    v["incidents"][0]["incident"].as_i64().unwrap_or_else(|| panic!("an incident on {pupil}'s chronology: {v}"))
}

async fn audit_actions(db: &TestDb) -> Vec<String> {
    db.store.audit_tail(200).await.unwrap().into_iter().map(|e| e.action).collect()
}

async fn the_schedule_is_checked_like_the_rules(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db);
    let out = ok(env.haven(&["retention", "check"]), "check without a file");
    assert!(out.contains("the shipped defaults"), "{out}");
    assert!(out.contains("child_protection_file: safeguarding categories, kept to date of birth + 25 years, then review"), "{out}");

    std::fs::write(
        env.path("retention.toml"),
        "[[series]]\nname = \"pastoral\"\napplies = { safeguarding = false }\nkeep = \"dob+20y\"\nthen = \"destroy\"\n\n\
         [[series]]\nname = \"cp\"\napplies = { category = \"Sports day\" }\nkeep = \"forever\"\nthen = \"review\"\n",
    )
    .unwrap();
    let r = env.haven(&["retention", "check"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    let file = env.path("retention.toml").display().to_string();
    assert!(r.stderr.contains(&format!("{file}:1:1: series \"pastoral\": then = \"destroy\"")), "{}", r.stderr);
    assert!(r.stderr.contains("add reason = "), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{file}:7:1: series \"cp\": applies.category \"Sports day\" is not one of")), "{}", r.stderr);
    assert!(r.stderr.contains("keep = \"forever\""), "{}", r.stderr);
    // An invalid schedule stops `due` too, rather than listing against half a schedule.
    assert_eq!(env.haven(&["retention", "due"]).code, 78);

    std::fs::write(
        env.path("retention.toml"),
        format!(
            "{}\n[[series]]\nname = \"dsl_only\"\napplies = {{ category = \"DSL Team Access Only\" }}\nkeep = \"75y\"\nthen = \"review\"\n\
             reason = \"IICSA recommends 75 years\"\n",
            haven::retention::DEFAULT_FILE
        ),
    )
    .unwrap();
    let out = ok(env.haven(&["retention", "check"]), "a deviation with its reason");
    assert!(out.contains("dsl_only: category \"DSL Team Access Only\", kept to latest incident + 75 years, then review (deviation: IICSA recommends 75 years)"), "{out}");
    // Oliver's note (11 Nov 2026) is now kept to 2101.
    let out = ok(env.haven(&["retention", "due", "--on", "2039-01-01"]), "due");
    assert!(out.contains("nothing falls due"), "{out}");
    let out = ok(env.haven(&["retention", "due", "--on", "2101-11-11"]), "due");
    assert!(out.contains(&format!("{OLIVER} dsl_only: 1 incident(s), due 2101-11-11")), "{out}");
    db.cleanup().await;
}

async fn pupils_fall_due_on_their_25th_birthday_and_reviews_move_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db);
    let out = ok(env.haven(&["retention", "due"]), "due today");
    assert!(out.contains("nothing falls due"), "{out}");
    let out = ok(env.haven(&["retention", "due", "--on", "2038-09-01", "--within", "90d"]), "due soon");
    assert!(
        out.contains(&format!("{OLIVER} child_protection_file: 1 incident(s), due soon 2038-11-20 (date of birth + 25 years)")),
        "{out}"
    );
    assert!(!out.contains(JANE), "Jane has no incidents: {out}");
    let v: Value = serde_json::from_str(&ok(env.haven(&["retention", "due", "--on", "2038-11-20", "--json"]), "json")).unwrap();
    assert_eq!(v["due"][0]["upn"], OLIVER, "{v}");
    assert_eq!(v["due"][0]["due"], "2038-11-20", "{v}");

    // Nobody outside the DSL team, the head or the DPO decides; the refusal is audited.
    let r = env.haven(&[
        "retention",
        "review",
        OLIVER,
        "--series",
        "child_protection_file",
        "--decision",
        "destroy",
        "--reason",
        "x",
        "--by",
        TEACHER,
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("only the DSL team, the head or the DPO"), "{}", r.stderr);
    assert!(audit_actions(&db).await.contains(&"retention_review_refused".to_string()));
    // Bad decisions are refused with what to do.
    let r = env.haven(&[
        "retention",
        "review",
        OLIVER,
        "--series",
        "child_protection_file",
        "--decision",
        "retain",
        "--reason",
        "x",
        "--by",
        DSL,
    ]);
    assert!(r.code == 2 && r.stderr.contains("retain needs --until"), "{}", r.stderr);
    let r = env.haven(&["retention", "review", OLIVER, "--series", "cp", "--decision", "destroy", "--reason", "x", "--by", DSL]);
    assert!(r.code == 2 && r.stderr.contains("not in the retention schedule (child_protection_file, pastoral)"), "{}", r.stderr);

    ok(
        env.haven(&[
            "retention",
            "review",
            OLIVER,
            "--series",
            "child_protection_file",
            "--decision",
            "retain",
            "--until",
            "2045-01-01",
            "--reason",
            "younger sibling's case still open",
            "--by",
            HEAD,
        ]),
        "retain",
    );
    let out = ok(env.haven(&["retention", "due", "--on", "2038-11-20"]), "after retain");
    assert!(out.contains("nothing falls due"), "kept until 2045: {out}");
    let out = ok(env.haven(&["retention", "due", "--on", "2045-01-01"]), "at the new date");
    assert!(out.contains("kept until 2045-01-01 on review"), "{out}");
    assert!(out.contains("review: retain until 2045-01-01, decided"), "{out}");
    assert!(out.contains("by Harriet Head"), "{out}");
    assert!(audit_actions(&db).await.contains(&"retention_review".to_string()));
    db.cleanup().await;
}

async fn a_hold_stops_a_destroy_decision_until_released(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db);
    let incident = incident_of(&env, OLIVER);

    let r = env.haven(&["hold", "set", "--pupil", OLIVER, "--reason", "police", "--note", "Op Elm, DC Shah", "--by", TEACHER]);
    assert_eq!(r.code, 2, "a teacher may not set a hold: {}{}", r.stdout, r.stderr);
    let r = env.haven(&["hold", "set", "--pupil", OLIVER, "--reason", "police", "--note", "  ", "--by", DSL]);
    assert!(r.code == 2 && r.stderr.contains("--note is empty"), "{}", r.stderr);
    let r = env.haven(&["hold", "set", "--incident", "9999", "--reason", "other", "--note", "n", "--by", DSL]);
    assert!(r.code == 2 && r.stderr.contains("there is no incident #9999"), "{}", r.stderr);
    let r = env.haven(&["hold", "set", "--pupil", OLIVER, "--reason", "lawyers", "--note", "n", "--by", DSL]);
    assert_eq!(r.code, 2, "an unknown reason is a usage error: {}", r.stderr);
    assert!(r.stderr.contains("litigation"), "the choices are listed: {}", r.stderr);

    let out = ok(
        env.haven(&["hold", "set", "--incident", &incident.to_string(), "--reason", "police", "--note", "Op Elm, DC Shah", "--by", DSL]),
        "set",
    );
    assert!(out.contains(&format!("set on incident #{incident} (police)")), "{out}");
    let id: String = out.split_whitespace().nth(1).unwrap().trim_start_matches('#').to_string();

    let list = ok(env.haven(&["holds"]), "holds");
    assert!(list.contains(&format!("hold #{id} on incident #{incident} (police) since")), "{list}");
    assert!(list.contains("by Dana Lead: Op Elm, DC Shah"), "{list}");
    // `haven status` says a hold stands, and where to look.
    let status = ok(env.haven(&["status"]), "status");
    assert!(status.contains("holds: 1 standing (0 on pupils, 1 on an incident)"), "{status}");
    let v: serde_json::Value = serde_json::from_str(&ok(env.haven(&["status", "--json"]), "status json")).unwrap();
    assert_eq!(v["holds"], serde_json::json!({"pupils": 0, "incidents": 1}), "{v}");
    // The note is sealed at rest.
    let stored = db.store.holds(false).await.unwrap();
    assert!(stored[0].sealed_note.starts_with("enc1:") && !stored[0].sealed_note.contains("Elm"), "{}", stored[0].sealed_note);

    // A hold on one of his incidents holds Oliver's file: no destroy decision.
    let r = env.haven(&[
        "retention",
        "review",
        OLIVER,
        "--series",
        "child_protection_file",
        "--decision",
        "destroy",
        "--reason",
        "past retention",
        "--by",
        DSL,
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("under 1 standing hold(s) (hold #{id}, police)")), "{}", r.stderr);
    let due = ok(env.haven(&["retention", "due", "--on", "2038-11-20"]), "due with a hold");
    assert!(due.contains(&format!("on hold: hold #{id} on incident #{incident} (police)")), "{due}");

    let r = env.haven(&["hold", "release", &id, "--note", "case closed", "--by", TEACHER]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    ok(env.haven(&["hold", "release", &id, "--note", "CPS decided no further action", "--by", DSL]), "release");
    let r = env.haven(&["hold", "release", &id, "--note", "again", "--by", DSL]);
    assert!(r.code == 2 && r.stderr.contains(&format!("no standing hold #{id}")), "{}", r.stderr);
    assert_eq!(ok(env.haven(&["holds"]), "none").trim(), "no holds stand");
    assert!(ok(env.haven(&["status"]), "status").contains("holds: none\n"), "a released hold no longer counts");
    let all = ok(env.haven(&["holds", "--all"]), "all");
    assert!(all.contains("; released"), "{all}");

    let out = ok(
        env.haven(&[
            "retention",
            "review",
            OLIVER,
            "--series",
            "child_protection_file",
            "--decision",
            "destroy",
            "--reason",
            "past retention",
            "--by",
            DSL,
        ]),
        "destroy after release",
    );
    assert!(out.contains("nothing has been deleted"), "{out}");
    let due = ok(env.haven(&["retention", "due", "--on", "2038-11-20"]), "due after destroy decision");
    assert!(due.contains("review: destroy, decided"), "{due}");
    // The record itself is untouched: a decision is not a disposal.
    assert_eq!(incident_of(&env, OLIVER), incident);

    let actions = audit_actions(&db).await;
    for a in ["hold_set_refused", "hold_set", "hold_release_refused", "hold_release", "retention_review_refused", "retention_review"] {
        assert!(actions.contains(&a.to_string()), "{a} audited: {actions:?}");
    }
    let verify = ok(env.haven(&["audit", "verify"]), "audit verify");
    assert!(verify.contains("OK") || verify.contains("intact") || verify.contains("verified"), "{verify}");
    db.cleanup().await;
}

backend_tests!(
    the_schedule_is_checked_like_the_rules,
    pupils_fall_due_on_their_25th_birthday_and_reviews_move_it,
    a_hold_stops_a_destroy_decision_until_released,
);
