//! What is taken out of a message before it leaves the process for a model (`ai.redact`):
//! the names of pupils, parents and staff from the directory, email addresses, phone numbers,
//! postcodes and street addresses become placeholders (`PUPIL_1`, `ADULT_2`, `EMAIL_1`,
//! `PHONE_1`, `POSTCODE_1`, `ADDRESS_1`), and the model's answer is mapped back.
//!
//! Each distinct piece of text gets its own placeholder, so mapping back gives exactly the
//! words of the message: a quote the model copies from the redacted text is, once mapped back,
//! a quote of the original. Pure.
//!
//! A full name is matched in any case; a single first name or surname only as written in the
//! directory (capitalised), so that a pupil called Will does not take "will" out of every
//! sentence. Over-redacting is the safe side: a surname shared with a common word written with
//! a capital is replaced too.

use crate::directory::Directory;
use regex::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::sync::LazyLock;

/// Titles dropped from contacts' names before their words are matched.
const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "sir", "dame", "lady", "lord"];

/// Shorter single names are not matched alone (too many false hits); full names still are.
const MIN_SINGLE_NAME: usize = 3;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b[a-z0-9._%+'-]+@[a-z0-9.-]+\.[a-z]{2,}\b").expect("valid"));
/// UK numbers: 07700 900123, +44 7700 900123, (020) 7946 0018, 0161-496-0000, 01632960000.
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:\+44\s?\(?0?\)?\s?|\(?\b0)\d{2,4}\)?[\s-]?\d{3,4}[\s-]?\d{3,4}\b").expect("valid"));
/// UK postcodes: SW1A 1AA, M1 1AE, B33 8TH, CR2 6XH, DN55 1PT, EC1A 1BB.
static POSTCODE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[A-Z]{1,2}[0-9][A-Z0-9]?\s?[0-9][A-Z]{2}\b").expect("valid"));
/// A house number and a street: 12 Acacia Avenue, 3a Mill Lane, Flat 4, 22 Church Road.
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:(?i:flat)\s+\d+[a-z]?,?\s+)?\d{1,4}[a-z]?,?\s+(?:[A-Z][a-z'-]+\s+){1,3}(?:Road|Rd|Street|St|Avenue|Ave|Lane|Ln|Close|Drive|Dr|Way|Court|Ct|Crescent|Place|Pl|Grove|Gardens|Gdns|Terrace|Hill|Row|Walk|Mews|Square|Sq|Park|Rise|View|Green|Parade)\b\.?",
    )
    .expect("valid")
});

/// What kind of thing a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Pupil,
    Adult,
    Email,
    Phone,
    Postcode,
    Address,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Pupil => "PUPIL",
            Kind::Adult => "ADULT",
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::Postcode => "POSTCODE",
            Kind::Address => "ADDRESS",
        }
    }
}

/// The names to take out, compiled once per directory snapshot.
pub struct Redactor {
    /// Full names, any case.
    full: Option<Regex>,
    /// Single names, as written.
    single: Option<Regex>,
    /// Lower-cased name → whose it is.
    kinds: HashMap<String, Kind>,
}

