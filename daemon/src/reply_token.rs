//! Signed reply tokens: the proof, carried in an alert's Reply-To address, that a reply is
//! about a given incident and was sent to a given member of staff. A triage question (which
//! pupil is this message about?) carries one the same way for the message it asks about, under
//! its own tag (`+t-`) and its own MAC input, so neither kind can stand for the other.
//!
//! A token is `INCIDENT-STAFF-MAC`, where MAC is HMAC-SHA256 over `"INCIDENT:STAFF"` with the
//! school's reply key, truncated to 16 bytes and written in lower-case base32 (26 characters),
//! so `safeguarding+r-12-7-<mac>@school.example` stays inside the 64-octet limit on local
//! parts and survives servers that fold the case of addresses. Pure: no I/O, no clock.
//! Subjects are never trusted for matching (SPEC "Alert emails"); only a token that verifies.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC kept in a token: 128 bits is far beyond guessing by sending emails.
const MAC_BYTES: usize = 16;

/// The plus tag that marks a token in an address's local part.
const TAG: &str = "+r-";

/// The plus tag of a triage question's token.
const TRIAGE_TAG: &str = "+t-";

/// The plus tag of a digest's token: it vouches only for the recipient (`STAFF-STAFF-MAC`).
const DIGEST_TAG: &str = "+d-";

/// The plus tag of a transfer receipt's token: it vouches for a transfer case (`CASE-CASE-MAC`),
/// and is written by the receiving school, who is not staff here.
const RECEIPT_TAG: &str = "+x-";

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn mac_for(key: &[u8], incident: i64, staff_id: i64) -> HmacSha256 {
    mac_over(key, &format!("{incident}:{staff_id}"))
}

fn triage_mac_for(key: &[u8], message: i64, staff_id: i64) -> HmacSha256 {
    mac_over(key, &format!("triage:{message}:{staff_id}"))
}

fn digest_mac_for(key: &[u8], staff: i64, staff_again: i64) -> HmacSha256 {
    mac_over(key, &format!("digest:{staff}:{staff_again}"))
}

fn receipt_mac_for(key: &[u8], case: i64, case_again: i64) -> HmacSha256 {
    mac_over(key, &format!("transfer-receipt:{case}:{case_again}"))
}

fn mac_over(key: &[u8], input: &str) -> HmacSha256 {
    // new_from_slice accepts keys of any length for HMAC; the error arm cannot happen.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => <HmacSha256 as KeyInit>::new(&Default::default()),
    };
    mac.update(input.as_bytes());
    mac
}

/// A reply key derived from another secret (for example the storage key), so the school has
/// no extra secret to keep; the derivation is one-way, so tokens reveal nothing of `master`.
pub fn derive_key(master: &[u8]) -> Vec<u8> {
    let mut mac = match HmacSha256::new_from_slice(master) {
        Ok(m) => m,
        Err(_) => <HmacSha256 as KeyInit>::new(&Default::default()),
    };
    mac.update(b"haven reply token key v1");
    mac.finalize().into_bytes().to_vec()
}

/// The token for replies about `incident` from the staff member `staff_id`.
pub fn sign(key: &[u8], incident: i64, staff_id: i64) -> String {
    encode(incident, staff_id, mac_for(key, incident, staff_id))
}

/// The token for answers to the triage question about `message` asked of `staff_id`.
pub fn sign_triage(key: &[u8], message: i64, staff_id: i64) -> String {
    encode(message, staff_id, triage_mac_for(key, message, staff_id))
}

/// The token for replies to a digest sent to `staff_id`.
pub fn sign_digest(key: &[u8], staff_id: i64) -> String {
    encode(staff_id, staff_id, digest_mac_for(key, staff_id, staff_id))
}

/// The token for the receipt of transfer case `case`.
pub fn sign_receipt(key: &[u8], case: i64) -> String {
    encode(case, case, receipt_mac_for(key, case, case))
}

/// The transfer case a receipt token vouches for; see [`verify`].
pub fn verify_receipt(key: &[u8], token: &str) -> Option<i64> {
    let (case, again) = decode_and_verify(token, |a, b| receipt_mac_for(key, a, b))?;
    (case == again).then_some(case)
}

/// The receipt token in an address such as `safeguarding+x-3-3-abc…@school.example`.
pub fn find_receipt_in_address(addr: &str) -> Option<&str> {
    find_tagged(addr, RECEIPT_TAG)
}

