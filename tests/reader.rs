//! Reading messages: the forwarded-message corpus read fully right, golden `.eml` → `.json`
//! files for every client staff use, and hostile or broken input refused cleanly, never a panic.
//!
//! Golden files: `tests/fixtures/messages/NAME.eml` beside `NAME.json` (what `haven inspect
//! --json` prints). On a mismatch the test writes `NAME.actual.json` beside them; diff the two.
//! After a deliberate change, `HAVEN_BLESS=1 cargo test --test reader` rewrites the `.json` files.

mod support;

use std::path::{Path, PathBuf};

use haven::inspect::inspect_json;
use haven::message::Kind;
use haven::read::{Limits, read_message, read_message_with, reply::reply_text};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

// ---------------------------------------------------------------------------------------------
// The forwarded-message corpus (same scoring as ../shared/tools/check-forwards.py)
// ---------------------------------------------------------------------------------------------

/// Wraps a corpus body in a plain-text message from a member of staff, as their client sends it.
fn wrap(body: &str, subject: &str, id: &str) -> Vec<u8> {
    let headers = [
        "From: Sam Teacher <s.teacher@school.example>".to_string(),
        "To: Safeguarding <safeguarding@school.example>".to_string(),
        format!("Subject: {subject}"),
        "Date: Mon, 01 Nov 2021 10:00:00 +0000".to_string(),
        format!("Message-ID: <{}@school.example>", id.len()),
        "MIME-Version: 1.0".to_string(),
        "Content-Type: text/plain; charset=\"utf-8\"".to_string(),
        "Content-Transfer-Encoding: 8bit".to_string(),
    ];
    let body = body.replace("\r\n", "\n").replace('\n', "\r\n");
    format!("{}\r\n\r\n{}", headers.join("\r\n"), body).into_bytes()
}

fn read_text(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    s.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(s)
}

/// Trailing spaces and surrounding blank lines do not count (as in check-forwards.py).
fn norm(s: &str) -> String {
    s.replace("\r\n", "\n").trim().split('\n').map(|l| l.trim_end()).collect::<Vec<_>>().join("\n")
}

/// Maps a corpus expectation key onto the inspect JSON.
fn lookup(out: &Value, key: &str) -> Value {
    let fwd = out.get("forwarded").filter(|f| !f.is_null());
    if key == "forwarded" {
        return Value::Bool(fwd.is_some());
    }
    if key == "message" {
        return out.get("note").cloned().unwrap_or(Value::Null);
    }
    let (Some(path), Some(fwd)) = (key.strip_prefix("email."), fwd) else {
        return Value::String("<no forward>".into());
    };
    let mut node = fwd.clone();
    for part in path.split('.') {
        node = match (&node, part.parse::<usize>()) {
            (Value::Array(a), _) if part == "length" => Value::from(a.len()),
            (Value::Array(a), Ok(i)) => a.get(i).cloned().unwrap_or(Value::Null),
            (Value::Object(o), _) => o.get(part).cloned().unwrap_or(Value::Null),
            _ => return Value::Null,
        };
    }
    node
}

fn same(key: &str, got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::String(g), Value::String(w)) if key.ends_with(".address") => g.eq_ignore_ascii_case(w),
        (Value::String(g), Value::String(w)) => norm(g) == norm(w),
        (g, w) => g == w,
    }
}

