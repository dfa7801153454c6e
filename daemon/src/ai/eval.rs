//! `haven ai eval DIR`: does the configured model help at this school? A labelled set of
//! messages (`*.toml` files of `[[scenario]]`s, each with the category and risk a DSL would
//! give it) is run through the model, and what it suggested is scored: per-category accuracy,
//! recall and precision of high/urgent risk, the share of answers that were valid JSON in the
//! schema, and latency. Reading the set and scoring are pure; the calls are the caller's.

use super::suggestion::{Risk, Suggestion};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One labelled message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub id: String,
    /// The category a DSL would file it under (one of the school's).
    pub category: String,
    /// The risk a DSL would see in it.
    pub risk: Risk,
    pub subject: Option<String>,
    pub text: String,
}

impl Scenario {
    /// What the model reads: the subject and the text, as the worker sends an incident's.
    pub fn message(&self) -> String {
        match &self.subject {
            Some(s) => format!("{s}\n\n{}", self.text),
            None => self.text.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFile {
    scenario: Vec<Scenario>,
}

/// Why the set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    #[error("{0}: scenario {1:?}: category {2:?} is not one of the school's categories ({3})")]
    UnknownCategory(PathBuf, String, String, String),
    #[error("{0}: scenario id {1:?} is used twice")]
    Duplicate(PathBuf, String),
    #[error("{0} holds no scenarios (*.toml files of [[scenario]] entries)")]
    Empty(PathBuf),
}

/// Every scenario of every `*.toml` in `dir`, in file-name order, checked against the school's
/// `categories` (matched as the rules match them, then given their canonical name).
pub fn read_set(dir: &Path, categories: &[String]) -> Result<Vec<Scenario>, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::Io(dir.to_path_buf(), e))?;
    let mut files: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file()).collect();
    files.sort();
    let mut all: Vec<Scenario> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| EvalError::Io(f.clone(), e))?;
        let set: SetFile = toml::from_str(&text).map_err(|e| EvalError::Parse(f.clone(), e.to_string().trim().replace('\n', " ")))?;
        for mut s in set.scenario {
            let Some(c) = categories.iter().find(|c| crate::category::fold(c) == crate::category::fold(&s.category)) else {
                return Err(EvalError::UnknownCategory(f, s.id, s.category, categories.join(", ")));
            };
            s.category = c.clone();
            if all.iter().any(|a| a.id == s.id) {
                return Err(EvalError::Duplicate(f, s.id));
            }
            all.push(s);
        }
    }
    if all.is_empty() {
        return Err(EvalError::Empty(dir.to_path_buf()));
    }
    Ok(all)
}

/// What one call gave.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The model answered in time: its suggestion, or None when the answer did not parse.
    Answered(Option<Suggestion>, Duration),
    /// The call failed or timed out.
    Failed,
}

/// A fraction, shown as `n/d (p %)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ratio {
    pub n: usize,
    pub of: usize,
}

impl Ratio {
    pub fn percent(self) -> Option<f64> {
        (self.of > 0).then(|| self.n as f64 * 100.0 / self.of as f64)
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.percent() {
            Some(p) => write!(f, "{}/{} ({p:.1} %)", self.n, self.of),
            None => write!(f, "{}/{} (n/a)", self.n, self.of),
        }
    }
}

/// The figures `haven ai eval` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub model: String,
    pub scenarios: usize,
    /// Calls that gave an answer in time, and those that failed.
    pub answered: usize,
    pub failed: usize,
    /// Answers that parsed into a suggestion, of all scenarios.
    pub valid_json: Ratio,
    /// Per labelled category: suggestions naming it, of its scenarios.
    pub category_accuracy: BTreeMap<String, Ratio>,
    pub overall_accuracy: Ratio,
    /// High or urgent: labelled so and suggested so (recall), suggested so and labelled so
    /// (precision).
    pub high_risk_recall: Ratio,
    pub high_risk_precision: Ratio,
    pub latency_median_ms: Option<u64>,
    pub latency_p90_ms: Option<u64>,
}

fn high(r: Risk) -> bool {
    matches!(r, Risk::High | Risk::Urgent)
}

