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
//!
//! Crypto-shredding: a pupil may have a data key of their own ([`PupilKey`], a file in the
//! keyring folder's `pupils/`, itself sealed by the ring). A value sealed for a pupil
//! ([`Sealer::seal_text_for`]) is sealed under their key and then again under the ring (so key
//! rotation re-seals the outer layer as for every value); deleting their key file (a disposal)
//! leaves every copy of those values, in any backup of the database, unopenable.
//!
//! A ring opens a pupil's key file only when that pupil's key is first needed, and keeps it for
//! its life (every clone of the ring shares what was opened). A key file that is there but does
//! not open is an error, never a reason to seal under the ring alone: that would quietly lose
//! crypto-shredding for that pupil.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
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
    #[error("sealed under the own key of pupil #{0}, which a disposal destroyed")]
    Shredded(i64),
    /// Only a ring made in memory, which reads no key files, says this.
    #[error("sealed under the own key of pupil #{0}, which this keyring (made in memory, without key files) does not hold")]
    PupilKeyNotLoaded(i64),
    #[error("cannot write a pupil's key in {path}: {source}")]
    WriteKey { path: String, source: std::io::Error },
    #[error("the own key of pupil #{pupil} in {path} does not open ({source}); restore that file from your key backup")]
    PupilKeyFile { pupil: i64, path: String, source: Box<SealError> },
}

/// The text a value sealed for a pupil holds under the ring: `pk1:<pupil id>:` + base64 of
/// nonce and ciphertext under the pupil's key.
const PUPIL_PREFIX: &str = "pk1:";
/// The outer layer of a value sealed for a pupil is bound to this prefix + its field.
const PUPIL_FIELD: &str = "pupil:";
/// The field a pupil's key file is sealed for.
const PUPIL_KEY_FIELD: &str = "pupil.key";

/// One pupil's own data key.
#[derive(Clone)]
pub struct PupilKey {
    pupil: i64,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for PupilKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PupilKey(pupil #{})", self.pupil)
    }
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
    /// Pupils' own keys opened so far, by pupil id, shared by every clone of the ring.
    pupils: Arc<RwLock<HashMap<i64, PupilKey>>>,
    /// Where the ring was read from, to add pupils' keys; None for a ring made in memory.
    files: Option<KeyFiles>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(current key {}, {} in the ring)", self.key_id(), self.keys.len())
    }
}

impl Sealer {
    /// A ring of one key.
    pub fn from_key(key: &[u8; 32]) -> Sealer {
        Sealer { keys: Arc::new(vec![Key::new(key)]), current: 0, pupils: Arc::default(), files: None }
    }

    /// A ring of the one key in `path` (which must not be readable by others), with the
    /// pupils' keys beside it. A pupil's key sealed under another key of the ring (after a
    /// rotation) does not open with this one: their values do not open either.
    pub fn from_key_file(path: &Path) -> Result<Sealer, SealError> {
        let key = read_key_file(path)?;
        Ok(Sealer { keys: Arc::new(vec![key]), current: 0, pupils: Arc::default(), files: Some(KeyFiles::new(path)) })
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
        Ok(Sealer { keys: Arc::new(keys), current, pupils: Arc::default(), files: Some(files.clone()) })
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
        Some(Sealer { keys: Arc::new(keys), current, pupils: self.pupils.clone(), files: self.files.clone() })
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
        let bytes = text_bytes(sealed)?;
        let plain = match self.open(field, &bytes) {
            Err(SealError::Damaged) => {
                let inner = self.open(&format!("{PUPIL_FIELD}{field}"), &bytes).map_err(|_| SealError::Damaged)?;
                self.open_inner(field, &inner)?
            }
            other => other?,
        };
        String::from_utf8(plain).map_err(|_| SealError::Damaged)
    }

