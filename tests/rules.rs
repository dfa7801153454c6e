//! The rules engine as a safeguarding lead relies on it: the shipped policies send each kind
//! of incident to exactly the right people, rules apply in file-then-rule order, every mistake
//! in a rules file is reported at once with its position, and a bad reload keeps the last
//! good set.

use chrono::{Duration, NaiveDate};
use haven::directory::{Directory, Pupil, Role, Staff};
use haven::identify::{Identification, PupilMatch, PupilRole};
use haven::message::{Address, Attachment, Forwarded, FromShape, Kind, Message};
use haven::rules::{Decision, Facts, History, LiveRules, Priority, RiskLevel, RuleSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- the school

const DSL: i64 = 1;
const DDSL: i64 = 2;
const SLT: i64 = 3;
const HEAD: i64 = 4;
const HOUSEM_KELLER: i64 = 5;
const HOUSEM_NIGHTINGALE: i64 = 6;
const ESAFETY: i64 = 7;
const TUTOR_7K: i64 = 8;
const SLT_LEFT: i64 = 9;
const TEACHER: i64 = 10;

const JANE: i64 = 100; // Year 7, Keller, 7K
const AHMED: i64 = 101; // Year 9, Nightingale, SEN
const LEFT: i64 = 102; // has left
const NO_HOUSE: i64 = 103;

fn staff(id: i64, email: &str, roles: &[Role], house: Option<&str>, tutor_group: Option<&str>, active: bool) -> Staff {
    Staff {
        id,
        emails: vec![email.to_string()],
        first_name: "F".into(),
        last_name: format!("S{id}"),
        roles: roles.to_vec(),
        house: house.map(str::to_string),
        tutor_group: tutor_group.map(str::to_string),
        active,
    }
}

fn pupil(id: i64, year: i32, house: Option<&str>, tutor_group: Option<&str>, sen: bool, left: bool) -> Pupil {
    Pupil {
        id,
        upn: format!("UPN{id}"),
        first_name: "P".into(),
        last_name: format!("L{id}"),
        preferred_name: None,
        date_of_birth: None,
        year_group: Some(year),
        tutor_group: tutor_group.map(str::to_string),
        house: house.map(str::to_string),
        sen,
        left_on: left.then(|| NaiveDate::from_ymd_opt(2024, 7, 20)).flatten(),
    }
}

fn school() -> Directory {
    let pupils = vec![
        pupil(JANE, 7, Some("Keller"), Some("7K"), false, false),
        pupil(AHMED, 9, Some("Nightingale"), None, true, false),
        pupil(LEFT, 11, Some("Keller"), None, false, true),
        pupil(NO_HOUSE, 8, None, None, false, false),
    ];
    let staff = vec![
        staff(DSL, "dsl@school.example", &[Role::Dsl], None, None, true),
        staff(DDSL, "ddsl@school.example", &[Role::Ddsl, Role::Teacher], None, None, true),
        staff(SLT, "slt@school.example", &[Role::Slt], None, None, true),
        staff(HEAD, "head@school.example", &[Role::Head], None, None, true),
        staff(HOUSEM_KELLER, "keller@school.example", &[Role::Housem], Some("Keller"), None, true),
        staff(HOUSEM_NIGHTINGALE, "nightingale@school.example", &[Role::Housem], Some("Nightingale"), None, true),
        staff(ESAFETY, "esafety@school.example", &[Role::Esafety, Role::Teacher], None, None, true),
        staff(TUTOR_7K, "tutor7k@school.example", &[Role::Tutor], None, Some("7K"), true),
        staff(SLT_LEFT, "gone@school.example", &[Role::Slt], None, None, false),
        staff(TEACHER, "teacher@school.example", &[Role::Teacher], None, None, true),
    ];
    Directory::new(pupils, staff, Vec::new())
}

fn message(subject: &str, note: &str, text: &str) -> Message {
    Message {
        message_id: Some("m1@school.example".into()),
        from: Some(Address { address: "teacher@school.example".into(), name: None }),
        from_shape: FromShape { headers: 1, addresses: 1, group: false },
        to: vec![Address { address: "safeguarding@school.example".into(), name: None }],
        cc: Vec::new(),
        reply_to: Vec::new(),
        subject: Some(subject.into()),
        date: None,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        headers: Vec::new(),
        kind: Kind::New,
        note: (!note.is_empty()).then(|| note.to_string()),
        text: text.into(),
        html: None,
        forwarded: None,
        forward_chain: Vec::new(),
        reply_text: None,
        attachments: Vec::new(),
        size: 100,
    }
}

fn about(pupils: &[i64], category: Option<&str>) -> Identification {
    Identification {
        pupils: pupils.iter().map(|&id| PupilMatch { pupil_id: id, role: PupilRole::Subject, how: "Pupil: line".into() }).collect(),
        category: category.map(str::to_string),
        category_how: category.map(|_| "Category: line".to_string()),
        triage: None,
    }
}

fn shipped() -> RuleSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    match RuleSet::load(&dir) {
        Ok(set) => set,
        Err(e) => panic!("the shipped rules must load:\n{e}"),
    }
}

