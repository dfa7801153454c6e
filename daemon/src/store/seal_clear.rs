//! The start-up pass that seals what a database from before migration 0007 kept in clear
//! (the directory with its blind indexes, outcomes, attachment names, senders) and empties the
//! text of emails already delivered. Does nothing once done.

use super::keyring::SEALED_CLEAR_BEFORE_0007;
use super::{Result, Store, StoreError, on_tx};
use crate::blind::BlindIndex;
use crate::seal::Sealer;
use sqlx::Row;

impl Store {
    /// Seals what a database from before migration 0007 still holds in clear: the directory
    /// (with its blind indexes), outcomes, attachment names and senders; and deletes the text of
    /// emails already sent or dead-lettered. Run at start; does nothing once done. Returns how
    /// many values it sealed or deleted.
    pub async fn seal_clear_values(&self, sealer: &Sealer, blind: &BlindIndex) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut done = super::directory::seal_clear_directory(&mut tx, sealer, blind).await?;
        on_tx!(&mut tx, |c| {
            for (table, column, field) in SEALED_CLEAR_BEFORE_0007 {
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
