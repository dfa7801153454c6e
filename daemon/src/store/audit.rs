//! The append-only audit log: an HMAC-SHA256 chain under a key kept outside the database.
//!
//! Each entry's MAC covers its position (`seq`), its content, the operating-system user that
//! wrote it and the MAC of the entry before it, so an edited, inserted or deleted row breaks
//! the chain from that row on, and nobody without the audit key can compute a chain that
//! holds. Deleting the newest entries leaves a shorter chain that still holds; that is caught by
//! the head anchored outside the database: after each commit that appended entries, the entry
//! count and the newest MAC are written atomically to a file beside the keys (`audit.head`).
//!
//! The key is installed once per process ([`install_audit_key`], by the `haven` binary from
//! `storage.audit_key_file`). A process that never installs one (library tests, benches)
//! chains under a fixed, public key and anchors nothing: `haven audit verify`, which always
//! has the real key, reports such entries as tampered with.
//!
//! Entries written before the keyed chain (migration 0006) keep their unkeyed SHA-256 hashes;
//! verification accepts them only before the first keyed entry, whose MAC covers the last of
//! them, so they cannot be rewritten either once a keyed entry follows.

use super::{ROWS_PER_STATEMENT, Result, Store, StoreError, Tx, TxConn, from_us, insert_values, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};

type HmacSha256 = Hmac<Sha256>;

/// The digest an entry records for an incident its own transaction deleted: only a disposal
/// does (`incident_disposed`), and verification then expects the incident gone.
pub(crate) const DISPOSED: &str = "disposed";

/// The MAC before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `audit_log.chain` of entries written since migration 0006.
const KEYED: &str = "hmac-sha256";

/// `audit_log.chain` of entries written before it (the old unkeyed chain).
const LEGACY: &str = "sha256";

/// Entries read per query while verifying: the log is streamed, never loaded whole.
const VERIFY_PAGE: i64 = 1000;

/// The key of a process that installed none. Public on purpose: entries chained under it
/// fail `haven audit verify`.
const UNCONFIGURED_KEY: &[u8] = b"haven: no audit key was installed in this process";

/// The file name of the anchored head, beside the audit key.
pub const HEAD_FILE_NAME: &str = "audit.head";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The operating-system account that ran the process which wrote the entry.
    pub os_user: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// Result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    Intact {
        entries: u64,
    },
    /// The first entry whose stored MAC does not match its content and predecessor, or that
    /// disagrees with the head anchored outside the database.
    Broken {
        id: i64,
    },
    /// The chain holds but is shorter than the anchored head: the newest entries were deleted.
    Truncated {
        entries: u64,
        anchored: u64,
    },
    /// The chain holds but its head file is missing or unreadable, so a truncation cannot be
    /// ruled out.
    Unanchored {
        entries: u64,
        reason: String,
    },
    /// The chain holds, but an incident no longer matches the digest its newest audit entry
    /// recorded (who may see it, its category, priority or actions were changed outside Haven).
    RecordChanged {
        incident: i64,
        entry: i64,
    },
    /// The chain holds, but an incident it recorded is gone (deleted outside Haven).
    RecordMissing {
        incident: i64,
        entry: i64,
    },
}

/// Why the audit key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error(
        "storage.audit_key_file: cannot read {path}: {source} (haven init writes one; for an existing installation: umask 077; openssl rand -hex 32 > {path})"
    )]
    Read { path: String, source: std::io::Error },
    #[error("storage.audit_key_file: {0} may be read by other users; chmod 600 it")]
    Permissions(String),
    #[error("storage.audit_key_file: {0} must hold at least 32 bytes as hex")]
    Malformed(String),
}

/// The audit chain's key and where its head is anchored.
#[derive(Clone)]
pub struct AuditKey {
    key: Vec<u8>,
    head_file: Option<PathBuf>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("head_file", &self.head_file).finish_non_exhaustive()
    }
}

