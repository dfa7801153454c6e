//! The rules' history conditions ("3 or more Pastoral issue incidents for the same pupil
//! within 30 days"): which earlier incidents they may count, asked of the store in one query,
//! and how many each pupil has for each condition. Shared by filing and `haven rules test`.

use crate::identify::Identification;
use crate::rules::{History, RuleSet};
use crate::store::{EarlierIncident, Store, StoreError};
use chrono::{DateTime, Utc};

/// The stored incidents of `pupils` that any history condition of `rules` may count for a
/// message that occurred at `first` or later.
pub async fn earlier(
    store: &Store,
    rules: &RuleSet,
    mut pupils: Vec<i64>,
    first: DateTime<Utc>,
) -> Result<Vec<EarlierIncident>, StoreError> {
    let queries = rules.history_queries();
    let Some(longest) = queries.iter().map(|q| q.within).max() else {
        return Ok(Vec::new());
    };
    pupils.sort_unstable();
    pupils.dedup();
    // A query for any category needs every incident: every configured category is asked for.
    let any = queries.iter().any(|q| q.categories.is_empty());
    let mut categories: Vec<String> = if any {
        rules.categories().iter().map(|c| c.name.clone()).collect()
    } else {
        queries.iter().flat_map(|q| q.categories.iter().cloned()).collect()
    };
    categories.sort_unstable();
    categories.dedup();
    store.pupil_incidents_since(&pupils, &categories, first - longest).await
}

/// Per identified pupil and per history condition, how many of `incidents` it counts for a
/// message that occurred at `at`.
pub fn counts<'a>(
    rules: &RuleSet,
    ident: &Identification,
    at: DateTime<Utc>,
    incidents: impl Iterator<Item = &'a EarlierIncident> + Clone,
) -> History {
    let mut history = History::default();
    for (qi, q) in rules.history_queries().iter().enumerate() {
        let since = at - q.within;
        for p in &ident.pupils {
            let n = incidents
                .clone()
                .filter(|e| e.pupil == p.pupil_id && e.occurred >= since && (q.categories.is_empty() || q.categories.contains(&e.category)))
                .count();
            history.set(p.pupil_id, qi, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    history
}
