//! A transfer bundle's manifest: every file with its SHA-256 and size, who sent it for whom,
//! where the receipt goes, signed with the school's Ed25519 transfer key. Pure: it signs and
//! checks bytes handed to it; reading and writing folders and archives is the CLI's job.
//!
//! The signing key is derived from the storage key (HMAC-SHA256, its own label), so the school
//! has no other secret to keep; the public key travels in the manifest and its fingerprint on
//! the front sheet, for the receiving DSL to compare with the one the sending DSL gives them.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest's file name; `manifest.sig` beside it holds the signature (hex).
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
/// The format written in every manifest.
pub const FORMAT: &str = "haven-transfer-1";

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The pupil as the receiving school matches them (by UPN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PupilId {
    pub upn: String,
    pub name: String,
    pub date_of_birth: Option<String>,
}

/// What the manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The sending school's case number.
    pub case: i64,
    pub from_school: String,
    pub to_school: Option<String>,
    pub pupil: PupilId,
    pub left_on: String,
    pub prepared_at: String,
    /// "NAME, ROLE" of the DSL who prepared it.
    pub prepared_by: String,
    /// Where the receipt goes: the sending school's intake with the signed receipt token.
    pub receipt_to: String,
    /// `ed25519:` and the public key in hex.
    pub signing_key: String,
    pub items: Vec<Item>,
}

impl Manifest {
    pub fn fingerprint(&self) -> String {
        fingerprint(self.signing_key.strip_prefix("ed25519:").unwrap_or(&self.signing_key))
    }
}

/// The first 16 hex digits of the SHA-256 of a public key (hex), in groups of four.
fn fingerprint(public_hex: &str) -> String {
    let h = hex::encode(Sha256::digest(public_hex.as_bytes()));
    h.as_bytes()[..16].chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// Why a bundle is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle has no {0}: it is not a Haven transfer bundle, or it is incomplete")]
    Missing(&'static str),
    #[error("{MANIFEST} cannot be read: {0}")]
    Manifest(String),
    #[error("the manifest's signature does not verify: the manifest was changed after it was signed")]
    BadSignature,
    #[error("{0}: its SHA-256 is not the one in the manifest: the file was changed")]
    Altered(String),
    #[error("{0}: listed in the manifest but not in the bundle")]
    Absent(String),
    #[error("{0}: in the bundle but not in the manifest")]
    Extra(String),
    #[error("the bundle was signed with key {found}, not the sending school's key {expected}")]
    WrongKey { expected: String, found: String },
}

/// The school's transfer signing key.
pub struct SigningKey {
    pair: aws_lc_rs::signature::Ed25519KeyPair,
}

impl SigningKey {
    /// Derived from the 32-byte storage key.
    pub fn derive(storage_key: &[u8; 32]) -> SigningKey {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(storage_key).expect("HMAC takes any key length");
        mac.update(b"haven transfer signing key v1");
        let seed = mac.finalize().into_bytes();
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_slice()).expect("any 32 bytes are an Ed25519 seed");
        SigningKey { pair }
    }

    /// From the storage key file (its permissions checked as the keyring checks them).
    pub fn from_key_file(path: &Path) -> Result<SigningKey, crate::seal::SealError> {
        Ok(SigningKey::derive(&*storage_key(path)?))
    }

    /// `ed25519:HEX`, as the manifest carries it.
    pub fn public(&self) -> String {
        use aws_lc_rs::signature::KeyPair;
        format!("ed25519:{}", hex::encode(self.pair.public_key().as_ref()))
    }

    pub fn fingerprint(&self) -> String {
        let public = self.public();
        fingerprint(public.strip_prefix("ed25519:").unwrap_or(&public))
    }

    /// The signature of `bytes`, hex.
    pub fn sign(&self, bytes: &[u8]) -> String {
        hex::encode(self.pair.sign(bytes).as_ref())
    }
}

/// The storage key in `path` (its permissions checked as the keyring checks them), from which
/// the transfer keys are derived.
pub fn storage_key(path: &Path) -> Result<zeroize::Zeroizing<[u8; 32]>, crate::seal::SealError> {
    use crate::seal::SealError;
    crate::seal::Sealer::from_key_file(path)?;
    let shown = path.display().to_string();
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| SealError::ReadKey { path: shown.clone(), source })?);
    let bytes = zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| SealError::BadKey(shown.clone()))?);
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SealError::BadKey(shown))?;
    Ok(zeroize::Zeroizing::new(key))
}

/// The item for one file.
pub fn item(path: &str, data: &[u8]) -> Item {
    Item { path: path.to_string(), sha256: hex::encode(Sha256::digest(data)), size: data.len() as u64 }
}

/// The manifest's bytes (pretty JSON) and their signature.
pub fn seal(manifest: &Manifest, key: &SigningKey) -> (Vec<u8>, String) {
    let mut bytes = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    bytes.push(b'\n');
    let sig = key.sign(&bytes);
    (bytes, sig)
}

