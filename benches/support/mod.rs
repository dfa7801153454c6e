//! What the benchmarks share: a generated school (600 pupils, or HAVEN_BENCH_PUPILS, in two houses, staff with every
//! role the shipped rules alert, a parent contact per pupil), realistic forwards to file, and a
//! filing pipeline on a store with that school in it.
#![allow(dead_code)]

use chrono::{NaiveDate, Utc};
use haven::blind::BlindIndex;
use haven::clock::SystemClock;
use haven::directory::{Pupil, Role, Staff};
use haven::pipeline::{Filer, FilingSettings};
use haven::read::Limits;
use haven::rules::{LiveRules, RuleSet};
use haven::seal::Sealer;

/// The benches' storage key.
const KEY: [u8; 32] = [7; 32];

fn sealer() -> Sealer {
    Sealer::from_key(&KEY)
}
use haven::store::{ContactImport, Store};
use std::path::Path;
use std::sync::Arc;

/// Pupils on the generated roll (one contact each): `HAVEN_BENCH_PUPILS`, default 600.
pub fn roll_size() -> i32 {
    std::env::var("HAVEN_BENCH_PUPILS").ok().and_then(|v| v.parse().ok()).unwrap_or(600)
}

pub fn pupils() -> Vec<Pupil> {
    (0..roll_size())
        .map(|i| Pupil {
            id: 0,
            upn: format!("B{:012}", i),
            first_name: format!("Pupil{i}"),
            last_name: format!("Surname{}", i % 97),
            preferred_name: None,
            date_of_birth: NaiveDate::from_ymd_opt(2014, 1, 1),
            year_group: Some(7 + (i % 5)),
            tutor_group: Some(format!("{}K", 7 + i % 5)),
            house: Some(["Kestrel", "Heron"][i as usize % 2].into()),
            sen: i % 7 == 0,
            left_on: None,
        })
        .collect()
}

pub fn staff() -> Vec<Staff> {
    let mk = |email: &str, roles: Vec<Role>, house: Option<&str>| Staff {
        id: 0,
        emails: vec![email.into()],
        first_name: "Staff".into(),
        last_name: email.split('@').next().unwrap_or("x").into(),
        roles,
        house: house.map(str::to_string),
        tutor_group: None,
        active: true,
    };
    vec![
        mk("dsl@school.example", vec![Role::Dsl], None),
        mk("ddsl@school.example", vec![Role::Ddsl], None),
        mk("head@school.example", vec![Role::Head, Role::Slt], None),
        mk("kestrel@school.example", vec![Role::Housem], Some("Kestrel")),
        mk("heron@school.example", vec![Role::Housem], Some("Heron")),
        mk("esafety@school.example", vec![Role::Esafety], None),
        mk("teacher@school.example", vec![Role::Teacher], None),
    ]
}

pub fn contacts() -> Vec<ContactImport> {
    (0..roll_size())
        .map(|i| ContactImport {
            email: format!("parent{i}@home.example"),
            name: Some(format!("Parent {i}")),
            relationship: Some("mother".into()),
            pupil_upns: vec![format!("B{:012}", i)],
        })
        .collect()
}

/// One realistic forward; every third carries a 100 KB attachment.
pub fn message(i: usize, attachment: &str) -> Vec<u8> {
    let p = i % 600;
    let body = format!(
        "Passing this on.\r\n\r\n---------- Forwarded message ---------\r\nFrom: Parent {p} <parent{p}@home.example>\r\n\
         Date: Mon, 9 Nov 2026 at 21:14\r\nSubject: This week\r\nTo: Terry Teach <teacher@school.example>\r\n\r\n\
         Hello, message number {i}. My child has been upset after school this week and says some older\r\n\
         pupils have been unkind on the bus. Could someone keep an eye out please?\r\n\r\nThanks\r\n"
    );
    let head = format!(
        "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Fwd: This week\r\n\
         Date: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <bench-{i}@mail.school.example>\r\nMIME-Version: 1.0\r\n"
    );
    if i.is_multiple_of(3) {
        format!(
            "{head}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
             --b\r\nContent-Type: application/pdf; name=\"letter-{i}.pdf\"\r\nContent-Disposition: attachment; filename=\"letter-{i}.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--b--\r\n"
        )
        .into_bytes()
    } else {
        format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").into_bytes()
    }
}

pub fn attachment() -> String {
    use base64::Engine;
    let data: Vec<u8> = (0..100 * 1024).map(|i| (i * 7919 % 251) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    b64.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n")
}

/// A memory figure of this process in MiB, from /proc/self/status (`VmRSS:` now, `VmHWM:` peak).
pub fn rss_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A filing pipeline on `store`, with the generated school imported and the shipped rules.
pub async fn filer(store: &Store) -> Filer {
    let now = Utc::now();
    let (pupils, staff, contacts) = (pupils(), staff(), contacts());
    let started = std::time::Instant::now();
    store
        .sync_directory(&sealer(), &BlindIndex::from_storage_key(&KEY), &pupils, &staff, &contacts, now.date_naive(), now)
        .await
        .expect("directory");
    let imported = started.elapsed();
    let started = std::time::Instant::now();
    store.load_directory(&sealer()).await.expect("load the directory");
    println!(
        "directory  {} pupils and contacts: imported in {:.2} s, loaded in {:.0} ms",
        pupils.len(),
        imported.as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let rules_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let rules = RuleSet::load(&rules_dir).expect("shipped rules");
    let settings = FilingSettings {
        intake_address: "safeguarding@school.example".into(),
        mail_domain: "school.example".into(),
        limits: Limits::default(),
        trusted_authserv_id: None,
        alerts: haven::alert::AlertSettings {
            detail: haven::config::Detail::Minimal,
            mail_domain: "school.example".into(),
            school_name: "Bench School".into(),
        },
        reply_key: None,
        // The generated forwards are dated November 2026: filed as new, with their alerts.
        backfill_age: chrono::Duration::days(3650),
        ai_read: false,
    };
    Filer::new(store.clone(), Arc::new(LiveRules::new(rules)), Arc::new(SystemClock), sealer(), settings)
}
