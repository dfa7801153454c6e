//! `haven report summary` on SQLite and PostgreSQL, against figures worked out by hand.
//!
//! The fixture school (the test school's directory) has incidents across three terms, filed
//! through Haven's own pipeline from forwarded emails written here, each on a clock standing at
//! the moment it was recorded (so the times from happening to recording are known), with
//! outcomes recorded through `haven outcome`'s own code at known times:
//!
//! | term | incidents | pupils | categories |
//! |---|---|---|---|
//! | Spring 2026 | 3 | Jane (Y7 Kestrel) | Behaviour 3 |
//! | Summer 2026 | 9 | Tom (Y10 Heron) 7, Jane 2 | Behaviour 7, Attendance 2 |
//! | Autumn 2026 | 16 | Jane 8, Oliver (Y8 Heron, SEN) 6, Amira (Y9 Kestrel) 2 | Behaviour 8, Medical 6, Safeguarding 2 |
//!
//! Autumn by month: Sep 4, Oct 7, Nov 5, Dec 0. Happened→recorded (minutes): 10 20 30 40 50 60
//! 70 80 120 120 120 240 240 240 1440 2880: median (8th of 16) 80 min = 1.3 hours, 90th
//! percentile (15th) 1440 min = 24.0 hours. Outcomes: NFA on six of Jane's, recorded after 60,
//! 60, 120, 120, 180 and 1440 minutes, and REFERRED CSC on Amira's first after 2880: median
//! (4th of 7) 2.0 hours, 90th percentile (7th) 2.0 days. Amira's second safeguarding incident
//! awaits its outcome, overdue two days after it was recorded.
//!
//! The governors see no count from 1 to 5 and no name; the DSL sees every count and who
//! recorded them; a teacher is refused; a wrong question is answered with what to do.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use haven::clock::ManualClock;
use haven::directory::Directory;
use haven::pipeline::{Filer, FilingSettings};
use haven::read::Limits;
use haven::report::period::Period;
use haven::report::summary::{Audience, Figures};
use haven::rules::{LiveRules, RuleSet};
use haven::seal::Sealer;
use haven::source::{Incoming, Origin, Payload};
use haven::store::{MessageState, Store};
use serde_json::Value;
use std::sync::Arc;
use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, Run};

const DSL: &str = "dsl@school.example";
const HEAD: &str = "head@school.example";
const TEACHER: &str = "teacher@school.example";

const TERMS: &str = r#"
[[term]]
name = "Spring 2026"
starts = 2026-01-05
ends = 2026-03-27

[[term]]
name = "Summer 2026"
starts = 2026-04-13
ends = 2026-07-22

[[term]]
name = "Autumn 2026"
starts = 2026-09-02
ends = 2026-12-18
"#;

/// Every name on the test school's directory: none may reach the governors.
const NAMES: &[&str] = &[
    "Jane",
    "Smith",
    "Oliver",
    "Olly",
    "Brown",
    "Amira",
    "Khan",
    "Tom Price",
    "Dana Lead",
    "Dev Deputy",
    "Harriet",
    "Kit Kestrel",
    "Hana Heron",
    "Terry",
    "Teach",
    "Eli Safe",
];

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("a time")
}

/// One incident of the fixture: about whom, in what category, when it happened, minutes until
/// it was recorded, and an outcome (text, minutes after recording) if one is recorded.
struct Case {
    pupil: &'static str,
    category: &'static str,
    happened: DateTime<Utc>,
    delay: i64,
    outcome: Option<(&'static str, i64)>,
}

fn case(pupil: &'static str, category: &'static str, happened: DateTime<Utc>, delay: i64) -> Case {
    Case { pupil, category, happened, delay, outcome: None }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Spring 2026: three behaviour incidents about Jane.
    for d in [12, 13, 14] {
        v.push(case("Jane Smith", "Behaviour", at(2026, 2, d, 10, 0), 30));
    }
    // Summer 2026: Tom seven times in May, Jane's attendance twice in June.
    for d in 4..11 {
        v.push(case("Tom Price", "Behaviour", at(2026, 5, d, 10, 0), 60));
    }
    v.push(case("Jane Smith", "Attendance", at(2026, 6, 8, 9, 0), 60));
    v.push(case("Jane Smith", "Attendance", at(2026, 6, 9, 9, 0), 60));
    // Autumn 2026.
    let nfa = [60, 60, 120, 120, 180, 1440];
    for (i, delay) in [10, 20, 30, 40, 50, 60, 70, 80].into_iter().enumerate() {
        let happened = if i < 4 { at(2026, 9, 14 + i as u32, 10, 0) } else { at(2026, 10, 5 + i as u32, 10, 0) };
        let mut c = case("Jane Smith", "Behaviour", happened, delay);
        c.outcome = nfa.get(i).map(|m| ("NFA spoken to, no further action", *m));
        v.push(c);
    }
    for (i, delay) in [120, 120, 120, 240, 240, 240].into_iter().enumerate() {
        let happened = if i < 3 { at(2026, 10, 19 + i as u32, 11, 0) } else { at(2026, 11, 2 + i as u32, 11, 0) };
        v.push(case("Oliver Brown", "Medical", happened, delay));
    }
    let mut first = case("Amira Khan", "Safeguarding / child protection", at(2026, 11, 16, 9, 0), 1440);
    first.outcome = Some(("REFERRED CSC ref 2026/77", 2880));
    v.push(first);
    v.push(case("Amira Khan", "Safeguarding / child protection", at(2026, 11, 23, 9, 0), 2880));
    v
}

/// A teacher forwarding a parent's email about `c.pupil`, written when it happened.
fn forward(n: usize, c: &Case) -> Vec<u8> {
    let sent = c.happened + Duration::minutes(c.delay);
    format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\n\
         Subject: Fwd: note {n}\r\nDate: {}\r\nMessage-ID: <report-{n}@mail.school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nPupil: {}\r\nCategory: {}\r\n\r\n\
         ---------- Forwarded message ---------\r\nFrom: A Parent <parent{n}@example.com>\r\n\
         Date: {}\r\nSubject: note {n}\r\nTo: Terry Teach <teacher@school.example>\r\n\r\n\
         A note about the day, number {n}.\r\n",
        sent.to_rfc2822(),
        c.pupil,
        c.category,
        c.happened.to_rfc2822(),
    )
    .into_bytes()
}