impl AuditKey {
    /// Reads a hex key (at least 32 bytes) that only its owner may read; the head is anchored
    /// in `audit.head` beside it.
    pub fn from_key_file(path: &Path) -> std::result::Result<AuditKey, AuditKeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuditKeyError::Read { path: shown.clone(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(|source| AuditKeyError::Read { path: shown.clone(), source })?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(AuditKeyError::Permissions(shown));
            }
        }
        let key = hex::decode(text.trim()).ok().filter(|k| k.len() >= 32).ok_or(AuditKeyError::Malformed(shown))?;
        Ok(AuditKey { key, head_file: Some(path.with_file_name(HEAD_FILE_NAME)) })
    }

    /// Where the chain's head is anchored, if anywhere.
    pub fn head_file(&self) -> Option<&Path> {
        self.head_file.as_deref()
    }
}

static AUDIT_KEY: OnceLock<AuditKey> = OnceLock::new();

/// Makes `key` the key every audit entry of this process is chained under and verified with.
/// Once per process: false (and nothing changed) if a key was already in use.
pub fn install_audit_key(key: AuditKey) -> bool {
    AUDIT_KEY.set(key).is_ok()
}

fn audit_key() -> &'static AuditKey {
    AUDIT_KEY.get_or_init(|| AuditKey { key: UNCONFIGURED_KEY.to_vec(), head_file: None })
}

/// The operating-system account running this process, as "name (uid N)": the real uid from
/// `/proc/self/status` (not `$USER`, which anyone can set) and its name from `/etc/passwd`.
pub fn os_user() -> &'static str {
    static OS_USER: LazyLock<String> = LazyLock::new(|| {
        let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| parse_real_uid(&s));
        match uid {
            Some(uid) => match std::fs::read_to_string("/etc/passwd").ok().and_then(|p| user_name(&p, uid)) {
                Some(name) => format!("{name} (uid {uid})"),
                None => format!("uid {uid}"),
            },
            None => "unknown".to_string(),
        }
    });
    &OS_USER
}

/// The real uid from the `Uid:` line of `/proc/PID/status` (real, effective, saved, fs).
fn parse_real_uid(status: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
}

/// The account name `/etc/passwd` gives `uid`.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// What one entry's MAC covers besides its predecessor's MAC.
#[derive(Clone, Copy)]
struct Fields<'a> {
    seq: i64,
    at_us: i64,
    actor: &'a str,
    os_user: &'a str,
    action: &'a str,
    subject: &'a str,
    detail: &'a str,
    /// `incident:ID` when the entry carries the digest of the incident it changed, else "".
    record: &'a str,
    record_digest: &'a str,
}

fn keyed_mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn entry_mac(key: &[u8], prev: &str, f: &Fields<'_>) -> String {
    hex::encode(entry_mac_bytes(keyed_mac(key), prev, f))
}

/// The MAC of an entry, from an HMAC already keyed (verification keys it once, not per entry).
fn entry_mac_bytes(mut mac: HmacSha256, prev: &str, f: &Fields<'_>) -> [u8; 32] {
    let (seq, at_us) = (f.seq.to_string(), f.at_us.to_string());
    for part in [prev, &seq, &at_us, f.actor, f.os_user, f.action, f.subject, f.detail, f.record, f.record_digest] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

/// The hash of an entry written before the keyed chain.
fn legacy_hash(prev: &str, f: &Fields<'_>) -> String {
    let mut h = Sha256::new();
    for part in [prev, &f.at_us.to_string(), f.actor, f.action, f.subject, f.detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The chain's head as anchored outside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Anchor {
    entries: i64,
    mac: String,
}

fn parse_anchor(text: &str) -> Option<Anchor> {
    let mut entries = None;
    let mut mac = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("entries", n)) => entries = n.trim().parse::<i64>().ok().filter(|n| *n >= 0),
            Some(("head", m)) => mac = Some(m.trim().to_string()).filter(|m| m.len() == 64),
            _ => {}
        }
    }
    Some(Anchor { entries: entries?, mac: mac? })
}

