//! The console's passkeys and WebAuthn ceremonies (migration 0040). Passkeys are stored sealed
//! by the caller; a ceremony's state is kept on its session (several daemons may serve one
//! console) and taken once. This module must not verify anything (that is `console::passkey`).

use super::{Result, Store, from_us, on_pool, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// One registered passkey of a member of staff.
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    pub id: i64,
    pub credential_id: String,
    pub sealed_passkey: String,
    pub name: String,
    pub added: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
}

impl Store {
    /// `staff_id`'s passkeys, oldest first.
    pub async fn console_passkeys(&self, staff_id: i64) -> Result<Vec<PasskeyRecord>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT id, credential_id, sealed_passkey, name, added_us, last_used_us FROM console_passkeys \
                 WHERE staff_id = $1 ORDER BY id",
            )
            .bind(staff_id)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(PasskeyRecord {
                        id: r.try_get("id")?,
                        credential_id: r.try_get("credential_id")?,
                        sealed_passkey: r.try_get("sealed_passkey")?,
                        name: r.try_get("name")?,
                        added: from_us(r.try_get("added_us")?),
                        last_used: r.try_get::<Option<i64>, _>("last_used_us")?.map(from_us),
                    })
                })
                .collect()
        })
    }

    /// Registers a passkey; false, with nothing stored, when its credential id is already
    /// registered (to anyone).
    pub async fn console_passkey_add(
        &self,
        staff_id: i64,
        credential_id: &str,
        sealed_passkey: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        on_pool!(self, |p| {
            let r = sqlx::query(
                "INSERT INTO console_passkeys (staff_id, credential_id, sealed_passkey, name, added_us) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (credential_id) DO NOTHING",
            )
            .bind(staff_id)
            .bind(credential_id)
            .bind(sealed_passkey)
            .bind(name)
            .bind(to_us(now))
            .execute(p)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Removes passkey `id` of `staff_id`; its name, or None when there is no such passkey of theirs.
    pub async fn console_passkey_remove(&self, staff_id: i64, id: i64) -> Result<Option<String>> {
        on_pool!(self, |p| {
            let row = sqlx::query("DELETE FROM console_passkeys WHERE id = $1 AND staff_id = $2 RETURNING name")
                .bind(id)
                .bind(staff_id)
                .fetch_optional(p)
                .await?;
            Ok(row.map(|r| r.try_get("name")).transpose()?)
        })
    }

    /// After a passkey sign-in: the updated (sealed) passkey, with its counter, and when it was used.
    pub async fn console_passkey_used(&self, id: i64, sealed_passkey: &str, now: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query("UPDATE console_passkeys SET sealed_passkey = $2, last_used_us = $3 WHERE id = $1")
                .bind(id)
                .bind(sealed_passkey)
                .bind(to_us(now))
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Keeps a ceremony's sealed state on the session, replacing any earlier one.
    pub async fn console_ceremony_begin(&self, id_hash: &str, kind: &str, sealed_state: &str, now: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query("UPDATE console_sessions SET ceremony = $2, ceremony_kind = $3, ceremony_us = $4 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(sealed_state)
                .bind(kind)
                .bind(to_us(now))
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Takes the session's ceremony of `kind` begun at or after `since`, so that it cannot be
    /// answered twice: its sealed state, or None (none, another kind, too old, or taken by a
    /// concurrent request).
    pub async fn console_ceremony_take(&self, id_hash: &str, kind: &str, since: DateTime<Utc>) -> Result<Option<String>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT ceremony, ceremony_kind, ceremony_us FROM console_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .fetch_optional(p)
                .await?;
            let Some(r) = row else { return Ok(None) };
            let (Some(state), Some(k), Some(at)) = (
                r.try_get::<Option<String>, _>("ceremony")?,
                r.try_get::<Option<String>, _>("ceremony_kind")?,
                r.try_get::<Option<i64>, _>("ceremony_us")?,
            ) else {
                return Ok(None);
            };
            let taken = sqlx::query(
                "UPDATE console_sessions SET ceremony = NULL, ceremony_kind = NULL, ceremony_us = NULL WHERE id_hash = $1 AND ceremony = $2",
            )
            .bind(id_hash)
            .bind(&state)
            .execute(p)
            .await?;
            Ok((taken.rows_affected() == 1 && k == kind && at >= to_us(since)).then_some(state))
        })
    }
}