/// Checks a bundle's files (path → bytes): the manifest's signature under the key it names
/// (and, when given, that this is the key expected), then every file against its SHA-256 and
/// size, with no file missing and none added. The manifest, when all of it holds.
pub fn verify(files: &BTreeMap<String, Vec<u8>>, expected_key: Option<&str>) -> Result<Manifest, BundleError> {
    let bytes = files.get(MANIFEST).ok_or(BundleError::Missing(MANIFEST))?;
    let sig = files.get(SIGNATURE).ok_or(BundleError::Missing(SIGNATURE))?;
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| BundleError::Manifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(BundleError::Manifest(format!("format {:?}, expected {FORMAT:?}", manifest.format)));
    }
    let public = manifest.signing_key.strip_prefix("ed25519:").and_then(|h| hex::decode(h).ok()).ok_or(BundleError::BadSignature)?;
    let sig = std::str::from_utf8(sig).ok().and_then(|s| hex::decode(s.trim()).ok()).ok_or(BundleError::BadSignature)?;
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &public)
        .verify(bytes, &sig)
        .map_err(|_| BundleError::BadSignature)?;
    if let Some(expected) = expected_key {
        let found = manifest.fingerprint();
        if !found.eq_ignore_ascii_case(expected.trim()) {
            return Err(BundleError::WrongKey { expected: expected.trim().to_string(), found });
        }
    }
    for it in &manifest.items {
        let data = files.get(&it.path).ok_or_else(|| BundleError::Absent(it.path.clone()))?;
        if hex::encode(Sha256::digest(data)) != it.sha256 || data.len() as u64 != it.size {
            return Err(BundleError::Altered(it.path.clone()));
        }
    }
    if let Some(extra) = files.keys().find(|p| *p != MANIFEST && *p != SIGNATURE && !manifest.items.iter().any(|it| &it.path == *p)) {
        return Err(BundleError::Extra(extra.clone()));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> BTreeMap<String, Vec<u8>> {
        let key = SigningKey::derive(&[7; 32]);
        let files = [("chronology.json", b"{}".to_vec()), ("attachments/1-a.pdf", b"%PDF".to_vec())];
        let manifest = Manifest {
            format: FORMAT.into(),
            case: 3,
            from_school: "Test School".into(),
            to_school: Some("Brook Academy".into()),
            pupil: PupilId { upn: "A100000000001".into(), name: "Jane Smith".into(), date_of_birth: None },
            left_on: "2026-10-23".into(),
            prepared_at: "2026-10-26T09:00:00+00:00".into(),
            prepared_by: "Dana Lead, DSL".into(),
            receipt_to: "safeguarding+x-3-3-abc@school.example".into(),
            signing_key: key.public(),
            items: files.iter().map(|(p, d)| item(p, d)).collect(),
        };
        let (bytes, sig) = seal(&manifest, &key);
        let mut out: BTreeMap<String, Vec<u8>> = files.into_iter().map(|(p, d)| (p.to_string(), d)).collect();
        out.insert(MANIFEST.into(), bytes);
        out.insert(SIGNATURE.into(), sig.into_bytes());
        out
    }

    #[test]
    fn a_whole_bundle_verifies_and_any_change_is_named() {
        let good = bundle();
        let m = verify(&good, None).expect("verifies");
        assert_eq!(m.case, 3);
        assert_eq!(verify(&good, Some(&m.fingerprint())).unwrap().case, 3);
        assert_eq!(m.fingerprint(), SigningKey::derive(&[7; 32]).fingerprint());
        assert!(matches!(verify(&good, Some("0000-0000-0000-0000")), Err(BundleError::WrongKey { .. })));

        let mut altered = good.clone();
        altered.insert("attachments/1-a.pdf".into(), b"%PDF changed".to_vec());
        assert_eq!(verify(&altered, None), Err(BundleError::Altered("attachments/1-a.pdf".into())));

        let mut relisted = good.clone();
        let text = String::from_utf8(relisted[MANIFEST].clone()).unwrap().replace("Brook Academy", "Elsewhere");
        relisted.insert(MANIFEST.into(), text.into_bytes());
        assert_eq!(verify(&relisted, None), Err(BundleError::BadSignature));

        let mut missing = good.clone();
        missing.remove("chronology.json");
        assert_eq!(verify(&missing, None), Err(BundleError::Absent("chronology.json".into())));

        let mut extra = good.clone();
        extra.insert("note.txt".into(), b"hi".to_vec());
        assert_eq!(verify(&extra, None), Err(BundleError::Extra("note.txt".into())));

        let mut unsigned = good;
        unsigned.remove(SIGNATURE);
        assert_eq!(verify(&unsigned, None), Err(BundleError::Missing(SIGNATURE)));
    }
}
