//! Rules benchmark: 200 rules, each with a regex, evaluated against 10,000 messages; prints
//! the median and p99 evaluation time per message (target: median < 50 µs).
//!
//!     cargo bench --bench rules

use haven::directory::{Directory, Pupil, Role, Staff};
use haven::identify::{Identification, PupilMatch, PupilRole};
use haven::rules::{Facts, History, RuleSet};
use std::time::{Duration, Instant};

fn directory() -> Directory {
    let pupil = |id: i64, house: Option<&str>| Pupil {
        id,
        upn: format!("A{id:012}"),
        first_name: format!("P{id}"),
        last_name: "Bench".into(),
        preferred_name: None,
        date_of_birth: None,
        year_group: Some(7 + id as i32 % 3),
        tutor_group: Some("7K".into()),
        house: house.map(str::to_string),
        sen: false,
        left_on: None,
    };
    let staff = |id: i64, roles: Vec<Role>, house: Option<&str>| Staff {
        id,
        emails: vec![format!("s{id}@school.example")],
        first_name: "S".into(),
        last_name: format!("{id}"),
        roles,
        house: house.map(str::to_string),
        tutor_group: Some("7K".into()),
        active: true,
    };
    let pupils = vec![pupil(1, Some("Kestrel")), pupil(2, Some("Heron")), pupil(3, None)];
    let staff = vec![
        staff(1, vec![Role::Dsl], None),
        staff(2, vec![Role::Slt, Role::Head], None),
        staff(3, vec![Role::Housem], Some("Kestrel")),
        staff(4, vec![Role::Tutor], None),
        staff(5, vec![Role::Esafety], None),
    ];
    Directory::new(pupils, staff, Vec::new())
}

fn rules_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("00-categories.toml"),
        "default = \"Pastoral issue\"\n[[category]]\nname = \"Pastoral issue\"\nvisibility = \"slt, housem-of-pupil, tutor-of-pupil, esafety\"\n\
         [[category]]\nname = \"Safeguarding\"\nvisibility = \"dsl-team\"\nsafeguarding = true\n",
    )
    .expect("write");
    let roles = ["dsl", "slt", "head", "housem-of-pupil", "tutor-of-pupil", "esafety"];
    let mut rules = String::new();
    for i in 0..200 {
        rules.push_str(&format!(
            "[[rule]]\nname = \"rule {i}\"\nwhen.text = '''\\bword{i}\\b|phrase number {i}|(?:alpha|beta){i}x'''\nalert = [\"{}\"]\n",
            roles[i % roles.len()]
        ));
        if i % 10 == 0 {
            rules.push_str("when.year_group = [7, 8]\n");
        }
        if i % 25 == 0 {
            rules.push_str("set_category = \"Safeguarding\"\npriority = \"urgent\"\noutcome_within = \"2d\"\n");
        }
    }
    std::fs::write(dir.path().join("10-rules.toml"), rules).expect("write");
    dir
}

fn main() {
    let dir = rules_dir();
    let set = RuleSet::load(dir.path()).expect("benchmark rules load");
    let directory = directory();
    let history = History::default();
    let filler = "The pupil was upset during break and spoke to a member of staff about friends. ".repeat(12);
    let messages: Vec<_> = (0..10_000usize)
        .map(|i| {
            let raw = format!(
                "From: s4@school.example\r\nTo: safeguarding@school.example\r\nSubject: Concern {i}\r\n\
                 Date: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <b{i}@s>\r\n\r\n{filler} Mentioned word{} and phrase number {} today.\r\n",
                i % 400,
                (i * 7) % 500
            );
            let msg = haven::read::read_message(raw.as_bytes()).expect("readable");
            let ident = Identification {
                pupils: vec![PupilMatch { pupil_id: 1 + (i % 3) as i64, role: PupilRole::Subject, how: "bench".into() }],
                ..Identification::default()
            };
            (msg, ident)
        })
        .collect();
    let mut times: Vec<Duration> = Vec::with_capacity(messages.len());
    let mut alerts = 0usize;
    for (msg, ident) in &messages {
        let start = Instant::now();
        let d = set.evaluate(&Facts { message: msg, identification: ident, directory: &directory, history: &history, ai_risk: None });
        times.push(start.elapsed());
        alerts += d.recipients.len();
    }
    times.sort();
    println!(
        "rules: 200 rules, {} messages: median {:?}, p99 {:?} per message ({alerts} alerts resolved)",
        times.len(),
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
}