impl Redactor {
    pub fn new(directory: &Directory) -> Redactor {
        let mut kinds: HashMap<String, Kind> = HashMap::new();
        let mut full: Vec<String> = Vec::new();
        let mut single: Vec<String> = Vec::new();
        let mut add = |words: Vec<&str>, kind: Kind, kinds: &mut HashMap<String, Kind>| {
            let words: Vec<&str> = words.into_iter().map(str::trim).filter(|w| !w.is_empty()).collect();
            if words.len() > 1 {
                let name = words.join(" ");
                kinds.entry(name.to_lowercase()).or_insert(kind);
                full.push(name);
            }
            for w in words {
                if w.chars().count() >= MIN_SINGLE_NAME && !is_title(w) {
                    kinds.entry(w.to_lowercase()).or_insert(kind);
                    single.push(w.to_string());
                }
            }
        };
        for p in &directory.pupils {
            let mut firsts = vec![p.first_name.as_str()];
            firsts.extend(p.preferred_name.as_deref());
            for f in firsts {
                let mut words: Vec<&str> = f.split_whitespace().collect();
                words.extend(p.last_name.split_whitespace());
                add(words, Kind::Pupil, &mut kinds);
            }
        }
        for s in &directory.staff {
            add(s.first_name.split_whitespace().chain(s.last_name.split_whitespace()).collect(), Kind::Adult, &mut kinds);
        }
        for c in &directory.contacts {
            if let Some(n) = &c.name {
                let words = n.split_whitespace().filter(|w| !is_title(w)).collect();
                add(words, Kind::Adult, &mut kinds);
            }
        }
        Redactor { full: alternation(full, true), single: alternation(single, false), kinds }
    }

    /// `text` with every name, address, postcode, phone number and email address replaced.
    pub fn redact(&self, text: &str) -> Redacted {
        let mut r = Redacted::default();
        // Emails first (they hold names), then addresses (they hold numbers), then the rest.
        let mut out = replace(&EMAIL, text, |_| Kind::Email, &mut r);
        out = replace(&ADDRESS, &out, |_| Kind::Address, &mut r);
        out = replace(&POSTCODE, &out, |_| Kind::Postcode, &mut r);
        out = replace(&PHONE, &out, |_| Kind::Phone, &mut r);
        let kind_of = |m: &str| self.kinds.get(&m.to_lowercase()).copied().unwrap_or(Kind::Adult);
        if let Some(full) = &self.full {
            out = replace(full, &out, kind_of, &mut r);
        }
        if let Some(single) = &self.single {
            out = replace(single, &out, kind_of, &mut r);
        }
        r.text = out;
        r
    }
}

fn is_title(word: &str) -> bool {
    let w = word.trim_end_matches('.').to_lowercase();
    TITLES.contains(&w.as_str())
}

/// A redacted text and its placeholders.
#[derive(Debug, Default, Clone)]
pub struct Redacted {
    pub text: String,
    /// Placeholder → the text it replaced.
    map: HashMap<String, String>,
    /// The text replaced → its placeholder, so the same words get the same one.
    back: HashMap<String, String>,
    counts: HashMap<&'static str, usize>,
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:PUPIL|ADULT|EMAIL|PHONE|POSTCODE|ADDRESS)_[0-9]+\b").expect("valid"));

impl Redacted {
    /// How many placeholders the text has.
    pub fn placeholders(&self) -> usize {
        self.map.len()
    }

    /// `s` (the model's answer) with every placeholder put back.
    pub fn restore(&self, s: &str) -> String {
        PLACEHOLDER.replace_all(s, |c: &regex::Captures<'_>| self.map.get(&c[0]).cloned().unwrap_or_else(|| c[0].to_string())).into_owned()
    }

    fn placeholder(&mut self, found: &str, kind: Kind) -> String {
        if let Some(p) = self.back.get(found) {
            return p.clone();
        }
        let n = self.counts.entry(kind.label()).or_default();
        *n += 1;
        let p = format!("{}_{}", kind.label(), n);
        self.map.insert(p.clone(), found.to_string());
        self.back.insert(found.to_string(), p.clone());
        p
    }
}

fn replace(re: &Regex, text: &str, kind: impl Fn(&str) -> Kind, r: &mut Redacted) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in re.find_iter(text) {
        // A placeholder put in by an earlier pass is left alone.
        if PLACEHOLDER.is_match(m.as_str()) {
            continue;
        }
        out.push_str(&text[last..m.start()]);
        out.push_str(&r.placeholder(m.as_str(), kind(m.as_str())));
        last = m.end();
    }
    out.push_str(&text[last..]);
    out
}