fn decide(set: &RuleSet, msg: &Message, ident: &Identification, history: &History) -> Decision {
    let dir = school();
    set.evaluate(&Facts { message: msg, identification: ident, directory: &dir, history, ai_risk: None })
}

fn ids(d: &Decision) -> Vec<i64> {
    let mut v: Vec<i64> = d.recipients.iter().map(|r| r.staff_id).collect();
    v.sort();
    v
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rules").join(name)
}

/// Loads a fixture that must fail; its errors with the directory prefix removed.
fn errors_of(name: &str) -> String {
    let dir = fixture(name);
    match RuleSet::load(&dir) {
        Ok(set) => panic!("{name} should not load, but gave {}", set.summary()),
        Err(e) => e.to_string().replace(&format!("{}/", dir.display()), ""),
    }
}

// ---------------------------------------------------------------- shipped policies

#[test]
fn shipped_rules_load_and_say_what_they_hold() {
    let set = shipped();
    assert_eq!(set.summary(), "13 categories, 9 rules from 4 files");
    let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
    assert!(warnings.is_empty(), "every shipped rule alerts only people who may see its category: {warnings:?}");
    assert_eq!(set.categories().default_category().name, "Pastoral issue");
    assert_eq!(set.categories().find("#ESAFETY").map(|c| c.name.as_str()), Some("E-safety"));
    assert_eq!(set.categories().find("Behaviour > Room Search").map(|c| c.name.as_str()), Some("Room search"));
    let q = set.history_queries();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].categories, vec!["Pastoral issue".to_string()]);
    assert_eq!(q[0].within, Duration::days(30));
}

#[test]
fn e_safety_reaches_the_e_safety_officer() {
    let set = shipped();
    let d = decide(&set, &message("Screenshots", "", "see attached"), &about(&[JANE], Some("E-safety")), &History::default());
    assert_eq!(d.category, "E-safety");
    assert_eq!(ids(&d), vec![DSL, ESAFETY]);
    assert!(d.matched.contains(&"20-routing.toml: E-safety always reaches the E-Safety Officer".to_string()));
}

#[test]
fn dsl_only_reaches_the_dsl_team_and_nobody_else() {
    let set = shipped();
    let d = decide(&set, &message("Concern", "", "a worry"), &about(&[JANE], Some("dslonly")), &History::default());
    assert_eq!(d.category, "DSL Team Access Only");
    assert_eq!(d.visibility.as_str(), "dsl-team");
    assert_eq!(ids(&d), vec![DSL, DDSL]);
    assert_eq!(d.outcome_within, Some(Duration::days(2)));
    assert_eq!(d.escalation.len(), 1);
    let rung: Vec<i64> = d.escalation[0].recipients.iter().map(|r| r.staff_id).collect();
    assert_eq!(rung, vec![DSL, DDSL]);
}

#[test]
fn dsl_and_housem_reaches_only_the_pupils_own_housem() {
    let set = shipped();
    let d = decide(&set, &message("Concern", "", "a worry"), &about(&[JANE], Some("DSL Team + HouseM")), &History::default());
    assert_eq!(ids(&d), vec![DSL, DDSL, HOUSEM_KELLER]);
    let d = decide(&set, &message("Concern", "", "a worry"), &about(&[AHMED], Some("dslhousem")), &History::default());
    assert_eq!(ids(&d), vec![DSL, DDSL, HOUSEM_NIGHTINGALE]);
}