/// The anchored head; None when the file does not exist.
fn read_anchor(path: &Path) -> std::io::Result<Option<Anchor>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_anchor(&text)
            .map(Some)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an audit head (expected entries=N and head=MAC)")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn create_0600(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Moves the anchored head forward to `head`, atomically (temp file, fsync, rename, fsync of
/// the folder), under a lock so that concurrent writers never move it back.
fn advance_anchor(path: &Path, head: &Anchor) -> std::io::Result<()> {
    let lock = create_0600(&with_suffix(path, ".lock"), false)?;
    lock.lock()?;
    if read_anchor(path).ok().flatten().is_some_and(|a| a.entries >= head.entries) {
        return Ok(());
    }
    let tmp = with_suffix(path, ".tmp");
    let mut f = create_0600(&tmp, true)?;
    write!(f, "entries={}\nhead={}\n", head.entries, head.mac)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?.sync_all()?;
    }
    Ok(())
}

/// Writes the anchor for a fresh installation (`haven init`): no entries yet.
pub fn write_empty_anchor(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        f.mode(0o600);
    }
    let mut f = f.open(path)?;
    write!(f, "entries=0\nhead={GENESIS}\n")?;
    f.sync_all()
}

/// The chain's head as a transaction holding the chain's lock sees it.
#[derive(Debug)]
pub(crate) struct ChainHead {
    seq: i64,
    mac: String,
    /// Whether the chain in the database extends the anchored head, so that this
    /// transaction's head may replace it. A chain that does not (entries deleted, or the
    /// anchor missing once keyed entries exist) leaves the anchor as it is, for `audit verify`.
    extends_anchor: bool,
}

impl ChainHead {
    /// After commit: anchors this head outside the database, when it extends the anchor.
    pub(crate) async fn anchor(self) {
        let Some(path) = audit_key().head_file.clone() else {
            return;
        };
        if !self.extends_anchor {
            return;
        }
        let head = Anchor { entries: self.seq, mac: self.mac };
        let result = tokio::task::spawn_blocking(move || advance_anchor(&path, &head).map_err(|e| (path, e))).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err((path, e))) => {
                tracing::error!(file = %path.display(), error = %e, "cannot anchor the audit log's head; `haven audit verify` will report it")
            }
            Err(e) => tracing::error!(error = %e, "anchoring the audit log's head did not finish"),
        }
    }
}

/// One stored entry, as verification reads it.
struct StoredEntry {
    id: i64,
    seq: Option<i64>,
    at_us: i64,
    actor: String,
    os_user: String,
    action: String,
    subject: String,
    detail: String,
    record: String,
    record_digest: String,
    prev_hash: String,
    hash: String,
    chain: String,
}

/// What verification carries from one entry to the next.
struct ChainCheck {
    /// The HMAC under the audit key, keyed once and copied for each entry.
    keyed: HmacSha256,
    /// The MAC of the entry before, as stored (hex).
    prev: String,
    /// How many entries hold so far.
    n: i64,
    keyed_seen: bool,
    anchored: Option<Anchor>,
    /// Each incident's newest recorded digest and the entry that recorded it.
    recorded: std::collections::BTreeMap<i64, (DigestPrefix, i64)>,
}

impl ChainCheck {
    fn new(key: &[u8], anchored: Option<Anchor>) -> ChainCheck {
        ChainCheck {
            keyed: keyed_mac(key),
            prev: GENESIS.to_string(),
            n: 0,
            keyed_seen: false,
            anchored,
            recorded: std::collections::BTreeMap::new(),
        }
    }

