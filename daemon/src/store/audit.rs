//! The append-only, hash-chained audit log: every entry's hash covers the previous entry's
//! hash, so an edited or deleted row breaks the chain from that row on.

use super::{Result, ROWS_PER_STATEMENT, Store, Tx, TxConn, from_us, insert_values, on_pool, on_tx, to_us};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// Result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    Intact { entries: u64 },
    /// The first entry whose stored hash does not match its content and predecessor.
    Broken { id: i64 },
}

fn chain_hash(prev: &str, at_us: i64, actor: &str, action: &str, subject: &str, detail: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &at_us.to_string(), actor, action, subject, detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// An audit entry to append.
#[derive(Debug, Clone)]
pub(crate) struct AuditRecord<'a> {
    pub at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: String,
    pub detail: String,
}

impl Tx {
    /// Appends one entry chained to the newest. Call after the transaction's first write so
    /// that concurrent writers are already serialised (SQLite's write lock; on PostgreSQL an
    /// advisory transaction lock is taken here).
    pub async fn append_audit(
        &mut self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<()> {
        let entry = AuditRecord { at, actor, action, subject: subject.to_string(), detail: detail.to_string() };
        self.append_audits(std::slice::from_ref(&entry)).await
    }

    /// Appends entries in order, each chained to the one before, with one multi-row INSERT.
    pub(crate) async fn append_audits(&mut self, entries: &[AuditRecord<'_>]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let known_head = self.audit_head.take();
        if known_head.is_none()
            && let TxConn::Postgres(t) = &mut self.conn
        {
            sqlx::query("SELECT pg_advisory_xact_lock(7306041)").execute(&mut **t).await?;
        }
        let mut prev: String = match known_head {
            Some(head) => head,
            None => on_tx!(self, |c| {
                sqlx::query("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut *c)
                    .await?
                    .map(|r| r.try_get("hash"))
                    .transpose()?
                    .unwrap_or_else(|| GENESIS.to_string())
            }),
        };
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            let at_us = to_us(e.at);
            let hash = chain_hash(&prev, at_us, e.actor, e.action, &e.subject, &e.detail);
            rows.push((at_us, e, std::mem::replace(&mut prev, hash.clone()), hash));
        }
        on_tx!(self, |c| {
            insert_values!(c, ROWS_PER_STATEMENT,
                "INSERT INTO audit_log (at_us, actor, action, subject, detail, prev_hash, hash) ", rows, "", |b, row| {
                let (at_us, e, prev, hash) = row;
                b.push_bind(*at_us).push_bind(e.actor.to_string()).push_bind(e.action.to_string())
                    .push_bind(e.subject.clone()).push_bind(e.detail.clone()).push_bind(prev.clone()).push_bind(hash.clone());
            });
        });
        self.audit_head = Some(prev);
        Ok(())
    }
}

impl Store {
    /// Appends one audit entry in its own transaction.
    pub async fn audit(&self, at: DateTime<Utc>, actor: &str, action: &str, subject: &str, detail: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.append_audit(at, actor, action, subject, detail).await?;
        tx.commit().await
    }

    /// Walks the whole chain and names the first entry that does not hold.
    pub async fn verify_audit(&self) -> Result<AuditVerdict> {
        on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT id, at_us, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY id",
            )
            .fetch_all(p)
            .await?;
            let mut prev = GENESIS.to_string();
            let mut n = 0u64;
            for r in rows {
                let id: i64 = r.try_get("id")?;
                let stored_prev: String = r.try_get("prev_hash")?;
                let hash: String = r.try_get("hash")?;
                let expect = chain_hash(
                    &prev,
                    r.try_get("at_us")?,
                    &r.try_get::<String, _>("actor")?,
                    &r.try_get::<String, _>("action")?,
                    &r.try_get::<String, _>("subject")?,
                    &r.try_get::<String, _>("detail")?,
                );
                if stored_prev != prev || hash != expect {
                    return Ok(AuditVerdict::Broken { id });
                }
                prev = hash;
                n += 1;
            }
            Ok(AuditVerdict::Intact { entries: n })
        })
    }

    /// The newest audit entries, newest last.
    pub async fn audit_tail(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        on_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT id, at_us, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows.into_iter().rev() {
                out.push(AuditEntry {
                    id: r.try_get("id")?,
                    at: from_us(r.try_get("at_us")?),
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                });
            }
            Ok(out)
        })
    }
}
