//! Reading benchmark: messages/second for the reader on one core, over the golden messages
//! (tests/fixtures/messages: Outlook, Gmail, Apple Mail, forwards, replies, charsets, TNEF) and
//! over every body of the forwarded-message corpus; and the peak RSS of reading one message
//! with a 25 MB attachment.
//!
//!     cargo bench --bench read

mod support;

use std::time::Instant;
use support::rss_mib;

/// A forward with a 25 MB attachment (base64 in the raw message).
fn big_message() -> Vec<u8> {
    use base64::Engine;
    let data: Vec<u8> = (0..25 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let mut raw = String::from(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Fwd: video\r\n\
         Date: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <big@school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe video mum sent.\r\n\
         --b\r\nContent-Type: video/mp4; name=\"clip.mp4\"\r\nContent-Disposition: attachment; filename=\"clip.mp4\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for chunk in b64.as_bytes().chunks(76) {
        raw.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        raw.push_str("\r\n");
    }
    raw.push_str("--b--\r\n");
    raw.into_bytes()
}

/// Child mode: read the message in `path` and print this process's peak RSS. Run in its own
/// process so the peak is the reader's, not the generator's.
fn read_big_in_this_process(path: &str) {
    let big = std::fs::read(path).expect("the generated message");
    let before = rss_mib("VmRSS:");
    let started = Instant::now();
    let msg = haven::read::read_message(&big).expect("the 25 MB message reads");
    let secs = started.elapsed().as_secs_f64();
    let peak = rss_mib("VmHWM:");
    let raw_mib = big.len() as f64 / 1048576.0;
    println!(
        "25 MB attachment: raw message {raw_mib:.1} MiB, read in {secs:.2} s, {} attachment(s); peak RSS {peak:.0} MiB \
         ({before:.0} MiB with the raw bytes loaded; peak = {:.2}x the raw message)",
        msg.attachments.len(),
        peak / raw_mib
    );
}

fn main() {
    if let Ok(path) = std::env::var("HAVEN_BENCH_READ_BIG") {
        read_big_in_this_process(&path);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.eml");
    std::fs::write(&path, big_message()).expect("write the 25 MB message");
    let status = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .env("HAVEN_BENCH_READ_BIG", &path)
        .status()
        .expect("run the 25 MB reading in a child process");
    assert!(status.success(), "reading the 25 MB message failed");

    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let golden = files(&fixtures.join("messages"), ".eml").into_iter().map(|(_, raw)| raw).collect();
    let forwards = forward_bodies(&fixtures.join("forwards")).iter().map(|body| wrap(body)).collect();
    measure("golden messages (tests/fixtures/messages)", golden, 1000);
    measure("forwarded-message corpus (tests/fixtures/forwards)", forwards, 200);
}

/// The files in `dir` whose names end with `suffix`, sorted by name.
fn files(dir: &std::path::Path, suffix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(suffix) {
                return None;
            }
            Some((name, std::fs::read(e.path()).ok()?))
        })
        .collect();
    out.sort();
    out
}

/// Every distinct body file named in the forwarded-message corpus's cases.json.
fn forward_bodies(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).expect("cases.json")).expect("cases.json is JSON");
    let mut names: Vec<&str> = cases.as_array().expect("a list of cases").iter().filter_map(|c| c["body_file"].as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.iter().map(|n| std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"))).collect()
}

/// A corpus body as a member of staff's client sends it (as tests/reader.rs does).
fn wrap(body: &[u8]) -> Vec<u8> {
    let body = String::from_utf8_lossy(body).replace("\r\n", "\n").replace('\n', "\r\n");
    format!(
        "From: Sam Teacher <s.teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Note\r\n\
         Date: Mon, 01 Nov 2021 10:00:00 +0000\r\nMessage-ID: <bench@school.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
    )
    .into_bytes()
}

/// Reads the corpus `rounds` times, 5 runs on one core, and prints the median rate.
fn measure(what: &str, corpus: Vec<Vec<u8>>, rounds: usize) {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..rounds {
            for raw in &corpus {
                let _ = std::hint::black_box(haven::read::read_message(raw));
            }
        }
        runs.push((rounds * corpus.len()) as f64 / started.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "{what}: {} messages x {rounds}, 5 runs on one core: median {:.0} messages/s (min {:.0}, max {:.0})",
        corpus.len(),
        runs[2],
        runs[0],
        runs[4]
    );
}