/// Scores `answers` (one per scenario, in order) against the labels.
pub fn score(model: &str, set: &[Scenario], answers: &[Answer]) -> Figures {
    let mut per: BTreeMap<String, Ratio> = BTreeMap::new();
    let (mut answered, mut failed, mut valid) = (0, 0, 0);
    let (mut labelled_high, mut suggested_high, mut both_high) = (0, 0, 0);
    let mut latencies: Vec<Duration> = Vec::new();
    for (s, a) in set.iter().zip(answers) {
        let entry = per.entry(s.category.clone()).or_insert(Ratio { n: 0, of: 0 });
        entry.of += 1;
        let suggestion = match a {
            Answer::Answered(sug, took) => {
                answered += 1;
                latencies.push(*took);
                sug.as_ref()
            }
            Answer::Failed => {
                failed += 1;
                None
            }
        };
        if let Some(sug) = suggestion {
            valid += 1;
            if sug.category.as_deref() == Some(s.category.as_str()) {
                entry.n += 1;
            }
        }
        let predicted = suggestion.is_some_and(|x| high(x.risk));
        labelled_high += usize::from(high(s.risk));
        suggested_high += usize::from(predicted);
        both_high += usize::from(predicted && high(s.risk));
    }
    latencies.sort_unstable();
    let at = |q: f64| -> Option<u64> {
        if latencies.is_empty() {
            return None;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies.get(i).map(|d| d.as_millis() as u64)
    };
    let overall = Ratio { n: per.values().map(|r| r.n).sum(), of: set.len() };
    Figures {
        model: model.to_string(),
        scenarios: set.len(),
        answered,
        failed,
        valid_json: Ratio { n: valid, of: set.len() },
        category_accuracy: per,
        overall_accuracy: overall,
        high_risk_recall: Ratio { n: both_high, of: labelled_high },
        high_risk_precision: Ratio { n: both_high, of: suggested_high },
        latency_median_ms: at(0.5),
        latency_p90_ms: at(0.9),
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "AI eval of {}: {} scenarios, {} answered, {} failed", self.model, self.scenarios, self.answered, self.failed)?;
        writeln!(f, "valid JSON: {}", self.valid_json)?;
        writeln!(f, "category accuracy:")?;
        let width = self.category_accuracy.keys().map(|k| k.chars().count()).max().unwrap_or(0);
        for (c, r) in &self.category_accuracy {
            writeln!(f, "  {c:<width$}  {r}")?;
        }
        writeln!(f, "  {:<width$}  {}", "all", self.overall_accuracy)?;
        writeln!(f, "high/urgent risk: recall {}, precision {}", self.high_risk_recall, self.high_risk_precision)?;
        let ms = |v: Option<u64>| v.map_or_else(|| "n/a".to_string(), |ms| format!("{:.2} s", ms as f64 / 1000.0));
        write!(f, "latency: median {}, p90 {}", ms(self.latency_median_ms), ms(self.latency_p90_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(id: &str, category: &str, risk: Risk) -> Scenario {
        Scenario { id: id.into(), category: category.into(), risk, subject: None, text: "t".into() }
    }

    fn said(category: Option<&str>, risk: Risk, ms: u64) -> Answer {
        let s = Suggestion {
            model: "m".into(),
            risk,
            category: category.map(Into::into),
            reasons: Vec::new(),
            summary: String::new(),
            pupils: Vec::new(),
        };
        Answer::Answered(Some(s), Duration::from_millis(ms))
    }

    #[test]
    fn the_figures_count_what_was_suggested_against_the_labels() {
        let set = vec![
            scenario("a", "Neglect", Risk::High),
            scenario("b", "Neglect", Risk::Urgent),
            scenario("c", "Bullying", Risk::Low),
            scenario("d", "Bullying", Risk::None),
            scenario("e", "Bullying", Risk::Medium),
        ];
        let answers = vec![
            said(Some("Neglect"), Risk::High, 100),
            said(Some("Bullying"), Risk::Low, 300),
            said(Some("Bullying"), Risk::Urgent, 200),
            Answer::Answered(None, Duration::from_millis(400)),
            Answer::Failed,
        ];
        let f = score("m", &set, &answers);
        assert_eq!((f.answered, f.failed), (4, 1));
        assert_eq!(f.valid_json, Ratio { n: 3, of: 5 });
        assert_eq!(f.category_accuracy["Neglect"], Ratio { n: 1, of: 2 });
        assert_eq!(f.category_accuracy["Bullying"], Ratio { n: 1, of: 3 });
        assert_eq!(f.overall_accuracy, Ratio { n: 2, of: 5 });
        assert_eq!(f.high_risk_recall, Ratio { n: 1, of: 2 });
        assert_eq!(f.high_risk_precision, Ratio { n: 1, of: 2 });
        assert_eq!((f.latency_median_ms, f.latency_p90_ms), (Some(200), Some(400)));
        let text = f.to_string();
        assert!(text.contains("valid JSON: 3/5 (60.0 %)"), "{text}");
        assert!(text.contains("high/urgent risk: recall 1/2 (50.0 %), precision 1/2 (50.0 %)"), "{text}");
        assert!(text.contains("latency: median 0.20 s, p90 0.40 s"), "{text}");
        let none = score("m", &set[..1], &[Answer::Failed]);
        assert_eq!(none.to_string().lines().last(), Some("latency: median n/a, p90 n/a"));
        assert!(none.to_string().contains("precision 0/0 (n/a)"));
    }

    #[test]
    fn a_set_is_checked_against_the_schools_categories() {
        let dir = tempfile::tempdir().unwrap();
        let cats = vec!["Neglect".to_string(), "Bullying".to_string()];
        std::fs::write(dir.path().join("a.toml"), "[[scenario]]\nid = \"1\"\ncategory = \"neglect\"\nrisk = \"high\"\ntext = \"x\"\n")
            .unwrap();
        let set = read_set(dir.path(), &cats).unwrap();
        assert_eq!(set[0].category, "Neglect", "canonical name");
        std::fs::write(dir.path().join("b.toml"), "[[scenario]]\nid = \"2\"\ncategory = \"Weather\"\nrisk = \"low\"\ntext = \"x\"\n")
            .unwrap();
        let e = read_set(dir.path(), &cats).unwrap_err().to_string();
        assert!(
            e.ends_with("b.toml: scenario \"2\": category \"Weather\" is not one of the school's categories (Neglect, Bullying)"),
            "{e}"
        );
        std::fs::write(dir.path().join("b.toml"), "[[scenario]]\nid = \"1\"\ncategory = \"Bullying\"\nrisk = \"severe\"\ntext = \"x\"\n")
            .unwrap();
        let e = read_set(dir.path(), &cats).unwrap_err().to_string();
        assert!(e.contains("b.toml: ") && e.contains("severe"), "{e}");
    }
}
