//! Encryption at rest: raw messages, attachments and incident text are sealed with
//! XChaCha20-Poly1305 before they reach the database, so the database holds only ciphertext
//! for message bodies and attachment contents.
//!
//! Sealed bytes are `version (1) | key id (4) | nonce (24) | ciphertext+tag`; sealed text is
//! `enc1:` followed by those bytes in base64. The key id (the first 4 bytes of the key's
//! SHA-256) lets `haven key rotate` find what still needs re-sealing. The associated data binds
//! a ciphertext to the field it was sealed for, so values cannot be swapped between fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::Path;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 24;
const TEXT_PREFIX: &str = "enc1:";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read the key file {path}: {source}")]
    ReadKey { path: String, source: std::io::Error },
    #[error("the key file {0} must hold 64 hexadecimal characters (32 bytes)")]
    BadKey(String),
    #[error("the key file {0} is readable by group or others; run: chmod 600 {0}")]
    KeyPermissions(String),
    #[error("sealed data was made with another key (id {0}); run `haven key rotate` with the old key")]
    WrongKey(String),
    #[error("sealed data is damaged or was altered")]
    Damaged,
}

/// The school's data key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    id: [u8; 4],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(key id {})", hex::encode(self.id))
    }
}

impl Sealer {
    pub fn from_key(key: &[u8; 32]) -> Sealer {
        let digest = Sha256::digest(key);
        let mut id = [0u8; 4];
        id.copy_from_slice(&digest[..4]);
        Sealer { cipher: XChaCha20Poly1305::new(key.into()), id }
    }

    /// Reads a hex key file, refusing one that others can read.
    pub fn from_key_file(path: &Path) -> Result<Sealer, SealError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SealError::ReadKey { path: shown.clone(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|source| SealError::ReadKey { path: shown.clone(), source })?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(SealError::KeyPermissions(shown));
            }
        }
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::BadKey(shown.clone()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey(shown))?;
        Ok(Sealer::from_key(&key))
    }

    /// A new random key, hex-encoded, for `haven init` and key rotation.
    pub fn generate_key_hex() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    pub fn key_id(&self) -> String {
        hex::encode(self.id)
    }

    pub fn seal(&self, field: &str, plain: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ct = self
            .cipher
            .encrypt(nonce, Payload { msg: plain, aad: field.as_bytes() })
            .unwrap_or_default(); // XChaCha20-Poly1305 encryption cannot fail for in-memory sizes
        let mut out = Vec::with_capacity(HEADER + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, field: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER || sealed[0] != VERSION {
            return Err(SealError::Damaged);
        }
        if sealed[1..5] != self.id {
            return Err(SealError::WrongKey(hex::encode(&sealed[1..5])));
        }
        let nonce = XNonce::from_slice(&sealed[5..HEADER]);
        self.cipher
            .decrypt(nonce, Payload { msg: &sealed[HEADER..], aad: field.as_bytes() })
            .map_err(|_| SealError::Damaged)
    }

    pub fn seal_text(&self, field: &str, plain: &str) -> String {
        format!("{TEXT_PREFIX}{}", STANDARD.encode(self.seal(field, plain.as_bytes())))
    }

    pub fn open_text(&self, field: &str, sealed: &str) -> Result<String, SealError> {
        let b64 = sealed.strip_prefix(TEXT_PREFIX).ok_or(SealError::Damaged)?;
        let bytes = STANDARD.decode(b64).map_err(|_| SealError::Damaged)?;
        String::from_utf8(self.open(field, &bytes)?).map_err(|_| SealError::Damaged)
    }

    /// Key id of sealed bytes, when they look sealed.
    pub fn sealed_key_id(sealed: &[u8]) -> Option<String> {
        (sealed.len() >= HEADER && sealed[0] == VERSION).then(|| hex::encode(&sealed[1..5]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_field_binding() {
        let s = Sealer::from_key(&[7u8; 32]);
        let sealed = s.seal_text("incident.body", "Jane told me");
        assert!(!sealed.contains("Jane"));
        assert_eq!(s.open_text("incident.body", &sealed).unwrap(), "Jane told me");
        assert!(matches!(s.open_text("incident.note", &sealed), Err(SealError::Damaged)));
    }

    #[test]
    fn another_key_is_named_not_garbled() {
        let a = Sealer::from_key(&[1u8; 32]);
        let b = Sealer::from_key(&[2u8; 32]);
        let sealed = a.seal("blob", b"x");
        assert!(matches!(b.open("blob", &sealed), Err(SealError::WrongKey(id)) if id == a.key_id()));
    }

    #[test]
    fn tampering_is_detected() {
        let s = Sealer::from_key(&[3u8; 32]);
        let mut sealed = s.seal("blob", b"attachment");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(s.open("blob", &sealed), Err(SealError::Damaged)));
    }
}
