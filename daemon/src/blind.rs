//! Blind indexes: equality look-ups on sealed values. A sealed value is different every time it
//! is sealed, so the database cannot compare two of them; beside it goes a keyed hash of the
//! normalised value (HMAC-SHA256, truncated to 128 bits, hex) that compares equal exactly when
//! the values do, and that tells someone without the key nothing (not even whether a guessed
//! address is present, as an unkeyed hash would).
//!
//! The HMAC key is derived from the storage key with its own label, so it never equals the
//! sealing key and one file still holds every secret. This module does not seal or open; see
//! `seal.rs`.

use crate::seal::{SealError, Sealer};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// The label that derives the blind-index key from the storage key.
const LABEL: &[u8] = b"haven blind index v1";

/// What an index is of; part of the hashed input, so equal strings of different kinds differ.
pub mod kinds {
    pub const UPN: &str = "pupil.upn";
    pub const CONTACT_EMAIL: &str = "contact.email";
    /// One word of a pupil's first, preferred or last name (see [`super::name_words`]).
    pub const NAME_WORD: &str = "pupil.name_word";
}

/// The words of a name as the name index holds them and a search looks them up: letters and
/// digits with inner apostrophes and hyphens, lower-cased (as `identify` reads names in text);
/// a word with an apostrophe or hyphen also gives its parts, so "Smith-Jones" is found by
/// "smith-jones", "smith" or "jones". Duplicates are removed; order is kept.
pub fn name_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |w: &str| {
        if !w.is_empty() && !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
    };
    for word in search_words(text) {
        push(&word);
        if word.contains(['\'', '-']) {
            for part in word.split(['\'', '-']) {
                push(part);
            }
        }
    }
    out
}

/// The words a search typed, spelt as [`name_words`] spells them (without splitting them).
pub fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '\'' | '’' | '-')))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase().replace('’', "'"))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Computes blind indexes under the school's storage key.
#[derive(Clone)]
pub struct BlindIndex {
    key: [u8; 32],
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(..)")
    }
}

impl BlindIndex {
    /// Derives the index key from the storage key: HMAC-SHA256(storage key, label).
    pub fn from_storage_key(storage_key: &[u8; 32]) -> BlindIndex {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(storage_key).expect("HMAC takes any key length");
        mac.update(LABEL);
        BlindIndex { key: mac.finalize().into_bytes().into() }
    }

    /// Reads the storage key file (the same file and checks as the [`Sealer`]: 64 hex
    /// characters, not readable by group or others).
    pub fn from_key_file(path: &Path) -> Result<BlindIndex, SealError> {
        crate::seal::check_key_file(path)?;
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SealError::ReadKey { path: shown.clone(), source })?;
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::BadKey(shown.clone()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey(shown))?;
        Ok(BlindIndex::from_storage_key(&key))
    }

    /// The index of `value` of `kind` (see [`kinds`]): trimmed and lower-cased first, so
    /// `Mary.Smith@Example.com ` and `mary.smith@example.com` look up the same row.
    pub fn index(&self, kind: &str, value: &str) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value.trim().to_lowercase().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// Opens a sealed text value, or returns a value written in clear before it was sealed (an
/// older row that the next start or directory import seals).
pub fn open_or_clear(sealer: &Sealer, field: &str, value: &str) -> Result<String, SealError> {
    if is_sealed(value) { sealer.open_text(field, value) } else { Ok(value.to_string()) }
}

/// Whether a text value is sealed (`enc1:…`).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with("enc1:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_equal_indexes_normalised_and_keyed() {
        let a = BlindIndex::from_storage_key(&[1u8; 32]);
        let b = BlindIndex::from_storage_key(&[2u8; 32]);
        let i = a.index(kinds::CONTACT_EMAIL, "mary.smith@example.com");
        assert_eq!(i, a.index(kinds::CONTACT_EMAIL, " Mary.Smith@Example.COM"));
        assert_eq!(i.len(), 32);
        assert_ne!(i, a.index(kinds::UPN, "mary.smith@example.com"), "kinds are kept apart");
        assert_ne!(i, b.index(kinds::CONTACT_EMAIL, "mary.smith@example.com"), "another key, another index");
        assert_ne!(i, a.index(kinds::CONTACT_EMAIL, "ann.smith@example.com"));
    }

    #[test]
    fn name_words_are_the_words_and_their_parts() {
        assert_eq!(name_words("  Mary-Ann  O’Brien "), ["mary-ann", "mary", "ann", "o'brien", "o", "brien"]);
        assert_eq!(name_words("Jane JANE"), ["jane"]);
        assert_eq!(search_words("jane, smith-jones!"), ["jane", "smith-jones"]);
        assert!(name_words(" - ").is_empty());
    }

    #[test]
    fn clear_values_from_before_sealing_still_open() {
        let s = Sealer::from_key(&[3u8; 32]);
        assert_eq!(open_or_clear(&s, "f", "Jane").unwrap(), "Jane");
        let sealed = s.seal_text("f", "Jane");
        assert!(is_sealed(&sealed));
        assert_eq!(open_or_clear(&s, "f", &sealed).unwrap(), "Jane");
        assert!(open_or_clear(&s, "g", &sealed).is_err());
    }
}
