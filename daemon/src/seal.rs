//! Encryption at rest: raw messages, attachments and incident text are sealed with
//! XChaCha20-Poly1305 before they reach the database, so the database holds only ciphertext
//! for message bodies and attachment contents.
//!
//! Sealed bytes are `version (1) | key id (4) | nonce (24) | ciphertext+tag`; sealed text is
//! `enc1:` followed by those bytes in base64. The key id (the first 4 bytes of the key's
//! SHA-256) names the key a value needs. The associated data binds a ciphertext to the field it
//! was sealed for, so values cannot be swapped between fields.
//!
//! Keys form a keyring ([`Sealer`]): a value opens with whichever key in the ring has its id,
//! and new values are sealed with the current key. The ring is read from key files on disk
//! ([`KeyFiles`]); which key is current, and which are retired, the database says
//! (`store::keyring`). Key bytes are wiped from memory when dropped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

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
    #[error("sealed data needs key {0}, which is not in the keyring; restore that key file from your key backup into the keyring folder")]
    WrongKey(String),
    #[error("the current key {0} named by the database is not in the keyring; restore that key file from your key backup")]
    NoCurrentKey(String),
    #[error("sealed data is damaged or was altered")]
    Damaged,
}

/// One key: its id and its cipher (which wipes the key when dropped).
struct Key {
    id: [u8; 4],
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8; 32]) -> Key {
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; 4];
        id.copy_from_slice(&digest[..4]);
        Key { id, cipher: XChaCha20Poly1305::new(bytes.into()) }
    }

    fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// The school's keyring: seals with the current key, opens with any key in the ring.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<Vec<Key>>,
    current: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(current key {}, {} in the ring)", self.key_id(), self.keys.len())
    }
}

impl Sealer {
    /// A ring of one key.
    pub fn from_key(key: &[u8; 32]) -> Sealer {
        Sealer { keys: Arc::new(vec![Key::new(key)]), current: 0 }
    }

    /// A ring of the one key in `path` (which must not be readable by others).
    pub fn from_key_file(path: &Path) -> Result<Sealer, SealError> {
        let key = read_key_file(path)?;
        Ok(Sealer { keys: Arc::new(vec![key]), current: 0 })
    }

    /// The ring of every key file in `files` except `retired` ids, sealing with `current` (the
    /// id the database names; without one, the key in `storage.key_file`).
    pub fn load(files: &KeyFiles, current: Option<&str>, retired: &[String]) -> Result<Sealer, SealError> {
        let first = read_key_file(&files.key_file)?;
        let default_current = first.id_hex();
        let mut keys = vec![first];
        for path in files.others()? {
            let key = read_key_file(&path)?;
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        keys.retain(|k| !retired.contains(&k.id_hex()));
        let want = current.map_or(default_current, str::to_string);
        let current = keys.iter().position(|k| k.id_hex() == want).ok_or(SealError::NoCurrentKey(want))?;
        Ok(Sealer { keys: Arc::new(keys), current })
    }

    /// A new random key, hex-encoded, for `haven init` and key rotation.
    pub fn generate_key_hex() -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*Zeroizing::new(rand::random::<[u8; 32]>())))
    }

    /// The id of the key new values are sealed with.
    pub fn key_id(&self) -> String {
        self.keys[self.current].id_hex()
    }

    /// Every key id in the ring, the current one first.
    pub fn key_ids(&self) -> Vec<String> {
        let current = self.key_id();
        let others = self.keys.iter().map(Key::id_hex).filter(|id| *id != current);
        std::iter::once(current.clone()).chain(others).collect()
    }

    /// The same ring without key `id` (which must not be the current one): what would remain
    /// once it is retired.
    pub fn without(&self, id: &str) -> Option<Sealer> {
        if self.key_id() == id {
            return None;
        }
        let current = self.key_id();
        let keys: Vec<Key> = self.keys.iter().filter(|k| k.id_hex() != id).map(|k| Key { id: k.id, cipher: k.cipher.clone() }).collect();
        let current = keys.iter().position(|k| k.id_hex() == current)?;
        Some(Sealer { keys: Arc::new(keys), current })
    }

    pub fn seal(&self, field: &str, plain: &[u8]) -> Vec<u8> {
        let key = &self.keys[self.current];
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ct = key.cipher.encrypt(nonce, Payload { msg: plain, aad: field.as_bytes() }).unwrap_or_default(); // XChaCha20-Poly1305 encryption cannot fail for in-memory sizes
        let mut out = Vec::with_capacity(HEADER + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, field: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER || sealed[0] != VERSION {
            return Err(SealError::Damaged);
        }
        let key = self.keys.iter().find(|k| sealed[1..5] == k.id).ok_or_else(|| SealError::WrongKey(hex::encode(&sealed[1..5])))?;
        let nonce = XNonce::from_slice(&sealed[5..HEADER]);
        key.cipher.decrypt(nonce, Payload { msg: &sealed[HEADER..], aad: field.as_bytes() }).map_err(|_| SealError::Damaged)
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

    /// Key id of sealed text, when it looks sealed (only the header is decoded).
    pub fn sealed_text_key_id(sealed: &str) -> Option<String> {
        let b64 = sealed.strip_prefix(TEXT_PREFIX)?;
        // 8 base64 characters carry the first 6 bytes: version and key id.
        let head = STANDARD.decode(b64.get(..8)?).ok()?;
        (head[0] == VERSION).then(|| hex::encode(&head[1..5]))
    }
}

/// Where the keyring's files are: `storage.key_file` (the first key), and the keyring folder
/// beside it (`secrets/haven.keyring/` for `secrets/haven.key`) where rotation adds a file
/// per key, named by its id. Files an older Haven's rotation left beside the key file
/// (`haven.key.old-ID`, `haven.key.new`) are read too.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub key_file: PathBuf,
}