/// Haven's own filer for the test school, on `clock`.
fn filer(db: &TestDb, env: &HavenEnv, clock: &ManualClock) -> Filer {
    let rules = RuleSet::load(&env.path("rules")).unwrap_or_else(|e| panic!("the rules: {e}"));
    let settings = FilingSettings {
        intake_address: "safeguarding@school.example".into(),
        mail_domain: "school.example".into(),
        limits: Limits { timezone: chrono_tz::Europe::London, ..Limits::default() },
        trusted_authserv_id: None,
        alerts: haven::alert::AlertSettings {
            detail: haven::config::Detail::Minimal,
            mail_domain: "school.example".into(),
            school_name: "Test School".into(),
        },
        reply_key: Some(vec![9; 32]),
        backfill_age: Duration::days(30),
        ai_read: false,
    };
    Filer::new(db.store.clone(), Arc::new(LiveRules::new(rules)), Arc::new(clock.clone()), sealer(env), settings)
}

fn sealer(env: &HavenEnv) -> Sealer {
    Sealer::from_key_file(&env.path("secrets/haven.key")).expect("the storage key")
}

/// Files case number `n` on a clock standing when it was recorded, and records its outcome.
async fn file_case(db: &TestDb, env: &HavenEnv, n: usize, c: &Case) -> i64 {
    let clock = ManualClock::new(at(2026, 1, 1, 0, 0));
    let recorded = c.happened + Duration::minutes(c.delay);
    clock.set(recorded);
    let raw = Incoming { origin: Origin::File { path: format!("report-{n}.eml").into() }, payload: Payload::Raw(forward(n, c)) };
    let filed = filer(db, env, &clock).file_batch(&[raw]).await.expect("file");
    assert_eq!(filed[0].state, MessageState::Filed, "case {n}: {:?}", filed[0]);
    let incident = filed[0].incident.expect("an incident");
    if let Some((text, after)) = c.outcome {
        haven::cli::outcome::record(&db.store, &sealer(env), incident, text, DSL, recorded + Duration::minutes(after))
            .await
            .unwrap_or_else(|e| panic!("outcome of case {n}: {e}"));
    }
    incident
}

/// The school with its terms file, every case filed and every outcome recorded.
async fn school(db: &TestDb) -> HavenEnv {
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    for (n, c) in cases().iter().enumerate() {
        file_case(db, &env, n, c).await;
    }
    env
}

fn use_terms(env: &HavenEnv) {
    std::fs::write(env.path("terms.toml"), TERMS).unwrap();
    let config = std::fs::read_to_string(&env.config).unwrap();
    let config = config.replacen("name = \"Test School\"\n", "name = \"Test School\"\nterms_file = \"terms.toml\"\n", 1);
    std::fs::write(&env.config, config).unwrap();
}

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn summary(env: &HavenEnv, audience: &str, format: &str, viewer: &str) -> Run {
    env.haven(&["report", "summary", "--term", "Autumn 2026", "--audience", audience, "--format", format, "--as", viewer])
}

/// The cell texts of `row` in `section`, one per term.
fn row(doc: &Value, section: &str, row: &str) -> Vec<String> {
    let s = doc["sections"].as_array().unwrap().iter().find(|s| s["title"] == section).unwrap_or_else(|| panic!("no section {section}"));
    let r = s["rows"].as_array().unwrap().iter().find(|r| r["label"] == row).unwrap_or_else(|| panic!("no row {row} in {section}: {s}"));
    r["cells"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap().to_string()).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Standalone whole numbers from 1 to 5 in `text`, once "fewer than 5" and page numbers are
/// taken out.
fn small_numbers(text: &str) -> Vec<String> {
    let text = text.replace("fewer than 5", "");
    let page = regex::Regex::new(r"Page \d+ of \d+").unwrap();
    let text = page.replace_all(&text, "");
    let small = regex::Regex::new(r"(^|[^\w.\-/:])([1-5])($|[^\w.\-/:])").unwrap();
    small.captures_iter(&text).map(|c| c[0].to_string()).collect()
}

/// Runs a poppler tool, or fails saying how to install it.
fn poppler(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} could not run ({e}): install poppler-utils (`apt-get install poppler-utils`; tests/run.sh does it as root)")
    });
    assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("poppler prints UTF-8")
}

/// The PDF's text, page by page, words joined by single spaces.
fn pdf_pages(pdf: &std::path::Path) -> Vec<String> {
    let text = poppler("pdftotext", &["-layout", "-enc", "UTF-8", pdf.to_str().unwrap(), "-"]);
    let mut pages: Vec<String> = text.split('\u{c}').map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    if pages.last().is_some_and(|p| p.is_empty()) {
        pages.pop();
    }
    pages
}

/// Page 1 of `pdf` as `target/pdf-pages/NAME-BACKEND.png` (and `NAME.png` from SQLite: the
/// README's picture).
fn page_one(pdf: &std::path::Path, name: &str, backend: Backend) {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pdf-pages");
    std::fs::create_dir_all(&out).unwrap();
    let stem = out.join(format!("{name}-{}", if backend == Backend::Sqlite { "sqlite" } else { "postgres" }));
    poppler("pdftoppm", &["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", pdf.to_str().unwrap(), stem.to_str().unwrap()]);
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "page 1 renders to a picture with something on it ({} bytes)", png.len());
    if backend == Backend::Sqlite {
        std::fs::write(out.join(format!("{name}.png")), &png).unwrap();
    }
}

fn no_names(what: &str, text: &str) {
    for n in NAMES {
        assert!(!text.contains(n), "{what} names {n:?}:\n{text}");
    }
}

