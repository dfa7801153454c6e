//! Re-sealing everything encrypted at rest under a new key (`haven key rotate`), in one
//! transaction: either every value moves to the new key or none does.

use super::{Result, Store, StoreError, on_tx};
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
}

impl Store {
    /// Re-seals every blob (raw messages: field `message.raw` when referenced by a message,
    /// else `attachment`) and the sealed incident columns.
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
            Ok::<(), StoreError>(())
        })?;
        tx.commit().await?;
        Ok(count)
    }
}