#[test]
fn forward_corpus_is_read_fully_right() {
    let dir = fixtures().join("forwards");
    let cases: Value = serde_json::from_str(&read_text(&dir.join("cases.json"))).expect("cases.json");
    let cases = cases.as_array().expect("cases.json is a list");
    assert!(cases.len() >= 140, "the corpus lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap_or("?");
        let body = read_text(&dir.join(case["body_file"].as_str().unwrap_or("")));
        let subject = match case["subject_file"].as_str() {
            Some(f) => read_text(&dir.join(f)).trim().to_string(),
            None => "Note for the safeguarding team".to_string(),
        };
        let out = match read_message(&wrap(&body, &subject, id)) {
            Ok(msg) => inspect_json(&msg),
            Err(e) => {
                failures.push(format!("{id}: not read: {e}"));
                continue;
            }
        };
        let Some(expect) = case["expect"].as_object() else {
            continue;
        };
        for (key, want) in expect {
            if key.contains('(') {
                continue; // the corpus's method-call checks repeat a field checked already
            }
            let got = lookup(&out, key);
            if !same(key, &got, want) {
                let show = |v: &Value| v.to_string().chars().take(100).collect::<String>();
                failures.push(format!("{id}: {key}: got {} want {}", show(&got), show(want)));
            }
        }
    }
    assert!(failures.is_empty(), "{} wrong:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Golden messages
// ---------------------------------------------------------------------------------------------

/// The first place two JSON values differ, as a path.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .find_map(|k| first_difference(&format!("{path}.{k}"), x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null)))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(&format!("{path}[{i}]"), p, q))
        }
        _ if a == b => None,
        _ => Some(format!(
            "{path}: expected {} got {}",
            a.to_string().chars().take(120).collect::<String>(),
            b.to_string().chars().take(120).collect::<String>()
        )),
    }
}

fn golden_files() -> Vec<PathBuf> {
    golden_files_in("messages")
}