#[test]
fn disclosure_words_make_it_safeguarding_and_urgent() {
    let set = shipped();
    let msg = message("Chat after class", "", "She told me her stepdad HIT ME last night, she said, and she is scared to go home.");
    let d = decide(&set, &msg, &about(&[JANE], None), &History::default());
    assert_eq!(d.category, "Safeguarding / child protection");
    assert_eq!(d.priority, Priority::Urgent);
    assert_eq!(ids(&d), vec![DSL, DDSL]);
    assert_eq!(d.visibility.as_str(), "dsl-team,head");
    assert_eq!(d.outcome_within, Some(Duration::days(2)));
    let ladder: Vec<(Duration, Vec<i64>)> =
        d.escalation.iter().map(|r| (r.after, r.recipients.iter().map(|x| x.staff_id).collect())).collect();
    assert_eq!(ladder, vec![(Duration::days(1), vec![DDSL]), (Duration::days(2), vec![HEAD])]);
    assert!(d.category_reason.contains("10-disclosures.toml"), "{}", d.category_reason);
}

#[test]
fn disclosure_raises_a_category_staff_named_but_keeps_a_safeguarding_one() {
    let set = shipped();
    let msg = message("Fight", "", "he had a knife in his bag");
    let d = decide(&set, &msg, &about(&[AHMED], Some("Behaviour")), &History::default());
    assert_eq!(d.category, "Safeguarding / child protection");
    // The SLT are not told about a safeguarding incident, even though it started as behaviour.
    assert_eq!(ids(&d), vec![DSL, DDSL]);

    let d = decide(&set, &msg, &about(&[AHMED], Some("DSL Team Access Only")), &History::default());
    assert_eq!(d.category, "DSL Team Access Only");
    assert_eq!(d.priority, Priority::Urgent);
    assert_eq!(ids(&d), vec![DSL, DDSL]);
    assert!(d.notes.iter().any(|n| n.contains("kept \"DSL Team Access Only\" named by staff")), "{:?}", d.notes);
}

#[test]
fn issues_that_are_not_safeguarding_go_to_active_slt_only() {
    let set = shipped();
    let d = decide(&set, &message("Homework", "", "no homework again"), &about(&[JANE], Some("Behaviour")), &History::default());
    assert_eq!(d.category, "Behaviour");
    assert_eq!(d.priority, Priority::Normal);
    assert_eq!(ids(&d), vec![SLT]);
    assert_eq!(d.outcome_within, None);
}

#[test]
fn no_category_means_the_pastoral_default() {
    let set = shipped();
    let d = decide(&set, &message("Lost coat", "", "upset about a lost coat"), &about(&[JANE], None), &History::default());
    assert_eq!(d.category, "Pastoral issue");
    assert_eq!(d.category_reason, "no category named: the default");
    assert_eq!(ids(&d), vec![SLT]);
}

#[test]
fn third_pastoral_issue_in_30_days_reaches_the_dsl_but_the_second_does_not() {
    let set = shipped();
    let msg = message("Upset", "", "upset at lunch");
    let ident = about(&[JANE], None);
    let mut history = History::default();
    history.set(JANE, 0, 1i64); // one earlier: this is the 2nd
    let d = decide(&set, &msg, &ident, &history);
    assert_eq!(ids(&d), vec![SLT]);
    assert_eq!(d.outcome_within, None);

    history.set(JANE, 0, 2u32); // two earlier: this is the 3rd
    let d = decide(&set, &msg, &ident, &history);
    assert_eq!(ids(&d), vec![DSL, SLT]);
    assert_eq!(d.outcome_within, Some(Duration::days(2)));
    assert!(d.matched.iter().any(|m| m == "30-patterns.toml: Three pastoral issues in 30 days reach the DSL"));

    // Another pupil's history does not count.
    let d = decide(&set, &msg, &about(&[AHMED], None), &history);
    assert_eq!(ids(&d), vec![SLT]);
}

#[test]
fn room_searches_must_be_recorded() {
    let set = shipped();
    let d = decide(&set, &message("Search", "", "searched room 4"), &about(&[JANE], Some("roomsearch")), &History::default());
    assert_eq!(d.category, "Room search");
    assert_eq!(d.outcome_within, Some(Duration::days(1)));
    assert_eq!(ids(&d), vec![SLT, HOUSEM_KELLER]);
}

