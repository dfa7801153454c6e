//! Identification: which pupils a message is about (each with a role) and whether staff named a
//! category, from explicit markers first (SPEC "How staff mark a forward"), then the original
//! sender's contact record, then full names mentioned in the text. Pure.
//!
//! A pupil found only by a full name in the text, when someone else was identified by surer
//! means (a marker, the subject, a UPN, the sender's contact record), is only *mentioned*: the
//! DSL team sees the link and confirms or removes it (`haven link`); it widens nobody's view
//! and alerts nobody. When such a name is the only candidate, the incident is filed on them.
//!
//! When no pupil can be named, or a name fits several pupils, the message waits for triage
//! with the candidates, rather than being filed on a guess.

use crate::category::Categories;
use crate::directory::{Directory, Pupil, PupilNames};
use crate::message::Message;
use serde::Serialize;

/// What a pupil is to an incident. A role belongs to one pupil, never to every linked pupil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PupilRole {
    Subject,
    Victim,
    Perpetrator,
    Witness,
    Linked,
    /// Named only in the text beside a pupil identified by surer means: the DSL team's to confirm.
    Mentioned,
}

impl PupilRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PupilRole::Subject => "subject",
            PupilRole::Victim => "victim",
            PupilRole::Perpetrator => "perpetrator",
            PupilRole::Witness => "witness",
            PupilRole::Linked => "linked",
            PupilRole::Mentioned => "mentioned",
        }
    }
}

/// One pupil the message is about, and how Haven knew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PupilMatch {
    pub pupil_id: i64,
    pub role: PupilRole,
    /// For the record and `rules test`: "Pupil: line", "contact of the original sender", …
    pub how: String,
}

/// Why the message cannot be filed yet, and the pupils it might be about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Triage {
    pub reason: String,
    pub candidates: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Identification {
    pub pupils: Vec<PupilMatch>,
    /// The category staff named (canonical name), if any.
    pub category: Option<String>,
    /// How it was named: "Category: line", "#tag in the subject", "plus address".
    pub category_how: Option<String>,
    /// Set when the message must wait for a human to say which pupil.
    pub triage: Option<Triage>,
}

/// Identifies pupils and an explicitly named category.
pub fn identify(msg: &Message, dir: &Directory, categories: &Categories, intake_address: &str) -> Identification {
    let mut id = Identification::default();
    let marker_text = marker_text(msg);
    explicit_category(msg, &marker_text, categories, intake_address, &mut id);

    // 1. Explicit markers: `Pupil:` / `Victim:` … lines, `[Name]` in the subject.
    let mut unresolved = Vec::new();
    let mut candidates = Vec::new();
    for (role, value) in marker_lines(&marker_text) {
        for item in value.split([',', ';']).map(str::trim).filter(|s| !s.is_empty()) {
            match resolve(dir, item) {
                Resolved::One(pupil_id) => add(&mut id, pupil_id, role, format!("{} line", role_label(role))),
                Resolved::Many(ids) => {
                    unresolved.push(format!("{} pupils match a {} line", ids.len(), role_label(role)));
                    candidates.extend(ids);
                }
                Resolved::Partly(ids) => {
                    let who = if ids.len() == 1 { "1 pupil has".to_string() } else { format!("{} pupils have", ids.len()) };
                    unresolved.push(format!("a {} line gives only part of a name, which {who}", role_label(role)));
                    candidates.extend(ids);
                }
                Resolved::None => unresolved.push(format!("no pupil matches a {} line", role_label(role))),
            }
        }
    }
    if let Some(subject) = &msg.subject {
        for inner in bracketed(subject) {
            if let Resolved::One(pupil_id) = resolve(dir, inner) {
                add(&mut id, pupil_id, PupilRole::Subject, "[name] in the subject".into());
            }
        }
    }
    if !unresolved.is_empty() {
        id.triage = Some(Triage { reason: unresolved.join("; "), candidates: dedup(candidates) });
        return id;
    }
    if !id.pupils.is_empty() {
        return id;
    }

    // 2. The original sender's contact record.
    let mentions = Mentions::find(msg, dir);
    let mentioned = mentions.unique();
    if let Some(from) = msg.forwarded.as_ref().and_then(|f| f.from.as_ref()) {
        let linked: Vec<i64> = dedup(dir.contacts_by_email(&from.address).flat_map(|c| c.pupil_ids.clone()).collect());
        match linked.as_slice() {
            [] => {}
            [one] => add(&mut id, *one, PupilRole::Subject, "contact of the original sender".into()),
            many => {
                // Siblings: the one named in the text, if exactly one is.
                let named: Vec<i64> = many.iter().copied().filter(|p| mentioned.contains(p)).collect();
                if let [one] = named.as_slice() {
                    add(&mut id, *one, PupilRole::Subject, "contact of the original sender, named in the text".into());
                } else {
                    id.triage = Some(Triage {
                        reason: format!("the original sender is a contact for {} pupils", many.len()),
                        candidates: many.to_vec(),
                    });
                    return id;
                }
            }
        }
    }

    // 3. Full names mentioned in the subject, note and body: the first is the subject when
    // nobody else was identified; any other is only mentioned.
    for pupil_id in &mentioned {
        if id.pupils.is_empty() {
            add(&mut id, *pupil_id, PupilRole::Subject, "full name in the text".into());
        } else {
            add(&mut id, *pupil_id, PupilRole::Mentioned, "full name in the text".into());
        }
    }
    let ambiguous = mentions.ambiguous();
    if id.pupils.is_empty() {
        id.triage = Some(if ambiguous.is_empty() {
            Triage { reason: "no pupil could be identified".into(), candidates: Vec::new() }
        } else {
            Triage { reason: "a name in the message fits several pupils".into(), candidates: ambiguous }
        });
    }
    id
}