fn golden_files_in(sub: &str) -> Vec<PathBuf> {
    let dir = fixtures().join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden_messages_match() {
    check_golden("messages", &Limits::default(), 25);
}

/// The school's reading limits: zone-less forwarded dates are read in Europe/London.
fn school_limits() -> Limits {
    Limits { timezone: chrono_tz::Europe::London, ..Limits::default() }
}

/// Forwards whose header-block date has no zone, read in the school's zone (Europe/London):
/// summer, winter, and either side of both DST changes (`tests/fixtures/times`).
#[test]
fn golden_times_match() {
    check_golden("times", &school_limits(), 10);
}

/// Each `times` fixture names the instant its forwarded date must be read as in an
/// `X-Haven-Test-Expect-Date` header, so a blessed `.json` cannot hide a wrong time.
#[test]
fn forwarded_dates_without_a_zone_are_read_in_the_schools_zone() {
    let mut failures = Vec::new();
    for eml in golden_files_in("times") {
        let raw = std::fs::read(&eml).expect("read eml");
        let msg = read_message_with(&raw, &school_limits()).expect("readable");
        let want = msg
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("X-Haven-Test-Expect-Date"))
            .map(|h| h.value.trim().to_string())
            .expect("the fixture names its expected date");
        let got = msg.forwarded.as_ref().and_then(|f| f.date).map(|d| d.to_rfc3339());
        if got.as_deref() != Some(want.as_str()) {
            failures.push(format!("{}: got {got:?} want {want}", eml.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_golden(sub: &str, limits: &Limits, min: usize) {
    let bless = std::env::var("HAVEN_BLESS").is_ok_and(|v| v == "1");
    let files = golden_files_in(sub);
    assert!(files.len() >= min, "expected at least {min} golden messages in {sub}, found {}", files.len());
    let mut failures = Vec::new();
    for eml in &files {
        let name = eml.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        let raw = std::fs::read(eml).expect("read eml");
        let got = match read_message_with(&raw, limits) {
            Ok(msg) => inspect_json(&msg),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        let pretty = serde_json::to_string_pretty(&got).expect("json") + "\n";
        let expected_path = eml.with_extension("json");
        let actual_path = eml.with_extension("actual.json");
        if bless {
            std::fs::write(&expected_path, &pretty).expect("write golden");
            let _ = std::fs::remove_file(&actual_path);
            continue;
        }
        let Ok(expected_text) = std::fs::read_to_string(&expected_path) else {
            std::fs::write(&actual_path, &pretty).expect("write actual");
            failures.push(format!("{name}: no {name}.json (run with HAVEN_BLESS=1 to create it)"));
            continue;
        };
        let expected: Value = serde_json::from_str(&expected_text).expect("golden json");
        match first_difference("", &expected, &got) {
            None => {
                let _ = std::fs::remove_file(&actual_path);
            }
            Some(diff) => {
                std::fs::write(&actual_path, &pretty).expect("write actual");
                failures.push(format!("{name}: {diff} (see {name}.actual.json)"));
            }
        }
    }
    assert!(failures.is_empty(), "{} golden messages differ:\n{}", failures.len(), failures.join("\n"));
}

/// Behaviour every golden message must show whatever its `.json` says, so blessing a wrong
/// result cannot hide it.
/// Outlook's forward header block in each language Outlook ships labels for
/// (`forward-outlook-lang-CODE.eml`): the parent, both recipients lists, the subject, the date
/// and the parent's words all read right.
#[test]
fn outlook_forwards_read_right_in_every_language() {
    let files: Vec<PathBuf> = golden_files()
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("forward-outlook-lang-")))
        .collect();
    assert!(files.len() >= 15, "at least 15 languages, found {}", files.len());
    let mut failures = Vec::new();
    for eml in &files {
        let name = eml.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        let msg = read_message(&std::fs::read(eml).expect("read")).expect("readable");
        let Some(f) = msg.forwarded.as_ref() else {
            failures.push(format!("{name}: no forward found"));
            continue;
        };
        let addrs = |list: &[haven::message::Address]| list.iter().map(|a| a.address.clone()).collect::<Vec<_>>();
        let got = (
            f.from.as_ref().map(|a| (a.address.as_str(), a.name.as_deref())),
            addrs(&f.to),
            addrs(&f.cc),
            f.subject.as_deref(),
            f.date.map(|d| d.to_rfc3339()),
            f.body.starts_with("Kai said he is scared"),
            msg.note.as_deref(),
        );
        let want = (
            Some(("jo.parent@home.example", Some("Jo Parent"))),
            vec!["s.teacher@school.example".to_string()],
            vec!["alex.carer@home.example".to_string(), "office@school.example".to_string()],
            Some("Worried about Kai"),
            Some("2021-11-02T09:26:00+00:00".to_string()),
            true,
            Some("Passing this on from the parents' inbox."),
        );
        if got != want {
            failures.push(format!("{name}: got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} wrong:\n{}", failures.len(), files.len(), failures.join("\n"));
}

/// Yahoo's Cc lists (one per line, wrapped, glued onto one line, in other languages, names with
/// commas, names only) and forwards whose address fields are empty (`To:`, `To: <>`,
/// `undisclosed-recipients:;`, names without addresses, no date): each recipient once, with
/// its name, and nothing made up.
#[test]
fn yahoo_cc_lists_and_empty_address_fields_read_right() {
    let carer = ("alex.carer@home.example", Some("Alex Carer"));
    let office = ("office@school.example", Some("Office"));
    let sam = ("s.teacher@school.example", Some("Sam Teacher"));
    type Mailboxes = Vec<(&'static str, Option<&'static str>)>;
    let cases: Vec<(&str, Mailboxes, Mailboxes)> = vec![
        (
            "forward-yahoo-cc-four",
            vec![sam],
            vec![carer, ("pat.smith@home.example", Some("Smith, Pat")), office, ("nurse@school.example", Some("Nurse"))],
        ),
        ("forward-yahoo-cc-wrapped", vec![sam], vec![carer, office, ("nurse@school.example", Some("Nurse"))]),
        ("forward-yahoo-glued-cc", vec![sam], vec![carer, ("pat.smith@home.example", Some("Smith, Pat")), ("office@school.example", None)]),
        ("forward-yahoo-glued-empty-cc", vec![sam], vec![]),
        ("forward-yahoo-glued-fr", vec![sam], vec![carer, office]),
        ("forward-yahoo-glued-es", vec![sam], vec![("alex.carer@home.example", Some("Carer, Alex")), office]),
        ("forward-yahoo-cc-names-only", vec![("", Some("Sam Teacher"))], vec![("", Some("Alex Carer")), ("", Some("Office"))]),
        ("forward-gmail-empty-to", vec![], vec![]),
        ("forward-gmail-undisclosed", vec![], vec![]),
        ("forward-apple-empty-to", vec![], vec![]),
        ("forward-outlook-empty-to-cc", vec![], vec![]),
        ("fwd-outlook-names-only", vec![("", Some("Sam Teacher"))], vec![]),
        ("fwd-outlook-empty-sent", vec![sam], vec![]),
    ];
    let mut failures = Vec::new();
    for (name, to, cc) in cases {
        let path = fixtures().join("messages").join(format!("{name}.eml"));
        let msg = read_message(&std::fs::read(&path).expect("fixture")).expect("readable");
        let Some(f) = msg.forwarded.as_ref() else {
            failures.push(format!("{name}: no forward"));
            continue;
        };
        let list = |l: &[haven::message::Address]| l.iter().map(|a| (a.address.clone(), a.name.clone())).collect::<Vec<_>>();
        let want = |l: &Mailboxes| l.iter().map(|(a, n)| (a.to_string(), n.map(str::to_string))).collect::<Vec<_>>();
        if list(&f.to) != want(&to) || list(&f.cc) != want(&cc) {
            failures.push(format!("{name}: to {:?} cc {:?}", list(&f.to), list(&f.cc)));
        }
        if f.subject.as_deref() != Some("Worried about Kai") || !f.body.starts_with("Kai said he is scared") {
            failures.push(format!("{name}: subject {:?} body {:?}", f.subject, f.body));
        }
        let from = f.from.as_ref().map(|a| a.name.as_deref());
        if from != Some(Some("Jo Parent")) {
            failures.push(format!("{name}: from {:?}", f.from));
        }
        let dated = name != "fwd-outlook-empty-sent";
        if f.date.is_some() != dated {
            failures.push(format!("{name}: date {:?}", f.date));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_messages_behave() {
    let mut failures = Vec::new();
    for eml in golden_files() {
        let name = eml.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        let raw = std::fs::read(&eml).expect("read eml");
        let Ok(msg) = read_message(&raw) else {
            failures.push(format!("{name}: not read"));
            continue;
        };
        let mut fail = |why: &str| failures.push(format!("{name}: {why}"));
        if name.starts_with("reply-") {
            if msg.kind != Kind::Reply {
                fail(&format!("kind is {:?}, not Reply", msg.kind));
            }
            let text = msg.reply_text.clone().unwrap_or_default();
            if !text.starts_with("Outcome:") {
                fail(&format!("reply_text does not start with the Outcome line: {text:?}"));
            }
            for bad in ["wrote:", "Sent from", "Get Outlook", "\n> ", "From:", "-- \n", "Haven <"] {
                if text.contains(bad) {
                    fail(&format!("reply_text keeps {bad:?}: {text:?}"));
                }
            }
        }
        let header = |n: &str| msg.headers.iter().find(|h| h.name.eq_ignore_ascii_case(n)).map(|h| h.value.trim().to_string());
        // The expected reply text, with line breaks written `\n`.
        if let Some(want) = header("X-Haven-Test-Expect-Reply").map(|w| w.replace("\\n", "\n"))
            && msg.reply_text.as_deref() != Some(want.as_str())
        {
            fail(&format!("reply_text is {:?}, not {want:?}", msg.reply_text));
        }
        if let Some(kept) = header("X-Haven-Test-Kept")
            && !msg.text.contains(&kept)
        {
            fail(&format!("the full text lost {kept:?}"));
        }
        if name.starts_with("forward-") {
            if msg.kind != Kind::Forward {
                fail(&format!("kind is {:?}, not Forward", msg.kind));
            }
            let from = msg.forwarded.as_ref().and_then(|f| f.from.as_ref()).map(|a| a.address.clone());
            if !from.as_deref().is_some_and(|a| a.ends_with("@home.example")) {
                fail(&format!("forwarded sender is {from:?}, not the parent"));
            }
            if msg.forwarded.as_ref().is_none_or(|f| f.date.is_none()) {
                fail("forwarded date not parsed");
            }
        }
        if let Some(html) = &msg.html {
            for bad in ["<script", "tracker.example", "<form", "onerror", "onload"] {
                if html.to_ascii_lowercase().contains(bad) {
                    fail(&format!("sanitised HTML keeps {bad:?}"));
                }
            }
        }
        for a in &msg.attachments {
            if a.filename.contains(['/', '\\']) || a.filename.starts_with('.') || a.filename.chars().any(char::is_control) {
                fail(&format!("unsafe attachment name {:?}", a.filename));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Replies (the outcome-by-email path), beyond the golden files
// ---------------------------------------------------------------------------------------------

#[test]
fn reply_text_is_only_the_new_text() {
    let cases = [
        (
            "Outcome: spoke to mum\r\n\r\nOn Mon, 1 Nov 2021 at 10:00, Haven <haven@school.example> wrote:\r\n> Please record an outcome.\r\n",
            "Outcome: spoke to mum",
        ),
        (
            "Outcome: no further action\n\nSent from my iPhone\n\nOn 1 Nov 2021, at 10:00, Haven <haven@school.example> wrote:\n\n> Please",
            "Outcome: no further action",
        ),
        (
            "Outcome: referred\n\nGet Outlook for Android\n________________________________\nFrom: Haven <haven@school.example>\nSent: Monday, November 1, 2021 10:00:00 AM\nTo: Sam\nSubject: Incident 7\n",
            "Outcome: referred",
        ),
        ("Outcome: closed\n\n-- \nSam Teacher\nHead of Year 9\n\n> old", "Outcome: closed"),
        ("Outcome: monitoring\n\nAm Mo., 1. Nov. 2021 um 10:00 Uhr schrieb Haven <haven@school.example>:\n> alt", "Outcome: monitoring"),
    ];
    for (text, want) in cases {
        assert_eq!(reply_text(text).as_deref(), Some(want), "for {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness: never a panic, a clean refusal with a reason
// ---------------------------------------------------------------------------------------------

fn simple_message(body: &str) -> Vec<u8> {
    format!(
        "From: Sam <s@school.example>\r\nTo: dsl@school.example\r\nSubject: Test\r\nDate: Mon, 01 Nov 2021 10:00:00 +0000\r\nMessage-ID: <t@school.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn nested_multiparts(depth: usize) -> Vec<u8> {
    let mut s =
        String::from("From: Sam <s@school.example>\r\nSubject: deep\r\nDate: Mon, 01 Nov 2021 10:00:00 +0000\r\nMIME-Version: 1.0\r\n");
    for i in 0..depth {
        s.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
    }
    s.push_str("Content-Type: text/plain\r\n\r\ndeep text\r\n");
    for i in (0..depth).rev() {
        s.push_str(&format!("--b{i}--\r\n"));
    }
    s.into_bytes()
}

fn with_attachments(n: usize) -> Vec<u8> {
    let mut s = String::from(
        "From: Sam <s@school.example>\r\nSubject: files\r\nDate: Mon, 01 Nov 2021 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nsee files\r\n",
    );
    for i in 0..n {
        s.push_str(&format!("--x\r\nContent-Type: application/pdf; name=\"f{i}.pdf\"\r\nContent-Disposition: attachment; filename=\"f{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"));
    }
    s.push_str("--x--\r\n");
    s.into_bytes()
}

/// Reads `raw` and checks the outcome is a message or a one-line reason, never a panic.
fn read_cleanly(name: &str, raw: &[u8]) -> Result<haven::message::Message, String> {
    let result = std::panic::catch_unwind(|| read_message(raw));
    match result {
        Err(_) => panic!("{name}: the reader panicked"),
        Ok(Ok(msg)) => Ok(msg),
        Ok(Err(e)) => {
            let reason = e.to_string();
            assert!(!reason.is_empty() && !reason.contains('\n'), "{name}: reason must be one line: {reason:?}");
            Err(reason)
        }
    }
}

#[test]
fn empty_and_garbage_input_is_refused() {
    assert!(read_cleanly("empty", b"").is_err());
    assert!(read_cleanly("text", b"just some text, no headers at all\n").is_err());
    let garbage: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(read_cleanly("garbage", &garbage).is_err());
    assert!(read_cleanly("nul bytes", &[0u8; 4096]).is_err());
}

#[test]
fn truncated_messages_never_panic() {
    let full = std::fs::read(fixtures().join("messages/forward-outlook-desktop-html.eml")).expect("fixture");
    for cut in (0..full.len()).step_by(37) {
        let _ = read_cleanly(&format!("cut at {cut}"), full.get(..cut).unwrap_or(&[]));
    }
    for eml in golden_files() {
        let raw = std::fs::read(&eml).expect("read");
        for cut in [raw.len() / 3, raw.len() / 2, raw.len() * 9 / 10] {
            let _ = read_cleanly(&format!("{} cut at {cut}", eml.display()), raw.get(..cut).unwrap_or(&[]));
        }
    }
}

#[test]
fn malformed_mime_never_panics() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("missing closing boundary", b"From: a@b.c\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhello\r\n".to_vec()),
        ("no boundary parameter", b"From: a@b.c\r\nSubject: x\r\nContent-Type: multipart/mixed\r\n\r\nhello\r\n".to_vec()),
        ("invalid base64", b"From: a@b.c\r\nSubject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!$$$***\r\n".to_vec()),
        ("bad charset", b"From: a@b.c\r\nSubject: =?x-unknown?B?zzz?=\r\nContent-Type: text/plain; charset=x-nonsense\r\n\r\n\xff\xfe\xfd\r\n".to_vec()),
        ("nul bytes in body", simple_message("a\0b\0c")),
        ("rfc822 with nothing inside", b"From: a@b.c\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: message/rfc822\r\n\r\n--q--\r\n".to_vec()),
        ("html only, deep", {
            let html = "<div>".repeat(20_000);
            format!("From: a@b.c\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n{html}").into_bytes()
        }),
        ("1 MB header line", {
            let long = "a".repeat(1_000_000);
            format!("From: a@b.c\r\nSubject: {long}\r\n\r\nbody").into_bytes()
        }),
    ];
    for (name, raw) in cases {
        let _ = read_cleanly(name, &raw);
    }
}

/// Inputs found by the fuzz target (fuzz/README.md) and other hostile shapes, kept as files in
/// tests/fixtures/malformed: each is read or refused with a one-line reason, never a panic,
/// and `haven inspect` exits 0 or 65 on it.
#[test]
fn malformed_corpus_is_read_or_refused() {
    let dir = fixtures().join("malformed");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    assert!(!files.is_empty(), "tests/fixtures/malformed is empty");
    for path in files {
        let name = path.display().to_string();
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = read_cleanly(&name, &raw);
        let out = haven_inspect(&["--json", &name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {
                let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
                assert!(json.is_object(), "{name}: {json}");
            }
            Some(65) => assert!(
                stderr.trim_end().lines().count() == 1 && stderr.starts_with("haven inspect: "),
                "{name}: exit 65 without a one-line reason: {stderr}"
            ),
            other => panic!("{name}: haven inspect exited {other:?}: {stderr}"),
        }
    }
}

#[test]
fn deep_nesting_is_refused() {
    let err = read_cleanly("nested 10,000", &nested_multiparts(10_000)).expect_err("must be refused");
    assert!(err.contains("nested"), "{err}");
    let err = read_cleanly("nested 21", &nested_multiparts(21)).expect_err("must be refused");
    assert!(err.contains("20"), "{err}");
    let msg = read_cleanly("nested 5", &nested_multiparts(5)).expect("5 levels are fine");
    assert!(msg.text.contains("deep text"));
}

#[test]
fn limits_give_reasons() {
    let limits = Limits { max_attachments: 3, ..Limits::default() };
    let err = read_message_with(&with_attachments(4), &limits).expect_err("over the limit");
    assert_eq!(err.to_string(), "message has 4 attachments, over the limit of 3");
    assert_eq!(read_message_with(&with_attachments(3), &limits).map(|m| m.attachments.len()), Ok(3));

    let limits = Limits { max_message_size: 100, ..Limits::default() };
    let err = read_message_with(&simple_message(&"x".repeat(200)), &limits).expect_err("too big");
    assert!(err.to_string().contains("over the limit of 100"), "{err}");

    let giant = format!("From: a@b.c\r\nX-Big: {}\r\nSubject: x\r\n\r\nbody", "y".repeat(300 * 1024));
    let err = read_cleanly("giant header", giant.as_bytes()).expect_err("giant header refused");
    assert!(err.contains("headers"), "{err}");
}

#[test]
fn default_limits_are_the_documented_ones() {
    let l = Limits::default();
    assert_eq!((l.max_message_size, l.max_attachments, l.max_header_size, l.max_mime_depth), (50 * 1024 * 1024, 100, 256 * 1024, 20));
}

// ---------------------------------------------------------------------------------------------
// `haven inspect` through the binary
// ---------------------------------------------------------------------------------------------

fn haven_inspect(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_haven")).arg("inspect").args(args).output().expect("run haven inspect")
}

#[test]
fn inspect_prints_the_spec_json() {
    let file = fixtures().join("messages/forward-outlook-desktop-html.eml");
    let out = haven_inspect(&[file.to_str().expect("utf-8 path"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    for key in ["message_id", "from", "subject", "date", "kind", "note", "forwarded", "reply_text", "attachments"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["kind"], "forward");
    assert_eq!(v["forwarded"]["from"]["address"], "ann.parent@home.example");
    assert_eq!(v["forwarded"]["date"], "2021-10-29T18:42:00+00:00");
    assert_eq!(v["attachments"][1]["filename"], "Jane lunch rota.pdf");
    assert_eq!(v["attachments"][1]["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn inspect_summary_is_readable() {
    let file = fixtures().join("messages/reply-iphone.eml");
    let out = haven_inspect(&[file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kind:        reply"), "{text}");
    assert!(text.contains("Outcome: no further action"), "{text}");
}

#[test]
fn inspect_refuses_unusable_input_with_65_and_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.eml");
    std::fs::write(&empty, b"").expect("write");
    let garbage = dir.path().join("garbage.eml");
    std::fs::write(&garbage, [0xffu8, 0x00, 0x13, 0x37].repeat(2000)).expect("write");
    let deep = dir.path().join("deep.eml");
    std::fs::write(&deep, nested_multiparts(10_000)).expect("write");
    let missing = dir.path().join("missing.eml");
    for path in [&empty, &garbage, &deep, &missing] {
        let out = haven_inspect(&[path.to_str().expect("utf-8 path"), "--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{}: {stderr}", path.display());
        assert_eq!(stderr.trim_end().lines().count(), 1, "{}: {stderr}", path.display());
        assert!(out.stdout.is_empty(), "{}: printed something on stdout", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Speed: a guard against accidental quadratic work, not a benchmark
// ---------------------------------------------------------------------------------------------

#[test]
fn reading_stays_linear_on_big_bodies() {
    // 2 MB of lines that each look like the start of a header block or a quote.
    let body = "From: someone@home.example\r\n> quoted\r\n".repeat(50_000);
    let mut raw = simple_message(&body);
    raw.splice(0..0, b"In-Reply-To: <x@y>\r\n".iter().copied());
    let start = std::time::Instant::now();
    let msg = read_message(&raw).expect("read");
    let elapsed = start.elapsed();
    eprintln!("2 MB adversarial body read in {elapsed:?}");
    assert!(elapsed.as_secs() < 20, "took {elapsed:?}: some scan is no longer linear");
    assert!(!msg.text.is_empty());

    let corpus = golden_files().iter().map(|p| std::fs::read(p).expect("read")).collect::<Vec<_>>();
    let start = std::time::Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        for raw in &corpus {
            let _ = read_message(raw);
        }
    }
    let per_second = (rounds * corpus.len()) as f64 / start.elapsed().as_secs_f64();
    eprintln!("golden messages: {per_second:.0} messages/s (this build profile)");

    let dir = fixtures().join("forwards");
    let cases: Value = serde_json::from_str(&read_text(&dir.join("cases.json"))).expect("cases.json");
    let wrapped: Vec<Vec<u8>> = cases
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            let body = read_text(&dir.join(c["body_file"].as_str().unwrap_or("")));
            wrap(&body, "Note for the safeguarding team", "bench")
        })
        .collect();
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        for raw in &wrapped {
            let _ = read_message(raw);
        }
    }
    let per_second = (rounds * wrapped.len()) as f64 / start.elapsed().as_secs_f64();
    eprintln!("forward corpus: {per_second:.0} messages/s (this build profile)");
}

// ---------------------------------------------------------------------------------------------
// End to end: a zone-less forwarded date filed through the real binary
// ---------------------------------------------------------------------------------------------

/// A teacher forwards a parent's Gmail written at 21:14 on a June evening (BST, the header says
/// no zone) and one written at 21:14 in December (GMT): the chronology says 21:14 for both,
/// and the instants stored are 20:14 and 21:14 UTC.
async fn zone_less_forwarded_dates_are_filed_in_school_time(backend: support::db::Backend) {
    let db = support::db::TestDb::new(backend).await;
    let env = support::haven::HavenEnv::new(&db.url, "");
    env.import_school();
    let contact = support::haven::school_fixtures().join("mail").join("forward-contact.eml");
    let original = std::fs::read_to_string(&contact).expect("fixture");
    for (n, outer, inner) in [
        (1, "Tue, 9 Jun 2026 08:05:00 +0100", "Mon, 8 Jun 2026 at 21:14"),
        (2, "Tue, 8 Dec 2026 08:05:00 +0000", "Mon, 7 Dec 2026 at 21:14"),
    ] {
        let raw = original
            .replace("Tue, 10 Nov 2026 16:05:00 +0000", outer)
            .replace("Mon, 9 Nov 2026 at 21:14", inner)
            .replace("<fwd-contact-1@", &format!("<fwd-times-{n}@"))
            .replace("lunch money", &format!("lunch money ({n})"));
        let path = env.path(&format!("times-{n}.eml"));
        std::fs::write(&path, raw).expect("write");
        let r = env.haven(&["ingest", path.to_str().expect("utf-8 path")]);
        assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    }
    let r = env.haven(&["chronology", "A100000000001", "--as", "dsl@school.example", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let chron: Value = serde_json::from_str(&r.stdout).expect("json");
    let mut occurred: Vec<String> =
        chron["incidents"].as_array().expect("incidents").iter().filter_map(|e| e["occurred_at"].as_str().map(str::to_string)).collect();
    occurred.sort();
    assert_eq!(occurred, ["2026-06-08T20:14:00Z", "2026-12-07T21:14:00Z"]);
    let r = env.haven(&["chronology", "A100000000001", "--as", "dsl@school.example"]);
    assert!(r.stdout.contains("2026-06-08 21:14") && r.stdout.contains("2026-12-07 21:14"), "{}", r.stdout);
    db.cleanup().await;
}

backend_tests!(zone_less_forwarded_dates_are_filed_in_school_time);

/// `haven inspect --timezone` reads a zone-less forwarded date as the daemon would; a zone that
/// is not one is refused with a message, exit 2 (usage).
#[test]
fn inspect_reads_zone_less_dates_in_the_zone_given() {
    let file = fixtures().join("times").join("forward-gmail-summer.eml");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_haven")).arg("inspect").args(args).arg(&file).output().expect("run haven inspect")
    };
    let out = run(&["--json", "--timezone", "Europe/London"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["forwarded"]["date"], "2026-06-08T21:14:00+01:00");
    let out = run(&["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["forwarded"]["date"], "2026-06-08T21:14:00+00:00", "UTC without --timezone");
    let out = run(&["--timezone", "Europe/Londn"]);
    assert_eq!(out.status.code(), Some(2), "a usage error, as the SPEC's exit codes say");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "haven inspect: --timezone: unknown time zone \"Europe/Londn\" (use a name such as Europe/London)"
    );
}