    /// Checks `page`, the entries after those checked so far, in order: the id of the first
    /// that does not hold.
    fn check(&mut self, page: Vec<StoredEntry>) -> Option<i64> {
        for r in page {
            let n = self.n + 1;
            let fields = Fields {
                seq: n,
                at_us: r.at_us,
                actor: &r.actor,
                os_user: &r.os_user,
                action: &r.action,
                subject: &r.subject,
                detail: &r.detail,
                record: &r.record,
                record_digest: &r.record_digest,
            };
            let holds = r.seq == Some(n)
                && r.prev_hash == self.prev
                && match r.chain.as_str() {
                    KEYED => {
                        self.keyed_seen = true;
                        // Compared as the hex text it is stored as, without a String per entry.
                        let mut mac = [0u8; 64];
                        hex::encode_to_slice(entry_mac_bytes(self.keyed.clone(), &self.prev, &fields), &mut mac).is_ok()
                            && r.hash.as_bytes() == mac
                    }
                    LEGACY => !self.keyed_seen && r.os_user.is_empty() && r.record.is_empty() && r.hash == legacy_hash(&self.prev, &fields),
                    _ => false,
                }
                && self.anchored.as_ref().is_none_or(|a| a.entries != n || a.mac == r.hash);
            if !holds {
                return Some(r.id);
            }
            if let Some(incident) = r.record.strip_prefix("incident:").and_then(|i| i.parse::<i64>().ok()) {
                if r.record_digest == DISPOSED {
                    // Destroyed by a disposal this chain records: nothing to compare.
                    self.recorded.remove(&incident);
                } else {
                    self.recorded.insert(incident, (digest_prefix(&r.record_digest), r.id));
                }
            }
            self.prev = r.hash;
            self.n = n;
        }
        None
    }
}

/// An audit entry to append.
#[derive(Debug, Clone)]
pub(crate) struct AuditRecord<'a> {
    pub at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: String,
    pub detail: String,
    /// The incident this entry created or changed: the digest of its row as this transaction
    /// leaves it is chained with the entry.
    pub incident: Option<i64>,
}

/// One row of an incident's digest: the incident, and one of its actions if it has any.
struct DigestRow {
    id: i64,
    category: String,
    priority: String,
    visibility: String,
    action: Option<i64>,
    owner: Option<i64>,
    due_us: Option<i64>,
    has_outcome: i32,
    outcome_by: Option<i64>,
    outcome_us: Option<i64>,
}

/// The incidents (and their actions) whose digests are taken, by id range. SQLite reads the
/// incidents' columns from the `incidents_light` index, not their rows (migration 0042).
pub(super) const DIGEST_SQL: &str = "SELECT i.id, i.category, i.priority, i.visibility, a.id AS action_id, a.owner, a.due_us, \
     CASE WHEN a.outcome IS NULL THEN 0 ELSE 1 END AS has_outcome, a.outcome_by, a.outcome_us \
     FROM incidents i LEFT JOIN actions a ON a.incident_id = i.id \
     WHERE i.id >= $1 AND i.id <= $2 ORDER BY i.id, a.id";

/// Runs [`DIGEST_SQL`] for ids `lo..=hi` on `$conn` and evaluates to its rows.
macro_rules! digest_rows {
    ($conn:expr, $lo:expr, $hi:expr) => {
        sqlx::query(DIGEST_SQL)
            .bind($lo)
            .bind($hi)
            .fetch_all($conn)
            .await?
            .into_iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(DigestRow {
                    id: r.try_get("id")?,
                    category: r.try_get("category")?,
                    priority: r.try_get("priority")?,
                    visibility: r.try_get("visibility")?,
                    action: r.try_get("action_id")?,
                    owner: r.try_get("owner")?,
                    due_us: r.try_get("due_us")?,
                    has_outcome: r.try_get("has_outcome")?,
                    outcome_by: r.try_get("outcome_by")?,
                    outcome_us: r.try_get("outcome_us")?,
                })
            })
            .collect::<Result<Vec<DigestRow>, _>>()?
    };
}

/// Each incident's digest, in id order: SHA-256 over who may see it, its category and
/// priority, and each action's owner, due time and outcome (whether, by whom, when). The
/// sealed text is not covered: key rotation re-seals it, and the seal authenticates it.
/// The first 16 bytes of a hex SHA-256: what verification keeps of each incident's recorded
/// digest (a million incidents in 32 MB, not 130), still 128 bits against a forged match.
type DigestPrefix = [u8; 16];