#[test]
fn a_concern_about_a_pupil_who_has_left_reaches_the_dsl_team_only() {
    let set = shipped();
    let d = decide(&set, &message("Old matter", "", "he hit me"), &about(&[LEFT], None), &History::default());
    assert_eq!(d.category, "Safeguarding / child protection");
    assert_eq!(ids(&d), vec![DSL, DDSL], "the DSL team decides whether to pass it on");
    assert_eq!(d.outcome_within, Some(Duration::days(2)));
    // The ladder keeps the DSL team's steps; nobody else hears about a pupil who has left.
    let ladder: Vec<Vec<i64>> = d.escalation.iter().map(|r| r.recipients.iter().map(|r| r.staff_id).collect()).collect();
    assert_eq!(ladder, vec![vec![DDSL]]);
    assert!(d.notes.iter().any(|n| n.contains("left the school on 2024-07-20")), "{:?}", d.notes);
}

#[test]
fn a_housem_alert_for_a_pupil_without_a_house_says_so() {
    let set = shipped();
    let d = decide(&set, &message("Concern", "", "a worry"), &about(&[NO_HOUSE], Some("dslhousem")), &History::default());
    assert_eq!(ids(&d), vec![DSL, DDSL]);
    assert!(d.notes.iter().any(|n| n == &format!("alert housem-of-pupil: pupil {NO_HOUSE} has no house")), "{:?}", d.notes);
}

#[test]
fn the_decision_serialises_for_rules_test_json() {
    let set = shipped();
    let d = decide(&set, &message("x", "", "scared to go home"), &about(&[JANE], None), &History::default());
    let json = serde_json::to_value(&d).expect("serialises");
    assert_eq!(json["visibility"], "dsl-team,head");
    assert_eq!(json["priority"], "urgent");
    assert_eq!(json["outcome_within"], "2d");
    assert_eq!(json["escalation"][1]["after"], "2d");
    assert_eq!(json["recipients"][0]["email"], "dsl@school.example");
}

// ---------------------------------------------------------------- conditions and order

#[test]
fn rules_apply_in_file_then_rule_order_until_one_says_stop() {
    let set = match RuleSet::load(&fixture("order")) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let msg = message("Note", "", "ordinary");
    let d = decide(&set, &msg, &about(&[JANE], None), &History::default());
    assert_eq!(d.matched, vec!["10-first.toml: one", "10-first.toml: two", "20-second.toml: three"]);
    // Recipients keep the first reason and the order rules gave them.
    let got: Vec<(i64, &str)> = d.recipients.iter().map(|r| (r.staff_id, r.why.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (SLT, "slt (10-first.toml: one)"),
            (HEAD, "head (10-first.toml: two)"),
            (TEACHER, "staff:teacher@school.example (20-second.toml: three)")
        ]
    );
    // "stop" in 20-second.toml stops the rule after it, in the same file and in later files.
    let d = decide(&set, &message("Note", "", "urgent stop please"), &about(&[JANE], None), &History::default());
    assert_eq!(d.matched, vec!["10-first.toml: one", "10-first.toml: two", "20-second.toml: stopper"]);
    assert_eq!(d.priority, Priority::Urgent);
}

#[test]
fn every_condition_kind_decides_whether_a_rule_applies() {
    let set = match RuleSet::load(&fixture("conditions")) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let fired = |msg: &Message, pupils: &[i64], risk: Option<RiskLevel>| -> Vec<String> {
        let dir = school();
        let ident = about(pupils, None);
        let d = set.evaluate(&Facts { message: msg, identification: &ident, directory: &dir, history: &History::default(), ai_risk: risk });
        d.matched.iter().map(|m| m.trim_start_matches("10-conditions.toml: ").to_string()).collect()
    };
    let plain = message("Hello", "", "nothing to see");
    assert_eq!(fired(&plain, &[JANE], None), vec!["year 7 in Keller"]);
    assert_eq!(fired(&plain, &[AHMED], None), vec!["sen"]);
    assert_eq!(fired(&plain, &[LEFT], None), vec!["left"]);
    assert_eq!(fired(&plain, &[AHMED], Some(RiskLevel::Medium)), vec!["sen"]);
    assert_eq!(fired(&plain, &[AHMED], Some(RiskLevel::High)), vec!["sen", "ai high"]);

    let mut fwd = message("Fwd: hello", "please see", "nothing");
    fwd.forwarded = Some(Forwarded {
        from: Some(Address { address: "Parent@Home.Example".into(), name: None }),
        date: None,
        date_text: None,
        subject: Some("hello".into()),
        to: Vec::new(),
        cc: Vec::new(),
        body: "the VAPE was found".into(),
        attached: true,
    });
    fwd.attachments.push(Attachment {
        filename: "photo.jpg".into(),
        content_type: "image/jpeg".into(),
        size: 3,
        sha256: String::new(),
        inline: false,
        tnef: false,
        data: vec![1, 2, 3],
    });
    assert_eq!(fired(&fwd, &[NO_HOUSE], None), vec!["sender", "sender domain", "attachments", "text in an attached original"]);
}

