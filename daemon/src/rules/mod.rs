//! The school's routing rules (SPEC "Rules"): categories and rules read from `rules/*.toml`,
//! compiled once (regexes, durations, role names, category names), then evaluated as a pure
//! function of the message as read, the directory and the pupils' history counts.
//!
//! # Layout
//!
//! - [`file`](self::file): the TOML schema; shape errors (unknown keys, wrong types).
//! - `compile`: meaning errors (unknown roles and categories, bad regexes and durations,
//!   conflicting actions) and the runtime [`RuleSet`].
//! - `evaluate`: the decision for one message, in file-then-rule order.
//! - `recipients`: roles and named staff resolved against the directory and the visibility.
//! - [`live`]: the set the daemon uses now; SIGHUP swaps in a new good one.
//!
//! It must not do I/O beyond reading the rules directory in [`RuleSet::load`], and must not
//! log message content.

mod compile;
mod duration;
mod errors;
mod evaluate;
mod file;
mod live;
mod recipients;
pub(crate) mod suggest;

pub use compile::RuleSet;
pub use duration::{describe_duration, format_duration, parse_duration};
pub use errors::{RuleError, RuleErrors};
pub use evaluate::Filed;
pub use live::LiveRules;

use crate::directory::Directory;
use crate::identify::Identification;
use crate::message::Message;
use crate::visibility::Visibility;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// A count the rules need from the store: earlier incidents of a pupil in `categories`
/// (canonical names) that occurred within `within` before this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Empty: any category.
    pub categories: Vec<String>,
    pub within: chrono::Duration,
}

/// What the rules are evaluated against.
pub struct Facts<'a> {
    pub message: &'a Message,
    pub identification: &'a Identification,
    pub directory: &'a Directory,
    pub history: &'a History,
    /// From AI triage, once it exists; conditions on it never hold while it is None.
    pub ai_risk: Option<RiskLevel>,
}

/// Answers to [`RuleSet::history_queries`], per pupil.
#[derive(Debug, Clone, Default)]
pub struct History {
    counts: HashMap<(i64, usize), i64>,
}

impl History {
    /// `n` = number of EARLIER incidents of the pupil matching query `query_index`.
    /// Takes any whole-number type the store counts in.
    pub fn set(&mut self, pupil_id: i64, query_index: usize, n: impl Into<i64>) {
        self.counts.insert((pupil_id, query_index), n.into());
    }

    /// Zero when the store was not asked (no earlier incidents known).
    pub fn get(&self, pupil_id: i64, query_index: usize) -> i64 {
        self.counts.get(&(pupil_id, query_index)).copied().unwrap_or(0)
    }
}

/// AI triage's view of how worrying a message is; `when.ai_risk = "medium"` means medium or
/// higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Urgent,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Urgent => "urgent",
        }
    }
}

/// The text was not `low`, `medium`, `high` or `urgent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown risk level {0:?}: use low, medium, high or urgent")]
pub struct UnknownRiskLevel(pub String);

impl FromStr for RiskLevel {
    type Err = UnknownRiskLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(RiskLevel::Low),
            "medium" => Ok(RiskLevel::Medium),
            "high" => Ok(RiskLevel::High),
            "urgent" => Ok(RiskLevel::Urgent),
            _ => Err(UnknownRiskLevel(s.to_string())),
        }
    }
}

/// How fast alerts go: urgent alerts skip quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Normal,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Some(Priority::Normal),
            "urgent" => Some(Priority::Urgent),
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member of staff to alert, and why (for `rules test` and the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub staff_id: i64,
    pub email: String,
    /// `dsl (10-routing.toml: Safeguarding reaches the DSL team)`
    pub why: String,
}

/// One step of the escalation ladder: if no outcome is recorded `after` filing, alert these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rung {
    #[serde(serialize_with = "duration::serialize_duration")]
    pub after: chrono::Duration,
    pub recipients: Vec<Recipient>,
}

/// What the rules decided for one message.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Canonical category name.
    pub category: String,
    pub category_reason: String,
    pub priority: Priority,
    #[serde(serialize_with = "serialize_visibility")]
    pub visibility: Visibility,
    /// De-duplicated by staff id, first reason kept.
    pub recipients: Vec<Recipient>,
    #[serde(serialize_with = "duration::serialize_opt_duration")]
    pub outcome_within: Option<chrono::Duration>,
    /// In order of `after`.
    pub escalation: Vec<Rung>,
    /// `file.toml: rule name`, in evaluation order.
    pub matched: Vec<String>,
    pub digest: bool,
    /// A rule asked (`on_backfill = "alert"`) that a historical message alerts all the same.
    pub alert_on_backfill: bool,
    /// Why someone was not alerted, why a category was kept, …
    pub notes: Vec<String>,
}

fn serialize_visibility<S: serde::Serializer>(v: &Visibility, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.as_str())
}

/// The shipped default rules (`rules/` at the top of the repository), built into the binary so
/// `haven init` can write them anywhere.
pub const SHIPPED: &[(&str, &str)] = &[
    ("00-categories.toml", include_str!("../../../rules/00-categories.toml")),
    ("10-disclosures.toml", include_str!("../../../rules/10-disclosures.toml")),
    ("20-routing.toml", include_str!("../../../rules/20-routing.toml")),
    ("30-patterns.toml", include_str!("../../../rules/30-patterns.toml")),
];