impl KeyFiles {
    pub fn new(key_file: &Path) -> KeyFiles {
        KeyFiles { key_file: key_file.to_path_buf() }
    }

    /// The keyring folder.
    pub fn ring_dir(&self) -> PathBuf {
        let stem = self.key_file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "haven".into());
        self.key_file.with_file_name(format!("{stem}.keyring"))
    }

    /// The file a key with `id` is kept in.
    pub fn path_for(&self, id: &str) -> PathBuf {
        self.ring_dir().join(format!("{id}.key"))
    }

    /// Every key file but `key_file`, in name order.
    fn others(&self) -> Result<Vec<PathBuf>, SealError> {
        let mut found = Vec::new();
        let dir = self.ring_dir();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                found.extend(entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "key")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SealError::ReadKey { path: dir.display().to_string(), source }),
        }
        if let (Some(parent), Some(name)) = (self.key_file.parent(), self.key_file.file_name()) {
            let name = name.to_string_lossy();
            let (old, new) = (format!("{name}.old-"), format!("{name}.new"));
            if let Ok(entries) = std::fs::read_dir(if parent.as_os_str().is_empty() { Path::new(".") } else { parent }) {
                found.extend(
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| n.starts_with(&old) || n == new)),
                );
            }
        }
        found.sort();
        Ok(found)
    }

    /// Writes a new random key into the keyring folder (mode 0600, never over an existing
    /// file), synced to disk with its folder before this returns; returns its id.
    pub fn add_new_key(&self) -> std::io::Result<String> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.ring_dir();
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let key = Zeroizing::new(rand::random::<[u8; 32]>());
        let hex_key = Zeroizing::new(hex::encode(*key));
        let id = Key::new(&key).id_hex();
        let path = self.path_for(&id);
        let tmp = dir.join(format!(".{id}.tmp"));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(hex_key.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        // A hard link, not a rename: it fails rather than replace a file already there.
        std::fs::hard_link(&tmp, &path)?;
        std::fs::remove_file(&tmp)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(id)
    }
}

/// Reads a hex key file, refusing one that others can read.
fn read_key_file(path: &Path) -> Result<Key, SealError> {
    let shown = path.display().to_string();
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| SealError::ReadKey { path: shown.clone(), source })?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(|source| SealError::ReadKey { path: shown.clone(), source })?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SealError::KeyPermissions(shown));
        }
    }
    let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| SealError::BadKey(shown.clone()))?);
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(bytes.as_slice().try_into().map_err(|_| SealError::BadKey(shown))?);
    Ok(Key::new(&key))
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
        assert_eq!(Sealer::sealed_text_key_id(&sealed), Some(s.key_id()));
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

    fn write(path: &Path, key: &[u8; 32]) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
        writeln!(f, "{}", hex::encode(key)).unwrap();
    }

    #[test]
    fn a_ring_opens_values_of_every_key_and_seals_with_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(&dir.path().join("haven.key"));
        write(&files.key_file, &[1; 32]);
        let first = Sealer::load(&files, None, &[]).unwrap();
        let old_value = first.seal_text("incident.note", "before the rotation");
        let new_id = files.add_new_key().unwrap();
        assert!(files.path_for(&new_id).exists());
        let ring = Sealer::load(&files, Some(&new_id), &[]).unwrap();
        assert_eq!(ring.key_id(), new_id);
        assert_eq!(ring.key_ids().len(), 2);
        assert_eq!(ring.open_text("incident.note", &old_value).unwrap(), "before the rotation");
        let new_value = ring.seal_text("incident.note", "after");
        assert_eq!(Sealer::sealed_text_key_id(&new_value), Some(new_id.clone()));
        // Without the old key, old values no longer open; the current key cannot be dropped.
        let rest = ring.without(&first.key_id()).unwrap();
        assert!(matches!(rest.open_text("incident.note", &old_value), Err(SealError::WrongKey(_))));
        assert!(ring.without(&new_id).is_none());
        // Retired keys are left out of the ring.
        let retired = Sealer::load(&files, Some(&new_id), &[first.key_id()]).unwrap();
        assert_eq!(retired.key_ids(), vec![new_id.clone()]);
        // A current key the database names but no file holds is refused, with its id.
        let err = Sealer::load(&files, Some("deadbeef"), &[]).unwrap_err();
        assert!(err.to_string().contains("deadbeef"), "{err}");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(&dir.path().join("haven.key"));
        write(&files.key_file, &[1; 32]);
        let id = files.add_new_key().unwrap();
        std::fs::set_permissions(files.path_for(&id), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Sealer::load(&files, None, &[]).unwrap_err();
        assert!(matches!(err, SealError::KeyPermissions(_)), "{err}");
    }
}
