//! The keyring's state (which key is current, which are retired: ids only, never key
//! material), and the two walks over every sealed value: re-sealing what is not under the
//! current key, a batch per transaction so a rotation can be interrupted at any moment and
//! resumed, and verifying that every value opens with a given ring.
//!
//! Sealed values live in `blobs.data` (raw messages and attachments), in the incident text
//! columns and in the disclosure log's copies; [`SEALED_TEXT`] lists the text columns and
//! [`SEALED_BYTES`] the other binary ones, so a new sealed column is one line here.

use super::directory::fields as directory;
use super::sar::fields as sar;
use super::{Result, Store, StoreError, on_pool, on_tx, to_us};
use crate::pipeline::fields;
use crate::seal::{KeyFiles, SealError, Sealer};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// Tables with sealed text columns: (table, [(column, field the value was sealed for)]).
/// Every such table has an integer primary key `id`.
const SEALED_TEXT: &[(&str, &[(&str, &str)])] = &[
    (
        "incidents",
        &[
            ("note", fields::NOTE),
            ("original_subject", fields::SUBJECT),
            ("body_text", fields::BODY_TEXT),
            ("body_html", fields::BODY_HTML),
            ("original_from", fields::ORIGINAL_FROM),
            ("original_name", fields::ORIGINAL_NAME),
            ("ai_suggestion", fields::AI_SUGGESTION),
        ],
    ),
    ("attachments", &[("filename", fields::FILENAME)]),
    ("actions", &[("outcome", fields::OUTCOME)]),
    (
        "pupils",
        &[
            ("upn", directory::UPN),
            ("first_name", directory::FIRST_NAME),
            ("last_name", directory::LAST_NAME),
            ("preferred_name", directory::PREFERRED_NAME),
            ("date_of_birth", directory::DATE_OF_BIRTH),
        ],
    ),
    ("contacts", &[("email", directory::CONTACT_EMAIL), ("name", directory::CONTACT_NAME)]),
    ("holds", &[("note", super::retention::fields::HOLD_NOTE), ("release_note", super::retention::fields::HOLD_RELEASE_NOTE)]),
    ("retention_reviews", &[("reason", super::retention::fields::REVIEW_REASON)]),
    ("disposals", &[("reason", super::disposal::fields::REASON), ("cancel_reason", super::disposal::fields::CANCEL_REASON)]),
    ("incident_marks", &[("summary", super::marks::fields::SUMMARY), ("impact", super::marks::fields::IMPACT)]),
    ("sar_requests", &[("subject_email", sar::SUBJECT_EMAIL), ("requester", sar::REQUESTER), ("extend_reason", sar::EXTEND_REASON)]),
    ("sar_items", &[("content", sar::ITEM), ("redactions", sar::REDACTIONS), ("reason", sar::REASON), ("consulted", sar::CONSULTED)]),
    ("transfer_cases", &[("destination", super::transfer::fields::DESTINATION), ("received_by", super::transfer::fields::RECEIVED_BY)]),
];

/// Tables with one sealed binary column besides `blobs`: (table, column, field). Every such
/// table has an integer primary key `id`.
const SEALED_BYTES: &[(&str, &str, &str)] = &[("sar_disclosures", "copy", sar::COPY)];

/// The columns outside the directory that a database from before migration 0007 kept in
/// clear: (table, column, field). The start-up pass seals them (`seal_clear`).
pub(super) const SEALED_CLEAR_BEFORE_0007: &[(&str, &str, &str)] = &[
    ("incidents", "original_from", fields::ORIGINAL_FROM),
    ("incidents", "original_name", fields::ORIGINAL_NAME),
    ("attachments", "filename", fields::FILENAME),
    ("actions", "outcome", fields::OUTCOME),
];

/// Rows of text per transaction.
const TEXT_BATCH: i64 = 500;
/// Blobs per transaction: each may be a whole message or attachment.
const BLOB_BATCH: i64 = 16;

/// What the database says of the keyring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyState {
    /// The key new values are sealed with; None: the one in `storage.key_file`.
    pub current: Option<String>,
    pub retired: Vec<String>,
}

/// How many sealed values a walk saw, by key id, and the first ones that did not open.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyWalk {
    /// Values under each key id, after the walk (re-sealed ones under the current key).
    pub by_key: std::collections::BTreeMap<String, u64>,
    /// Values re-sealed under the current key.
    pub resealed: u64,
    /// Values that did not open: (where, why), at most [`KeyWalk::SHOWN`] of them.
    pub failures: Vec<(String, String)>,
    pub failed: u64,
}

