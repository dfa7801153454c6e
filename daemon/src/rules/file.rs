//! The TOML schema of a rules file, as written by a safeguarding lead, and its parsing into
//! spanned entries. Nothing is checked for meaning here (that is `compile`); only shape:
//! unknown keys and wrong types are errors, each with its position.
//!
//! Each `[[category]]` and `[[rule]]` is read on its own, so one mistake does not hide the
//! mistakes in the entries after it.

use super::errors::FileErrors;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// One rules file, parsed.
#[derive(Debug, Default)]
pub(crate) struct RulesFile {
    pub default: Option<Spanned<String>>,
    pub categories: Vec<Spanned<CategoryEntry>>,
    pub rules: Vec<Spanned<RuleEntry>>,
}

/// `[[category]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CategoryEntry {
    pub name: Spanned<String>,
    #[serde(default)]
    pub aliases: Option<Spanned<Strings>>,
    /// crate::visibility syntax; required so nobody gets a wider audience by forgetting it.
    pub visibility: Spanned<String>,
    #[serde(default)]
    pub safeguarding: bool,
}

/// `[[rule]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleEntry {
    pub name: Spanned<String>,
    #[serde(default)]
    pub when: When,
    pub alert: Option<Spanned<Strings>>,
    pub set_category: Option<Spanned<String>>,
    pub priority: Option<Spanned<String>>,
    pub visibility: Option<Spanned<String>>,
    pub outcome_within: Option<Spanned<String>>,
    pub escalate: Option<Spanned<Vec<Spanned<EscalateEntry>>>>,
    pub digest: Option<Spanned<bool>>,
    pub stop: Option<Spanned<bool>>,
    /// `"alert"` or `"quiet"` (the default): whether a historical message (a backfill) this
    /// rule matches still alerts and opens its outcome deadline.
    pub on_backfill: Option<Spanned<String>>,
    /// With `when.ai_risk`: how long to wait for the AI suggestion (`"30m"`), and what to do
    /// when none has come by then (`on_ai_timeout = "alert"`: act as if the risk were met;
    /// `"wait"`: nothing).
    pub ai_timeout: Option<Spanned<String>>,
    pub on_ai_timeout: Option<Spanned<String>>,
}

/// `when.*`: every condition given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct When {
    pub category: Option<Spanned<Strings>>,
    pub category_not: Option<Spanned<Strings>>,
    /// Whether the incident's category (as decided so far) is a safeguarding one.
    pub safeguarding: Option<bool>,
    pub text: Option<Spanned<String>>,
    pub sender: Option<Spanned<Strings>>,
    pub sender_domain: Option<Spanned<Strings>>,
    pub year_group: Option<Spanned<Integers>>,
    pub house: Option<Spanned<Strings>>,
    pub sen: Option<bool>,
    pub on_roll: Option<bool>,
    pub attachments: Option<bool>,
    pub history: Option<Spanned<HistoryEntry>>,
    pub ai_risk: Option<Spanned<String>>,
}

/// `when.history = { categories = [...], at_least = 3, within = "30d" }`; without
/// `categories`, incidents of any category count.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryEntry {
    #[serde(default)]
    pub categories: Option<Spanned<Strings>>,
    pub at_least: Spanned<i64>,
    pub within: Spanned<String>,
}

/// One rung of `escalate = [{ after = "1d", alert = ["ddsl"] }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EscalateEntry {
    pub after: Spanned<String>,
    pub alert: Spanned<Strings>,
}

/// A string or a list of strings (`alert = "dsl"` and `alert = ["dsl"]` both work), each
/// with its own position when the file gives one.
#[derive(Debug, Default)]
pub(crate) struct Strings(pub Vec<(String, Option<Range<usize>>)>);

/// A whole number or a list of them (`year_group = 7` or `[7, 8]`).
#[derive(Debug, Default)]
pub(crate) struct Integers(pub Vec<i64>);

/// Each string of a `Spanned<Strings>` with its own position.
pub(crate) trait Items {
    /// Each string with its own span, or the list's when it was a single string.
    fn items(&self) -> impl Iterator<Item = (&str, Range<usize>)>;
}

impl Items for Spanned<Strings> {
    fn items(&self) -> impl Iterator<Item = (&str, Range<usize>)> {
        let outer = self.span();
        self.get_ref().0.iter().map(move |(s, span)| (s.as_str(), span.clone().unwrap_or_else(|| outer.clone())))
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Strings, E> {
                Ok(Strings(vec![(v.to_string(), None)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Spanned<String>>()? {
                    let span = s.span();
                    out.push((s.into_inner(), Some(span)));
                }
                Ok(Strings(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Integers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Integers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number or a list of whole numbers")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integers, E> {
                Ok(Integers(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integers, E> {
                i64::try_from(v).map(|v| Integers(vec![v])).map_err(|_| E::custom("number too large"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Integers, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<i64>()? {
                    out.push(n);
                }
                Ok(Integers(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses one file's text; every problem of shape goes to `errors`.
pub(crate) fn parse_file(text: &str, errors: &mut FileErrors<'_>) -> RulesFile {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            let message = match e.message() {
                "duplicate key" => "duplicate key: each key may be given only once (one value per condition or action)",
                m => m,
            };
            errors.at(e.span(), message);
        }
        return RulesFile::default();
    }
    let mut file = RulesFile::default();
    for (key, value) in doc.into_inner() {
        let key_span = key.span();
        match key.get_ref().as_ref() {
            "default" => match entry::<String>(value) {
                Ok(v) => file.default = Some(v),
                Err(e) => errors.at(e.span().or(Some(key_span)), super::suggest::field_message(e.message())),
            },
            "category" => each(value, key_span, "category", errors, |v| file.categories.push(v)),
            "rule" => each(value, key_span, "rule", errors, |v| file.rules.push(v)),
            other => errors.at(
                Some(key_span),
                format!(
                    "unknown key `{other}`, expected `default`, `[[category]]` or `[[rule]]`{}",
                    super::suggest::nearest(other, ["default", "category", "rule"])
                        .map(|k| if k == "default" {
                            " (did you mean `default`?)".to_string()
                        } else {
                            format!(" (did you mean `[[{k}]]`?)")
                        })
                        .unwrap_or_default()
                ),
            ),
        }
    }
    file
}

/// Deserializes every table of an array of tables, reporting each bad one.
fn each<T: for<'de> Deserialize<'de>>(
    value: Spanned<DeValue<'_>>,
    key_span: Range<usize>,
    what: &str,
    errors: &mut FileErrors<'_>,
    mut push: impl FnMut(Spanned<T>),
) {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => {
            for item in items {
                match entry::<T>(item) {
                    Ok(v) => push(v),
                    Err(e) => errors.at(e.span().or(Some(span.clone())), super::suggest::field_message(e.message())),
                }
            }
        }
        _ => errors.at(Some(key_span), format!("`{what}` must be written as [[{what}]] tables")),
    }
}

fn entry<T: for<'de> Deserialize<'de>>(value: Spanned<DeValue<'_>>) -> Result<Spanned<T>, toml::de::Error> {
    Spanned::<T>::deserialize(ValueDeserializer::from(value))
}