    /// Seals `plain` for pupil `pupil` under their own key when they have one (and then under
    /// the ring), otherwise (no key file, or `pupil` 0: about no one pupil) as
    /// [`Sealer::seal_text`]. A key file that does not
    /// open is an error: nothing is sealed for that pupil under the ring alone.
    pub fn seal_text_for(&self, pupil: i64, field: &str, plain: &str) -> Result<String, SealError> {
        let Some(key) = self.pupil_key(pupil)? else { return Ok(self.seal_text(field, plain)) };
        let nonce: [u8; 24] = rand::random();
        let ct =
            key.cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: field.as_bytes() }).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ct);
        let inner = format!("{PUPIL_PREFIX}{pupil}:{}", STANDARD.encode(bytes));
        Ok(format!("{TEXT_PREFIX}{}", STANDARD.encode(self.seal(&format!("{PUPIL_FIELD}{field}"), inner.as_bytes()))))
    }

    /// The pupil whose own key sealed `sealed` (under the ring), if any.
    pub fn sealed_for_pupil(&self, field: &str, sealed: &str) -> Option<i64> {
        let bytes = STANDARD.decode(sealed.strip_prefix(TEXT_PREFIX)?).ok()?;
        let inner = self.open(&format!("{PUPIL_FIELD}{field}"), &bytes).ok()?;
        let rest = std::str::from_utf8(&inner).ok()?.strip_prefix(PUPIL_PREFIX)?;
        rest.split_once(':')?.0.parse().ok()
    }

    /// Seals `sealed` again under the current key, keeping a pupil's layer as it is (what key
    /// rotation does: the pupil's key is not needed, and not changed).
    pub fn reseal_text(&self, field: &str, sealed: &str) -> Result<String, SealError> {
        let bytes = text_bytes(sealed)?;
        match self.open(field, &bytes) {
            Ok(plain) => Ok(self.seal_text(field, &String::from_utf8(plain).map_err(|_| SealError::Damaged)?)),
            Err(SealError::Damaged) => {
                let outer = format!("{PUPIL_FIELD}{field}");
                let inner = self.open(&outer, &bytes).map_err(|_| SealError::Damaged)?;
                Ok(format!("{TEXT_PREFIX}{}", STANDARD.encode(self.seal(&outer, &inner))))
            }
            Err(e) => Err(e),
        }
    }

    fn open_inner(&self, field: &str, inner: &[u8]) -> Result<Vec<u8>, SealError> {
        let text = std::str::from_utf8(inner).map_err(|_| SealError::Damaged)?;
        let (pupil, b64) = text.strip_prefix(PUPIL_PREFIX).and_then(|r| r.split_once(':')).ok_or(SealError::Damaged)?;
        let pupil: i64 = pupil.parse().map_err(|_| SealError::Damaged)?;
        let Some(key) = self.pupil_key(pupil)? else {
            // No key file: destroyed. A ring made in memory cannot tell, and says not loaded.
            return Err(if self.files.is_some() { SealError::Shredded(pupil) } else { SealError::PupilKeyNotLoaded(pupil) });
        };
        let bytes = STANDARD.decode(b64).map_err(|_| SealError::Damaged)?;
        if bytes.len() < 24 {
            return Err(SealError::Damaged);
        }
        key.cipher
            .decrypt(XNonce::from_slice(&bytes[..24]), Payload { msg: &bytes[24..], aad: field.as_bytes() })
            .map_err(|_| SealError::Damaged)
    }

    /// Whether pupil `pupil` has a key of their own (an error when their key file does not open).
    pub fn has_pupil_key(&self, pupil: i64) -> Result<bool, SealError> {
        self.pupil_key(pupil).map(|k| k.is_some())
    }

    /// Gives pupil `pupil` a key of their own (a new file in the keyring folder, sealed by the
    /// ring), unless they have one that opens; a key file there that does not open is an error,
    /// and is left as it is. Returns the ring holding the key. A ring made in memory (library
    /// tests, benches) has nowhere to keep one, and seals for nobody.
    pub fn with_pupil_key(self, pupil: i64) -> Result<Sealer, SealError> {
        let Some(files) = &self.files else { return Ok(self) };
        let mut opened = self.pupils.write().unwrap_or_else(|e| e.into_inner());
        if let std::collections::hash_map::Entry::Vacant(slot) = opened.entry(pupil) {
            slot.insert(files.add_pupil_key(&self, pupil)?);
        }
        drop(opened);
        Ok(self)
    }

    /// Pupil `pupil`'s own key: opened before, or read from their key file now; None when they
    /// have no key file, and for `pupil` 0 (what callers pass for a value about no one pupil:
    /// an incident about several, a pupil not yet written), without looking for a file. The
    /// file is read under the write lock, so a key destroyed meanwhile by
    /// [`Sealer::destroy_pupil_key`] is never kept.
    fn pupil_key(&self, pupil: i64) -> Result<Option<PupilKey>, SealError> {
        if pupil <= 0 {
            return Ok(None);
        }
        if let Some(key) = self.pupils.read().unwrap_or_else(|e| e.into_inner()).get(&pupil) {
            return Ok(Some(key.clone()));
        }
        let Some(files) = &self.files else { return Ok(None) };
        let mut opened = self.pupils.write().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = opened.get(&pupil) {
            return Ok(Some(key.clone()));
        }
        let key = files.read_pupil_key(self, pupil)?;
        if let Some(key) = &key {
            opened.insert(pupil, key.clone());
        }
        Ok(key)
    }

    /// Destroys pupil `pupil`'s own key: every value sealed under it, wherever a copy is, no
    /// longer opens, with this ring (and its clones) too. True when there was a key file to
    /// delete.
    pub fn destroy_pupil_key(&self, pupil: i64) -> Result<bool, SealError> {
        let mut opened = self.pupils.write().unwrap_or_else(|e| e.into_inner());
        let held = opened.remove(&pupil).is_some();
        match &self.files {
            Some(files) => files.remove_pupil_key(pupil),
            None => Ok(held),
        }
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

    /// Where pupils' own keys are kept: `pupils/` in the keyring folder, one file per pupil.
    pub fn pupil_dir(&self) -> PathBuf {
        self.ring_dir().join("pupils")
    }

    fn pupil_path(&self, pupil: i64) -> PathBuf {
        self.pupil_dir().join(format!("{pupil}.key"))
    }

    /// When the pupils' key folder last changed (a key added or destroyed), if it exists.
    pub fn pupil_keys_changed(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.pupil_dir()).and_then(|m| m.modified()).ok()
    }

    /// How many pupils' keys there are, each opened with `ring` (an error names one that does
    /// not open: `haven key retire` and `haven check` read every one).
    pub fn check_pupil_keys(&self, ring: &Sealer) -> Result<usize, SealError> {
        let dir = self.pupil_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(SealError::ReadKey { path: dir.display().to_string(), source }),
        };
        let mut n = 0;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some(pupil) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<i64>().ok()) else { continue };
            if path.extension().is_none_or(|x| x != "key") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| SealError::ReadKey { path: path.display().to_string(), source })?;
            open_pupil_key(ring, pupil, &path, &text)?;
            n += 1;
        }
        Ok(n)
    }

    /// Pupil `pupil`'s key, opened with `ring`; None when they have no key file.
    fn read_pupil_key(&self, ring: &Sealer, pupil: i64) -> Result<Option<PupilKey>, SealError> {
        let path = self.pupil_path(pupil);
        match std::fs::read_to_string(&path) {
            Ok(text) => open_pupil_key(ring, pupil, &path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SealError::ReadKey { path: path.display().to_string(), source }),
        }
    }

    /// Writes a new key for `pupil`, sealed by `ring` (mode 0600, synced with its folder); a
    /// file already there (a key made by an import that did not commit) is used as it is, and
    /// one that does not open is an error (never replaced: what it sealed opens with it alone).
    fn add_pupil_key(&self, ring: &Sealer, pupil: i64) -> Result<PupilKey, SealError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.pupil_dir();
        let failed = |source| SealError::WriteKey { path: dir.display().to_string(), source };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(failed)?;
        let path = self.pupil_path(pupil);
        if let Some(key) = self.read_pupil_key(ring, pupil)? {
            return Ok(key);
        }
        let key = Zeroizing::new(rand::random::<[u8; 32]>());
        let sealed = ring.seal_text(PUPIL_KEY_FIELD, &hex::encode(*key));
        let tmp = dir.join(format!(".{pupil}.tmp"));
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(failed)?;
        f.write_all(sealed.as_bytes()).and_then(|()| f.write_all(b"\n")).and_then(|()| f.sync_all()).map_err(failed)?;
        std::fs::rename(&tmp, &path).map_err(failed)?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(failed)?;
        Ok(PupilKey { pupil, cipher: XChaCha20Poly1305::new((&*key).into()) })
    }

    fn remove_pupil_key(&self, pupil: i64) -> Result<bool, SealError> {
        let dir = self.pupil_dir();
        let failed = |source| SealError::WriteKey { path: dir.display().to_string(), source };
        match std::fs::remove_file(self.pupil_path(pupil)) {
            Ok(()) => {
                std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(failed)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(failed(e)),
        }
    }

    /// Seals every pupil's key file again under `ring`'s current key (key rotation), each
    /// replaced atomically; returns how many.
    pub fn rewrap_pupil_keys(&self, ring: &Sealer) -> Result<u64, SealError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.pupil_dir();
        let failed = |source| SealError::WriteKey { path: dir.display().to_string(), source };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(failed(e)),
        };
        let mut n = 0;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "key") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(failed)?;
            let resealed = ring.reseal_text(PUPIL_KEY_FIELD, text.trim())?;
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(failed)?;
            f.write_all(resealed.as_bytes()).and_then(|()| f.write_all(b"\n")).and_then(|()| f.sync_all()).map_err(failed)?;
            std::fs::rename(&tmp, &path).map_err(failed)?;
            n += 1;
        }
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(failed)?;
        Ok(n)
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

