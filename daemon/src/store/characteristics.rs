//! Pupil characteristics with their history (migration 0031): each import closes a value that
//! changed (`to_us`) and opens the new one from the import's day, so a report counts a pupil as
//! they were when an incident happened. Values are in clear, as year group and house are.

use super::{Result, Store, on_tx};
use sqlx::Row;
use std::collections::HashMap;

impl Store {
    /// Records `values` (pupil id, characteristic, value) as holding from `from_us`: a value
    /// that differs from the current one closes it and starts anew; the same value changes
    /// nothing. A value seen for the first time is taken to have held all along (the school's
    /// first import describes its pupils as they were before Haven too). Returns how many
    /// values changed. One transaction.
    pub async fn record_characteristics(&self, values: &[(i64, &str, String)], from_us: i64) -> Result<u64> {
        if values.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let current: HashMap<(i64, String), (i64, String)> = on_tx!(tx, |c| {
            let rows = sqlx::query("SELECT id, pupil_id, characteristic, value FROM pupil_characteristics WHERE to_us IS NULL")
                .fetch_all(&mut *c)
                .await?;
            rows.iter()
                .map(|r| Ok(((r.try_get::<i64, _>(1)?, r.try_get::<String, _>(2)?), (r.try_get::<i64, _>(0)?, r.try_get::<String, _>(3)?))))
                .collect::<std::result::Result<_, sqlx::Error>>()?
        });
        let seen: std::collections::HashSet<(i64, String)> = on_tx!(tx, |c| {
            let rows = sqlx::query("SELECT DISTINCT pupil_id, characteristic FROM pupil_characteristics").fetch_all(&mut *c).await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
                .collect::<std::result::Result<_, sqlx::Error>>()?
        });
        let mut changed = 0;
        for (pupil, name, value) in values {
            let key = (*pupil, (*name).to_string());
            let old = current.get(&key);
            if old.is_some_and(|(_, v)| v == value) {
                continue;
            }
            let from = if seen.contains(&key) { from_us } else { 0 };
            on_tx!(tx, |c| {
                if let Some((id, _)) = old {
                    sqlx::query("UPDATE pupil_characteristics SET to_us = $1 WHERE id = $2")
                        .bind(from_us)
                        .bind(*id)
                        .execute(&mut *c)
                        .await?;
                }
                sqlx::query("INSERT INTO pupil_characteristics (pupil_id, characteristic, value, from_us) VALUES ($1, $2, $3, $4)")
                    .bind(*pupil)
                    .bind(*name)
                    .bind(value.as_str())
                    .bind(from)
                    .execute(&mut *c)
                    .await?;
            });
            changed += 1;
        }
        tx.commit().await?;
        Ok(changed)
    }
}