fn digest_prefix(hex_digest: &str) -> DigestPrefix {
    let mut out = [0u8; 16];
    // A digest that is not hex (never written by Haven) keeps zeros, which no real one matches.
    let _ = hex::decode_to_slice(hex_digest.get(..32).unwrap_or_default(), &mut out);
    out
}

fn incident_digests(rows: &[DigestRow]) -> Vec<(i64, String)> {
    fn feed(h: &mut Sha256, parts: &[&str]) {
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p.as_bytes());
        }
    }
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let mut out = Vec::new();
    let mut current: Option<(i64, Sha256)> = None;
    for r in rows {
        if current.as_ref().map(|(id, _)| *id) != Some(r.id) {
            out.extend(current.take().map(|(id, h)| (id, hex::encode(h.finalize()))));
            let mut h = Sha256::new();
            feed(&mut h, &["incident", &r.id.to_string(), &r.category, &r.priority, &r.visibility]);
            current = Some((r.id, h));
        }
        if let (Some(action), Some((_, h))) = (r.action, current.as_mut()) {
            let parts = [action.to_string(), opt(r.owner), opt(r.due_us), r.has_outcome.to_string(), opt(r.outcome_by), opt(r.outcome_us)];
            feed(h, &["action", &parts[0], &parts[1], &parts[2], &parts[3], &parts[4], &parts[5]]);
        }
    }
    out.extend(current.map(|(id, h)| (id, hex::encode(h.finalize()))));
    out
}

impl Tx {
    /// Appends one entry chained to the newest. Call after the transaction's first write so
    /// that concurrent writers are already serialised (SQLite's write lock; on PostgreSQL an
    /// advisory transaction lock is taken here).
    pub async fn append_audit(&mut self, at: DateTime<Utc>, actor: &str, action: &str, subject: &str, detail: &str) -> Result<()> {
        let entry = AuditRecord { at, actor, action, subject: subject.to_string(), detail: detail.to_string(), incident: None };
        self.append_audits(std::slice::from_ref(&entry)).await
    }

    /// Appends an entry about a change to `incident` (subject `incident:ID`) that carries the
    /// digest of the incident as this transaction now has it.
    pub(crate) async fn append_incident_audit(
        &mut self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        incident: i64,
        detail: &str,
    ) -> Result<()> {
        let entry = AuditRecord {
            at,
            actor,
            action,
            subject: format!("incident:{incident}"),
            detail: detail.to_string(),
            incident: Some(incident),
        };
        self.append_audits(std::slice::from_ref(&entry)).await
    }

    /// The digests of `ids` as this transaction sees them.
    async fn digests_of(&mut self, ids: &[i64]) -> Result<std::collections::HashMap<i64, String>> {
        let (Some(lo), Some(hi)) = (ids.iter().min().copied(), ids.iter().max().copied()) else {
            return Ok(Default::default());
        };
        let rows = on_tx!(self, |c| digest_rows!(&mut *c, lo, hi));
        Ok(incident_digests(&rows).into_iter().filter(|(id, _)| ids.contains(id)).collect())
    }

