//! PDF exports, through the real `haven` binary on both engines, read back with poppler
//! (`pdfinfo`, `pdftotext`, `pdffonts`, `pdftoppm`; Debian's poppler-utils, installed by
//! tests/run.sh): the example school's busiest pupil's chronology has the footer (school, UPN,
//! "Page X of Y", export id, manifest hash) on every page, a cover with her details, every
//! entry with who was alerted and the outcome, embedded fonts and a PDF/A-2b claim; a HouseM's
//! export holds nothing only the DSL team may see; a note written as typst markup, with
//! backslashes and characters no font has, is printed as written.
//!
//! Page 1 of the busiest pupil's PDF is kept as `target/pdf-pages/chronology-page1.png` (the
//! README's picture).

mod support;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::eaton::{DSL, INTAKE, alert_to_dsl};
use support::haven::{HavenEnv, wait_for};
use support::poppler::{pages, poppler};

const WAIT: Duration = Duration::from_secs(60);
const KESTREL: &str = "kestrel@eaton.sch.example";
const AMIRA: &str = "Amira Khan";
const AMIRA_UPN: &str = "E100000000003";
const FOLLOW_UP: &str = "Spoke to Amira's mum after school; the bus company will move her seat to the front.";
/// An emailed outcome with its code: the daemon reads `EARLY-HELP` and keeps the whole text.
const OUTCOME: &str = "Outcome: EARLY-HELP assessment opened with mum; bus seating changed; review 1 December.";

/// Words joined by single spaces, so a line wrapped in the PDF still matches.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The example school's installation on `db_url` (its school named, so the footer can be
/// checked), its directory imported and its messages filed.
fn eaton_school(db_url: &str) -> HavenEnv {
    let env = support::eaton::eaton_school(db_url);
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, config.replace("Test School", "Eaton Primary (test)")).unwrap();
    env
}

fn chronology_json(env: &HavenEnv, pupil: &str, viewer: &str) -> Value {
    let r = env.haven(&["chronology", pupil, "--as", viewer, "--json"]);
    assert_eq!(r.code, 0, "chronology {pupil}: {}", r.stderr);
    serde_json::from_str(&r.stdout).expect("chronology --json is JSON")
}

