//! Finding pupils without opening every pupil: a UPN through its blind index (migration 0007),
//! a name through the blind indexes of its words (migration 0025, `pupil_name_tokens`). The
//! words are kept with the pupil: every directory import rewrites an imported pupil's words,
//! and the start-up pass indexes pupils imported before the index existed. Only the pupils a
//! search returns are ever opened; this module opens nothing itself.
//!
//! The index key is derived from `storage.key_file` (as the UPN index's is), which key rotation
//! never replaces: an index written before a rotation still answers after it.

use super::directory::fields;
use super::{Result, Store, StoreError, Tx, on_pool, on_tx};
use crate::blind::{BlindIndex, kinds, name_words, search_words};
use crate::seal::Sealer;
use sqlx::Row;

/// A pupil by the blind index of their UPN.
pub(super) const PUPIL_BY_UPN: &str = "SELECT id FROM pupils WHERE upn_index = $1";

/// At most this many words of a search are looked up (the rest are ignored).
const MAX_WORDS: usize = 6;

/// Pupils with every one of `n` words (`$1`…`$n`), fewest first by id, at most `limit`.
pub(super) fn pupils_by_words_sql(n: usize, limit: usize) -> String {
    let list = (1..=n.max(1)).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT pupil_id FROM pupil_name_tokens WHERE token IN ({list}) GROUP BY pupil_id \
         HAVING COUNT(*) = {} ORDER BY pupil_id LIMIT {limit}",
        n.max(1)
    )
}

/// Replaces pupil `$1`'s words with `n` new ones (`$2`…).
pub(super) fn insert_words_sql(n: usize) -> String {
    let rows = (0..n).map(|i| format!("(${}, $1)", i + 2)).collect::<Vec<_>>().join(", ");
    format!("INSERT INTO pupil_name_tokens (token, pupil_id) VALUES {rows} ON CONFLICT DO NOTHING")
}

/// The blind indexes of a pupil's name words: first, preferred and last names.
pub(crate) fn name_tokens(blind: &BlindIndex, first: &str, preferred: Option<&str>, last: &str) -> Vec<String> {
    let mut words = name_words(first);
    for w in preferred.map(name_words).unwrap_or_default().into_iter().chain(name_words(last)) {
        if !words.contains(&w) {
            words.push(w);
        }
    }
    words.iter().map(|w| blind.index(kinds::NAME_WORD, w)).collect()
}

impl Store {
    /// The pupil (if any) whose UPN is `upn`, case-insensitive, from its blind index.
    pub async fn pupil_by_upn(&self, blind: &BlindIndex, upn: &str) -> Result<Option<i64>> {
        let index = blind.index(kinds::UPN, upn);
        on_pool!(self, |p| Ok(sqlx::query_scalar::<_, i64>(PUPIL_BY_UPN).bind(index).fetch_optional(p).await?))
    }

    /// Pupils whose names hold every word of `text` (first, preferred or last names; whole
    /// words, case-insensitive), at most `limit`, by id. No words, no pupils.
    pub async fn pupils_by_name_words(&self, blind: &BlindIndex, text: &str, limit: usize) -> Result<Vec<i64>> {
        let mut words = search_words(text);
        words.dedup();
        words.truncate(MAX_WORDS);
        let mut tokens: Vec<String> = words.iter().map(|w| blind.index(kinds::NAME_WORD, w)).collect();
        tokens.sort();
        tokens.dedup();
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let sql = pupils_by_words_sql(tokens.len(), limit);
        on_pool!(self, |p| {
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for t in &tokens {
                q = q.bind(t.clone());
            }
            Ok(q.fetch_all(p).await?)
        })
    }

    /// The pupils a query may name, opening none: by UPN (a query without a space) or by the
    /// words of a full name. The caller opens these few and compares exactly
    /// (`cli::chronology::find_pupil`).
    pub async fn find_pupils(&self, blind: &BlindIndex, query: &str) -> Result<Vec<i64>> {
        let q = query.trim();
        if q.contains(char::is_whitespace) {
            self.pupils_by_name_words(blind, q, 1000).await
        } else {
            Ok(self.pupil_by_upn(blind, q).await?.into_iter().collect())
        }
    }

    /// Indexes the names of pupils that have no words in the index yet (pupils imported before
    /// migration 0025): run at start, with the keys the import uses. How many were indexed.
    pub async fn index_unindexed_names(&self, sealer: &Sealer, blind: &BlindIndex) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = index_unindexed_names_in(&mut tx, sealer, blind).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// [`Store::index_unindexed_names`] inside `tx`.
async fn index_unindexed_names_in(tx: &mut Tx, sealer: &Sealer, blind: &BlindIndex) -> Result<u64> {
    let rows: Vec<(i64, String, String, Option<String>)> = on_tx!(tx, |c| {
        sqlx::query(
            "SELECT p.id, p.first_name, p.last_name, p.preferred_name FROM pupils p \
             WHERE NOT EXISTS (SELECT 1 FROM pupil_name_tokens t WHERE t.pupil_id = p.id)",
        )
        .fetch_all(&mut *c)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("first_name")?, r.try_get("last_name")?, r.try_get("preferred_name")?)))
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?
    });
    let open = |id: i64, field: &str, v: &str| {
        crate::blind::open_or_clear(sealer, field, v).map_err(|source| StoreError::Sealed { what: format!("pupil {id} ({field})"), source })
    };
    let mut done = 0;
    for (id, first, last, preferred) in rows {
        let first = open(id, fields::FIRST_NAME, &first)?;
        let last = open(id, fields::LAST_NAME, &last)?;
        let preferred = preferred.map(|p| open(id, fields::PREFERRED_NAME, &p)).transpose()?;
        tx.write_name_tokens(id, &name_tokens(blind, &first, preferred.as_deref(), &last)).await?;
        done += 1;
    }
    Ok(done)
}

impl Tx {
    /// Makes `tokens` pupil `pupil_id`'s words in the name index, replacing what it held.
    pub(crate) async fn write_name_tokens(&mut self, pupil_id: i64, tokens: &[String]) -> Result<()> {
        on_tx!(self, |c| {
            sqlx::query("DELETE FROM pupil_name_tokens WHERE pupil_id = $1").bind(pupil_id).execute(&mut *c).await?;
            if !tokens.is_empty() {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_words_sql(tokens.len()))).bind(pupil_id);
                for t in tokens {
                    q = q.bind(t.clone());
                }
                q.execute(&mut *c).await?;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pupil_has_each_word_once() {
        let blind = BlindIndex::from_storage_key(&[7u8; 32]);
        let t = name_tokens(&blind, "Jane", Some("Janey"), "Smith-Jones");
        assert_eq!(t.len(), 5, "jane, janey, smith-jones, smith, jones");
        assert_eq!(name_tokens(&blind, "Jane", Some("jane"), "Smith").len(), 2);
        assert_eq!(t[0], blind.index(kinds::NAME_WORD, "jane"));
    }

    #[test]
    fn the_sql_counts_every_word() {
        assert!(pupils_by_words_sql(2, 50).contains("IN ($1, $2) GROUP BY pupil_id HAVING COUNT(*) = 2"));
        assert_eq!(insert_words_sql(2), "INSERT INTO pupil_name_tokens (token, pupil_id) VALUES ($2, $1), ($3, $1) ON CONFLICT DO NOTHING");
    }
}