    /// Appends entries in order, each chained to the one before, with one multi-row INSERT.
    pub(crate) async fn append_audits(&mut self, entries: &[AuditRecord<'_>]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = audit_key();
        let mut head = match self.audit_head.take() {
            Some(head) => head,
            None => self.read_chain_head(key).await?,
        };
        let os_user = os_user();
        let changed: Vec<i64> = entries.iter().filter_map(|e| e.incident).collect();
        let digests = self.digests_of(&changed).await?;
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            let at_us = to_us(e.at);
            let seq = head.seq + 1;
            let (record, record_digest) = match e.incident {
                // Not there any more: deleted by this transaction (a disposal).
                Some(id) => (format!("incident:{id}"), digests.get(&id).cloned().unwrap_or_else(|| DISPOSED.to_string())),
                None => (String::new(), String::new()),
            };
            let fields = Fields {
                seq,
                at_us,
                actor: e.actor,
                os_user,
                action: e.action,
                subject: &e.subject,
                detail: &e.detail,
                record: &record,
                record_digest: &record_digest,
            };
            let mac = entry_mac(&key.key, &head.mac, &fields);
            rows.push((seq, at_us, e, record, record_digest, std::mem::replace(&mut head.mac, mac.clone()), mac));
            head.seq = seq;
        }
        on_tx!(self, |c| {
            insert_values!(
                c,
                ROWS_PER_STATEMENT,
                "INSERT INTO audit_log (seq, at_us, actor, os_user, action, subject, detail, record, record_digest, prev_hash, hash, chain) ",
                rows,
                "",
                |b, row| {
                    let (seq, at_us, e, record, record_digest, prev, mac) = row;
                    b.push_bind(*seq)
                        .push_bind(*at_us)
                        .push_bind(e.actor.to_string())
                        .push_bind(os_user.to_string())
                        .push_bind(e.action.to_string())
                        .push_bind(e.subject.clone())
                        .push_bind(e.detail.clone())
                        .push_bind(record.clone())
                        .push_bind(record_digest.clone())
                        .push_bind(prev.clone())
                        .push_bind(mac.clone())
                        .push_bind(KEYED);
                }
            );
        });
        self.audit_head = Some(head);
        Ok(())
    }

    /// Takes the chain's lock (PostgreSQL; SQLite's write lock is already held), reads the
    /// newest entry and checks it against the anchored head.
    async fn read_chain_head(&mut self, key: &AuditKey) -> Result<ChainHead> {
        if let TxConn::Postgres(t) = &mut self.conn {
            sqlx::query("SELECT pg_advisory_xact_lock(7306041)").execute(&mut **t).await?;
        }
        let newest: Option<(i64, String, String)> = on_tx!(self, |c| {
            sqlx::query("SELECT seq, hash, chain FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *c)
                .await?
                .map(|r| Ok::<_, sqlx::Error>((r.try_get::<Option<i64>, _>("seq")?.unwrap_or(0), r.try_get("hash")?, r.try_get("chain")?)))
                .transpose()?
        });
        let (seq, mac, chain) = newest.unwrap_or_else(|| (0, GENESIS.to_string(), LEGACY.to_string()));
        let Some(path) = &key.head_file else {
            return Ok(ChainHead { seq, mac, extends_anchor: false });
        };
        let extends_anchor = match read_anchor(path) {
            // Not anchored yet: a new log, or the first keyed entry after an upgrade.
            Ok(None) if chain == LEGACY => true,
            Ok(None) => {
                tracing::error!(file = %path.display(), "the audit log's head file is missing; it is not recreated, and `haven audit verify` reports it");
                false
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "the audit log's head file is unreadable; it is left as it is");
                false
            }
            Ok(Some(a)) if a.entries > seq => false,
            Ok(Some(a)) if a.entries == seq => a.mac == mac,
            Ok(Some(a)) if a.entries == 0 => a.mac == GENESIS,
            Ok(Some(a)) => {
                let at: Option<String> = on_tx!(self, |c| {
                    sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
                        .bind(a.entries)
                        .fetch_optional(&mut *c)
                        .await?
                        .map(|r| r.try_get("hash"))
                        .transpose()?
                });
                at.is_some_and(|m| m == a.mac)
            }
        };
        if !extends_anchor {
            tracing::error!(
                entries = seq,
                "the audit log does not extend the head anchored outside the database (entries deleted or rewritten?); the anchor is kept for `haven audit verify`"
            );
        }
        Ok(ChainHead { seq, mac, extends_anchor })
    }
}

impl Store {
    /// Appends one audit entry in its own transaction.
    pub async fn audit(&self, at: DateTime<Utc>, actor: &str, action: &str, subject: &str, detail: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.append_audit(at, actor, action, subject, detail).await?;
        tx.commit().await
    }