/// A plain-text reply from the DSL to the alert.
fn reply(alert: &(String, String, String, String), n: u32, date: &str, text: &str) -> String {
    let (reply_to, id, subject, _) = alert;
    format!(
        "From: Dana Lead <{DSL}>\r\nTo: Haven <{reply_to}>\r\nSubject: Re: {subject}\r\nDate: {date}\r\n\
         Message-ID: <pdf-reply-{n}@mail.eaton.sch.example>\r\nIn-Reply-To: <{id}>\r\nReferences: <{id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    )
}

/// The example filed, its alerts written by the daemon, and the DSL's follow-up and outcome on
/// the alert about Amira's drawing; returns the drawing's incident.
fn example_with_follow_up_and_outcome(db_url: &str) -> (HavenEnv, i64) {
    let env = eaton_school(db_url);
    let chron = chronology_json(&env, AMIRA, DSL);
    let drawing = chron["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["attachments"].as_array().is_some_and(|a| a.iter().any(|f| f == "drawing.png")))
        .unwrap_or_else(|| panic!("the drawing's incident: {chron}"))["incident"]
        .as_i64()
        .unwrap();
    let mut daemon = env.start();
    let drained = |env: &HavenEnv| {
        let s = env.status();
        if s["outbox"]["pending"] == 0 { Ok(s) } else { Err(s.to_string()) }
    };
    wait_for("the alerts to be written", WAIT, || drained(&env));
    let alert = alert_to_dsl(&env, drawing);
    for (n, date, text) in [(1, "Wed, 18 Nov 2026 09:10:00 +0000", FOLLOW_UP), (2, "Thu, 19 Nov 2026 15:30:00 +0000", OUTCOME)] {
        let filed = env.status()["messages"]["filed"].as_u64().unwrap();
        env.deliver(&format!("reply-{n}.eml"), reply(&alert, n, date, text).as_bytes());
        wait_for(&format!("reply {n} to be filed"), WAIT, || {
            daemon.assert_running();
            let s = env.status();
            if s["messages"]["filed"].as_u64() > Some(filed) && s["outbox"]["pending"] == 0 { Ok(()) } else { Err(s.to_string()) }
        });
    }
    daemon.stop();
    (env, drawing)
}

/// `haven export PUPIL --as VIEWER --format pdf --out OUT`; the bundle's directory.
fn export_pdf(env: &HavenEnv, pupil: &str, viewer: &str, out: &str) -> PathBuf {
    let r = env.haven(&["export", pupil, "--as", viewer, "--format", "pdf", "--out", out]);
    assert_eq!(r.code, 0, "export --format pdf: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("exported to {out}")), "{}", r.stdout);
    env.path(out)
}

/// (actor, detail) of every `export` entry in the audit log.
async fn export_audit(db: &TestDb) -> Vec<(String, String)> {
    use sqlx::Row;
    let sql = "SELECT actor, detail FROM audit_log WHERE action = 'export' ORDER BY id";
    match &db.store {
        haven::store::Store::Sqlite(p) => sqlx::query(sql).fetch_all(p).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect(),
        haven::store::Store::Postgres(p) => sqlx::query(sql).fetch_all(p).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect(),
    }
}

/// The non-empty lines of an entry's texts, each of which the PDF must show.
fn texts_of(e: &Value) -> Vec<String> {
    ["note", "body", "outcome"]
        .iter()
        .filter_map(|k| e[*k].as_str())
        .flat_map(|t| t.lines().map(str::trim).filter(|l| l.len() > 3 && !l.starts_with('>')).map(flat).collect::<Vec<_>>())
        .collect()
}

async fn busiest_pupils_pdf_has_every_entry_and_a_footer_on_every_page(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (env, drawing) = example_with_follow_up_and_outcome(&db.url);
    let bundle = export_pdf(&env, AMIRA, DSL, "bundle");
    let pdf = bundle.join("chronology.pdf");

    // The manifest checks, and names every file but the PDF; its hash is on every page.
    let check = Command::new("sha256sum").args(["-c", "MANIFEST.sha256"]).current_dir(&bundle).output().unwrap();
    assert!(check.status.success(), "sha256sum -c: {}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let manifest = std::fs::read(bundle.join("MANIFEST.sha256")).unwrap();
    let listed = String::from_utf8_lossy(&manifest).to_string();
    assert!(listed.contains("  chronology.json\n") && listed.contains("drawing.png\n"), "{listed}");
    assert!(!listed.contains("chronology.pdf"), "the PDF cannot list itself: {listed}");
    let manifest_hash = hex::encode(Sha256::digest(&manifest));

    let pages = pages(&pdf);
    let n = pages.len();
    assert!(n >= 2, "a cover and entries: {n} page(s)");
    let cover = flat(&pages[0]);
    // The export id is in the audit log, under the exporter, and on the cover.
    let details = export_audit(&db).await;
    let (actor, detail) = details.last().unwrap_or_else(|| panic!("an export entry in the audit log"));
    assert!(actor.contains(DSL), "{details:?}");
    let export_id = detail.split_once(" id=").map(|(_, id)| id.to_string()).unwrap_or_else(|| panic!("the export's id: {detail}"));
    assert!(cover.contains(&format!("Export id {export_id}")), "the cover names export {export_id}:\n{cover}");
    for (i, page) in pages.iter().enumerate() {
        let page = flat(page);
        for needle in [
            "Eaton Primary (test)".to_string(),
            format!("UPN {AMIRA_UPN}"),
            format!("Page {} of {n}", i + 1),
            format!("Export {export_id}"),
            format!("Manifest SHA-256 {manifest_hash}"),
        ] {
            assert!(page.contains(&needle), "page {} has {needle:?} in its footer:\n{page}", i + 1);
        }
    }

    // The cover: her details, as the directory has them.
    for needle in [
        "Safeguarding chronology",
        "Amira Khan",
        "Date of birth 2017-06-14",
        "Year group 4",
        "Form 4K",
        "House Kestrel",
        "Status On roll",
        "Exported by Dana Lead <dsl@eaton.sch.example>",
    ] {
        assert!(cover.contains(needle), "the cover shows {needle:?}:\n{cover}");
    }

    // Every entry the DSL sees, with its words, the kind, who was alerted and the outcome.
    let all = flat(&pages.join("\n"));
    let chron = chronology_json(&env, AMIRA, DSL);
    let incidents = chron["incidents"].as_array().unwrap();
    assert!(incidents.len() >= 5, "{chron}");
    for e in incidents {
        let id = e["incident"].as_i64().unwrap();
        assert!(all.contains(&format!("#{id} · ")), "incident #{id} has a heading:\n{all}");
        assert!(all.contains(&format!("Kind {}", e["kind_label"].as_str().unwrap())), "#{id}'s kind:\n{all}");
        for line in texts_of(e) {
            assert!(all.contains(&line), "#{id}'s words {line:?} are in the PDF:\n{all}");
        }
    }
    let block = all.split(&format!("#{drawing} · ")).nth(1).unwrap().to_string();
    assert!(block.contains("Who was alerted Who Why State When Dana Lead alert"), "the DSL was alerted about #{drawing}:\n{block}");
    assert!(block.contains("drawing.png"), "{block}");
    let outcome_at =
        incidents.iter().find(|e| e["incident"] == drawing).and_then(|e| e["outcome_at"].as_str()).expect("the drawing's outcome time");
    // Europe/London is on UTC in the winter, when the example is set.
    let outcome_at = chrono::DateTime::parse_from_rfc3339(outcome_at).unwrap().format("%Y-%m-%d %H:%M").to_string();
    assert!(
        block.contains(&format!("Outcome Decision EARLY-HELP Recorded by Dana Lead When {outcome_at}")),
        "the decision, who recorded the outcome, and when:\n{block}"
    );
    let drawn = incidents.iter().find(|e| e["incident"] == drawing).unwrap();
    assert_eq!(drawn["outcome_code"], "EARLY-HELP", "the emailed outcome's code: {drawn}");
    assert!(block.contains(&flat(OUTCOME.trim_start_matches("Outcome: "))), "{block}");
    assert!(all.contains(&flat(FOLLOW_UP)), "the follow-up's words:\n{all}");

    // PDF/A-2b, every font embedded.
    let raw = std::fs::read(&pdf).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.contains("<pdfaid:part>2</pdfaid:part>") && raw.contains("<pdfaid:conformance>B</pdfaid:conformance>"),
        "the PDF claims PDF/A-2b"
    );
    let fonts = poppler("pdffonts", &[pdf.to_str().unwrap()]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "{fonts}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.get(cols.len() - 5), Some(&"yes"), "every font is embedded:\n{fonts}");
    }

    // Page 1 as a picture, for the README.
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pdf-pages");
    std::fs::create_dir_all(&out).unwrap();
    let stem = out.join(format!("chronology-{}", if backend == Backend::Sqlite { "sqlite" } else { "postgres" }));
    poppler("pdftoppm", &["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", pdf.to_str().unwrap(), stem.to_str().unwrap()]);
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "page 1 renders to a picture with something on it ({} bytes)", png.len());
    if backend == Backend::Sqlite {
        std::fs::write(out.join("chronology-page1.png"), &png).unwrap();
    }
    db.cleanup().await;
}

async fn a_housems_pdf_holds_only_what_they_may_see(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    // Grace Okafor (Kestrel): her HouseM sees some of her chronology, not the DSL-only call.
    let grace = "Grace Okafor";
    let dsl: Vec<Value> = chronology_json(&env, grace, DSL)["incidents"].as_array().unwrap().clone();
    let house: Vec<i64> =
        chronology_json(&env, grace, KESTREL)["incidents"].as_array().unwrap().iter().map(|e| e["incident"].as_i64().unwrap()).collect();
    let hidden: Vec<&Value> = dsl.iter().filter(|e| !house.contains(&e["incident"].as_i64().unwrap())).collect();
    assert!(!hidden.is_empty() && !house.is_empty(), "the HouseM sees some of Grace's entries, not all: {house:?} of {dsl:?}");

    // Holds on her file and on the DSL-only call: the cover says so, as far as the reader may see.
    let hold = |on: &[&str], reason: &str| {
        let r = env.haven(&[&["hold", "set"][..], on, &["--reason", reason, "--note", "Op Elm", "--by", DSL]].concat());
        assert_eq!(r.code, 0, "hold set: {}{}", r.stdout, r.stderr);
        r.stdout.split_whitespace().nth(1).unwrap().to_string()
    };
    let on_pupil = hold(&["--pupil", grace], "inquiry");
    let hidden_id = hidden[0]["incident"].as_i64().unwrap().to_string();
    let on_hidden = hold(&["--incident", &hidden_id], "police");

    let all = flat(&pages(&export_pdf(&env, grace, KESTREL, "house").join("chronology.pdf")).join("\n"));
    assert!(all.contains(&format!("Hold {on_pupil} on this pupil since")) && all.contains("(inquiry), set by"), "{all}");
    assert!(
        !all.contains(&format!("Hold {on_hidden}")) && !all.contains("(police)"),
        "a hold on an entry the HouseM may not see is not shown:\n{all}"
    );
    assert!(!all.contains("Op Elm"), "a hold's note is never exported:\n{all}");
    for id in &house {
        assert!(all.contains(&format!("#{id} · ")), "#{id}, which the HouseM may see, is there:\n{all}");
    }
    for e in hidden {
        let id = e["incident"].as_i64().unwrap();
        assert!(!all.contains(&format!("#{id} · ")), "#{id} is the DSL team's alone:\n{all}");
        for line in texts_of(e) {
            assert!(!all.contains(&line), "#{id}'s words {line:?} are not in the HouseM's PDF:\n{all}");
        }
    }
    assert!(all.contains("Exported by Kit Kestrel <kestrel@eaton.sch.example>"), "{all}");
    assert!(!all.contains("Social worker called"), "{all}");

    // The same pupil for the DSL: the call is there (the check above can fail).
    let dsl_pdf = flat(&pages(&export_pdf(&env, grace, DSL, "dsl").join("chronology.pdf")).join("\n"));
    assert!(dsl_pdf.contains("Social worker called"), "{dsl_pdf}");
    assert!(dsl_pdf.contains(&format!("Hold {on_hidden} on incident #{hidden_id} since")), "{dsl_pdf}");
    let json: Value =
        serde_json::from_slice(&std::fs::read(export_pdf(&env, grace, DSL, "dsl-json").join("chronology.json")).unwrap()).unwrap();
    assert_eq!(json["holds"].as_array().map(Vec::len), Some(2), "{}", json["holds"]);

    // Asking for nobody, or as nobody, writes nothing.
    let r = env.haven(&["export", "Nobody Here", "--as", DSL, "--format", "pdf", "--out", "none"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no pupil matches"), "{}", r.stderr);
    let r = env.haven(&["export", grace, "--as", "stranger@example.net", "--format", "pdf", "--out", "none"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not an active member of staff"), "{}", r.stderr);
    assert!(!env.path("none").exists(), "nothing written");
    db.cleanup().await;
}

/// What a member of staff typed, as typst markup, code and text no font has.
const HOSTILE: &str = "#set page(fill: red) #strong[not bold] *not strong* _not emphasis_ $x^2$ `tick`\n\
= not a heading\n\
#import \"/etc/passwd\": * and #read(\"/etc/hostname\") <label> @ref\n\
back\\slash \\\\ double \\n not-a-newline // not a comment /* nor this */\n\
Zoë said «ça va» — Ελληνικά Кириллица ½ €5 😀 end";

async fn a_note_written_as_markup_is_printed_as_written(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    let note = format!(
        "From: Kit Kestrel <{KESTREL}>\r\nTo: {INTAKE}\r\nSubject: Odd note #1 [x] *y*\r\nDate: Fri, 20 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <pdf-hostile@mail.eaton.sch.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Pupil: Amira Khan\r\n\r\n{}\r\n",
        HOSTILE.replace('\n', "\r\n")
    );
    let path = env.path("hostile.eml");
    std::fs::write(&path, note).unwrap();
    let r = env.haven(&["ingest", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);

    let all = flat(&pages(&export_pdf(&env, AMIRA, DSL, "bundle").join("chronology.pdf")).join("\n"));
    for line in HOSTILE.lines() {
        let expected = flat(&line.replace('😀', "[U+1F600]"));
        assert!(all.contains(&expected), "{expected:?} is printed as written:\n{all}");
    }
    db.cleanup().await;
}

/// `haven outcome` reads the decision from the start of the text, keeps the whole text beside
/// it, refuses a decision not to refer without its reason, and the PDF shows the decision.
async fn an_outcome_code_is_kept_beside_its_text_and_shown(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    let chron = chronology_json(&env, AMIRA, DSL);
    let id = chron["incidents"][0]["incident"].as_i64().unwrap().to_string();

    let r = env.haven(&["outcome", &id, "NO-REFERRAL", "--by", DSL]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("a decision not to refer records its reason: write `NO-REFERRAL because …`; nothing was recorded"),
        "{}",
        r.stderr
    );
    assert!(chronology_json(&env, AMIRA, DSL)["incidents"][0]["outcome"].is_null(), "nothing recorded");

    let text = "REFERRED CSC ref 2026/4471; strategy meeting Friday";
    let r = env.haven(&["outcome", &id, text, "--by", DSL]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let entry = chronology_json(&env, AMIRA, DSL)["incidents"][0].clone();
    assert_eq!(entry["outcome_code"], "REFERRED-CSC", "{entry}");
    assert_eq!(entry["outcome"], text, "the whole text is kept: {entry}");
    let shown = env.haven(&["chronology", AMIRA, "--as", DSL]).stdout;
    assert!(shown.contains("  outcome REFERRED-CSC (Dana Lead, "), "{shown}");

    let all = flat(&pages(&export_pdf(&env, AMIRA, DSL, "bundle").join("chronology.pdf")).join("\n"));
    assert!(all.contains("Outcome Decision REFERRED-CSC Recorded by Dana Lead") && all.contains(text), "{all}");

    // The HTML export is the same model: the cover's facts and the decision are there too.
    let r = env.haven(&["export", AMIRA, "--as", DSL, "--format", "html", "--out", "html"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let html = std::fs::read_to_string(env.path("html/chronology.html")).unwrap();
    for needle in [
        "<th scope=\"row\">Date of birth</th><td>2017-06-14</td>",
        "<th scope=\"row\">House</th><td>Kestrel</td>",
        "<p>Decision: REFERRED-CSC</p>",
        "<h3>Who was alerted</h3>",
    ] {
        assert!(html.contains(needle), "{needle:?} in the HTML export:\n{html}");
    }
    db.cleanup().await;
}

backend_tests!(
    an_outcome_code_is_kept_beside_its_text_and_shown,
    busiest_pupils_pdf_has_every_entry_and_a_footer_on_every_page,
    a_housems_pdf_holds_only_what_they_may_see,
    a_note_written_as_markup_is_printed_as_written,
);