/// Where staff write markers: the note above a forward, or the whole text of their own note.
fn marker_text(msg: &Message) -> String {
    match &msg.note {
        Some(n) => n.clone(),
        None if msg.forwarded.is_none() => msg.reply_text.clone().unwrap_or_else(|| msg.text.clone()),
        None => String::new(),
    }
}

fn explicit_category(msg: &Message, marker_text: &str, categories: &Categories, intake: &str, id: &mut Identification) {
    let mut set = |name: &str, how: &str| {
        if id.category.is_none()
            && let Some(c) = categories.find(name)
        {
            id.category = Some(c.name.clone());
            id.category_how = Some(how.to_string());
        }
    };
    for line in marker_text.lines() {
        if let Some((key, value)) = line.split_once(':')
            && key.trim().eq_ignore_ascii_case("category")
        {
            set(value.trim(), "Category: line");
        }
    }
    if let Some(subject) = &msg.subject {
        for tag in subject.split_whitespace().filter_map(|w| w.strip_prefix('#')) {
            let tag = tag.trim_end_matches(|c: char| !c.is_alphanumeric());
            set(tag, "#tag in the subject");
        }
    }
    let (local, domain) = intake.rsplit_once('@').unwrap_or((intake, ""));
    for to in msg.to.iter().chain(&msg.cc) {
        let Some((l, d)) = to.address.rsplit_once('@') else { continue };
        if !d.eq_ignore_ascii_case(domain) {
            continue;
        }
        if let Some(tag) = l.strip_prefix(local).and_then(|rest| rest.strip_prefix('+'))
            && !tag.starts_with("r-")
        {
            set(tag, "plus address");
        }
    }
}

/// A category staff named that is not configured: the name as written and where
/// ("Category: line" or "plus address"), when no configured category was named too. A `#tag`
/// in the subject is not counted: subjects carry hashtags for other reasons ("Issue #42").
pub fn unknown_category(msg: &Message, categories: &Categories, intake: &str) -> Option<(String, &'static str)> {
    let mut named: Vec<(String, &'static str)> = Vec::new();
    for line in marker_text(msg).lines() {
        if let Some((key, value)) = line.split_once(':')
            && key.trim().eq_ignore_ascii_case("category")
        {
            named.push((value.trim().to_string(), "Category: line"));
        }
    }
    let (local, domain) = intake.rsplit_once('@').unwrap_or((intake, ""));
    for to in msg.to.iter().chain(&msg.cc) {
        let Some((l, d)) = to.address.rsplit_once('@') else { continue };
        if !d.eq_ignore_ascii_case(domain) {
            continue;
        }
        if let Some(tag) = l.strip_prefix(local).and_then(|rest| rest.strip_prefix('+'))
            && !tag.starts_with("r-")
            && !tag.starts_with("t-")
        {
            named.push((tag.to_string(), "plus address"));
        }
    }
    let tagged_known = msg.subject.as_deref().is_some_and(|subject| {
        subject
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('#'))
            .any(|tag| categories.find(tag.trim_end_matches(|c: char| !c.is_alphanumeric())).is_some())
    });
    if tagged_known || named.iter().any(|(n, _)| categories.find(n).is_some()) {
        return None;
    }
    named.into_iter().find(|(n, _)| !n.is_empty())
}