// ---------------------------------------------------------------- validation errors

#[test]
fn unknown_keys_are_reported_where_they_are() {
    assert_eq!(
        errors_of("unknown-key"),
        "10-rules.toml:3:1: unknown field `alerts`, expected one of `name`, `when`, `alert`, `set_category`, `priority`, `visibility`, `outcome_within`, `escalate`, `digest`, `stop`, `on_backfill`, `ai_timeout`, `on_ai_timeout` (did you mean `alert`?)\n\
         10-rules.toml:8:6: unknown field `categroy`, expected one of `category`, `category_not`, `safeguarding`, `text`, `sender`, `sender_domain`, `year_group`, `house`, `sen`, `on_roll`, `attachments`, `history`, `ai_risk` (did you mean `category`?)\n\
         10-rules.toml:10:3: unknown key `rules`, expected `default`, `[[category]]` or `[[rule]]` (did you mean `[[rule]]`?)"
    );
}

#[test]
fn unknown_roles_are_reported() {
    assert_eq!(
        errors_of("unknown-role"),
        "10-rules.toml:3:17: unknown role \"dls\" (did you mean \"dsl\"?): use one of dsl, ddsl, slt, head, housem, tutor, esafety, senco, first_aid, teacher, assistant, dpo, dsl-team, housem-of-pupil, tutor-of-pupil or staff:EMAIL\n\
         10-rules.toml:7:38: \"staff:nobody\" is not staff:EMAIL"
    );
}

#[test]
fn unknown_categories_are_reported() {
    assert_eq!(
        errors_of("unknown-category"),
        "10-rules.toml:3:28: unknown category \"E-saftey\" (did you mean \"E-safety\"?): the categories are Pastoral issue, E-safety\n\
         10-rules.toml:8:16: unknown category \"Bullying\": the categories are Pastoral issue, E-safety"
    );
}

#[test]
fn bad_regexes_are_reported() {
    assert_eq!(errors_of("bad-regex"), "10-rules.toml:3:13: bad regex: error: unclosed group");
}

#[test]
fn bad_durations_are_reported() {
    assert_eq!(
        errors_of("bad-duration"),
        "10-rules.toml:4:18: bad duration \"2 days\": write a whole number and m, h, d or w, like \"30m\", \"4h\", \"2d\" or \"1w\"\n\
         10-rules.toml:5:23: bad duration \"1x\": write a whole number and m, h, d or w, like \"30m\", \"4h\", \"2d\" or \"1w\""
    );
}

#[test]
fn conflicting_actions_are_reported() {
    assert_eq!(
        errors_of("conflict"),
        "10-rules.toml:4:12: escalate needs outcome_within: escalation only happens while an outcome is awaited\n\
         10-rules.toml:8:17: conflicting actions: alerts housem-of-pupil but visibility \"dsl-team\" does not let them see the incident\n\
         10-rules.toml:15:57: escalation steps must be in order, each later than the one before\n\
         10-rules.toml:17:1: rule does nothing: add an action (alert, set_category, priority, visibility, outcome_within, digest or stop)"
    );
    // Two values for one action in a rule cannot even be read.
    assert_eq!(
        errors_of("duplicate-key"),
        "10-rules.toml:4:1: duplicate key: each key may be given only once (one value per condition or action)"
    );
}

#[test]
fn duplicate_categories_and_aliases_are_reported() {
    assert_eq!(
        errors_of("duplicate-category"),
        "00-categories.toml:10:24: alias \"e-safety\" is already used by category \"E-safety\"\n\
         00-categories.toml:14:8: name \"Online\" is already used by category \"E-safety\""
    );
}

#[test]
fn a_missing_default_is_reported() {
    assert_eq!(
        errors_of("missing-default"),
        "00-categories.toml:1:1: no default category: add a line like default = \"Pastoral issue\" (the catch-all)"
    );
}

