//! Sign-in secrets, all pure: the console key (derived from the reply key), emailed sign-in
//! links (HMAC-signed, expiring, bound to the browser that asked), CSRF tokens, TOTP (RFC 6238
//! through totp-rs), recovery codes and the sealing of TOTP secrets at rest. No I/O, no clock:
//! callers pass the time.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Wrong TOTP codes allowed before the second factor is locked.
pub const TOTP_LOCK_AFTER: i64 = 5;

/// The console's secret, derived from the reply key so no new key file is needed; every use
/// (links, CSRF, sealing) derives its own sub-key from it with a label.
#[derive(Clone)]
pub struct ConsoleKey([u8; 32]);

impl ConsoleKey {
    pub fn derive(reply_key: &[u8]) -> ConsoleKey {
        ConsoleKey(mac(reply_key, &[b"haven console v1"]))
    }

    fn sub(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut all: Vec<&[u8]> = vec![label.as_bytes()];
        all.extend_from_slice(parts);
        mac(&self.0, &all)
    }

    /// A sign-in link token for `staff_id`, valid until `expires`, for the browser `browser`.
    pub fn sign_link(&self, staff_id: i64, expires: DateTime<Utc>, nonce: &str, browser: &str) -> String {
        let exp = expires.timestamp();
        let tag = self.sub("link", &[staff_id.to_string().as_bytes(), exp.to_string().as_bytes(), nonce.as_bytes(), browser.as_bytes()]);
        format!("{staff_id}.{exp}.{nonce}.{}", hex::encode(tag))
    }

    /// Checks a link token against this browser and `now`: the staff id and nonce it carries.
    pub fn read_link(&self, token: &str, browser: &str, now: DateTime<Utc>) -> Result<(i64, String), LinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [staff, exp, nonce, tag] = parts[..] else {
            return Err(LinkError::Malformed);
        };
        let (Ok(staff_id), Ok(exp_s)) = (staff.parse::<i64>(), exp.parse::<i64>()) else {
            return Err(LinkError::Malformed);
        };
        let Ok(tag) = hex::decode(tag) else {
            return Err(LinkError::Malformed);
        };
        let mut m = <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.0).expect("any key length");
        for p in [b"link".as_slice(), staff.as_bytes(), exp.as_bytes(), nonce.as_bytes(), browser.as_bytes()] {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        // A link asked for in another browser fails here too: the browser id is signed.
        m.verify_slice(&tag).map_err(|_| LinkError::NotThisBrowser)?;
        if now.timestamp() > exp_s {
            return Err(LinkError::Expired);
        }
        Ok((staff_id, nonce.to_string()))
    }

    /// The CSRF token for forms shown to `holder` (a browser id or a session's token).
    pub fn csrf(&self, holder: &str) -> String {
        hex::encode(&self.sub("csrf", &[holder.as_bytes()])[..16])
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new_from_slice(&self.sub("seal", &[])).expect("32-byte key")
    }

    /// Seals a TOTP secret for the database (hex of nonce and ciphertext).
    pub fn seal(&self, secret: &[u8]) -> String {
        let nonce: [u8; 12] = rand::random();
        let ct = self.cipher().encrypt(Nonce::from_slice(&nonce), secret).expect("encryption cannot fail");
        format!("{}{}", hex::encode(nonce), hex::encode(ct))
    }

    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let bytes = hex::decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        self.cipher().decrypt(Nonce::from_slice(&bytes[..12]), &bytes[12..]).ok()
    }
}

/// Why a sign-in link was refused; each is shown to the person in plain words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("This sign-in link is not complete. Copy the whole link from the email, or ask for a new one.")]
    Malformed,
    #[error(
        "This sign-in link was asked for in a different browser. Open it in the browser where you typed your address, or ask for a new one here."
    )]
    NotThisBrowser,
    #[error("This sign-in link has expired (links work for a short time). Ask for a new one.")]
    Expired,
    #[error("This sign-in link has already been used. Each link works once: ask for a new one.")]
    Used,
}

impl LinkError {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkError::Malformed => "malformed",
            LinkError::NotThisBrowser => "other_browser",
            LinkError::Expired => "expired",
            LinkError::Used => "reused",
        }
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <HmacSha256 as hmac::KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// A fresh random token (hex), for browser ids, session ids and link nonces.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// SHA-256 (hex): how session ids and recovery codes are stored.
pub fn hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A new 160-bit TOTP secret.
pub fn new_totp_secret() -> Vec<u8> {
    rand::random::<[u8; 20]>().to_vec()
}

/// The RFC 6238 generator (SHA-1, 6 digits, 30 s, one step of skew) for `account`.
pub fn totp(secret: &[u8], account: &str) -> Option<totp_rs::Totp> {
    totp_rs::Builder::new().with_secret(secret.to_vec()).with_issuer(Some("Haven")).with_account_name(account.replace(':', "")).build().ok()
}

/// The time step `code` is right for at `now` (whitespace ignored), or None when it is wrong.
/// The caller must accept each step once (RFC 6238 section 5.2): a right code is not yet an
/// accepted one.
pub fn totp_step(secret: &[u8], code: &str, now: DateTime<Utc>) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let t = u64::try_from(now.timestamp()).ok()?;
    totp(secret, "x")?.check(&code, t).and_then(|step| i64::try_from(step).ok())
}

/// Ten recovery codes (shown once) and their hashes (stored).
pub fn recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..10)
        .map(|_| {
            let h = hex::encode(rand::random::<[u8; 5]>());
            format!("{}-{}", &h[..5], &h[5..])
        })
        .collect();
    let hashes = codes.iter().map(|c| hash(c)).collect();
    (codes, hashes)
}

/// A recovery code as typed (case and spaces ignored), hashed for lookup.
pub fn recovery_hash(typed: &str) -> String {
    hash(&typed.trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_link_works_only_in_its_browser_and_until_it_expires() {
        let k = ConsoleKey::derive(b"reply key");
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let link = k.sign_link(7, t0 + chrono::Duration::minutes(10), "n1", "browser-a");
        assert_eq!(k.read_link(&link, "browser-a", t0), Ok((7, "n1".to_string())));
        assert_eq!(k.read_link(&link, "browser-b", t0), Err(LinkError::NotThisBrowser));
        assert_eq!(k.read_link(&link, "browser-a", t0 + chrono::Duration::minutes(11)), Err(LinkError::Expired));
        assert_eq!(k.read_link(&link.replace("7.", "8."), "browser-a", t0), Err(LinkError::NotThisBrowser));
        assert_eq!(k.read_link("junk", "browser-a", t0), Err(LinkError::Malformed));
    }

    #[test]
    fn totp_secrets_are_sealed_and_codes_checked() {
        let k = ConsoleKey::derive(b"reply key");
        let secret = new_totp_secret();
        let sealed = k.seal(&secret);
        assert!(!sealed.contains(&hex::encode(&secret)));
        assert_eq!(k.open(&sealed), Some(secret.clone()));
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let code = totp(&secret, "a@b").unwrap().generate(now.timestamp() as u64).to_string();
        assert_eq!(totp_step(&secret, &code, now), Some(now.timestamp() / 30));
        assert_eq!(totp_step(&secret, &code, now + chrono::Duration::seconds(30)), Some(now.timestamp() / 30), "one step of skew");
        assert_eq!(totp_step(&secret, &code, now + chrono::Duration::minutes(5)), None);
    }
}
