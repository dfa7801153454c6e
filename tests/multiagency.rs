//! The multi-agency chronology, through the real `haven` binary on both engines over the
//! example school: the DSL marks incidents significant (`haven incident mark`), and
//! `haven chronology --format multiagency` lists exactly those, in the partnership's columns,
//! as CSV, HTML and PDF (read back with poppler); a mark is a new entry (unmarking keeps the
//! first), sealed at rest and re-sealed by key rotation; only the DSL team marks; a HouseM's
//! chronology holds only the marked incidents they may see.

mod support;

use serde_json::Value;
use support::db::{Backend, TestDb};
use support::eaton::{DSL, eaton_school};
use support::haven::{HavenEnv, Run};
use support::poppler::{keep_page_one, pages};

const KESTREL: &str = "kestrel@eaton.sch.example";
const GRACE: &str = "Grace Okafor";

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn refused(r: Run, message: &str) {
    assert_eq!(r.code, 2, "expected a refusal ({message}): {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(message), "expected {message:?} in: {}", r.stderr);
}

/// Grace's incidents as the DSL sees them, and the ids her HouseM may see.
fn incidents(env: &HavenEnv) -> (Vec<i64>, Vec<i64>) {
    let ids = |viewer: &str| -> Vec<i64> {
        let v: Value = serde_json::from_str(&ok(env.haven(&["chronology", GRACE, "--as", viewer, "--json"]), "chronology")).unwrap();
        v["incidents"].as_array().unwrap().iter().map(|e| e["incident"].as_i64().unwrap()).collect()
    };
    (ids(DSL), ids(KESTREL))
}

fn mark(env: &HavenEnv, incident: i64, summary: &str, impact: &str, by: &str) -> Run {
    env.haven(&["incident", "mark", &incident.to_string(), "--significant", "--summary", summary, "--impact", impact, "--by", by])
}

async fn the_dsl_marks_significant_events_and_partners_read_them(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    let (all, house) = incidents(&env);
    let hidden = *all.iter().find(|i| !house.contains(i)).expect("an incident only the DSL team sees");
    let seen = *house.first().expect("an incident the HouseM sees");

    // Only the DSL team marks; each part is asked for.
    refused(mark(&env, seen, "Upset on the bus", "Anxious", KESTREL), "only the DSL team marks incidents");
    refused(env.haven(&["incident", "mark", &seen.to_string(), "--significant", "--summary", "Upset", "--by", DSL]), "--impact is missing");
    refused(mark(&env, 99999, "x", "y", DSL), "there is no incident #99999");
    let r = env.haven(&["incident", "mark", &seen.to_string(), "--summary", "x", "--impact", "y", "--by", DSL]);
    assert_eq!(r.code, 2, "neither --significant nor --not-significant: {}", r.stderr);

    ok(
        mark(&env, seen, "Told teacher older pupils took her lunch money on the bus", "Frightened to travel; missed breakfast club", DSL),
        "mark",
    );
    // The newest mark counts: marked, unmarked (left out), marked again in other words.
    ok(mark(&env, hidden, "Late twice this week", "None known", DSL), "mark hidden");
    let unmark = ok(env.haven(&["incident", "mark", &hidden.to_string(), "--not-significant", "--by", DSL]), "unmark");
    assert!(unmark.contains("left out of the multi-agency chronology"), "{unmark}");
    let csv = ok(env.haven(&["chronology", GRACE, "--as", DSL, "--format", "multiagency"]), "csv after unmarking");
    assert!(csv.contains("lunch money") && !csv.contains("Late twice"), "{csv}");
    ok(mark(&env, hidden, "Social worker called about a home visit", "Home circumstances under assessment", DSL), "mark hidden again");

    // CSV on standard output: a header and the two significant events, in date order.
    let csv = ok(env.haven(&["chronology", GRACE, "--as", DSL, "--format", "multiagency"]), "csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["Date", "Significant event", "Source", "Impact on the child", "Action / outcome", "Incident"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let row = rows.iter().find(|r| r[5] == format!("#{seen}")).unwrap_or_else(|| panic!("#{seen}: {csv}"));
    assert_eq!(&row[1], "Told teacher older pupils took her lunch money on the bus");
    assert_eq!(&row[3], "Frightened to travel; missed breakfast club");
    assert!(row[0].len() == 10 && row[0].starts_with("2026-"), "a date: {}", &row[0]);
    assert!(!row[2].is_empty() && !row[4].is_empty(), "a source and an action: {row:?}");
    assert!(!csv.contains("Late twice"), "an unmarked incident is left out: {csv}");

    // The HouseM's: only what they may see.
    let house_csv = ok(env.haven(&["chronology", GRACE, "--as", KESTREL, "--format", "multiagency"]), "house csv");
    assert!(house_csv.contains("lunch money") && !house_csv.contains("Social worker"), "{house_csv}");

    // HTML and PDF files, never overwritten.
    let html = env.path("grace.html");
    let said = ok(env.haven(&["chronology", GRACE, "--as", DSL, "--format", "multiagency", "--out", html.to_str().unwrap()]), "html");
    assert!(said.contains("2 significant event(s)"), "{said}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(&format!("<tr id=\"incident-{seen}\">")) && page.contains("Frightened to travel"), "{page}");
    let pdf = env.path("grace.pdf");
    ok(env.haven(&["chronology", GRACE, "--as", DSL, "--format", "multiagency", "--out", pdf.to_str().unwrap()]), "pdf");
    let text = pages(&pdf).join("\n").split_whitespace().collect::<Vec<_>>().join(" ");
    for part in ["Multi-agency chronology", "Significant event", "Impact on the child", "lunch money", "Home circumstances", "Page 1 of"] {
        assert!(text.contains(part), "{part:?} in the PDF: {text}");
    }
    if backend == Backend::Sqlite {
        keep_page_one(&pdf, "multiagency-page1");
    }
    refused(env.haven(&["chronology", GRACE, "--as", DSL, "--format", "multiagency", "--out", pdf.to_str().unwrap()]), "never overwritten");
    refused(env.haven(&["chronology", GRACE, "--as", DSL, "--format", "multiagency", "--out", "grace.docx"]), "name a .csv, .html or .pdf");

    // Sealed at rest, every mark kept, every mark audited.
    let sealed: Vec<(Option<String>, bool)> = match &db.store {
        haven::store::Store::Sqlite(p) => {
            sqlx::query_as("SELECT summary, significant FROM incident_marks ORDER BY id").fetch_all(p).await.unwrap()
        }
        haven::store::Store::Postgres(p) => {
            sqlx::query_as("SELECT summary, significant FROM incident_marks ORDER BY id").fetch_all(p).await.unwrap()
        }
    };
    assert_eq!(sealed.len(), 4, "three marks and the unmarking");
    assert!(sealed.iter().flat_map(|(s, _)| s).all(|s| s.starts_with("enc1:") && !s.contains("lunch")), "{sealed:?}");
    let log = db.store.audit_tail(50).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "incident_marked").count(), 4);
    assert_eq!(log.iter().filter(|e| e.action == "incident_mark_refused").count(), 1);
    assert!(log.iter().any(|e| e.action == "multiagency_chronology"), "the views are audited");

    // A new key: the marks are re-sealed under it and still read.
    ok(env.haven(&["key", "rotate"]), "rotate");
    let resealed = ok(env.haven(&["key", "reseal"]), "reseal");
    let csv = ok(env.haven(&["chronology", GRACE, "--as", DSL, "--format", "multiagency"]), "after rotation");
    assert!(csv.contains("lunch money"), "{csv}\n{resealed}");
    ok(env.haven(&["key", "verify"]), "verify");
    db.cleanup().await;
}

backend_tests!(the_dsl_marks_significant_events_and_partners_read_them);