    /// Streams the chain, a page at a time, and names the first entry that does not hold; then
    /// compares its length and head with the head anchored outside the database.
    pub async fn verify_audit(&self) -> Result<AuditVerdict> {
        self.verify_audit_with_progress(&mut |_| {}).await
    }

    /// [`Store::verify_audit`], telling `progress` how many entries hold so far after each page.
    /// Memory stays flat with the log's length: two pages of entries (the next is read while
    /// one is checked), and per recorded incident only a 16-byte prefix of its digest and the
    /// entry that recorded it.
    pub async fn verify_audit_with_progress(&self, progress: &mut dyn FnMut(u64)) -> Result<AuditVerdict> {
        let key = audit_key();
        let anchor = key.head_file.as_deref().map(read_anchor);
        let anchored = match &anchor {
            Some(Ok(Some(a))) => Some(a.clone()),
            _ => None,
        };
        let mut chain = ChainCheck::new(&key.key, anchored);
        let mut page = self.audit_page(i64::MIN).await?;
        loop {
            // The next page is read (by the database, on another thread) while this one is
            // checked: the MACs and the reading overlap instead of taking turns.
            let next = match page.last() {
                Some(last) if page.len() == VERIFY_PAGE as usize => {
                    let (store, after) = (self.clone(), last.id);
                    Some(tokio::spawn(async move { store.audit_page(after).await }))
                }
                _ => None,
            };
            if let Some(id) = chain.check(page) {
                if let Some(next) = next {
                    next.abort();
                }
                return Ok(AuditVerdict::Broken { id });
            }
            progress(chain.n as u64);
            let Some(next) = next else { break };
            page = next.await.map_err(|e| StoreError::Invalid(format!("reading the audit log stopped: {e}")))??;
        }
        let (entries, n) = (chain.n as u64, chain.n);
        match anchor {
            Some(Ok(Some(a))) if a.entries > n => {
                return Ok(AuditVerdict::Truncated { entries, anchored: a.entries as u64 });
            }
            Some(Ok(None)) if chain.keyed_seen => {
                return Ok(AuditVerdict::Unanchored { entries, reason: "the head file is missing".into() });
            }
            Some(Err(e)) => {
                return Ok(AuditVerdict::Unanchored { entries, reason: format!("the head file is unreadable: {e}") });
            }
            _ => {}
        }
        Ok(self.check_records(&chain.recorded).await?.unwrap_or(AuditVerdict::Intact { entries }))
    }