#[test]
fn every_error_of_every_file_is_reported_at_once() {
    let errors = errors_of("many");
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 5, "{errors}");
    assert!(lines[0].starts_with("00-categories.toml:4:14: unknown visibility \"everyone\""), "{errors}");
    assert!(lines[1] == "10-a.toml:1:7: unclosed array table, expected `]]`", "{errors}");
    assert!(lines[2].starts_with("20-b.toml:3:13: bad regex"), "{errors}");
    assert!(lines[3].starts_with("20-b.toml:4:17: unknown role \"nobody\""), "{errors}");
    assert!(lines[4].starts_with("20-b.toml:9:18: bad duration"), "{errors}");
}

#[test]
fn an_empty_or_missing_directory_is_an_error() {
    let empty = tempfile::tempdir().expect("tempdir");
    match RuleSet::load(empty.path()) {
        Ok(_) => panic!("an empty directory must not load"),
        Err(e) => assert_eq!(e.to_string(), format!("{}:1:1: no rules files (*.toml) here", empty.path().display())),
    }
    assert!(RuleSet::load(&empty.path().join("absent")).is_err());
}

// ---------------------------------------------------------------- reload

#[test]
fn a_bad_reload_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write("00-categories.toml", "default = \"Pastoral issue\"\n[[category]]\nname = \"Pastoral issue\"\nvisibility = \"slt, head\"\n");
    write("10-rules.toml", "[[rule]]\nname = \"to slt\"\nalert = \"slt\"\n");
    let live = LiveRules::new(RuleSet::load(dir.path()).expect("loads"));
    let in_hand = live.current();
    assert_eq!(in_hand.summary(), "1 category, 1 rule from 2 files");

    // A lead saves a broken edit; the daemon reloads, keeps the old set and can say why.
    write("10-rules.toml", "[[rule]]\nname = \"to slt\"\nalert = \"slt\"\nwhen.text = \"(\"\n");
    match live.reload(dir.path()) {
        Ok(()) => panic!("the broken edit must not load"),
        Err(e) => {
            assert!(e.to_string().contains("10-rules.toml:4:13: bad regex"), "{e}");
        }
    }
    let d = decide(&live.current(), &message("a", "", "b"), &about(&[JANE], None), &History::default());
    assert_eq!(ids(&d), vec![SLT]);

    // The fixed edit goes live; a batch still holding the old set is unaffected.
    write("10-rules.toml", "[[rule]]\nname = \"to head\"\nalert = \"head\"\n[[rule]]\nname = \"to slt\"\nalert = \"slt\"\n");
    match live.reload(dir.path()) {
        Ok(()) => {}
        Err(e) => panic!("the fixed set must load:\n{e}"),
    }
    assert_eq!(live.current().summary(), "1 category, 2 rules from 2 files");
    assert_eq!(in_hand.summary(), "1 category, 1 rule from 2 files");
    let d = decide(&live.current(), &message("a", "", "b"), &about(&[JANE], None), &History::default());
    assert_eq!(ids(&d), vec![SLT, HEAD]);

    // `replace` swaps in a set loaded elsewhere (e.g. checked first by `haven rules check`).
    live.replace(RuleSet::load(&fixture("order")).expect("order fixture loads"));
    assert_eq!(live.current().summary(), "2 categories, 5 rules from 4 files");
}

#[test]
fn missing_names_and_wrong_types_are_reported() {
    assert_eq!(
        errors_of("wrong-types"),
        "10-rules.toml:1:1: missing field `name`\n\
         10-rules.toml:6:9: invalid type: integer `5`, expected a string or a list of strings\n\
         10-rules.toml:10:12: invalid type: string \"yes\", expected a boolean\n\
         10-rules.toml:15:16: missing field `at_least`"
    );
}

#[test]
fn each_listed_disclosure_phrase_is_caught_and_ordinary_words_are_not() {
    let set = shipped();
    for text in [
        "he said his dad hit me",
        "someone touched me",
        "talked about SELF-HARM",
        "mentioned suicidal thoughts",
        "worried about FGM over the holidays",
        "it was abuse",
        "she is scared to go home",
        "there was a knife",
    ] {
        let d = decide(&set, &message("Chat", "", text), &about(&[JANE], None), &History::default());
        assert_eq!(d.category, "Safeguarding / child protection", "{text}");
        assert_eq!(d.priority, Priority::Urgent, "{text}");
    }
    for text in ["white mess on the table", "a thimble", "knifed the butter? no, buttered toast"] {
        let d = decide(&set, &message("Chat", "", text), &about(&[JANE], None), &History::default());
        assert_eq!(d.category, "Pastoral issue", "{text}");
    }
}