impl KeyWalk {
    pub const SHOWN: usize = 10;

    fn fail(&mut self, at: String, e: &SealError) {
        self.failed += 1;
        if self.failures.len() < Self::SHOWN {
            self.failures.push((at, e.to_string()));
        }
    }

    fn saw(&mut self, id: Option<String>) {
        *self.by_key.entry(id.unwrap_or_else(|| "unsealed".into())).or_default() += 1;
    }
}

/// Re-seal (`Some(sealer)`) or only open (`None`) each value.
#[derive(Clone, Copy)]
enum Walk<'a> {
    Reseal(&'a Sealer),
    Verify(&'a Sealer),
}

impl Walk<'_> {
    fn sealer(&self) -> &Sealer {
        match self {
            Walk::Reseal(s) | Walk::Verify(s) => s,
        }
    }
}

impl Store {
    pub async fn key_state(&self) -> Result<KeyState> {
        let rows: Vec<(String, String)> =
            on_pool!(self, |p| { sqlx::query_as("SELECT key_id, state FROM keyring ORDER BY key_id").fetch_all(p).await? });
        let mut state = KeyState::default();
        for (id, s) in rows {
            match s.as_str() {
                "current" => state.current = Some(id),
                "retired" => state.retired.push(id),
                _ => {}
            }
        }
        Ok(state)
    }