/// One regex matching any of `names` as whole words, longest first.
fn alternation(mut names: Vec<String>, any_case: bool) -> Option<Regex> {
    names.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then_with(|| a.cmp(b)));
    names.dedup();
    if names.is_empty() {
        return None;
    }
    let body = names.iter().map(|n| regex::escape(n).replace(' ', r"\s+")).collect::<Vec<_>>().join("|");
    RegexBuilder::new(&format!(r"\b(?:{body})\b")).case_insensitive(any_case).size_limit(64 << 20).build().ok()
}

/// `text` cut to at most `max_chars` characters.
pub fn cut(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Contact, Pupil, Role, Staff};

    fn directory() -> Directory {
        let pupil = |id, first: &str, last: &str, preferred: Option<&str>| Pupil {
            id,
            upn: format!("A{id}"),
            first_name: first.into(),
            last_name: last.into(),
            preferred_name: preferred.map(Into::into),
            date_of_birth: None,
            year_group: Some(8),
            tutor_group: None,
            house: None,
            sen: false,
            left_on: None,
        };
        let staff = Staff {
            id: 1,
            emails: vec!["teacher@school.example".into()],
            first_name: "Terry".into(),
            last_name: "Teach".into(),
            roles: vec![Role::Teacher],
            house: None,
            tutor_group: None,
            active: true,
        };
        let mum = Contact {
            id: 1,
            email: "sarah.brown@mail.example".into(),
            name: Some("Mrs Sarah Brown".into()),
            relationship: Some("mother".into()),
            pupil_ids: vec![2],
        };
        Directory::new(
            vec![pupil(1, "Jane", "Smith", None), pupil(2, "Oliver", "Brown", Some("Olly")), pupil(3, "Will", "Price", None)],
            vec![staff],
            vec![mum],
        )
    }

    #[test]
    fn names_addresses_phones_and_emails_become_placeholders_and_come_back() {
        let r = Redactor::new(&directory());
        let text = "Olly told Mr Teach that OLIVER BROWN's mum (Sarah Brown, sarah.brown@mail.example, 07700 900123) \
                    moved to 12 Acacia Avenue, Leeds LS1 4AB. Jane Smith saw it. I will ask Will tomorrow; call (0113) 496 0000.";
        let red = r.redact(text);
        for gone in
            ["Olly", "Teach", "OLIVER", "BROWN", "Sarah", "Brown", "sarah.brown", "07700", "Acacia", "LS1 4AB", "Jane", "Smith", "0113"]
        {
            assert!(!red.text.contains(gone), "{gone:?} left in {:?}", red.text);
        }
        assert!(red.text.contains("I will ask PUPIL_"), "a lower-case word that is also a name stays: {}", red.text);
        assert!(red.text.contains("ADDRESS_1") && red.text.contains("POSTCODE_1") && red.text.contains("PHONE_2"), "{}", red.text);
        assert_eq!(red.restore(&red.text), text, "mapping back gives the message exactly");
        // A quote of the redacted text is a quote of the original once mapped back.
        let first: Vec<&str> = red.text.split(' ').take(4).collect();
        assert!(first[0].starts_with("PUPIL_") && first[3].starts_with("ADULT_"), "{first:?}");
        assert_eq!(red.restore(&first.join(" ")), "Olly told Mr Teach");
        assert_eq!(red.restore("UNKNOWN_1 and PUPIL_99"), "UNKNOWN_1 and PUPIL_99");
    }

    #[test]
    fn the_same_words_get_the_same_placeholder() {
        let r = Redactor::new(&directory());
        let red = r.redact("Jane Smith and Jane Smith; Olly and Olly.");
        assert_eq!(red.text, "PUPIL_1 and PUPIL_1; PUPIL_2 and PUPIL_2.");
        assert_eq!(red.placeholders(), 2);
    }

    #[test]
    fn text_is_cut_by_characters() {
        assert_eq!(cut("héllo", 2), "hé");
        assert_eq!(cut("hi", 10), "hi");
    }
}
