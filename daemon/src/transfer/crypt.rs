//! Haven-to-Haven sending: a bundle encrypted to the receiving school's pinned X25519 key, as
//! an armored block an email can carry. Pure: keys and bytes in, bytes out.
//!
//! Each school's key pair is derived from its storage key (its own label), so there is nothing
//! more to keep; `haven transfer key` prints the public half for other schools to pin. The
//! sender makes a one-time key pair; the shared secret, both public keys and a label give the
//! ChaCha20-Poly1305 key (HMAC-SHA256), so a block opens only with the receiving school's key
//! and any change to it is refused.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const BEGIN: &str = "-----BEGIN HAVEN TRANSFER-----";
pub const END: &str = "-----END HAVEN TRANSFER-----";
const LABEL: &[u8] = b"haven transfer encryption v1";

/// Why a block cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    #[error("no HAVEN TRANSFER block in the message")]
    NoBlock,
    #[error("the HAVEN TRANSFER block is damaged")]
    Damaged,
    #[error("the block was not encrypted to this school's transfer key, or was changed on the way")]
    NotForUs,
    #[error("the pinned key {0:?} is not a Haven transfer key (x25519:HEX)")]
    BadKey(String),
}

/// A school's transfer encryption key.
pub struct EncryptionKey {
    private: PrivateKey,
}

impl EncryptionKey {
    pub fn derive(storage_key: &[u8; 32]) -> EncryptionKey {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(storage_key).expect("HMAC takes any key length");
        mac.update(b"haven transfer encryption key v1");
        let seed = mac.finalize().into_bytes();
        let private = PrivateKey::from_private_key(&X25519, seed.as_slice()).expect("any 32 bytes are an X25519 key");
        EncryptionKey { private }
    }

    /// From the storage key file (its permissions checked as the keyring checks them).
    pub fn from_key_file(path: &std::path::Path) -> Result<EncryptionKey, crate::seal::SealError> {
        Ok(EncryptionKey::derive(&*super::bundle::storage_key(path)?))
    }

    /// `x25519:HEX`: what other schools pin.
    pub fn public(&self) -> String {
        let public = self.private.compute_public_key().map(|p| hex::encode(p.as_ref())).unwrap_or_default();
        format!("x25519:{public}")
    }
}

fn parse_public(pinned: &str) -> Result<Vec<u8>, CryptError> {
    pinned
        .trim()
        .strip_prefix("x25519:")
        .and_then(|h| hex::decode(h).ok())
        .filter(|k| k.len() == 32)
        .ok_or_else(|| CryptError::BadKey(pinned.to_string()))
}

fn aead_key(shared: &[u8], ephemeral: &[u8], recipient: &[u8]) -> ChaCha20Poly1305 {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(shared).expect("HMAC takes any key length");
    mac.update(LABEL);
    mac.update(ephemeral);
    mac.update(recipient);
    let key = mac.finalize().into_bytes();
    ChaCha20Poly1305::new_from_slice(key.as_slice()).expect("32 bytes")
}

/// `data` encrypted to the pinned key `recipient` (`x25519:HEX`), armored.
pub fn seal_to(recipient: &str, data: &[u8]) -> Result<String, CryptError> {
    let their = parse_public(recipient)?;
    let ephemeral = PrivateKey::generate(&X25519).map_err(|_| CryptError::Damaged)?;
    let eph_public = ephemeral.compute_public_key().map_err(|_| CryptError::Damaged)?.as_ref().to_vec();
    let shared =
        agreement::agree(&ephemeral, UnparsedPublicKey::new(&X25519, &their), CryptError::BadKey(recipient.into()), |k| Ok(k.to_vec()))?;
    let nonce: [u8; 12] = rand::random();
    let sealed = aead_key(&shared, &eph_public, &their)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: data, aad: LABEL })
        .map_err(|_| CryptError::Damaged)?;
    let mut bytes = eph_public;
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    let b64 = STANDARD.encode(bytes);
    let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
    Ok(format!("{BEGIN}\n{}\n{END}\n", lines.join("\n")))
}

/// Whether `text` carries a block.
pub fn has_block(text: &str) -> bool {
    text.contains(BEGIN) && text.contains(END)
}

/// The bytes of the block in `text`, opened with `key`.
pub fn open(key: &EncryptionKey, text: &str) -> Result<Vec<u8>, CryptError> {
    let start = text.find(BEGIN).ok_or(CryptError::NoBlock)? + BEGIN.len();
    let end = text[start..].find(END).ok_or(CryptError::NoBlock)? + start;
    let b64: String = text[start..end].chars().filter(|c| !c.is_whitespace() && *c != '>').collect();
    let bytes = STANDARD.decode(b64).map_err(|_| CryptError::Damaged)?;
    if bytes.len() < 32 + 12 + 16 {
        return Err(CryptError::Damaged);
    }
    let (eph, rest) = bytes.split_at(32);
    let (nonce, sealed) = rest.split_at(12);
    let ours = parse_public(&key.public())?;
    let shared = agreement::agree(&key.private, UnparsedPublicKey::new(&X25519, eph), CryptError::NotForUs, |k| Ok(k.to_vec()))?;
    aead_key(&shared, eph, &ours).decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: LABEL }).map_err(|_| CryptError::NotForUs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pinned_school_opens_it_and_a_change_is_refused() {
        let brook = EncryptionKey::derive(&[1; 32]);
        let other = EncryptionKey::derive(&[2; 32]);
        assert_eq!(brook.public(), EncryptionKey::derive(&[1; 32]).public(), "derived, so stable");
        let block = seal_to(&brook.public(), b"the bundle").unwrap();
        assert!(has_block(&block) && block.lines().all(|l| l.len() <= 76 || l.starts_with("-----")));
        assert_eq!(open(&brook, &format!("Hello,\n\n{block}\nThanks")).unwrap(), b"the bundle");
        assert_eq!(open(&other, &block), Err(CryptError::NotForUs));
        let changed = block.replacen('A', "B", 1).replacen('a', "b", 1);
        assert!(open(&brook, &changed).is_err());
        assert_eq!(open(&brook, "no block"), Err(CryptError::NoBlock));
        assert!(matches!(seal_to("ed25519:00", b"x"), Err(CryptError::BadKey(_))));
    }
}