    /// Makes `id` the current key (the one before stays active, able to open what it sealed)
    /// and records it in the audit log, in one transaction.
    pub async fn make_key_current(&self, id: &str, previous: &str, actor: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |c| {
            for (key, state) in [(previous, "active"), (id, "current")] {
                sqlx::query(
                    "INSERT INTO keyring (key_id, state, changed_us) VALUES ($1, $2, $3) \
                     ON CONFLICT (key_id) DO UPDATE SET state = excluded.state, changed_us = excluded.changed_us",
                )
                .bind(key)
                .bind(state)
                .bind(to_us(now))
                .execute(&mut *c)
                .await?;
            }
            Ok::<(), StoreError>(())
        })?;
        tx.append_audit(
            now,
            actor,
            "key_current",
            "keyring",
            &format!("new values are sealed with key {id}; key {previous} stays in the ring"),
        )
        .await?;
        tx.commit().await
    }

    /// Marks `id` retired: it is no longer loaded into the ring.
    pub async fn retire_key(&self, id: &str, actor: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO keyring (key_id, state, changed_us) VALUES ($1, 'retired', $2) \
                 ON CONFLICT (key_id) DO UPDATE SET state = 'retired', changed_us = excluded.changed_us",
            )
            .bind(id)
            .bind(to_us(now))
            .execute(&mut *c)
            .await
            .map(|_| ())
        })?;
        tx.append_audit(now, actor, "key_retired", "keyring", &format!("key {id} retired after every sealed value opened without it"))
            .await?;
        tx.commit().await
    }

    /// Re-seals every value not under `sealer`'s current key, a batch per transaction; safe
    /// to interrupt and run again, and beside a running daemon. `progress` hears how many more
    /// rows were walked after each batch (out of [`Store::sealed_rows`]).
    pub async fn reseal_to_current(&self, sealer: &Sealer, progress: &mut dyn FnMut(u64)) -> Result<KeyWalk> {
        self.walk(Walk::Reseal(sealer), progress).await
    }

    /// Opens every sealed value with `sealer`'s ring, changing nothing; `progress` as for
    /// [`Store::reseal_to_current`].
    pub async fn verify_keys(&self, sealer: &Sealer, progress: &mut dyn FnMut(u64)) -> Result<KeyWalk> {
        self.walk(Walk::Verify(sealer), progress).await
    }

    /// The rows a key walk visits (blobs and every row of a table with sealed columns), for a
    /// progress bar's total.
    pub async fn sealed_rows(&self) -> Result<u64> {
        let mut total = 0u64;
        let tables = std::iter::once("blobs")
            .chain(SEALED_TEXT.iter().map(|(table, _)| *table))
            .chain(SEALED_BYTES.iter().map(|(table, _, _)| *table));
        for table in tables {
            let count = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = on_pool!(self, |p| sqlx::query_scalar(sqlx::AssertSqlSafe(count)).fetch_one(p).await)?;
            total += u64::try_from(n).unwrap_or(0);
        }
        Ok(total)
    }

    async fn walk(&self, how: Walk<'_>, progress: &mut dyn FnMut(u64)) -> Result<KeyWalk> {
        let mut out = KeyWalk::default();
        self.walk_blobs(how, &mut out, progress).await?;
        for (table, columns) in SEALED_TEXT {
            self.walk_text(how, table, columns, &mut out, progress).await?;
        }
        for (table, column, field) in SEALED_BYTES {
            self.walk_bytes(how, table, column, field, &mut out, progress).await?;
        }
        Ok(out)
    }

    /// [`Store::walk_blobs`] for a binary column of a table keyed by `id`.
    async fn walk_bytes(
        &self,
        how: Walk<'_>,
        table: &str,
        column: &str,
        field: &str,
        out: &mut KeyWalk,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let current = how.sealer().key_id();
        let select = format!("SELECT id, {column} FROM {table} WHERE id > $1 ORDER BY id LIMIT $2");
        let update = format!("UPDATE {table} SET {column} = $1 WHERE id = $2");
        let mut after = 0i64;
        loop {
            let mut tx = self.begin().await?;
            let walked = on_tx!(&mut tx, |c| {
                let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone())).bind(after).bind(BLOB_BATCH).fetch_all(&mut *c).await?;
                for r in &rows {
                    let row: i64 = r.try_get("id")?;
                    after = row;
                    let data: Vec<u8> = r.try_get(column)?;
                    let id = Sealer::sealed_key_id(&data);
                    match (&how, how.sealer().open(field, &data)) {
                        (_, Err(e)) => {
                            out.fail(format!("{table} {row} {column}"), &e);
                            out.saw(id);
                        }
                        (Walk::Reseal(s), Ok(plain)) if id.as_deref() != Some(current.as_str()) => {
                            sqlx::query(sqlx::AssertSqlSafe(update.clone())).bind(s.seal(field, &plain)).bind(row).execute(&mut *c).await?;
                            out.resealed += 1;
                            out.saw(Some(current.clone()));
                        }
                        (_, Ok(_)) => out.saw(id),
                    }
                }
                Ok::<usize, StoreError>(rows.len())
            })?;
            tx.commit().await?;
            progress(walked as u64);
            if walked == 0 {
                return Ok(());
            }
        }
    }

    async fn walk_blobs(&self, how: Walk<'_>, out: &mut KeyWalk, progress: &mut dyn FnMut(u64)) -> Result<()> {
        let current = how.sealer().key_id();
        let mut after = String::new();
        loop {
            let mut tx = self.begin().await?;
            let walked = on_tx!(&mut tx, |c| {
                let rows = sqlx::query(
                    "SELECT b.sha256, b.data, EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = b.sha256) AS is_message \
                     FROM blobs b WHERE b.sha256 > $1 ORDER BY b.sha256 LIMIT $2",
                )
                .bind(&after)
                .bind(BLOB_BATCH)
                .fetch_all(&mut *c)
                .await?;
                for r in &rows {
                    let sha: String = r.try_get("sha256")?;
                    let data: Vec<u8> = r.try_get("data")?;
                    let field = if r.try_get::<bool, _>("is_message")? { "message.raw" } else { "attachment" };
                    let id = Sealer::sealed_key_id(&data);
                    match (&how, how.sealer().open(field, &data)) {
                        (_, Err(e)) => {
                            out.fail(format!("blob {}", &sha[..sha.len().min(12)]), &e);
                            out.saw(id);
                        }
                        (Walk::Reseal(s), Ok(plain)) if id.as_deref() != Some(current.as_str()) => {
                            sqlx::query("UPDATE blobs SET data = $1 WHERE sha256 = $2")
                                .bind(s.seal(field, &plain))
                                .bind(&sha)
                                .execute(&mut *c)
                                .await?;
                            out.resealed += 1;
                            out.saw(Some(current.clone()));
                        }
                        (_, Ok(_)) => out.saw(id),
                    }
                    after = sha;
                }
                Ok::<usize, StoreError>(rows.len())
            })?;
            tx.commit().await?;
            progress(walked as u64);
            if walked == 0 {
                return Ok(());
            }
        }
    }

    async fn walk_text(
        &self,
        how: Walk<'_>,
        table: &str,
        columns: &[(&str, &str)],
        out: &mut KeyWalk,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let current = how.sealer().key_id();
        let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let select = format!("SELECT id, {} FROM {table} WHERE id > $1 ORDER BY id LIMIT $2", names.join(", "));
        let sets: Vec<String> = names.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
        let update = format!("UPDATE {table} SET {} WHERE id = ${}", sets.join(", "), names.len() + 1);
        let mut after = 0i64;
        loop {
            let mut tx = self.begin().await?;
            let walked = on_tx!(&mut tx, |c| {
                let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone())).bind(after).bind(TEXT_BATCH).fetch_all(&mut *c).await?;
                for r in &rows {
                    let row: i64 = r.try_get("id")?;
                    after = row;
                    let mut values: Vec<Option<String>> = Vec::with_capacity(columns.len());
                    let mut changed = false;
                    for (column, field) in columns {
                        let Some(value) = r.try_get::<Option<String>, _>(*column)? else {
                            values.push(None);
                            continue;
                        };
                        let id = Sealer::sealed_text_key_id(&value);
                        if id.is_none() {
                            // Kept in clear by a version before the column was sealed: the
                            // start-up pass seals it; no key is needed to read it.
                            out.saw(None);
                            values.push(Some(value));
                            continue;
                        }
                        match (&how, how.sealer().open_text(field, &value)) {
                            (_, Err(e)) => {
                                out.fail(format!("{table} {row} {column}"), &e);
                                out.saw(id);
                                values.push(Some(value));
                            }
                            (Walk::Reseal(s), Ok(_)) if id.as_deref() != Some(current.as_str()) => {
                                // The outer layer only: a pupil's own layer stays as it is.
                                values.push(Some(
                                    s.reseal_text(field, &value)
                                        .map_err(|source| StoreError::Sealed { what: format!("{table} {row} {column}"), source })?,
                                ));
                                changed = true;
                                out.resealed += 1;
                                out.saw(Some(current.clone()));
                            }
                            (_, Ok(_)) => {
                                out.saw(id);
                                values.push(Some(value));
                            }
                        }
                    }
                    if changed {
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(update.clone()));
                        for v in values {
                            q = q.bind(v);
                        }
                        q.bind(row).execute(&mut *c).await?;
                    }
                }
                Ok::<usize, StoreError>(rows.len())
            })?;
            tx.commit().await?;
            progress(walked as u64);
            if walked == 0 {
                return Ok(());
            }
        }
    }
}