    /// Up to [`VERIFY_PAGE`] entries after entry `after`, in order.
    async fn audit_page(&self, after: i64) -> Result<Vec<StoredEntry>> {
        on_pool!(self, |p| {
            Ok(sqlx::query(
                "SELECT id, seq, at_us, actor, os_user, action, subject, detail, record, record_digest, prev_hash, hash, chain \
                 FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(StoredEntry {
                    id: r.try_get("id")?,
                    seq: r.try_get("seq")?,
                    at_us: r.try_get("at_us")?,
                    actor: r.try_get("actor")?,
                    os_user: r.try_get("os_user")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                    record: r.try_get("record")?,
                    record_digest: r.try_get("record_digest")?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                    chain: r.try_get("chain")?,
                })
            })
            .collect::<Result<_, _>>()?)
        })
    }

    /// Compares each recorded incident with the digest its newest audit entry holds, a
    /// thousand incidents at a time, in id order; the first that disagrees.
    async fn check_records(&self, recorded: &std::collections::BTreeMap<i64, (DigestPrefix, i64)>) -> Result<Option<AuditVerdict>> {
        let ids: Vec<i64> = recorded.keys().copied().collect();
        let chunks: Vec<&[i64]> = ids.chunks(VERIFY_PAGE as usize).collect();
        // As for the chain: the next thousand incidents are read while these are compared.
        let read = |chunk: &[i64]| {
            let (store, lo, hi) = (self.clone(), chunk[0], chunk[chunk.len() - 1]);
            tokio::spawn(async move { store.digest_page(lo, hi).await })
        };
        let mut next = chunks.first().map(|c| read(c));
        for (i, chunk) in chunks.iter().enumerate() {
            let Some(reading) = next.take() else { break };
            let rows = reading.await.map_err(|e| StoreError::Invalid(format!("reading the incidents stopped: {e}")))??;
            next = chunks.get(i + 1).map(|c| read(c));
            let now: std::collections::HashMap<i64, DigestPrefix> =
                incident_digests(&rows).into_iter().map(|(id, d)| (id, digest_prefix(&d))).collect();
            let differs = chunk.iter().find_map(|id| {
                let (digest, entry) = (recorded[id].0, recorded[id].1);
                match now.get(id) {
                    None => Some(AuditVerdict::RecordMissing { incident: *id, entry }),
                    Some(d) if *d != digest => Some(AuditVerdict::RecordChanged { incident: *id, entry }),
                    Some(_) => None,
                }
            });
            if differs.is_some() {
                if let Some(reading) = next {
                    reading.abort();
                }
                return Ok(differs);
            }
        }
        Ok(None)
    }

    /// The digest rows of incidents `lo..=hi`.
    async fn digest_page(&self, lo: i64, hi: i64) -> Result<Vec<DigestRow>> {
        Ok(on_pool!(self, |p| digest_rows!(p, lo, hi)))
    }

    /// The chain's head: how many entries it holds and the newest entry's MAC. Digest emails
    /// carry it, so a log cut short (and its anchor file with it) is still contradicted by
    /// what the DSL team received.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        on_pool!(self, |p| { Ok(sqlx::query_as::<_, (i64, String)>(AUDIT_HEAD).fetch_optional(p).await?) })
    }

    /// The newest audit entries, newest last.
    pub async fn audit_tail(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        on_pool!(self, |p| {
            let rows = sqlx::query("SELECT id, at_us, actor, os_user, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(p)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows.into_iter().rev() {
                out.push(AuditEntry {
                    id: r.try_get("id")?,
                    at: from_us(r.try_get("at_us")?),
                    actor: r.try_get("actor")?,
                    os_user: r.try_get("os_user")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                });
            }
            Ok(out)
        })
    }
}

/// The chain's newest entry, from the sequence index.
pub(super) const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_uid_and_its_name_are_read() {
        let status = "Name:\thaven\nUmask:\t0022\nUid:\t1001\t0\t0\t0\nGid:\t1001\t1001\t1001\t1001\n";
        assert_eq!(parse_real_uid(status), Some(1001));
        let passwd = "root:x:0:0:root:/root:/bin/bash\nmrs.k:x:1001:1001::/home/mrs.k:/bin/sh\n";
        assert_eq!(user_name(passwd, 1001).as_deref(), Some("mrs.k"));
        assert_eq!(user_name(passwd, 7), None);
    }

    #[test]
    fn an_anchor_round_trips_and_nonsense_is_refused() {
        let mac = "ab".repeat(32);
        assert_eq!(parse_anchor(&format!("entries=12\nhead={mac}\n")), Some(Anchor { entries: 12, mac }));
        assert_eq!(parse_anchor("entries=12\n"), None);
        assert_eq!(parse_anchor("entries=-1\nhead=00\n"), None);
    }

    #[test]
    fn the_mac_depends_on_the_key_and_every_field() {
        let f =
            Fields { seq: 1, at_us: 5, actor: "a", os_user: "u", action: "x", subject: "s", detail: "d", record: "", record_digest: "" };
        let m = entry_mac(b"key one", GENESIS, &f);
        assert_ne!(m, entry_mac(b"key two", GENESIS, &f));
        assert_ne!(m, entry_mac(b"key one", GENESIS, &Fields { os_user: "v", ..f }));
        assert_ne!(m, entry_mac(b"key one", GENESIS, &Fields { seq: 2, ..f }));
        assert_ne!(m, entry_mac(b"key one", GENESIS, &Fields { record_digest: "00", ..f }));
    }
}