async fn governors_see_hand_computed_figures_with_small_numbers_hidden(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db).await;
    use_terms(&env);

    let doc: Value = serde_json::from_str(&ok(summary(&env, "governors", "json", HEAD), "summary json")).expect("JSON");
    let names: Vec<&str> = doc["periods"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Spring 2026", "Summer 2026", "Autumn 2026"]);
    assert_eq!(row(&doc, "Incidents", "Incidents recorded"), strings(&["fewer than 5", "9", "16"]));
    assert_eq!(row(&doc, "Incidents", "Pupils they were about"), strings(&["fewer than 5", "fewer than 5", "fewer than 5"]));
    // Spring's 3 behaviour incidents are the whole column: hidden. Summer: Attendance 2 is
    // small, so Behaviour 7 is withheld with it (9 - 7 = 2). Autumn: Safeguarding 2 is small,
    // Medical 6 is withheld with it, Behaviour 8 stays.
    assert_eq!(row(&doc, "By category", "Behaviour"), strings(&["fewer than 5", "withheld", "8"]));
    assert_eq!(row(&doc, "By category", "Medical"), strings(&["0", "0", "withheld"]));
    assert_eq!(row(&doc, "By category", "Safeguarding / child protection"), strings(&["0", "0", "fewer than 5"]));
    assert_eq!(row(&doc, "By category", "Attendance"), strings(&["0", "fewer than 5", "0"]));
    assert_eq!(row(&doc, "By month", "Sep 2026"), strings(&["–", "–", "fewer than 5"]));
    assert_eq!(row(&doc, "By month", "Oct 2026"), strings(&["–", "–", "7"]));
    assert_eq!(row(&doc, "By month", "Nov 2026"), strings(&["–", "–", "fewer than 5"]));
    assert_eq!(row(&doc, "By month", "Dec 2026"), strings(&["–", "–", "0"]));
    let drawn: Vec<&str> = doc["charts"].as_array().unwrap().iter().filter_map(|c| c["title"].as_str()).collect();
    assert_eq!(
        drawn,
        ["Incidents per month", "Time from recorded to outcome, Autumn 2026"],
        "no chart by month and category for governors"
    );
    // The chart: bars as long as the counts shown, none for a hidden one.
    let bars: Vec<(String, String, u64)> = doc["chart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["label"].as_str().unwrap().to_string(), b["text"].as_str().unwrap().to_string(), b["percent"].as_u64().unwrap()))
        .collect();
    assert_eq!(bars.len(), 11, "Jan to Jul and Sep to Dec 2026: {bars:?}");
    assert!(bars.contains(&("Oct 2026".into(), "7".into(), 100)), "{bars:?}");
    assert!(bars.contains(&("Sep 2026".into(), "fewer than 5".into(), 0)), "{bars:?}");
    assert!(bars.contains(&("May 2026".into(), "withheld".into(), 0)), "{bars:?}");
    assert_eq!(row(&doc, "By year group", "Year 7"), strings(&["fewer than 5", "fewer than 5", "8"]));
    assert_eq!(row(&doc, "By year group", "Year 8"), strings(&["0", "0", "withheld"]));
    assert_eq!(row(&doc, "By year group", "Year 9"), strings(&["0", "0", "fewer than 5"]));
    assert_eq!(row(&doc, "By year group", "Year 10"), strings(&["0", "withheld", "0"]));
    assert_eq!(row(&doc, "By house", "Kestrel"), strings(&["fewer than 5", "fewer than 5", "10"]));
    assert_eq!(row(&doc, "By house", "Heron"), strings(&["0", "withheld", "6"]));
    assert_eq!(row(&doc, "Special educational needs", "SEN"), strings(&["0", "0", "6"]));
    assert_eq!(row(&doc, "Special educational needs", "No SEN"), strings(&["fewer than 5", "9", "10"]));
    assert_eq!(row(&doc, "Outcomes recorded", "No further action (NFA)"), strings(&["0", "0", "withheld"]));
    assert_eq!(row(&doc, "Outcomes recorded", "Referred to children's social care"), strings(&["0", "0", "fewer than 5"]));
    assert_eq!(row(&doc, "Actions", "Awaiting an outcome"), strings(&["0", "0", "fewer than 5"]));
    assert_eq!(row(&doc, "Actions", "Of those, overdue"), strings(&["0", "0", "fewer than 5"]));
    assert_eq!(row(&doc, "Time taken", "Happened to recorded: median"), strings(&["fewer than 5 incidents", "1.0 hours", "1.3 hours"]));
    assert_eq!(
        row(&doc, "Time taken", "Happened to recorded: 90th percentile"),
        strings(&["fewer than 5 incidents", "1.0 hours", "24.0 hours"])
    );
    assert_eq!(row(&doc, "Time taken", "Recorded to outcome: median"), strings(&["no incidents", "no incidents", "2.0 hours"]));
    assert_eq!(row(&doc, "Time taken", "Recorded to outcome: 90th percentile"), strings(&["no incidents", "no incidents", "2.0 days"]));
    assert!(doc["sections"].as_array().unwrap().iter().all(|s| s["title"] != "By who recorded them"), "governors see no recorders");
    // No exact count from 1 to 5 anywhere in the data either.
    for s in doc["sections"].as_array().unwrap() {
        for r in s["rows"].as_array().unwrap() {
            for c in r["cells"].as_array().unwrap() {
                assert!(!c["count"].as_i64().is_some_and(|n| (1..=5).contains(&n)), "a small count in {r}");
            }
        }
    }
    let json = serde_json::to_string(&doc).unwrap();
    no_names("the governors' JSON", &json);

    // The check below can see a small number when one is there.
    assert_eq!(small_numbers("Behaviour 3 withheld"), [" 3 "]);
    assert_eq!(small_numbers("Page 1 of 2 · fewer than 5 · 2026-09-02 · 1.3 hours · Year 10"), Vec::<String>::new());
    let tags = regex::Regex::new(r"<[^>]*>").unwrap();
    for format in ["text", "html"] {
        let out = ok(summary(&env, "governors", format, HEAD), format);
        no_names(&format!("the governors' {format}"), &out);
        let plain = tags.replace_all(&out, " ").to_string();
        assert_eq!(small_numbers(&plain), Vec::<String>::new(), "a count from 1 to 5 in the {format}:\n{out}");
        assert!(out.contains("Autumn 2026") && out.contains("withheld"), "{out}");
    }

    // The PDF: the school and "page X of Y" on every page, the same figures, bars drawn.
    let pdf = env.path("autumn-2026.pdf");
    let out = ok(
        env.haven(&["report", "summary", "--term", "Autumn 2026", "--as", HEAD, "--format", "pdf", "--out", pdf.to_str().unwrap()]),
        "pdf",
    );
    assert!(out.contains("report written to"), "{out}");
    let pages = pdf_pages(&pdf);
    assert!(!pages.is_empty());
    for (i, p) in pages.iter().enumerate() {
        assert!(p.contains("Test School · Safeguarding report for governors"), "page {}: {p}", i + 1);
        assert!(p.contains(&format!("Page {} of {}", i + 1, pages.len())), "page {}: {p}", i + 1);
    }
    let all = pages.join("\n");
    no_names("the governors' PDF", &all);
    assert_eq!(small_numbers(&all), Vec::<String>::new(), "a count from 1 to 5 in the PDF:\n{all}");
    assert!(all.contains("Behaviour fewer than 5 withheld 8"), "{all}");
    assert!(all.contains("Incidents per month"), "{all}");
    // The charts are drawn (plotters' SVG, typst's vectors): their labels are text in the PDF.
    assert!(all.contains("Time from recorded to outcome, Autumn 2026") && all.contains("under a day"), "{all}");
    let r = env.haven(&["report", "summary", "--term", "Autumn 2026", "--as", HEAD, "--format", "pdf", "--out", pdf.to_str().unwrap()]);
    assert_eq!(r.code, 2, "an existing file is never overwritten");
    assert!(r.stderr.contains("already exists; choose another --out"), "{}", r.stderr);
    page_one(&pdf, "report-summary-page1", backend);
    db.cleanup().await;
}

async fn the_dsl_sees_every_count_and_who_recorded_them(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db).await;
    use_terms(&env);
    let doc: Value = serde_json::from_str(&ok(summary(&env, "dsl", "json", DSL), "dsl json")).expect("JSON");
    assert_eq!(row(&doc, "Incidents", "Incidents recorded"), strings(&["3", "9", "16"]));
    assert_eq!(row(&doc, "Incidents", "Pupils they were about"), strings(&["1", "2", "3"]));
    assert_eq!(row(&doc, "By category", "Behaviour"), strings(&["3", "7", "8"]));
    assert_eq!(row(&doc, "By category", "Medical"), strings(&["0", "0", "6"]));
    assert_eq!(row(&doc, "By month", "Sep 2026"), strings(&["–", "–", "4"]));
    assert_eq!(row(&doc, "By month", "Nov 2026"), strings(&["–", "–", "5"]));
    // The DSL's report draws incidents per month by category too (the governors' does not).
    let drawn: Vec<&str> = doc["charts"].as_array().unwrap().iter().filter_map(|c| c["title"].as_str()).collect();
    assert!(drawn.contains(&"Incidents per month by category"), "{drawn:?}");
    let by_category = doc["charts"].as_array().unwrap().iter().find(|c| c["title"] == "Incidents per month by category").unwrap();
    assert!(by_category["description"].as_str().unwrap().contains("Oct 2026: Behaviour"), "{by_category:#}");
    let bars = doc["chart"].as_array().unwrap();
    let sep = bars.iter().find(|b| b["label"] == "Sep 2026").unwrap();
    assert_eq!((sep["text"].as_str(), sep["percent"].as_u64()), (Some("4"), Some(57)), "4 of 7");
    assert_eq!(row(&doc, "Outcomes recorded", "No further action (NFA)"), strings(&["0", "0", "6"]));
    assert_eq!(row(&doc, "Outcomes recorded", "Referred to children's social care"), strings(&["0", "0", "1"]));
    assert_eq!(row(&doc, "Actions", "Awaiting an outcome"), strings(&["0", "0", "1"]));
    assert_eq!(row(&doc, "Actions", "Of those, overdue"), strings(&["0", "0", "1"]));
    assert_eq!(row(&doc, "By who recorded them", "Terry Teach"), strings(&["3", "9", "16"]));
    assert!(doc["generated_by"].as_str().is_some_and(|b| b.contains("Dana Lead")), "{doc}");
    // Only the DSL team runs the DSL's report.
    let r = summary(&env, "dsl", "text", HEAD);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("only the DSL team may run this report"), "{}", r.stderr);
    db.cleanup().await;
}