/// Checks that `path` holds a key (64 hex characters) that others cannot read: what the blind
/// index and the daemon's start-up check need, without making a ring.
pub fn check_key_file(path: &Path) -> Result<(), SealError> {
    read_key_file(path).map(drop)
}

/// The bytes of sealed text.
fn text_bytes(sealed: &str) -> Result<Vec<u8>, SealError> {
    STANDARD.decode(sealed.strip_prefix(TEXT_PREFIX).ok_or(SealError::Damaged)?).map_err(|_| SealError::Damaged)
}

/// Pupil `pupil`'s key from `text`, the contents of their key file `path`, opened with `ring`
/// (under the ring alone: the pupils' keys held by `ring` are not touched).
fn open_pupil_key(ring: &Sealer, pupil: i64, path: &Path, text: &str) -> Result<PupilKey, SealError> {
    let shown = || path.display().to_string();
    let opened = text_bytes(text.trim()).and_then(|bytes| ring.open(PUPIL_KEY_FIELD, &bytes));
    let hex_key = Zeroizing::new(opened.map_err(|e| SealError::PupilKeyFile { pupil, path: shown(), source: Box::new(e) })?);
    let bytes = Zeroizing::new(hex::decode(&*hex_key).map_err(|_| SealError::BadKey(shown()))?);
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(bytes.as_slice().try_into().map_err(|_| SealError::BadKey(shown()))?);
    Ok(PupilKey { pupil, cipher: XChaCha20Poly1305::new((&*key).into()) })
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
    fn a_pupils_value_needs_their_key_and_survives_a_reseal() {
        let s = Sealer::from_key(&[7u8; 32]);
        assert!(!s.clone().with_pupil_key(4).unwrap().has_pupil_key(4).unwrap(), "a ring in memory keeps no pupil keys");
        s.pupils.write().unwrap().insert(4, PupilKey { pupil: 4, cipher: XChaCha20Poly1305::new((&[9u8; 32]).into()) });
        let sealed = s.seal_text_for(4, "pupil.first_name", "Oliver").unwrap();
        assert_eq!(s.open_text("pupil.first_name", &sealed).unwrap(), "Oliver");
        assert_eq!(s.sealed_for_pupil("pupil.first_name", &sealed), Some(4));
        assert!(matches!(s.open_text("pupil.last_name", &sealed), Err(SealError::Damaged)));
        let resealed = s.reseal_text("pupil.first_name", &sealed).unwrap();
        assert_ne!(resealed, sealed);
        assert_eq!(s.open_text("pupil.first_name", &resealed).unwrap(), "Oliver");
        // The same ring without the pupil's key: the value does not open.
        let without = Sealer::from_key(&[7u8; 32]);
        assert!(matches!(without.open_text("pupil.first_name", &sealed), Err(SealError::PupilKeyNotLoaded(4))));
        // A pupil without a key of their own: sealed as any value.
        let plain = s.seal_text_for(5, "pupil.first_name", "Jane").unwrap();
        assert_eq!(without.open_text("pupil.first_name", &plain).unwrap(), "Jane");
        assert_eq!(s.sealed_for_pupil("pupil.first_name", &plain), None);
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

    /// A ring of `files` in which pupils 1, 2 and 3 have keys, with one value sealed for each
    /// of them (in that order).
    fn ring_of_three(files: &KeyFiles) -> Vec<String> {
        write(&files.key_file, &[1; 32]);
        let mut ring = Sealer::load(files, None, &[]).unwrap();
        for pupil in 1..=3 {
            ring = ring.with_pupil_key(pupil).unwrap();
        }
        (1..=3).map(|p| ring.seal_text_for(p, "incident.note", &format!("about pupil {p}")).unwrap()).collect()
    }

    #[test]
    fn a_pupils_key_is_opened_when_first_needed_and_a_damaged_one_stops_only_that_pupil() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(&dir.path().join("haven.key"));
        let sealed = ring_of_three(&files);
        std::fs::write(files.pupil_path(3), "enc1:damaged\n").unwrap();
        let ring = Sealer::load(&files, None, &[]).unwrap();
        assert!(ring.pupils.read().unwrap().is_empty(), "loading the ring opens no pupil's key");
        assert_eq!(ring.open_text("incident.note", &sealed[0]).unwrap(), "about pupil 1");
        assert_eq!(ring.pupils.read().unwrap().keys().collect::<Vec<_>>(), vec![&1], "only the key used is opened");
        assert_eq!(ring.clone().open_text("incident.note", &sealed[1]).unwrap(), "about pupil 2");
        assert_eq!(ring.pupils.read().unwrap().len(), 2, "a clone of the ring keeps what it opened for the ring");
        let again = ring.seal_text_for(2, "incident.note", "more").unwrap();
        assert_eq!(ring.sealed_for_pupil("incident.note", &again), Some(2));
        // Pupil 3's key file is there but does not open: nothing is sealed for them, their
        // values do not open, and the error names the file.
        let shown = files.pupil_path(3).display().to_string();
        for err in [
            ring.seal_text_for(3, "incident.note", "x").unwrap_err(),
            ring.open_text("incident.note", &sealed[2]).unwrap_err(),
            ring.has_pupil_key(3).unwrap_err(),
            ring.clone().with_pupil_key(3).unwrap_err(),
            files.check_pupil_keys(&ring).unwrap_err(),
        ] {
            assert!(matches!(&err, SealError::PupilKeyFile { pupil: 3, path, .. } if *path == shown), "{err}");
            assert!(err.to_string().contains(&shown), "{err}");
        }
        assert_eq!(std::fs::read_to_string(files.pupil_path(3)).unwrap(), "enc1:damaged\n", "a key file that does not open is kept");
        // A file that cannot be read is an error too, never the ring alone.
        std::fs::create_dir(files.pupil_path(4)).unwrap();
        assert!(matches!(ring.seal_text_for(4, "incident.note", "x"), Err(SealError::ReadKey { .. })));
        // A pupil with no key file: sealed under the ring, as a value about nobody in particular.
        let plain = ring.seal_text_for(5, "incident.note", "about pupil 5").unwrap();
        assert_eq!(ring.sealed_for_pupil("incident.note", &plain), None);
        assert_eq!(Sealer::from_key(&[1; 32]).open_text("incident.note", &plain).unwrap(), "about pupil 5");
        assert!(!ring.has_pupil_key(5).unwrap());
        // Pupil 0, about no one pupil: under the ring, even with a file by that name there.
        std::fs::write(files.pupil_path(0), "enc1:damaged\n").unwrap();
        let nobody = ring.seal_text_for(0, "incident.note", "about several pupils").unwrap();
        assert_eq!(Sealer::from_key(&[1; 32]).open_text("incident.note", &nobody).unwrap(), "about several pupils");
    }

    #[test]
    fn a_destroyed_key_no_longer_opens_with_the_ring_that_held_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(&dir.path().join("haven.key"));
        let sealed = ring_of_three(&files);
        let ring = Sealer::load(&files, None, &[]).unwrap();
        let clone = ring.clone();
        assert_eq!(ring.open_text("incident.note", &sealed[1]).unwrap(), "about pupil 2");
        assert!(ring.destroy_pupil_key(2).unwrap());
        assert!(!files.pupil_path(2).exists());
        assert!(matches!(clone.open_text("incident.note", &sealed[1]), Err(SealError::Shredded(2))));
        assert!(matches!(ring.open_text("incident.note", &sealed[1]), Err(SealError::Shredded(2))));
        assert!(!ring.destroy_pupil_key(2).unwrap(), "no key file left to delete");
        assert_eq!(ring.open_text("incident.note", &sealed[0]).unwrap(), "about pupil 1");
    }

    #[test]
    fn a_ring_of_one_key_file_opens_no_pupils_key_sealed_under_another() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(&dir.path().join("haven.key"));
        let sealed = ring_of_three(&files);
        // A rotation: the pupils' key files are sealed again under the new key.
        let new_id = files.add_new_key().unwrap();
        let ring = Sealer::load(&files, Some(&new_id), &[]).unwrap();
        assert_eq!(files.rewrap_pupil_keys(&ring).unwrap(), 3);
        assert_eq!(ring.open_text("incident.note", &sealed[0]).unwrap(), "about pupil 1");
        // The old key alone still loads, and still opens what needs no pupil's key, but not
        // what needs a pupil's key it cannot open, and it seals nothing for them.
        let old = Sealer::from_key_file(&files.key_file).unwrap();
        let value = old.seal_text("incident.note", "about nobody");
        assert_eq!(old.open_text("incident.note", &value).unwrap(), "about nobody");
        let err = old.open_text("incident.note", &sealed[0]).unwrap_err();
        assert!(
            matches!(&err, SealError::PupilKeyFile { pupil: 1, source, .. } if matches!(**source, SealError::WrongKey(ref id) if *id == new_id)),
            "{err}"
        );
        assert!(old.seal_text_for(1, "incident.note", "x").is_err());
    }

    #[test]
    fn checking_the_key_file_opens_no_pupils_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(&dir.path().join("haven.key"));
        write(&files.key_file, &[1; 32]);
        std::fs::create_dir_all(files.pupil_dir()).unwrap();
        std::fs::write(files.pupil_path(5), "enc1:damaged\n").unwrap();
        check_key_file(&files.key_file).unwrap();
        crate::blind::BlindIndex::from_key_file(&files.key_file).unwrap();
        std::fs::set_permissions(&files.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(check_key_file(&files.key_file), Err(SealError::KeyPermissions(_))));
    }
}
