//! Rendering a chronology PDF: an export model of 500 entries (a note, an original message of
//! a dozen lines, who was alerted and an outcome on each) laid out and written as PDF/A-2b by
//! typst in memory. Prints the page count, the size and the median of 5 renders, and of the
//! first render in the process (which also parses the embedded fonts). The store is not
//! involved: `haven export` loads the same entries before it renders them.
//!
//! Run: `cargo bench --bench pdf` (`HAVEN_PDF_ENTRIES`, default 500).

use chrono::{TimeZone, Utc};
use haven::cli::export_doc::{AlertedDoc, AttachmentDoc, CoverPupil, EntryDoc, ExportDoc, OriginalDoc, OutcomeDoc};
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn doc(entries: usize) -> ExportDoc {
    let text = "Mum rang after school to say Amira has been upset about the bus home. She says two older \
                pupils have been taking her snack and calling her names.\n"
        .repeat(6);
    ExportDoc {
        school: "Eaton Primary".into(),
        export_id: "20261207-043512-3fa9c1d2".into(),
        exported_at: "2026-12-07 04:35 (Europe/London)".into(),
        exported_by: "Dana Lead <dsl@eaton.sch.example>".into(),
        manifest_sha256: Some("9f2c".repeat(16)),
        counts: format!("{entries} incidents, 0 follow-ups"),
        holds: Vec::new(),
        pupil: CoverPupil {
            upn: "E100000000003".into(),
            name: "Amira Khan".into(),
            preferred_name: None,
            date_of_birth: "2017-06-14".into(),
            year_group: "4".into(),
            form: "4K".into(),
            house: "Kestrel".into(),
            roll: "On roll".into(),
        },
        entries: (0..entries as i64)
            .map(|i| EntryDoc {
                incident: i + 1,
                title: format!("#{} · 2026-11-16 14:05 · bullying", i + 1),
                kind: "phone call".into(),
                category: "bullying".into(),
                priority: "normal".into(),
                role: "subject".into(),
                occurred_at: "2026-11-16 14:05".into(),
                recorded: "2026-11-16 14:07 by Kit Kestrel".into(),
                follows: None,
                pupils: "Amira Khan (subject), Grace Okafor (witness)".into(),
                date_note: None,
                category_note: None,
                note: Some("Passing this on straight away; I have spoken to the class teacher.".into()),
                original: Some(OriginalDoc {
                    from: Some("Rukhsana Khan <r.khan@example.net>".into()),
                    sent: "2026-11-16 14:05".into(),
                    subject: Some("Amira and the bus".into()),
                    text: Some(text.clone()),
                }),
                attachments: vec![AttachmentDoc {
                    name: "drawing.png".into(),
                    sha256: "ab12".repeat(16),
                    path: format!("attachments/{}-ab12ab12ab12-drawing.png", i + 1),
                }],
                alerted: vec![AlertedDoc {
                    who: "Dana Lead".into(),
                    purpose: "alert".into(),
                    state: "sent".into(),
                    when: "2026-11-16 14:08".into(),
                }],
                follow_ups: Vec::new(),
                outcome: Some(OutcomeDoc {
                    code: Some("EARLY-HELP".into()),
                    text: "Early help assessment opened with mum; bus seating changed.".into(),
                    by: "Dana Lead".into(),
                    at: "2026-11-19 15:30".into(),
                }),
                ai: None,
            })
            .collect(),
    }
}

fn main() {
    let entries: usize = std::env::var("HAVEN_PDF_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let doc = doc(entries);
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 4, 35, 12).single().unwrap_or_default();
    let render = || {
        let t = Instant::now();
        let r = haven::pdf::render(haven::pdf::Template::Chronology, &doc, now).unwrap_or_else(|e| panic!("render: {e}"));
        (t.elapsed(), r)
    };
    let (first, r) = render();
    let mut times: Vec<Duration> = (0..RUNS).map(|_| render().0).collect();
    times.sort();
    println!(
        "pdf: {entries} entries -> {} pages, {:.1} MiB; first render {:.2} s (parses the fonts); median of {RUNS} {:.2} s (min {:.2}, max {:.2})",
        r.pages,
        r.bytes.len() as f64 / 1_048_576.0,
        first.as_secs_f64(),
        times[RUNS / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[RUNS - 1].as_secs_f64(),
    );
}