/// `Pupil:`, `Pupils:`, `Victim:`, `Perpetrator:`, `Witness:`, `Linked:` lines and their values.
fn marker_lines(text: &str) -> Vec<(PupilRole, &str)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim_start_matches(['>', ' ', '*']).split_once(':')?;
            let role = match key.trim().to_ascii_lowercase().as_str() {
                "pupil" | "pupils" | "student" | "students" | "child" => PupilRole::Subject,
                "victim" | "victims" => PupilRole::Victim,
                "perpetrator" | "perpetrators" => PupilRole::Perpetrator,
                "witness" | "witnesses" => PupilRole::Witness,
                "linked" | "linked pupil" | "linked pupils" => PupilRole::Linked,
                _ => return None,
            };
            Some((role, value.trim()))
        })
        .collect()
}

fn role_label(role: PupilRole) -> &'static str {
    match role {
        PupilRole::Subject | PupilRole::Mentioned => "Pupil:",
        PupilRole::Linked => "Linked:",
        PupilRole::Victim => "Victim:",
        PupilRole::Perpetrator => "Perpetrator:",
        PupilRole::Witness => "Witness:",
    }
}

/// The contents of `[…]` groups in a subject.
fn bracketed(subject: &str) -> impl Iterator<Item = &str> {
    subject.split('[').skip(1).filter_map(|s| s.split_once(']').map(|(inner, _)| inner.trim()))
}

enum Resolved {
    One(i64),
    Many(Vec<i64>),
    /// No full name matches, but these pupils have the one name given (`Pupil: Smith`): the
    /// forwarder is asked which, never filed on a guess.
    Partly(Vec<i64>),
    None,
}

/// A UPN or a full name (first or preferred name + surname), pupils on roll preferred. Looked
/// up in the directory's name index, so the cost does not grow with the roll.
fn resolve(dir: &Directory, item: &str) -> Resolved {
    let names = dir.pupil_names(name_index);
    if let Some(id) = names.upn.get(&item.trim().to_ascii_lowercase()) {
        return Resolved::One(*id);
    }
    let q = normalise(item);
    match on_roll_first(dir, names.full.get(&q)).as_slice() {
        [] => partly(dir, names, &q),
        [one] => Resolved::One(*one),
        many => Resolved::Many(many.to_vec()),
    }
}

/// Pupils with a surname, first or preferred name equal to `q` (normalised), on roll first.
fn partly(dir: &Directory, names: &PupilNames, q: &str) -> Resolved {
    match on_roll_first(dir, names.part.get(q)) {
        ids if ids.is_empty() => Resolved::None,
        ids => Resolved::Partly(ids),
    }
}

/// Of `ids`, those on roll; all of them when none is.
fn on_roll_first(dir: &Directory, ids: Option<&Vec<i64>>) -> Vec<i64> {
    let ids = ids.map_or(&[][..], Vec::as_slice);
    let on_roll: Vec<i64> = ids.iter().copied().filter(|id| dir.pupil(*id).is_some_and(Pupil::on_roll)).collect();
    if on_roll.is_empty() { ids.to_vec() } else { on_roll }
}

