//! Which of the names a model gives as "pupils mentioned" are pupils on the roll. A model
//! invents and misspells names, and a suggestion must never point at the wrong child, so only
//! a whole name matches: "First Last" or "Preferred Last", in any case, with runs of
//! whitespace as one space and surrounding quotes or punctuation ignored. A first name alone,
//! a surname alone, a nickname not in the directory or a name with a letter wrong is dropped;
//! so is a pupil who has left, and a name two pupils on the roll share (the model cannot say
//! which one it meant). Pure.

use crate::directory::Directory;
use std::collections::HashMap;

/// The roll's whole names, each to its pupil (None when two pupils share it).
pub struct Roll {
    names: HashMap<String, Option<i64>>,
}

impl Roll {
    pub fn new(directory: &Directory) -> Roll {
        let mut names: HashMap<String, Option<i64>> = HashMap::new();
        for p in directory.pupils.iter().filter(|p| p.on_roll()) {
            let mut keys: Vec<String> = [Some(&p.first_name), p.preferred_name.as_ref()]
                .into_iter()
                .flatten()
                .map(|first| key(&format!("{first} {}", p.last_name)))
                .filter(|k| k.contains(' '))
                .collect();
            keys.dedup();
            for k in keys {
                names.entry(k).and_modify(|held| *held = held.filter(|id| *id == p.id)).or_insert(Some(p.id));
            }
        }
        Roll { names }
    }

    /// The pupil `name` is, as a whole name on the roll.
    pub fn find(&self, name: &str) -> Option<i64> {
        self.names.get(&key(name)).copied().flatten()
    }
}

/// Lower case, single spaces, without the quotes and punctuation a model puts around a name.
fn key(name: &str) -> String {
    let trimmed = name.trim_matches(|c: char| !c.is_alphanumeric());
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::redact::Redactor;
    use crate::directory::Pupil;

    fn pupil(id: i64, first: &str, last: &str, preferred: Option<&str>, left: bool) -> Pupil {
        Pupil {
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
            left_on: left.then(|| chrono::NaiveDate::from_ymd_opt(2026, 7, 20).expect("a date")),
        }
    }

    fn directory() -> Directory {
        Directory::new(
            vec![
                pupil(1, "Jane", "Smith", None, false),
                pupil(2, "Oliver", "Brown", Some("Olly"), false),
                pupil(3, "Sam", "Cole", None, true),
                pupil(4, "Amy", "Lee", None, false),
                pupil(5, "Amy", "Lee", None, false),
            ],
            Vec::new(),
            Vec::new(),
        )
    }

    #[test]
    fn a_whole_name_on_the_roll_is_its_pupil_in_any_case() {
        let roll = Roll::new(&directory());
        assert_eq!(roll.find("Jane Smith"), Some(1));
        assert_eq!(roll.find("  JANE   smith. "), Some(1));
        assert_eq!(roll.find("\"Olly Brown\""), Some(2), "the preferred name with the surname");
        assert_eq!(roll.find("Oliver Brown"), Some(2));
    }

    #[test]
    fn a_name_not_on_the_roll_is_dropped() {
        let roll = Roll::new(&directory());
        assert_eq!(roll.find("Tom Price"), None, "nobody of that name");
        assert_eq!(roll.find("Sam Cole"), None, "a pupil who has left");
        assert_eq!(roll.find("Amy Lee"), None, "two pupils share the name: neither is meant for sure");
        assert_eq!(roll.find(""), None);
    }

    #[test]
    fn a_lookalike_or_partial_name_is_dropped() {
        let roll = Roll::new(&directory());
        for near in ["Jane", "Smith", "Jane Smyth", "Jane Smithson", "Janet Smith", "Jane A Smith", "Olly", "Ollie Brown", "J Smith"] {
            assert_eq!(roll.find(near), None, "{near:?}");
        }
    }

    #[test]
    fn a_placeholder_restored_is_matched_as_the_name_it_stood_for() {
        let dir = directory();
        let redacted = Redactor::new(&dir).redact("Jane Smith said Olly took her bag.");
        assert!(redacted.text.starts_with("PUPIL_1 said PUPIL_2"), "{}", redacted.text);
        let roll = Roll::new(&dir);
        assert_eq!(roll.find(&redacted.restore("PUPIL_1")), Some(1));
        // "Olly" alone was in the text: restored, it is still not a whole name.
        assert_eq!(roll.find(&redacted.restore("PUPIL_2")), None);
        assert_eq!(roll.find(&redacted.restore("PUPIL_9")), None, "a placeholder the text never had");
    }
}