/// `local+x-TOKEN@domain`: where the receiving school's DSL sends the receipt.
pub fn receipt_address(intake: &str, token: &str) -> Option<String> {
    tagged_address(intake, RECEIPT_TAG, token)
}

fn encode(id: i64, staff_id: i64, mac: HmacSha256) -> String {
    let tag = mac.finalize().into_bytes();
    let short = tag.get(..MAC_BYTES).unwrap_or(&tag);
    format!("{id}-{staff_id}-{}", base32_encode(short))
}

/// The (incident, staff id) a token vouches for, or None when it is malformed or its MAC does
/// not verify under `key`. The comparison is constant-time. Case is ignored.
pub fn verify(key: &[u8], token: &str) -> Option<(i64, i64)> {
    decode_and_verify(token, |incident, staff| mac_for(key, incident, staff))
}

/// The (message, staff id) a triage token vouches for; see [`verify`].
pub fn verify_triage(key: &[u8], token: &str) -> Option<(i64, i64)> {
    decode_and_verify(token, |message, staff| triage_mac_for(key, message, staff))
}

/// The staff id a digest token vouches for; see [`verify`].
pub fn verify_digest(key: &[u8], token: &str) -> Option<i64> {
    let (staff, again) = decode_and_verify(token, |a, b| digest_mac_for(key, a, b))?;
    (staff == again).then_some(staff)
}

fn decode_and_verify(token: &str, mac_for: impl Fn(i64, i64) -> HmacSha256) -> Option<(i64, i64)> {
    let token = token.trim().to_ascii_lowercase();
    let mut parts = token.splitn(3, '-');
    let id = parse_id(parts.next()?)?;
    let staff_id = parse_id(parts.next()?)?;
    let mac = base32_decode(parts.next()?)?;
    if mac.len() != MAC_BYTES {
        return None;
    }
    mac_for(id, staff_id).verify_truncated_left(&mac).ok()?;
    Some((id, staff_id))
}

/// The token in an address such as `safeguarding+r-12-7-abc…@school.example` (angle brackets
/// and a display name are allowed around it), or None when the local part carries none.
pub fn find_in_address(addr: &str) -> Option<&str> {
    find_tagged(addr, TAG)
}

/// The triage token in an address such as `safeguarding+t-40-7-abc…@school.example`.
pub fn find_triage_in_address(addr: &str) -> Option<&str> {
    find_tagged(addr, TRIAGE_TAG)
}

/// The digest token in an address such as `safeguarding+d-7-7-abc…@school.example`.
pub fn find_digest_in_address(addr: &str) -> Option<&str> {
    find_tagged(addr, DIGEST_TAG)
}

/// `local+d-TOKEN@domain`: where replies to a digest go.
pub fn digest_reply_address(intake: &str, token: &str) -> Option<String> {
    tagged_address(intake, DIGEST_TAG, token)
}

fn find_tagged<'a>(addr: &'a str, tag: &str) -> Option<&'a str> {
    let addr = addr.trim();
    let addr = match (addr.rfind('<'), addr.rfind('>')) {
        (Some(open), Some(close)) if open < close => addr.get(open + 1..close)?,
        _ => addr,
    };
    let (local, _domain) = addr.rsplit_once('@')?;
    let at = local.find(tag)?;
    let token = local.get(at + tag.len()..)?;
    (!token.is_empty()).then_some(token)
}

/// `local+r-TOKEN@domain` from the intake address `local@domain`.
pub fn reply_address(intake: &str, token: &str) -> Option<String> {
    tagged_address(intake, TAG, token)
}

/// `local+t-TOKEN@domain`: where the answer to a triage question goes.
pub fn triage_reply_address(intake: &str, token: &str) -> Option<String> {
    tagged_address(intake, TRIAGE_TAG, token)
}

fn tagged_address(intake: &str, tag: &str, token: &str) -> Option<String> {
    let (local, domain) = intake.trim().rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some(format!("{local}{tag}{token}@{domain}"))
}