async fn a_teacher_and_wrong_questions_are_refused_with_what_to_do(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    // No terms file yet.
    let r = summary(&env, "governors", "text", DSL);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--term needs the school's terms: set school.terms_file in haven.toml"), "{}", r.stderr);
    use_terms(&env);
    let r = summary(&env, "governors", "text", TEACHER);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("only the DSL team, SLT or the head may run this report; no report was made"), "{}", r.stderr);
    let r = env.haven(&["report", "summary", "--term", "Autumn 2030", "--as", DSL]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("there is no term called \"Autumn 2030\" in the terms file (its terms: Spring 2026, Summer 2026, Autumn 2026)"),
        "{}",
        r.stderr
    );
    let r = env.haven(&["report", "summary", "--from", "2026-12-01", "--to", "2026-09-01", "--as", DSL]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--from 2026-12-01 is after --to 2026-09-01"), "{}", r.stderr);
    let r = env.haven(&["report", "summary", "--as", DSL]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("give --term NAME, or both --from DATE and --to DATE"), "{}", r.stderr);
    // Two dates: one column; an empty school reports zeros.
    let out = ok(env.haven(&["report", "summary", "--from", "2026-09-01", "--to", "2026-09-30", "--as", DSL, "--format", "json"]), "dates");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(row(&doc, "Incidents", "Incidents recorded"), strings(&["0"]));
    // Every run and refusal is in the audit log.
    let actions: Vec<String> = db.store.audit_tail(50).await.unwrap().into_iter().map(|e| e.action).collect();
    assert!(actions.iter().any(|a| a == "report_refused") && actions.iter().any(|a| a == "report"), "{actions:?}");
    db.cleanup().await;
}

/// The incidents on a pupil's chronology, oldest first (`haven chronology --json`).
fn incidents_of(env: &HavenEnv, pupil: &str) -> Vec<i64> {
    let out = ok(env.haven(&["chronology", pupil, "--as", DSL, "--json"]), "chronology");
    let v: Value = serde_json::from_str(&out).expect("chronology --json");
    v["incidents"].as_array().map(|a| a.iter().filter_map(|i| i["incident"].as_i64()).collect()).unwrap_or_default()
}

