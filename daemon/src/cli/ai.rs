//! `haven ai eval DIR`: runs a labelled set of messages through the model `[ai]` configures,
//! as the triage worker would send them (cut, and redacted when `ai.redact` is on), and prints
//! how its suggestions compare with the labels (`crate::ai::eval`). Reads no records: only the
//! set, the rules' categories and, for redaction, the directory's names.

use super::{App, CliError, load_rules};
use crate::ai::Reader;
use crate::ai::eval::{self, Answer};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub async fn eval(app: &App, dir: &Path, as_json: bool) -> Result<String, CliError> {
    let settings = app.config.ai.as_ref().ok_or_else(|| {
        CliError::Config("[ai] is not configured: haven ai eval asks the model [ai] names (README \"AI suggestions\")".into())
    })?;
    let rules = load_rules(&app.config)?;
    let categories: Vec<String> = rules.categories().iter().map(|c| c.name.clone()).collect();
    let set = eval::read_set(dir, &categories).map_err(|e| CliError::Data(e.to_string()))?;
    let reader = Reader::new(settings);
    let directory = Arc::new(app.store.load_directory(&app.sealer().await?).await?);
    let mut answers = Vec::with_capacity(set.len());
    for (i, s) in set.iter().enumerate() {
        let started = Instant::now();
        let answer = match reader.suggest(&s.message(), &categories, &directory).await {
            Ok(suggestion) => Answer::Answered(suggestion, started.elapsed()),
            Err(e) => {
                eprintln!("haven: scenario {:?}: {e}", s.id);
                Answer::Failed
            }
        };
        answers.push(answer);
        if (i + 1) % 10 == 0 {
            eprintln!("haven: {}/{} scenarios asked", i + 1, set.len());
        }
    }
    let figures = eval::score(reader.name(), &set, &answers);
    Ok(if as_json { serde_json::to_string_pretty(&figures).unwrap_or_default() } else { figures.to_string() })
}

/// `haven ai report --as STAFF`: the model's measured precision at this school, from the DSL
/// team's verdicts ("AI: right" / "AI: wrong" replies to alerts, the console's buttons), per model and for the
/// suggestions of high or urgent risk. Counts only, never a suggestion's words. For the DSL
/// team; audited, and so is a refusal.
pub async fn report(app: &App, viewer: &str, as_json: bool, now: chrono::DateTime<chrono::Utc>) -> Result<String, CliError> {
    let sealer = app.sealer().await?;
    // Staff only: no pupil is opened to check who is asking.
    let dir = app.store.load_directory_with_pupils(&sealer, &[]).await?;
    let staff =
        dir.active_staff_by_email(viewer).ok_or_else(|| CliError::Usage(format!("--as {viewer}: not an active member of staff")))?;
    if !staff.is_dsl_team() {
        app.store.audit(now, &format!("staff:{}", staff.id), "ai_report_refused", "ai", "not DSL team").await?;
        return Err(CliError::Usage(format!("--as {viewer}: only the DSL team may read the AI report")));
    }
    let open = |sealed: &str| -> Option<crate::ai::Suggestion> {
        let json = crate::blind::open_or_clear(&sealer, crate::pipeline::fields::AI_SUGGESTION, sealed).ok()?;
        serde_json::from_str(&json).ok()
    };
    let mut models: std::collections::BTreeMap<String, ModelReport> = std::collections::BTreeMap::new();
    for (_, sealed) in app.store.ai_suggestions().await? {
        if let Some(s) = open(&sealed) {
            let m = models.entry(s.model.clone()).or_default();
            m.suggestions += 1;
            m.high_or_urgent += usize::from(is_high(s.risk));
        }
    }
    for v in app.store.ai_verdicts().await? {
        let Some(s) = open(&v.sealed_suggestion) else { continue };
        let m = models.entry(s.model.clone()).or_default();
        let (all, high) = (&mut m.verdicts, &mut m.high_verdicts);
        for r in std::iter::once(all).chain(is_high(s.risk).then_some(high)) {
            r.of += 1;
            r.n += usize::from(v.right);
        }
    }
    app.store.audit(now, &format!("staff:{}", staff.id), "ai_report", "ai", &format!("models={}", models.len())).await?;
    if as_json {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({ "models": models })).unwrap_or_default());
    }
    if models.is_empty() {
        return Ok("no AI suggestions stored yet".into());
    }
    let mut out = String::new();
    for (model, m) in &models {
        out.push_str(&format!(
            "{model}: {} suggestions ({} high or urgent)\n  precision (judged right by the DSL team): {}\n  precision of high/urgent: {}\n",
            m.suggestions, m.high_or_urgent, m.verdicts, m.high_verdicts
        ));
    }
    out.push_str("verdicts come from replies to alerts with a line \"AI: right\" or \"AI: wrong\", and the console's \"AI was right\" / \"AI was wrong\"");
    Ok(out)
}

fn is_high(r: crate::ai::Risk) -> bool {
    matches!(r, crate::ai::Risk::High | crate::ai::Risk::Urgent)
}

/// One model's figures in `haven ai report`.
#[derive(Debug, Default, serde::Serialize)]
struct ModelReport {
    suggestions: usize,
    high_or_urgent: usize,
    /// Verdicts "right" of all verdicts.
    verdicts: eval::Ratio,
    high_verdicts: eval::Ratio,
}
