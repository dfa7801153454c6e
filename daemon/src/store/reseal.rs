//! Re-sealing everything encrypted at rest under a new key (`haven key rotate`), in one
//! transaction: either every value moves to the new key or none does. Also the start-up pass
//! that seals what an older version kept in clear.

use super::{Result, Store, StoreError, on_tx};
use crate::blind::BlindIndex;
use crate::seal::Sealer;
use sqlx::Row;

/// Converts one sealed value: (field name, sealed bytes) → newly sealed bytes.
pub type ResealBytes<'a> = dyn Fn(&str, &[u8]) -> std::result::Result<Vec<u8>, String> + Send + Sync + 'a;
/// Converts one sealed text value the same way.
pub type ResealText<'a> = dyn Fn(&str, &str) -> std::result::Result<String, String> + Send + Sync + 'a;

/// How many values were re-sealed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResealCount {
    pub blobs: u64,
    pub incidents: u64,
    /// Other sealed values: outcomes, attachment names, senders, the directory.
    pub values: u64,
}

/// Sealed text columns beyond the incident's own: (table, column, field name). Values still
/// in clear (rows from before migration 0007) are left for the start-up pass that seals them.
const SEALED_COLUMNS: &[(&str, &str, &str)] = &[
    ("incidents", "original_from", crate::pipeline::fields::ORIGINAL_FROM),
    ("incidents", "original_name", crate::pipeline::fields::ORIGINAL_NAME),
    ("attachments", "filename", crate::pipeline::fields::FILENAME),
    ("actions", "outcome", crate::pipeline::fields::OUTCOME),
    ("pupils", "upn", super::directory::fields::UPN),
    ("pupils", "first_name", super::directory::fields::FIRST_NAME),
    ("pupils", "last_name", super::directory::fields::LAST_NAME),
    ("pupils", "preferred_name", super::directory::fields::PREFERRED_NAME),
    ("pupils", "date_of_birth", super::directory::fields::DATE_OF_BIRTH),
    ("contacts", "email", super::directory::fields::CONTACT_EMAIL),
    ("contacts", "name", super::directory::fields::CONTACT_NAME),
];

impl Store {
    /// Re-seals every blob (raw messages: field `message.raw` when referenced by a message,
    /// else `attachment`), the sealed incident columns and the other sealed columns. Blind
    /// indexes are rewritten under the new key at the next directory import, which matches
    /// rows by their opened values.
    pub async fn reseal_all(&self, bytes: &ResealBytes<'_>, text: &ResealText<'_>) -> Result<ResealCount> {
        let mut tx = self.begin().await?;
        let mut count = ResealCount::default();
        let bad = |e: String| StoreError::Invalid(e);
        on_tx!(&mut tx, |c| {
            let rows = sqlx::query(
                "SELECT b.sha256, b.data, EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = b.sha256) AS is_message FROM blobs b",
            )
            .fetch_all(&mut *c)
            .await?;
            for r in rows {
                let sha: String = r.try_get("sha256")?;
                let data: Vec<u8> = r.try_get("data")?;
                let is_message: bool = r.try_get("is_message")?;
                let field = if is_message { "message.raw" } else { "attachment" };
                let new = bytes(field, &data).map_err(bad)?;
                sqlx::query("UPDATE blobs SET data = $1 WHERE sha256 = $2")
                    .bind(new)
                    .bind(&sha)
                    .execute(&mut *c)
                    .await?;
                count.blobs += 1;
            }
            let rows = sqlx::query("SELECT id, note, original_subject, body_text, body_html FROM incidents")
                .fetch_all(&mut *c)
                .await?;
            for r in rows {
                let id: i64 = r.try_get("id")?;
                let opt = |field: &str, v: Option<String>| v.map(|v| text(field, &v)).transpose();
                let note = opt("incident.note", r.try_get("note")?).map_err(bad)?;
                let subject = opt("incident.original_subject", r.try_get("original_subject")?).map_err(bad)?;
                let body = text("incident.body_text", &r.try_get::<String, _>("body_text")?).map_err(bad)?;
                let html = opt("incident.body_html", r.try_get("body_html")?).map_err(bad)?;
                sqlx::query(
                    "UPDATE incidents SET note = $1, original_subject = $2, body_text = $3, body_html = $4 WHERE id = $5",
                )
                .bind(note)
                .bind(subject)
                .bind(body)
                .bind(html)
                .bind(id)
                .execute(&mut *c)
                .await?;
                count.incidents += 1;
            }
            for (table, column, field) in SEALED_COLUMNS {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT id, {column} AS v FROM {table} WHERE {column} LIKE 'enc1:%'"
                )))
                .fetch_all(&mut *c)
                .await?;
                for r in rows {
                    let id: i64 = r.try_get("id")?;
                    let new = text(field, &r.try_get::<String, _>("v")?).map_err(bad)?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET {column} = $1 WHERE id = $2")))
                        .bind(new)
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                    count.values += 1;
                }
            }
            Ok::<(), StoreError>(())
        })?;
        tx.commit().await?;
        Ok(count)
    }
}

impl Store {
    /// Seals what a database from before migration 0007 still holds in clear: the directory
    /// (with its blind indexes), outcomes, attachment names and senders; and deletes the text of
    /// emails already sent or dead-lettered. Run at start; does nothing once done. Returns how
    /// many values it sealed or deleted.
    pub async fn seal_clear_values(&self, sealer: &Sealer, blind: &BlindIndex) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut done = super::directory::seal_clear_directory(&mut tx, sealer, blind).await?;
        on_tx!(&mut tx, |c| {
            for (table, column, field) in SEALED_COLUMNS.iter().filter(|(t, _, _)| !matches!(*t, "pupils" | "contacts")) {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT id, {column} AS v FROM {table} WHERE {column} IS NOT NULL AND {column} NOT LIKE 'enc1:%'"
                )))
                .fetch_all(&mut *c)
                .await?;
                for r in rows {
                    let id: i64 = r.try_get("id")?;
                    let sealed = sealer.seal_text(field, &r.try_get::<String, _>("v")?);
                    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET {column} = $1 WHERE id = $2")))
                        .bind(sealed)
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                    done += 1;
                }
            }
            done += sqlx::query("UPDATE outbox SET subject = '', body = '' WHERE state <> 'pending' AND (subject <> '' OR body <> '')")
                .execute(&mut *c)
                .await?
                .rows_affected();
            Ok::<(), StoreError>(())
        })?;
        tx.commit().await?;
        Ok(done)
    }
}