fn refused(r: Run, message: &str) {
    assert_eq!(r.code, 2, "expected a refusal ({message}): {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(message), "expected {message:?} in: {}", r.stderr);
}

/// Referrals and plans recorded by the DSL team are counted by the summary, listed in the
/// inspection pack beside the referrals to the DSL, the LADO referral and the overdue outcome,
/// with a manifest that checks; plan reviews are reminded once, by initials and year only.
async fn referrals_and_plans_are_counted_listed_and_reminded(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db).await;
    use_terms(&env);
    let amira = incidents_of(&env, "A100000000003");
    let jane = incidents_of(&env, "A100000000001");
    assert_eq!(amira.len(), 2);
    let (amira_first, jane_first) = (amira[0].to_string(), jane[5].to_string());
    let add = |incident: &str, agency: &str, on: &str, by: &str| {
        env.haven(&["referral", "add", incident, "--agency", agency, "--reference", "2026/77", "--on", on, "--by", by])
    };
    let out = ok(add(&amira_first, "CSC", "2026-11-18", DSL), "referral");
    assert!(out.contains(&format!("of incident #{amira_first} to CSC on 2026-11-18 recorded")), "{out}");
    refused(add(&amira_first, "LADO", "2026-11-18", TEACHER), "only the DSL team may do this; nothing was done");
    refused(add(&amira_first, "CSC", "2099-01-01", DSL), "--on 2099-01-01 is in the future; nothing was recorded");
    refused(add("99999", "CSC", "2026-11-18", DSL), "there is no incident #99999; nothing was recorded");
    ok(env.haven(&["referral", "add", &jane_first, "--agency", "lado", "--on", "2026-09-20", "--by", DSL]), "LADO referral");
    let listed = ok(env.haven(&["referrals", "--as", DSL]), "referrals");
    assert!(listed.contains("CSC ref 2026/77 · 2026-11-18 · by Dana Lead"), "{listed}");
    refused(env.haven(&["referrals", "--as", TEACHER]), "only the DSL team may do this");

    let out = ok(
        env.haven(&[
            "plan",
            "add",
            "A100000000003",
            "--kind",
            "child-protection",
            "--starts",
            "2026-11-20",
            "--review-every",
            "2w",
            "--by",
            DSL,
        ]),
        "plan add",
    );
    assert!(out.contains("plan #1 (child protection plan) for pupil A100000000003 from 2026-11-20; first review due"), "{out}");
    ok(env.haven(&["plan", "add", "Oliver Brown", "--kind", "early-help", "--starts", "2026-10-01", "--by", DSL]), "plan add");
    refused(env.haven(&["plan", "add", "Oliver Brown", "--kind", "other", "--starts", "2026-10-01", "--by", TEACHER]), "only the DSL team");
    let r = env.haven(&["plan", "add", "Oliver Brown", "--kind", "other", "--starts", "2026-10-01", "--review-every", "36h", "--by", DSL]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("reviews come every whole number of days or weeks"), "{}", r.stderr);
    refused(env.haven(&["plan", "end", "2", "--on", "2026-12-01", "--reason", " ", "--by", DSL]), "--reason is empty");
    ok(env.haven(&["plan", "end", "2", "--on", "2026-12-01", "--reason", "stepped down", "--by", DSL]), "plan end");
    refused(env.haven(&["plan", "end", "2", "--on", "2026-12-02", "--reason", "again", "--by", DSL]), "plan #2 has already ended");
    refused(env.haven(&["plan", "end", "9", "--on", "2026-12-02", "--reason", "x", "--by", DSL]), "there is no plan #9");

    // Counted: by the day referred and the plan's dates.
    let doc: Value = serde_json::from_str(&ok(summary(&env, "dsl", "json", DSL), "dsl json")).expect("JSON");
    assert_eq!(row(&doc, "Referrals made", "Children's social care"), strings(&["0", "0", "1"]));
    assert_eq!(row(&doc, "Referrals made", "LADO"), strings(&["0", "0", "1"]));
    assert_eq!(row(&doc, "Plans open at the end of the period", "Child protection plan"), strings(&["0", "0", "1"]));
    assert_eq!(row(&doc, "Plans open at the end of the period", "Early help plan"), strings(&["0", "0", "0"]));
    assert_eq!(row(&doc, "Plans started in the period", "Early help plan"), strings(&["0", "0", "1"]));
    // And as groups on the day: Amira's second incident (23 November) fell within her plan,
    // her first (16 November) before it; all six of Oliver's within his early help.
    let section = "By vulnerable group, as on the day";
    assert_eq!(row(&doc, section, "On a child protection plan"), strings(&["0", "0", "1"]));
    assert_eq!(row(&doc, section, "On an early help plan"), strings(&["0", "0", "6"]));

    // The inspection pack.
    refused(env.haven(&["report", "inspection", "--as", HEAD]), "only the DSL team may do this");
    let pack = env.path("pack");
    let out = ok(
        env.haven(&["report", "inspection", "--as", DSL, "--since", "2026-01-01", "--format", "html", "--out", pack.to_str().unwrap()]),
        "inspection",
    );
    assert!(out.contains("8 referrals to the DSL, 1 LADO referrals, 1 open plans, 1 overdue outcomes"), "{out}");
    let manifest = std::fs::read_to_string(pack.join("MANIFEST.sha256")).unwrap();
    let mut files = Vec::new();
    for line in manifest.lines() {
        let (hash, name) = line.split_once("  ").expect("sha256sum lines");
        let data = std::fs::read(pack.join(name)).unwrap();
        assert_eq!(hash, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)), "{name} matches the manifest");
        files.push(name.to_string());
    }
    assert_eq!(files, ["inspection.html", "inspection.json"]);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(pack.join("inspection.json")).unwrap()).unwrap();
    let amira_row = v["referrals"].as_array().unwrap().iter().find(|r| r["incident"].as_i64() == Some(amira[0])).expect("Amira's").clone();
    assert_eq!(amira_row["pupils"], "A100000000003 A.K. (Year 9)");
    assert_eq!(amira_row["decision"], "Referred to children's social care");
    assert_eq!(amira_row["referred_on"], "CSC on 2026-11-18 (ref 2026/77)");
    assert_eq!(amira_row["recorded_by"], "tutor, teacher");
    assert!(amira_row["resolution"].as_str().unwrap().starts_with("REFERRED CSC ref 2026/77 (Dana Lead, 2026-11-19)"), "{amira_row}");
    assert_eq!(v["lado"][0]["incident"].to_string(), jane_first);
    assert_eq!(v["plans"][0]["kind"], "child protection plan");
    assert_eq!(v["overdue"][0]["incident"].to_string(), amira[1].to_string());
    let html = std::fs::read_to_string(pack.join("inspection.html")).unwrap();
    assert!(html.contains("Referrals to the LADO") && html.contains("A100000000003 A.K. (Year 9)"), "{html}");
    assert!(!html.contains("Amira"), "pupils by UPN and initials only");
    let pdf_pack = env.path("pack-pdf");
    ok(env.haven(&["report", "inspection", "--as", DSL, "--format", "pdf", "--out", pdf_pack.to_str().unwrap()]), "inspection pdf");
    let pages = pdf_pages(&pdf_pack.join("inspection.pdf"));
    for (i, p) in pages.iter().enumerate() {
        assert!(p.contains(&format!("Page {} of {}", i + 1, pages.len())) && p.contains("Test School"), "page {}: {p}", i + 1);
    }
    let all = pages.join("\n");
    assert!(all.contains("Referrals to the LADO") && all.contains("A100000000003 A.K. (Year 9)") && !all.contains("Amira"), "{all}");
    page_one(&pdf_pack.join("inspection.pdf"), "report-inspection-page1", backend);

    // The review is reminded once, to the DSL team, by initials and year group.
    let plans: Value = serde_json::from_str(&ok(env.haven(&["plans", "--as", DSL, "--json"]), "plans")).unwrap();
    assert_eq!(plans.as_array().unwrap().len(), 1, "the ended plan is not open: {plans}");
    let due: chrono::NaiveDate = plans[0]["next_review_on"].as_str().unwrap().parse().unwrap();
    let settings = haven::schedule::ScheduleSettings {
        digests: Vec::new(),
        tz: chrono_tz::Europe::London,
        mail_domain: "school.example".into(),
        school_name: "Test School".into(),
        keys: Arc::new(haven::store::LiveKeys::new(Sealer::from_key_file(&env.path("secrets/haven.key")).unwrap(), None)),
        directory: Default::default(),
        detail: haven::config::Detail::Minimal,
    };
    let when = Utc.from_utc_datetime(&due.and_hms_opt(9, 0, 0).unwrap());
    let sql = "SELECT subject, body FROM outbox WHERE email_message_id LIKE 'haven.plan1.review%' ORDER BY id";
    let reviews = || async {
        let mails: Vec<(String, String)> = match &db.store {
            haven::store::Store::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            haven::store::Store::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        };
        mails
    };
    haven::schedule::tick(&db.store, &settings, when - Duration::days(1)).await.unwrap();
    assert!(reviews().await.is_empty(), "not before it is due");
    haven::schedule::tick(&db.store, &settings, when).await.unwrap();
    assert_eq!(reviews().await.len(), 2, "the DSL and the deputy");
    haven::schedule::tick(&db.store, &settings, when).await.unwrap();
    let mails = reviews().await;
    assert_eq!(mails.len(), 2, "once");
    let plans: Value = serde_json::from_str(&ok(env.haven(&["plans", "--as", DSL, "--json"]), "plans")).unwrap();
    assert_eq!(plans[0]["next_review_on"].as_str().unwrap(), (due + Duration::days(14)).to_string());
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0].0, "[Test School] Plan review due: plan #1 (child protection plan)");
    assert!(mails[0].1.contains("a pupil in Year 9 (A.K.)") && !mails[0].1.contains("Amira"), "{}", mails[0].1);
    db.cleanup().await;
}