/// A pupil's full names as they may be written, normalised.
fn names(p: &Pupil) -> Vec<String> {
    let mut v = vec![normalise(&format!("{} {}", p.first_name, p.last_name))];
    if let Some(pref) = &p.preferred_name {
        v.push(normalise(&format!("{pref} {}", p.last_name)));
    }
    v
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The searchable text: subject, note, the forwarded original's subject and body, the text.
fn haystack(msg: &Message) -> String {
    let mut parts: Vec<&str> = Vec::new();
    parts.extend(msg.subject.as_deref());
    parts.extend(msg.note.as_deref());
    if let Some(f) = &msg.forwarded {
        parts.extend(f.subject.as_deref());
        parts.push(&f.body);
    } else {
        parts.push(&msg.text);
    }
    parts.join("\n")
}

/// Words as names are written: letters and digits, with inner apostrophes and hyphens
/// (O'Brien, Smith-Jones), lower-cased.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '\'' | '’' | '-')))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase().replace('’', "'"))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Every way [`resolve`] and [`Mentions`] look a pupil up: by UPN, full names and parts of
/// names (normalised), and, for pupils on roll, full names as [`words`] spells them.
fn name_index(dir: &Directory) -> PupilNames {
    fn put(index: &mut std::collections::HashMap<String, Vec<i64>>, key: String, id: i64) {
        let ids = index.entry(key).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut n = PupilNames::default();
    for p in &dir.pupils {
        n.upn.entry(p.upn.trim().to_ascii_lowercase()).or_insert(p.id);
        for full in names(p) {
            if p.on_roll() {
                put(&mut n.on_roll, words(&full).join(" "), p.id);
            }
            put(&mut n.full, full, p.id);
        }
        for part in [Some(p.last_name.as_str()), Some(p.first_name.as_str()), p.preferred_name.as_deref()].into_iter().flatten() {
            let part = normalise(part);
            if !part.is_empty() {
                put(&mut n.part, part, p.id);
            }
        }
    }
    n
}

/// Full names mentioned in a message, found in one pass: every run of up to four consecutive
/// words is looked up among the pupils' names (so the cost does not grow with the roll).
struct Mentions {
    /// Pupils on roll whose full name appears, and how many pupils on roll share that name.
    found: Vec<(i64, usize)>,
}

impl Mentions {
    fn find(msg: &Message, dir: &Directory) -> Mentions {
        let by_name = &dir.pupil_names(name_index).on_roll;
        let hay = words(&haystack(msg));
        let mut found: Vec<(i64, usize)> = Vec::new();
        for start in 0..hay.len() {
            let mut gram = String::new();
            for w in hay.iter().skip(start).take(4) {
                if !gram.is_empty() {
                    gram.push(' ');
                }
                gram.push_str(w);
                if let Some(ids) = by_name.get(&gram) {
                    for id in ids {
                        if !found.iter().any(|(f, _)| f == id) {
                            found.push((*id, ids.len()));
                        }
                    }
                }
            }
        }
        Mentions { found }
    }

    /// Named pupils whose name no other pupil on roll shares.
    fn unique(&self) -> Vec<i64> {
        self.found.iter().filter(|(_, n)| *n == 1).map(|(id, _)| *id).collect()
    }

    /// Named pupils whose name is shared.
    fn ambiguous(&self) -> Vec<i64> {
        self.found.iter().filter(|(_, n)| *n > 1).map(|(id, _)| *id).collect()
    }
}

fn add(id: &mut Identification, pupil_id: i64, role: PupilRole, how: String) {
    if !id.pupils.iter().any(|p| p.pupil_id == pupil_id) {
        id.pupils.push(PupilMatch { pupil_id, role, how });
    }
}

fn dedup(mut v: Vec<i64>) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(*x));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;
    use crate::directory::Contact;
    use crate::visibility::Visibility;

    fn pupil(id: i64, upn: &str, first: &str, last: &str) -> Pupil {
        Pupil {
            id,
            upn: upn.into(),
            first_name: first.into(),
            last_name: last.into(),
            preferred_name: None,
            date_of_birth: None,
            year_group: Some(7),
            tutor_group: None,
            house: None,
            sen: false,
            left_on: None,
        }
    }

    fn school() -> Directory {
        let mut olly = pupil(2, "A100000000002", "Oliver", "Brown");
        olly.preferred_name = Some("Olly".into());
        let pupils = vec![
            pupil(1, "A100000000001", "Jane", "Smith"),
            olly,
            pupil(3, "A100000000003", "Leo", "Smith"),
            pupil(4, "A100000000004", "Sam", "Lee"),
            pupil(5, "A100000000005", "Sam", "Lee"),
        ];
        let contacts = vec![
            Contact { id: 1, email: "mum@home.example".into(), name: None, relationship: None, pupil_ids: vec![1] },
            Contact { id: 2, email: "gran@home.example".into(), name: None, relationship: None, pupil_ids: vec![1, 3] },
        ];
        Directory::new(pupils, Vec::new(), contacts)
    }

    fn categories() -> Categories {
        let cat = |name: &str, alias: &str| Category {
            name: name.into(),
            aliases: vec![alias.into()],
            visibility: Visibility::dsl_team(),
            safeguarding: false,
        };
        Categories::new(
            vec![cat("Pastoral issue", "pastoral"), cat("E-safety", "esafety"), cat("Room search", "roomsearch")],
            "Pastoral issue",
        )
        .unwrap()
    }

    fn ident(headers: &str, body: &str) -> Identification {
        let raw = format!(
            "From: Teacher <t@school.example>\r\nDate: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <x@s>\r\n{headers}\r\n\r\n{body}"
        );
        let msg = crate::read::read_message(raw.as_bytes()).expect("readable");
        identify(&msg, &school(), &categories(), "safeguarding@school.example")
    }

    fn forward_from(addr: &str, text: &str) -> String {
        format!(
            "FYI\r\n\r\n---------- Forwarded message ---------\r\nFrom: Parent <{addr}>\r\nDate: Mon, 9 Nov 2026 at 21:14\r\nSubject: Hello\r\nTo: t@school.example\r\n\r\n{text}\r\n"
        )
    }

    fn ids(i: &Identification) -> Vec<(i64, PupilRole)> {
        i.pupils.iter().map(|p| (p.pupil_id, p.role)).collect()
    }

    #[test]
    fn pupil_line_by_name_or_upn() {
        let i = ident("To: safeguarding@school.example\r\nSubject: note", "Pupil: Jane Smith, A100000000002\r\n\r\nSeen upset.");
        assert_eq!(ids(&i), vec![(1, PupilRole::Subject), (2, PupilRole::Subject)]);
        assert!(i.triage.is_none());
    }

    #[test]
    fn preferred_names_count() {
        let i = ident("To: safeguarding@school.example\r\nSubject: note", "Pupil: Olly Brown\r\n\r\nSeen upset.");
        assert_eq!(ids(&i), vec![(2, PupilRole::Subject)]);
    }

    #[test]
    fn roles_stay_on_their_own_pupil() {
        let i = ident(
            "To: safeguarding@school.example\r\nSubject: playground",
            "Victim: Jane Smith\r\nPerpetrator: Oliver Brown\r\nWitness: Leo Smith\r\n\r\nPushed over at lunch.",
        );
        assert_eq!(ids(&i), vec![(1, PupilRole::Victim), (2, PupilRole::Perpetrator), (3, PupilRole::Witness)]);
    }

    #[test]
    fn bracketed_subject_names_a_pupil_and_other_brackets_are_ignored() {
        let i = ident("To: safeguarding@school.example\r\nSubject: [EXTERNAL] [Leo Smith] late again", "Collected at 4pm.");
        assert_eq!(ids(&i), vec![(3, PupilRole::Subject)]);
    }

    #[test]
    fn category_from_line_tag_or_plus_address() {
        let i = ident("To: safeguarding@school.example\r\nSubject: x", "Pupil: Jane Smith\r\nCategory: E-safety\r\n\r\nPhotos.");
        assert_eq!(i.category.as_deref(), Some("E-safety"));
        let i = ident("To: safeguarding@school.example\r\nSubject: search #roomsearch", "Pupil: Jane Smith\r\n\r\nBag.");
        assert_eq!(i.category.as_deref(), Some("Room search"));
        let i = ident("To: safeguarding+esafety@school.example\r\nSubject: x", "Pupil: Jane Smith\r\n\r\nChat.");
        assert_eq!((i.category.as_deref(), i.category_how.as_deref()), (Some("E-safety"), Some("plus address")));
        let i = ident("To: safeguarding+r-1-2-abc@school.example\r\nSubject: x", "Pupil: Jane Smith\r\n\r\nChat.");
        assert_eq!(i.category, None, "a reply token is not a category");
    }

    #[test]
    fn an_unknown_category_is_reported_unless_a_known_one_is_named_too() {
        let read = |headers: &str, body: &str| {
            let raw =
                format!("From: t@school.example\r\nDate: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <x@s>\r\n{headers}\r\n\r\n{body}");
            crate::read::read_message(raw.as_bytes()).expect("readable")
        };
        let intake = "safeguarding@school.example";
        let m = read("To: safeguarding@school.example\r\nSubject: x", "Pupil: Jane Smith\r\nCategory: Victim\r\n\r\nText.");
        assert_eq!(unknown_category(&m, &categories(), intake), Some(("Victim".into(), "Category: line")));
        let m = read("To: safeguarding+victim@school.example\r\nSubject: x", "Pupil: Jane Smith\r\n\r\nText.");
        assert_eq!(unknown_category(&m, &categories(), intake), Some(("victim".into(), "plus address")));
        let m = read("To: safeguarding@school.example\r\nSubject: x #esafety", "Category: Victim\r\n\r\nText.");
        assert_eq!(unknown_category(&m, &categories(), intake), None, "a known category was named too");
        let m = read("To: safeguarding@school.example\r\nSubject: Issue #42", "Pupil: Jane Smith\r\n\r\nText.");
        assert_eq!(unknown_category(&m, &categories(), intake), None, "a hashtag is not a category marker");
    }

    #[test]
    fn contact_of_the_original_sender() {
        let i = ident("To: safeguarding@school.example\r\nSubject: Fwd: Hello", &forward_from("mum@home.example", "She was upset."));
        assert_eq!(ids(&i), vec![(1, PupilRole::Subject)]);
        assert_eq!(i.pupils[0].how, "contact of the original sender");
    }

    #[test]
    fn siblings_need_a_name_or_go_to_triage() {
        let i = ident("To: safeguarding@school.example\r\nSubject: Fwd: Hello", &forward_from("gran@home.example", "Leo Smith was late."));
        assert_eq!(ids(&i), vec![(3, PupilRole::Subject)]);
        let i =
            ident("To: safeguarding@school.example\r\nSubject: Fwd: Hello", &forward_from("gran@home.example", "The children were late."));
        let t = i.triage.expect("siblings without a name wait for triage");
        assert_eq!(t.candidates, vec![1, 3]);
    }

    #[test]
    fn a_full_name_in_the_text_is_found_and_a_shared_one_goes_to_triage() {
        let i = ident("To: safeguarding@school.example\r\nSubject: lunch", "I saw Oliver Brown crying at lunch.");
        assert_eq!(ids(&i), vec![(2, PupilRole::Subject)]);
        let i = ident("To: safeguarding@school.example\r\nSubject: lunch", "I saw Sam Lee crying at lunch.");
        let t = i.triage.expect("two pupils called Sam Lee");
        assert_eq!(t.candidates, vec![4, 5]);
        let i = ident("To: safeguarding@school.example\r\nSubject: lunch", "Pupil: Sam Lee\r\n\r\nCrying.");
        assert_eq!(i.triage.expect("ambiguous marker").candidates, vec![4, 5]);
    }

    #[test]
    fn nobody_named_waits_for_triage() {
        let i = ident("To: safeguarding@school.example\r\nSubject: gate", "A boy was picked on at the gate.");
        assert!(i.pupils.is_empty());
        assert_eq!(i.triage.unwrap().reason, "no pupil could be identified");
        let i = ident("To: safeguarding@school.example\r\nSubject: x", "Pupil: Nobody Known\r\n\r\nText.");
        assert!(i.triage.unwrap().reason.contains("no pupil matches"));
    }

    #[test]
    fn part_of_a_name_waits_for_triage_with_the_pupils_who_have_it() {
        let i = ident("To: safeguarding@school.example\r\nSubject: x", "Pupil: Smith\r\n\r\nText.");
        let t = i.triage.expect("a surname alone is not a pupil");
        assert_eq!(t.candidates, vec![1, 3]);
        assert_eq!(t.reason, "a Pupil: line gives only part of a name, which 2 pupils have");
        let i = ident("To: safeguarding@school.example\r\nSubject: x", "Pupil: olly\r\n\r\nText.");
        assert_eq!(i.triage.expect("never filed on a guess").candidates, vec![2]);
    }

    #[test]
    fn linked_lines_take_names_or_upns() {
        let i = ident(
            "To: safeguarding@school.example\r\nSubject: x",
            "Pupil: Jane Smith\r\nLinked: Oliver Brown, A100000000003\r\n\r\nArgument.",
        );
        assert_eq!(ids(&i), vec![(1, PupilRole::Subject), (2, PupilRole::Linked), (3, PupilRole::Linked)]);
    }

    #[test]
    fn names_beside_a_surer_identification_are_only_mentioned() {
        let i = ident(
            "To: safeguarding@school.example\r\nSubject: Fwd: Hello",
            &forward_from("mum@home.example", "Oliver Brown took her money."),
        );
        assert_eq!(ids(&i), vec![(1, PupilRole::Subject), (2, PupilRole::Mentioned)]);
        let i = ident("To: safeguarding@school.example\r\nSubject: Fwd: Hello", &forward_from("x@home.example", "Oliver Brown took it."));
        assert_eq!(ids(&i), vec![(2, PupilRole::Subject)], "the only candidate is filed on as before");
    }

    #[test]
    fn names_inside_longer_words_do_not_match() {
        let i = ident("To: safeguarding@school.example\r\nSubject: x", "Jane Smithson was absent.");
        assert!(i.pupils.is_empty());
    }
}
