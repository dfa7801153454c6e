//! The chronology tells the whole story, through the real `haven` binary on both engines: the
//! example school (examples/eaton) is filed, the DSL answers the alert about Amira Khan's
//! drawing twice by email (a plain reply, then `Outcome: …`), and `haven chronology` of Amira,
//! the example's busiest pupil, shows every text, the kind of each record (`Kind:` line,
//! "Direct conversation with…", a quoted parent's email), the follow-up under the incident it
//! answers, the outcome with who recorded it and when, and the pupils with their roles. The
//! export shows each note once and links the follow-up to its incident.
//!
//! Golden files for reading the kind: `tests/fixtures/kinds/NAME.eml` beside `NAME.json`
//! (`{"kind": …, "source": …}` and the reason when a `Kind:` line is refused).

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::eaton::{DSL, INTAKE, alert_to_dsl, eaton, eaton_school};
use support::haven::{HavenEnv, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const AMIRA: &str = "Amira Khan";
const FOLLOW_UP: &str = "Spoke to Amira's mum after school; the bus company will move her seat to the front.";
const OUTCOME: &str = "Outcome: Early help assessment opened with mum; bus seating changed; review 1 December.";

fn chronology_json(env: &HavenEnv, pupil: &str) -> Value {
    let r = env.haven(&["chronology", pupil, "--as", DSL, "--json"]);
    assert_eq!(r.code, 0, "chronology {pupil}: {}", r.stderr);
    serde_json::from_str(&r.stdout).expect("chronology --json is JSON")
}

/// A plain-text reply from the DSL to the alert, quoting it as Gmail does.
fn reply(alert: &(String, String, String, String), n: u32, date: &str, text: &str) -> String {
    let (reply_to, id, subject, body) = alert;
    let quoted: Vec<String> = body.lines().map(|l| format!("> {l}")).collect();
    format!(
        "From: Dana Lead <{DSL}>\r\nTo: Haven <{reply_to}>\r\nSubject: Re: {subject}\r\nDate: {date}\r\n\
         Message-ID: <chron-reply-{n}@mail.eaton.sch.example>\r\nIn-Reply-To: <{id}>\r\nReferences: <{id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\r\n\
         On Mon, 16 Nov 2026 at 16:45, Haven <{INTAKE}> wrote:\r\n{}\r\n",
        quoted.join("\r\n")
    )
}

/// Files the example, then runs the daemon so the alerts go out, answers the alert about Amira's
/// drawing with a plain reply and then an outcome, and stops the daemon.
fn example_with_follow_up_and_outcome(db_url: &str) -> (HavenEnv, i64) {
    let env = eaton_school(db_url);
    let chron = chronology_json(&env, AMIRA);
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

/// The words of a message's body that the chronology must show (each non-empty line, as written),
/// skipping the marker lines before the first blank line when `after_blank`, and keeping at most
/// `max` lines (a multipart message's text part comes first).
fn lines_of(file: &str, after_blank: bool, max: usize) -> Vec<String> {
    let raw = std::fs::read_to_string(eaton().join("mail/intake/new").join(file)).unwrap();
    let raw = raw.replace("\r\n", "\n");
    let body = raw.split_once("\n\n").map(|(_, b)| b).unwrap_or_default();
    let body = if after_blank { body.split_once("\n\n").map(|(_, b)| b).unwrap_or(body) } else { body };
    body.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("--")).take(max).map(str::to_string).collect()
}

/// The text of the export's HTML, its escapes undone (ammonia escapes spaces too).
fn unescape(html: &str) -> String {
    [("&#32;", " "), ("&#10;", "\n"), ("&apos;", "'"), ("&quot;", "\""), ("&#47;", "/"), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")]
        .iter()
        .fold(html.to_string(), |s, (from, to)| s.replace(from, to))
}

/// The block of the text chronology for incident `id`: from its heading to the next heading.
fn block(text: &str, id: i64) -> &str {
    let start = text.find(&format!("\n#{id} ")).unwrap_or_else(|| panic!("incident #{id} in:\n{text}"));
    let rest = &text[start + 1..];
    let end = rest[1..].find("\n#").map_or(rest.len(), |i| i + 2);
    &rest[..end]
}

async fn busiest_pupils_text_chronology_shows_everything(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (env, drawing) = example_with_follow_up_and_outcome(&db.url);

    // Amira is the busiest pupil of the example.
    let pupils = std::fs::read_to_string(eaton().join("directory/pupils.csv")).unwrap();
    let mut counts: Vec<(usize, String)> = pupils
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(|upn| (chronology_json(&env, upn)["incidents"].as_array().map_or(0, Vec::len), upn.to_string()))
        .collect();
    counts.sort();
    let amira = chronology_json(&env, AMIRA);
    let (most, upn) = counts.last().cloned().unwrap();
    assert_eq!(upn, amira["pupil"]["upn"], "the busiest pupil ({most} entries) is Amira: {counts:?}");
    assert!(counts.iter().rev().nth(1).unwrap().0 < most, "Amira alone is the busiest: {counts:?}");

    let r = env.haven(&["chronology", AMIRA, "--as", DSL]);
    assert_eq!(r.code, 0, "chronology: {}", r.stderr);
    let text = r.stdout;
    println!("{text}");
    assert!(text.starts_with("Amira Khan (E100000000003), Year 4"), "{text}");
    assert!(text.contains("4 incident(s), 1 follow-up(s)"), "{text}");

    // Every text filed on her, in full, with the kind of record.
    let incidents = amira["incidents"].as_array().unwrap();
    let by_file = |needle: &str| -> i64 {
        incidents
            .iter()
            .find(|e| e["body"].as_str().is_some_and(|b| b.contains(needle)))
            .unwrap_or_else(|| panic!("{needle:?} on Amira's chronology: {amira}"))["incident"]
            .as_i64()
            .unwrap()
    };
    for (file, needle, kind, after_blank, max) in [
        ("03-note-room-search.eml", "Searched Amira's bag", "observation", true, 9),
        ("11-attachment-note.eml", "Amira drew this", "observation", true, 1),
        ("17-phone-call-kind-line.eml", "Mum rang after school", "phone call", true, 9),
        ("18-direct-conversation.eml", "Direct conversation with Amira", "direct conversation", true, 9),
    ] {
        let id = by_file(needle);
        let b = block(&text, id);
        assert!(b.lines().next().unwrap().contains(&format!("({kind}, ")), "#{id} is shown as {kind}:\n{b}");
        for line in lines_of(file, after_blank, max) {
            assert!(b.contains(&line), "{file}: {line:?} is on the chronology under #{id}:\n{b}");
        }
    }
    // The room search names both pupils with their roles.
    let search = block(&text, by_file("Searched Amira's bag"));
    assert!(search.contains("pupils: Amira Khan (subject), Grace Okafor (witness)"), "{search}");

    // The drawing: its attachment, the DSL's follow-up under it, and the outcome with who and when.
    let b = block(&text, drawing);
    assert!(b.contains("attachments: drawing.png"), "{b}");
    let follow_up = incidents.iter().find(|e| e["follows"] == drawing).unwrap_or_else(|| panic!("a follow-up on #{drawing}: {amira}"));
    let fid = follow_up["incident"].as_i64().unwrap();
    assert!(b.contains(&format!("follow-up #{fid} 2026-11-18 09:10 by Dana Lead (follow-up)")), "{b}");
    assert!(b.contains(FOLLOW_UP), "the follow-up's words under #{drawing}:\n{b}");
    assert!(!b.contains("> "), "no quoted alert in the follow-up:\n{b}");
    assert!(!text.contains(&format!("\n#{fid} ")), "the follow-up is not a separate incident:\n{text}");
    let outcome = OUTCOME.trim_start_matches("Outcome: ");
    assert!(b.contains("  outcome (Dana Lead, "), "who recorded the outcome:\n{b}");
    assert!(b.contains(outcome), "the outcome's text:\n{b}");
    assert!(
        follow_up.get("outcome_by").is_some() && incidents.iter().any(|e| e["outcome_by"] == "Dana Lead" && e["outcome_at"].is_string()),
        "{amira}"
    );

    // The email (message 15, Ruby's tutor replying to mum) is an email and shows mum's words.
    let ruby = env.haven(&["chronology", "Ruby Ellis", "--as", DSL]).stdout;
    assert!(ruby.contains("(email, "), "a staff reply quoting a parent is an email:\n{ruby}");
    assert!(ruby.contains("note:\n    Passing this on straight away"), "{ruby}");

    db.cleanup().await;
}

async fn export_shows_a_note_once_and_links_the_follow_up(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (env, drawing) = example_with_follow_up_and_outcome(&db.url);
    let r = env.haven(&["export", AMIRA, "--as", DSL, "--format", "html", "--out", "bundle"]);
    assert_eq!(r.code, 0, "export: {}{}", r.stdout, r.stderr);
    // Progress, off a terminal, is one closing line on stderr: every incident exported.
    let done = r.stderr.lines().find(|l| l.contains(" incidents exported, ")).unwrap_or_default();
    let (n, total) = done.trim_start_matches("haven: ").split_once(" of ").unwrap_or_default();
    assert!(!n.is_empty() && total.starts_with(&format!("{n} incidents exported")), "progress on stderr: {}", r.stderr);
    let html = unescape(&std::fs::read_to_string(env.path("bundle/chronology.html")).unwrap());
    for note in ["Amira drew this in art and seemed low.", "Mum rang after school.", "Direct conversation with Amira in the library"] {
        assert_eq!(html.matches(note).count(), 1, "{note:?} appears once in the export:\n{html}");
    }
    assert!(html.contains("Kind: phone call."), "{html}");
    assert!(html.contains("Kind: direct conversation."), "{html}");
    let json: Value = serde_json::from_str(&chronology_json(&env, AMIRA).to_string()).unwrap();
    let fid = json["incidents"].as_array().unwrap().iter().find(|e| e["follows"] == drawing).unwrap()["incident"].as_i64().unwrap();
    assert!(html.contains(&format!("Follow-up to <a href=\"#incident-{drawing}\">incident #{drawing}</a>")), "{html}");
    assert!(html.contains(&format!("Follow-ups: <a href=\"#incident-{fid}\">#{fid}</a>")), "{html}");
    assert!(html.contains("<strong>Outcome</strong> (Dana Lead, "), "{html}");

    let r = env.haven(&["export", AMIRA, "--as", DSL, "--format", "json", "--out", "bundle-json"]);
    assert_eq!(r.code, 0, "export: {}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(env.path("bundle-json/chronology.json")).unwrap()).unwrap();
    let fu = v["incidents"].as_array().unwrap().iter().find(|e| e["incident"] == fid).unwrap();
    assert_eq!(fu["follows"], drawing, "{fu}");
    assert!(v["incidents"].as_array().unwrap().iter().any(|e| e["kind"] == "phone_call"), "{v}");
    db.cleanup().await;
}

/// A `Kind:` line Haven cannot read files the record anyway and says why in the recorded reason.
async fn unknown_kind_line_is_filed_with_a_reason(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = eaton_school(&db.url);
    let msg = std::fs::read_to_string(eaton().join("mail/intake/new/17-phone-call-kind-line.eml"))
        .unwrap()
        .replace("Kind: phone call", "Kind: carrier pigeon")
        .replace("<ex17@", "<ex17-pigeon@");
    let path = env.path("pigeon.eml");
    std::fs::write(&path, msg).unwrap();
    let r = env.haven(&["ingest", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    let r = env.haven(&["messages", "--state", "filed", "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let reason = v.as_array().unwrap().last().unwrap()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("the Kind: line names no kind Haven knows (direct conversation, phone call, observation, email)"), "{reason}");
    let chron = env.haven(&["chronology", AMIRA, "--as", DSL]).stdout;
    assert!(chron.contains("Kind: carrier pigeon"), "the text is kept whole:\n{chron}");
    db.cleanup().await;
}

backend_tests!(
    busiest_pupils_text_chronology_shows_everything,
    export_shows_a_note_once_and_links_the_follow_up,
    unknown_kind_line_is_filed_with_a_reason,
);

/// Golden `Kind:` reading: every `tests/fixtures/kinds/*.eml` against its `.json`.
#[test]
fn kind_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/kinds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "kind fixtures: {files:?}");
    let bless = std::env::var_os("HAVEN_BLESS").is_some();
    let mut failed = Vec::new();
    for eml in files {
        let msg = haven::read::read_message(&std::fs::read(&eml).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", eml.display()));
        let got = serde_json::to_value(haven::read::kind::read_record_kind(&msg)).unwrap();
        let golden = eml.with_extension("json");
        if bless {
            std::fs::write(&golden, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let want: Value =
            serde_json::from_str(&std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()))).unwrap();
        if got != want {
            failed.push(format!("{}: got {got}, want {want}", eml.display()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