/// Vulnerable groups come from optional columns of the directory import and are counted as the
/// pupil was on the incident's day: Jane on free school meals until 1 October 2026, Oliver in
/// care. A bad value is refused with its file and line, and nothing is imported.
async fn pupils_are_counted_in_their_groups_as_they_were_on_the_day(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db).await;
    use_terms(&env);
    let f = support::haven::school_fixtures();
    let roll = std::fs::read_to_string(f.join("pupils.csv")).unwrap();
    let with_groups = |jane_fsm: &str| {
        roll.lines()
            .map(|l| match l.split(',').next() {
                Some("upn") => format!("{l},FSM,In Care"),
                Some("A100000000001") => format!("{l},{jane_fsm},no"),
                Some("A100000000002") => format!("{l},no,yes"),
                _ => format!("{l},no,"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let import = |file: &str| {
        env.haven(&[
            "directory",
            "import",
            "--pupils",
            env.path(file).to_str().unwrap(),
            "--staff",
            f.join("staff.csv").to_str().unwrap(),
            "--contacts",
            f.join("contacts.csv").to_str().unwrap(),
        ])
    };
    std::fs::write(env.path("bad.csv"), with_groups("maybe")).unwrap();
    let r = import("bad.csv");
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("bad.csv:2: fsm \"maybe\" must be yes or no") && r.stderr.contains("nothing was imported"), "{}", r.stderr);
    std::fs::write(env.path("groups.csv"), with_groups("yes")).unwrap();
    ok(import("groups.csv"), "import with groups");
    // A later import took Jane off free school meals from 1 October 2026.
    let dir = db.store.load_directory(&Sealer::from_key_file(&env.path("secrets/haven.key")).unwrap()).await.unwrap();
    let jane = dir.pupils.iter().find(|p| p.upn == "A100000000001").unwrap().id;
    let october = haven::report::period::day_start_us("2026-10-01".parse().unwrap(), chrono_tz::Europe::London);
    assert_eq!(db.store.record_characteristics(&[(jane, "fsm", "no".into())], october).await.unwrap(), 1);
    assert_eq!(db.store.record_characteristics(&[(jane, "fsm", "no".into())], october).await.unwrap(), 0, "no change, no new row");

    let doc: Value = serde_json::from_str(&ok(summary(&env, "dsl", "json", DSL), "dsl json")).expect("JSON");
    let section = "By vulnerable group, as on the day";
    assert_eq!(row(&doc, section, "Free school meals"), strings(&["3", "2", "4"]));
    assert_eq!(row(&doc, section, "In care (looked after)"), strings(&["0", "0", "6"]));
    assert_eq!(row(&doc, section, "Young carer"), strings(&["0", "0", "0"]));
    let doc: Value = serde_json::from_str(&ok(summary(&env, "governors", "json", DSL), "governors json")).expect("JSON");
    assert_eq!(row(&doc, section, "Free school meals"), strings(&["fewer than 5", "fewer than 5", "fewer than 5"]));
    assert_eq!(row(&doc, section, "In care (looked after)"), strings(&["0", "0", "withheld"]));
    db.cleanup().await;
}

/// One figure counted straight from the records, as `haven report` counted before it kept
/// counts per day (migration 0038): every group as text, with its count.
async fn straight(store: &Store, sql: String, from: i64, to: i64) -> Vec<(Option<String>, i64)> {
    let mut rows = match store {
        Store::Sqlite(p) => sqlx::query_as::<_, (Option<String>, i64)>(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).fetch_all(p).await,
        Store::Postgres(p) => sqlx::query_as::<_, (Option<String>, i64)>(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).fetch_all(p).await,
    }
    .expect("a straight count");
    rows.sort();
    rows
}

/// Every figure the kept counts give, beside the same counted straight from the records.
type Compared = Vec<(&'static str, Vec<(Option<String>, i64)>)>;

async fn recounted(store: &Store, dir: &Directory, p: &Period, now: DateTime<Utc>) -> Compared {
    let tz = chrono_tz::Europe::London;
    let (from, to) = p.span_us(tz);
    let live = "i.occurred_us >= $1 AND i.occurred_us < $2 AND i.follows IS NULL AND i.corrects IS NULL";
    let about = "JOIN incident_pupils ip ON ip.incident_id = i.id AND ip.role <> 'mentioned'";
    let bucket =
        "CASE WHEN d < 86400000000 THEN d / 60000000 WHEN d < 2592000000000 THEN (d / 3600000000) * 60 ELSE (d / 86400000000) * 1440 END";
    let by_pupil = |g: &str| {
        format!("SELECT {g}, COUNT(DISTINCT i.id) FROM incidents i {about} JOIN pupils p ON p.id = ip.pupil_id WHERE {live} GROUP BY {g}")
    };
    let mut by_month = Vec::new();
    for m in p.months() {
        let (a, b) = m.span_us(tz);
        let n = straight(store, format!("SELECT CAST(NULL AS TEXT), COUNT(*) FROM incidents i WHERE {live}"), a, b).await[0].1;
        by_month.push((Some(m.name), n));
    }
    let mut groups = straight(
        store,
        format!(
            "SELECT pc.characteristic || ':' || pc.value, COUNT(DISTINCT i.id) FROM incidents i {about} \
             JOIN pupil_characteristics pc ON pc.pupil_id = ip.pupil_id AND pc.from_us <= i.occurred_us \
             AND (pc.to_us IS NULL OR pc.to_us > i.occurred_us) WHERE {live} AND pc.value NOT IN ('no', 'N') \
             GROUP BY pc.characteristic, pc.value"
        ),
        from,
        to,
    )
    .await;
    groups.extend(
        straight(
            store,
            format!(
                "SELECT 'plan:' || pp.kind, COUNT(DISTINCT i.id) FROM incidents i {about} \
                 JOIN pupil_plans pp ON pp.pupil_id = ip.pupil_id AND pp.starts_us <= i.occurred_us \
                 AND (pp.ends_us IS NULL OR pp.ends_us > i.occurred_us) WHERE {live} GROUP BY pp.kind"
            ),
            from,
            to,
        )
        .await,
    );
    groups.sort();
    let recorders = straight(
        store,
        format!("SELECT CAST(i.recorded_by AS TEXT), COUNT(*) FROM incidents i WHERE {live} GROUP BY i.recorded_by"),
        from,
        to,
    )
    .await;
    let mut recorders: Vec<(Option<String>, i64)> = recorders
        .into_iter()
        .map(|(id, n)| {
            let id: Option<i64> = id.and_then(|i| i.parse().ok());
            (id.and_then(|id| dir.staff.iter().find(|s| s.id == id)).map(|s| format!("{} {}", s.first_name, s.last_name)), n)
        })
        .collect();
    recorders.sort();
    let now_us = now.timestamp_micros();
    let open = straight(
        store,
        format!(
            "SELECT CAST(NULL AS TEXT), COUNT(DISTINCT i.id) FROM incidents i JOIN actions a ON a.incident_id = i.id WHERE {live} AND a.outcome IS NULL \
             UNION ALL SELECT 'overdue', COUNT(DISTINCT i.id) FROM incidents i JOIN actions a ON a.incident_id = i.id \
             WHERE {live} AND a.outcome IS NULL AND a.due_us < {now_us}"
        ),
        from,
        to,
    )
    .await;
    vec![
        ("incidents", straight(store, format!("SELECT CAST(NULL AS TEXT), COUNT(*) FROM incidents i WHERE {live}"), from, to).await),
        ("pupils", straight(store, format!("SELECT CAST(NULL AS TEXT), COUNT(DISTINCT ip.pupil_id) FROM incidents i {about} WHERE {live}"), from, to).await),
        ("category", straight(store, format!("SELECT i.category, COUNT(*) FROM incidents i WHERE {live} GROUP BY i.category"), from, to).await),
        ("month", by_month),
        ("year", straight(store, by_pupil("CAST(p.year_group AS TEXT)"), from, to).await),
        ("house", straight(store, by_pupil("p.house"), from, to).await),
        ("sen", straight(store, by_pupil("CASE WHEN p.sen THEN 'yes' ELSE 'no' END"), from, to).await),
        ("group", groups),
        (
            "outcome",
            straight(
                store,
                format!(
                    "SELECT a.outcome_code, COUNT(DISTINCT i.id) FROM incidents i JOIN actions a ON a.incident_id = i.id \
                     WHERE {live} AND a.outcome IS NOT NULL GROUP BY a.outcome_code"
                ),
                from,
                to,
            )
            .await,
        ),
        ("open", open),
        (
            "occurred_to_recorded",
            straight(
                store,
                format!("SELECT CAST(b AS TEXT), COUNT(*) FROM (SELECT {bucket} AS b FROM (SELECT i.recorded_us - i.occurred_us AS d FROM incidents i WHERE {live}) x) y GROUP BY b"),
                from,
                to,
            )
            .await,
        ),
        (
            "recorded_to_outcome",
            straight(
                store,
                format!(
                    "SELECT CAST(b AS TEXT), COUNT(*) FROM (SELECT {bucket} AS b FROM (SELECT MIN(a.outcome_us) - i.recorded_us AS d \
                     FROM incidents i JOIN actions a ON a.incident_id = i.id WHERE {live} AND a.outcome_us IS NOT NULL \
                     GROUP BY i.id, i.recorded_us) x) y GROUP BY b"
                ),
                from,
                to,
            )
            .await,
        ),
        ("recorder", recorders),
    ]
}

/// The same figures from `haven report`'s own counting (the kept per-day counts).
fn kept(f: &Figures) -> Compared {
    let sorted = |v: &[(Option<String>, i64)]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let histogram = |h: &[(i64, i64)]| {
        let mut v: Vec<(Option<String>, i64)> = h.iter().map(|(b, n)| (Some(b.to_string()), *n)).collect();
        v.sort();
        v
    };
    vec![
        ("incidents", vec![(None, f.incidents)]),
        ("pupils", vec![(None, f.pupils)]),
        ("category", sorted(&f.by_category)),
        ("month", f.by_month.iter().map(|(m, n)| (Some(m.clone()), *n)).collect()),
        ("year", sorted(&f.by_year)),
        ("house", sorted(&f.by_house)),
        ("sen", sorted(&f.by_sen)),
        ("group", sorted(&f.by_group)),
        ("outcome", sorted(&f.outcomes)),
        ("open", vec![(None, f.open_actions), (Some("overdue".into()), f.overdue_actions)]),
        ("occurred_to_recorded", histogram(&f.occurred_to_recorded)),
        ("recorded_to_outcome", histogram(&f.recorded_to_outcome)),
        ("recorder", sorted(&f.by_recorder)),
    ]
}

/// Runs SQL that changes the records the way a path without its own command here does.
async fn change(store: &Store, sql: &str) {
    let run = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()));
    match store {
        Store::Sqlite(p) => run.execute(p).await.map(|_| ()),
        Store::Postgres(p) => run.execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The counts the report keeps per day equal the figures counted straight from the records,
/// for each of the three terms, after every kind of change that moves a figure: filing, an
/// outcome, a pupil relinked, an incident disposed of, a category corrected, a pupil moved year
/// group, a characteristic changed, a plan added and ended.
async fn kept_counts_equal_a_straight_recount_after_every_change(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = school(&db).await;
    use_terms(&env);
    let store = &db.store;
    let dir = store.load_directory(&sealer(&env)).await.unwrap();
    let pupil = |upn: &str| dir.pupils.iter().find(|p| p.upn == upn).unwrap().id;
    let (jane, oliver, amira) = (pupil("A100000000001"), pupil("A100000000002"), pupil("A100000000003"));
    let terms = haven::terms::Terms::parse("terms.toml", TERMS).unwrap();
    let periods = haven::report::period::periods(haven::report::period::Asked::Term("Autumn 2026"), Some(&terms)).unwrap();
    let now = at(2026, 12, 19, 12, 0);
    let check = |step: &'static str| {
        let (store, dir, periods) = (store.clone(), dir.clone(), periods.clone());
        async move {
            for p in &periods {
                let f = haven::cli::report::figures(&store, &dir, p, chrono_tz::Europe::London, now, Audience::Dsl)
                    .await
                    .unwrap_or_else(|e| panic!("{step}: {e}"));
                let (kept, straight) = (kept(&f), recounted(&store, &dir, p, now).await);
                for (k, s) in kept.iter().zip(&straight) {
                    assert_eq!(k, s, "after {step}, {}: the kept counts (left) differ from a straight recount (right)", p.name);
                }
            }
        }
    };
    check("filing the fixture").await;
    let autumn: i64 = recounted(store, &dir, &periods[2], now).await[0].1[0].1;
    assert_eq!(autumn, 16, "the fixture's Autumn term");

    // Filing, with an outcome, and one more open.
    let mut extra = case("Oliver Brown", "Behaviour", at(2026, 11, 30, 14, 0), 45);
    extra.outcome = Some(("MONITOR weekly check-ins", 300));
    let filed = file_case(&db, &env, 100, &extra).await;
    file_case(&db, &env, 101, &case("Jane Smith", "Attendance", at(2026, 12, 1, 9, 0), 15)).await;
    check("filing two more").await;
    // An outcome on the incident still open since 23 November.
    let open: Vec<i64> = sqlx_ids(store, "SELECT incident_id FROM actions WHERE outcome IS NULL ORDER BY incident_id").await;
    haven::cli::outcome::record(store, &sealer(&env), open[0], "EARLY-HELP assessment opened", DSL, at(2026, 12, 2, 9, 0)).await.unwrap();
    check("an outcome").await;
    // Relinked: Oliver's new incident is about Amira instead, and Jane is only mentioned in it.
    change(store, &format!("UPDATE incident_pupils SET pupil_id = {amira} WHERE incident_id = {filed} AND pupil_id = {oliver}")).await;
    change(store, &format!("INSERT INTO incident_pupils (incident_id, pupil_id, role, how) VALUES ({filed}, {jane}, 'mentioned', 'name')"))
        .await;
    check("a relink").await;
    // Disposed of: the first Spring incident and everything of it.
    let first = sqlx_ids(store, "SELECT MIN(id) FROM incidents").await[0];
    for table in [
        "action_rungs WHERE action_id IN (SELECT id FROM actions WHERE incident_id = {id})",
        "actions WHERE incident_id = {id}",
        "outbox WHERE incident_id = {id}",
        "incident_pupils WHERE incident_id = {id}",
        "incidents WHERE id = {id}",
    ] {
        change(store, &format!("DELETE FROM {}", table.replace("{id}", &first.to_string()))).await;
    }
    check("a disposal").await;
    // A category corrected, and a time corrected into another month.
    change(store, &format!("UPDATE incidents SET category = 'Pastoral issue' WHERE id = {filed}")).await;
    change(store, &format!("UPDATE incidents SET occurred_us = occurred_us + 86400000000 * 20 WHERE id = {}", open[0])).await;
    check("a category and a date corrected").await;
    // Jane moves year group and house; Oliver loses his SEN flag.
    change(store, &format!("UPDATE pupils SET year_group = 8, house = 'Heron' WHERE id = {jane}")).await;
    change(store, &format!("UPDATE pupils SET sen = FALSE WHERE id = {oliver}")).await;
    check("a pupil's groups").await;
    // Characteristics with their history: Jane on free school meals, then off from 1 October.
    let day = |s: &str| haven::report::period::day_start_us(s.parse().unwrap(), chrono_tz::Europe::London);
    store.record_characteristics(&[(jane, "fsm", "yes".into()), (amira, "sen", "K".into())], day("2026-01-01")).await.unwrap();
    check("characteristics").await;
    store.record_characteristics(&[(jane, "fsm", "no".into())], day("2026-10-01")).await.unwrap();
    check("a characteristic changed").await;
    // A plan for Oliver over the autumn, then ended early.
    change(
        store,
        &format!(
            "INSERT INTO pupil_plans (pupil_id, kind, starts_on, starts_us, created_by, created_us) \
         SELECT {oliver}, 'child-in-need', '2026-10-01', {}, MIN(id), 0 FROM staff",
            day("2026-10-01")
        ),
    )
    .await;
    check("a plan").await;
    change(store, &format!("UPDATE pupil_plans SET ends_on = '2026-10-20', ends_us = {} WHERE pupil_id = {oliver}", day("2026-10-20")))
        .await;
    check("a plan ended").await;
    db.cleanup().await;
}

/// Whole numbers a query returns.
async fn sqlx_ids(store: &Store, sql: &'static str) -> Vec<i64> {
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await,
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await,
    }
    .expect(sql)
}

backend_tests!(
    kept_counts_equal_a_straight_recount_after_every_change,
    pupils_are_counted_in_their_groups_as_they_were_on_the_day,
    referrals_and_plans_are_counted_listed_and_reminded,
    governors_see_hand_computed_figures_with_small_numbers_hidden,
    the_dsl_sees_every_count_and_who_recorded_them,
    a_teacher_and_wrong_questions_are_refused_with_what_to_do,
);
