//! The console's sign-in state (migration 0013): second factors, recovery codes, used sign-in
//! links and server-side sessions. Only hashes and sealed values are stored; this module
//! must not decide who may sign in (that is `console::auth`).

use super::{Result, Store, from_us, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A member of staff's second factor.
#[derive(Debug, Clone)]
pub struct TotpRecord {
    pub sealed_secret: String,
    pub enrolled: bool,
    pub failures: i64,
    pub locked: bool,
}

/// One server-side session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub staff_id: i64,
    pub stage: String,
    pub csrf: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl Store {
    pub async fn console_totp(&self, staff_id: i64) -> Result<Option<TotpRecord>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT sealed_secret, enrolled_us, failures, locked_us FROM console_totp WHERE staff_id = $1")
                .bind(staff_id)
                .fetch_optional(p)
                .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(TotpRecord {
                sealed_secret: r.try_get("sealed_secret")?,
                enrolled: r.try_get::<Option<i64>, _>("enrolled_us")?.is_some(),
                failures: i64::from(r.try_get::<i32, _>("failures")?),
                locked: r.try_get::<Option<i64>, _>("locked_us")?.is_some(),
            }))
        })
    }

    /// Starts (or restarts, while not yet enrolled) enrolment with a new sealed secret.
    pub async fn console_totp_begin(&self, staff_id: i64, sealed_secret: &str) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO console_totp (staff_id, sealed_secret) VALUES ($1, $2) \
                 ON CONFLICT (staff_id) DO UPDATE SET sealed_secret = excluded.sealed_secret WHERE console_totp.enrolled_us IS NULL",
            )
            .bind(staff_id)
            .bind(sealed_secret)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    /// Counts a wrong code; locks the factor at `lock_after` failures. The count after this one.
    pub async fn console_totp_failed(&self, staff_id: i64, lock_after: i64, now: DateTime<Utc>) -> Result<i64> {
        on_pool!(self, |p| {
            let r = sqlx::query(
                "UPDATE console_totp SET failures = failures + 1, \
                 locked_us = CASE WHEN failures + 1 >= $2 THEN COALESCE(locked_us, $3) ELSE locked_us END \
                 WHERE staff_id = $1 RETURNING failures",
            )
            .bind(staff_id)
            .bind(lock_after)
            .bind(to_us(now))
            .fetch_one(p)
            .await?;
            Ok(i64::from(r.try_get::<i32, _>("failures")?))
        })
    }

    /// A right code: claims its time step (`step`, None for a recovery code), forgets the
    /// failures and, on first use, enrols the factor and stores its recovery codes, in one
    /// transaction. False, with nothing changed, when that step or a later one was accepted
    /// before: a code works once (RFC 6238 section 5.2).
    pub async fn console_totp_passed(
        &self,
        staff_id: i64,
        step: Option<i64>,
        recovery_hashes: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let claimed = on_tx!(tx, |c| {
            let r = sqlx::query(
                "UPDATE console_totp SET failures = 0, enrolled_us = COALESCE(enrolled_us, $2), \
                 last_step = COALESCE($3, last_step) \
                 WHERE staff_id = $1 AND ($3 IS NULL OR last_step IS NULL OR last_step < $3)",
            )
            .bind(staff_id)
            .bind(to_us(now))
            .bind(step)
            .execute(&mut *c)
            .await?;
            if r.rows_affected() == 1 {
                for h in recovery_hashes {
                    sqlx::query("INSERT INTO console_recovery_codes (code_hash, staff_id) VALUES ($1, $2)")
                        .bind(h)
                        .bind(staff_id)
                        .execute(&mut *c)
                        .await?;
                }
            }
            Ok::<_, super::StoreError>(r.rows_affected() == 1)
        })?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Uses a recovery code once; false if it is unknown or already used.
    pub async fn console_use_recovery_code(&self, staff_id: i64, code_hash: &str, now: DateTime<Utc>) -> Result<bool> {
        on_pool!(self, |p| {
            let r =
                sqlx::query("UPDATE console_recovery_codes SET used_us = $3 WHERE code_hash = $1 AND staff_id = $2 AND used_us IS NULL")
                    .bind(code_hash)
                    .bind(staff_id)
                    .bind(to_us(now))
                    .execute(p)
                    .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Marks a sign-in link used; false if it had been used already.
    pub async fn console_use_link(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool> {
        on_pool!(self, |p| {
            let r = sqlx::query("INSERT INTO console_links_used (nonce, used_us) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING")
                .bind(nonce)
                .bind(to_us(now))
                .execute(p)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Sign-in links queued for `recipient` since `since`, for the per-address rate limit.
    pub async fn console_links_sent_since(&self, recipient: &str, since: DateTime<Utc>) -> Result<i64> {
        on_pool!(self, |p| {
            let r = sqlx::query(
                "SELECT COUNT(*) AS n FROM outbox WHERE recipient = $1 AND email_message_id LIKE 'haven.console-link.%' AND created_us >= $2",
            )
            .bind(recipient)
            .bind(to_us(since))
            .fetch_one(p)
            .await?;
            Ok(r.try_get::<i64, _>("n")?)
        })
    }

    pub async fn console_session_create(&self, id_hash: &str, staff_id: i64, csrf: &str, now: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO console_sessions (id_hash, staff_id, stage, csrf, created_us, last_seen_us) VALUES ($1, $2, 'totp', $3, $4, $4)",
            )
            .bind(id_hash)
            .bind(staff_id)
            .bind(csrf)
            .bind(to_us(now))
            .execute(p)
            .await?;
            Ok(())
        })
    }

    pub async fn console_session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        on_pool!(self, |p| {
            let row = sqlx::query("SELECT staff_id, stage, csrf, created_us, last_seen_us FROM console_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .fetch_optional(p)
                .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(SessionRecord {
                staff_id: r.try_get("staff_id")?,
                stage: r.try_get("stage")?,
                csrf: r.try_get("csrf")?,
                created: from_us(r.try_get("created_us")?),
                last_seen: from_us(r.try_get("last_seen_us")?),
            }))
        })
    }

    /// Records activity, and moves the session to `stage`.
    pub async fn console_session_touch(&self, id_hash: &str, stage: &str, now: DateTime<Utc>) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query("UPDATE console_sessions SET last_seen_us = $2, stage = $3 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(to_us(now))
                .bind(stage)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    pub async fn console_session_end(&self, id_hash: &str) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1").bind(id_hash).execute(p).await?;
            Ok(())
        })
    }

    /// Ends every session of `staff_id` ("sign out everywhere", a reset enrolment); how many.
    pub async fn console_sessions_end_all(&self, staff_id: i64) -> Result<u64> {
        on_pool!(self, |p| {
            let r = sqlx::query("DELETE FROM console_sessions WHERE staff_id = $1").bind(staff_id).execute(p).await?;
            Ok(r.rows_affected())
        })
    }

    /// Unlocks a member of staff's second factor (failures forgotten); with `reset`, forgets
    /// it, their recovery codes and their passkeys so that they enrol again at their next
    /// sign-in. Whether there was anything to change.
    pub async fn console_totp_unlock(&self, staff_id: i64, reset: bool) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = on_tx!(tx, |c| {
            let r = if reset {
                sqlx::query("DELETE FROM console_recovery_codes WHERE staff_id = $1").bind(staff_id).execute(&mut *c).await?;
                // A lost phone may have held a passkey too: they add theirs again once signed in.
                sqlx::query("DELETE FROM console_passkeys WHERE staff_id = $1").bind(staff_id).execute(&mut *c).await?;
                sqlx::query("DELETE FROM console_totp WHERE staff_id = $1").bind(staff_id).execute(&mut *c).await?
            } else {
                sqlx::query("UPDATE console_totp SET failures = 0, locked_us = NULL WHERE staff_id = $1")
                    .bind(staff_id)
                    .execute(&mut *c)
                    .await?
            };
            Ok::<_, super::StoreError>(r.rows_affected() > 0)
        })?;
        tx.commit().await?;
        Ok(changed)
    }
}