/// The keyring as a running daemon holds it: the intake, the scheduler and the rules reload
/// share one, and it is re-read from the key files when the database names another current
/// key or retires one (`haven key rotate`/`retire` under a running daemon).
pub struct LiveKeys {
    files: Option<KeyFiles>,
    held: std::sync::RwLock<Sealer>,
    /// When the pupils' key folder had changed as of the last load.
    pupils_seen: std::sync::Mutex<Option<std::time::SystemTime>>,
}

impl std::fmt::Debug for LiveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LiveKeys({:?})", self.held())
    }
}

impl LiveKeys {
    /// `files`: where to re-read the ring from; None keeps `sealer` for good (tests, benches).
    pub fn new(sealer: Sealer, files: Option<KeyFiles>) -> LiveKeys {
        let pupils_seen = std::sync::Mutex::new(files.as_ref().and_then(KeyFiles::pupil_keys_changed));
        LiveKeys { files, held: std::sync::RwLock::new(sealer), pupils_seen }
    }

    /// The ring as of the last check.
    pub fn held(&self) -> Sealer {
        self.held.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The ring, brought up to date with the database first (one small query), and with the
    /// pupils' keys (a `stat` of their folder: an import adds keys, a disposal destroys one).
    pub async fn current(&self, store: &Store) -> Result<Sealer> {
        let held = self.held();
        let Some(files) = &self.files else {
            return Ok(held);
        };
        let state = store.key_state().await?;
        let current_matches = state.current.as_ref().is_none_or(|id| *id == held.key_id());
        let holds_retired = held.key_ids().iter().any(|id| state.retired.contains(id));
        let pupils_changed = files.pupil_keys_changed();
        let pupils_same = *self.pupils_seen.lock().unwrap_or_else(|e| e.into_inner()) == pupils_changed;
        if current_matches && !holds_retired && pupils_same {
            return Ok(held);
        }
        *self.pupils_seen.lock().unwrap_or_else(|e| e.into_inner()) = pupils_changed;
        let ring = Sealer::load(files, state.current.as_deref(), &state.retired)
            .map_err(|e| StoreError::Invalid(format!("the keyring changed but cannot be loaded: {e}")))?;
        tracing::info!(key = %ring.key_id(), "the keyring changed; sealing with the current key");
        *self.held.write().unwrap_or_else(|e| e.into_inner()) = ring.clone();
        Ok(ring)
    }
}