fn parse_id(s: &str) -> Option<i64> {
    // Only plain positive decimals: no signs, no leading zeros, so one token has one spelling.
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    // Leftover bits must be zero padding, so each MAC has exactly one spelling.
    if bits >= 5 || buffer & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a reply key of thirty-two bytes!";

    #[test]
    fn derived_keys_differ_by_master() {
        let a = derive_key(b"storage key one");
        assert_eq!(a.len(), 32);
        assert_eq!(a, derive_key(b"storage key one"));
        assert_ne!(a, derive_key(b"storage key two"));
        assert_ne!(a.as_slice(), b"storage key one".as_slice());
    }

    #[test]
    fn a_triage_token_is_not_an_incident_token() {
        let t = sign_triage(KEY, 12, 7);
        assert_eq!(verify_triage(KEY, &t), Some((12, 7)));
        assert_eq!(verify(KEY, &t), None, "a triage token must not vouch for incident 12");
        assert_eq!(verify_triage(KEY, &sign(KEY, 12, 7)), None, "nor an incident token for message 12");
        let addr = triage_reply_address("safeguarding@school.example", &t).unwrap();
        assert_eq!(find_triage_in_address(&addr), Some(t.as_str()));
        assert_eq!(find_in_address(&addr), None);
    }

    #[test]
    fn a_receipt_token_vouches_only_for_its_transfer_case() {
        let t = sign_receipt(KEY, 3);
        assert_eq!(verify_receipt(KEY, &t), Some(3));
        assert_eq!(verify(KEY, &t), None, "not an incident token");
        assert_eq!(verify_receipt(KEY, &sign(KEY, 3, 3)), None, "an incident token is not a receipt token");
        assert_eq!(verify_receipt(b"another school's key, 32 bytes!!", &t), None);
        let addr = receipt_address("safeguarding@school.example", &t).unwrap();
        assert_eq!(find_receipt_in_address(&format!("Haven <{addr}>")), Some(t.as_str()));
        assert_eq!(find_in_address(&addr), None);
    }

    #[test]
    fn round_trip() {
        let t = sign(KEY, 12, 7);
        assert!(t.starts_with("12-7-"), "{t}");
        assert_eq!(t.len(), "12-7-".len() + 26);
        assert_eq!(verify(KEY, &t), Some((12, 7)));
        assert_eq!(verify(KEY, &t.to_ascii_uppercase()), Some((12, 7)), "case folded by a server");
    }

    #[test]
    fn tampering_is_refused() {
        let t = sign(KEY, 12, 7);
        let mac = t.rsplit('-').next().unwrap_or_default();
        assert_eq!(verify(KEY, &format!("13-7-{mac}")), None, "another incident");
        assert_eq!(verify(KEY, &format!("12-8-{mac}")), None, "another member of staff");
        assert_eq!(verify(b"another key", &t), None);
        let mut flipped = t.clone().into_bytes();
        if let Some(last) = flipped.last_mut() {
            *last = if *last == b'a' { b'b' } else { b'a' };
        }
        assert_eq!(verify(KEY, &String::from_utf8(flipped).unwrap_or_default()), None);
        assert_eq!(verify(KEY, &t[..t.len() - 2]), None, "truncated");
        assert_eq!(verify(KEY, "12-7-"), None);
        assert_eq!(verify(KEY, "12-7"), None);
        assert_eq!(verify(KEY, ""), None);
        assert_eq!(verify(KEY, &format!("012-7-{mac}")), None, "one spelling per token");
    }

    #[test]
    fn finds_the_token_in_addresses() {
        let t = sign(KEY, 3, 4);
        let addr = reply_address("safeguarding@school.example", &t).unwrap_or_default();
        assert_eq!(addr, format!("safeguarding+r-{t}@school.example"));
        assert!(addr.split('@').next().unwrap_or_default().len() <= 64);
        assert_eq!(find_in_address(&addr), Some(t.as_str()));
        assert_eq!(find_in_address(&format!("\"Haven\" <{addr}>")), Some(t.as_str()));
        assert_eq!(find_in_address("safeguarding@school.example"), None);
        assert_eq!(find_in_address("safeguarding+r-@school.example"), None);
        assert_eq!(find_in_address("no-at-sign"), None);
    }

    #[test]
    fn base32_round_trips() {
        for n in 0..20u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base32_decode(&base32_encode(&bytes)), Some(bytes));
        }
    }

    #[test]
    fn a_digest_token_vouches_for_its_recipient_only() {
        let token = sign_digest(b"key", 7);
        assert_eq!(verify_digest(b"key", &token), Some(7));
        assert_eq!(verify_digest(b"other", &token), None);
        assert_eq!(verify(b"key", &token), None, "a digest token is not an alert token");
        let addr = digest_reply_address("safeguarding@school.example", &token).unwrap();
        assert_eq!(find_digest_in_address(&addr), Some(token.as_str()));
        assert_eq!(find_in_address(&addr), None);
    }
}
