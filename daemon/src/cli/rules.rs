//! `haven rules check` and `haven rules test FILE.eml [--json]`: validate the rules, and dry-run
//! one message through reading, identification and the rules. Files nothing, sends nothing.

use super::{App, CliError, load_rules};
use crate::authenticate::{self, SenderCheck};
use crate::config::Config;
use crate::history;
use crate::identify;
use crate::read;
use crate::rules::{Facts, describe_duration};
use chrono::Utc;
use serde_json::json;
use std::path::Path;

pub fn check(config: &Config) -> Result<String, CliError> {
    use crate::clock::Clock;
    check_at(config, crate::clock::SystemClock.now())
}

/// The rules' summary, then the next three times each digest will run after `now`, in the
/// school's zone, so a cron line that means other days than intended shows at once.
pub fn check_at(config: &Config, now: chrono::DateTime<Utc>) -> Result<String, CliError> {
    let set = load_rules(config)?;
    let mut out = String::new();
    for w in set.warnings() {
        out.push_str(&format!("{w}\n"));
    }
    out.push_str(&format!("rules OK: {} ({})", set.summary(), config.rules.dir.display()));
    if !set.warnings().is_empty() {
        out.push_str(&format!(", {} warning(s) above", set.warnings().len()));
    }
    let tz = config.school.tz();
    for (i, d) in config.digests.iter().enumerate() {
        let runs = match crate::schedule::due::parse_cron(&d.cron) {
            Ok(cron) => crate::schedule::due::next_digest_slots(&cron, tz, now, 3)
                .iter()
                .map(|t| t.with_timezone(&tz).format("%a %-d %b %Y %H:%M %Z").to_string())
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("cron unreadable: {e}"),
        };
        out.push_str(&format!("\ndigest[{i}] to {} ({:?}): next {runs}", d.to, d.cron));
    }
    Ok(out)
}

/// `with_ai`: the model `[ai]` configures is asked too, as triage would ask it after filing;
/// its suggestion is shown, and the decision includes the rules on `when.ai_risk` as they
/// would apply once it is stored.
pub async fn test(app: &App, file: &Path, as_json: bool, with_ai: bool) -> Result<String, CliError> {
    let rules = load_rules(&app.config)?;
    let raw = std::fs::read(file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let settings = super::filing_settings(&app.config);
    let msg = read::read_message_with(&raw, &settings.limits).map_err(|e| CliError::Data(format!("{}: {e}", file.display())))?;
    let dir = app.store.load_directory(&app.sealer().await?).await?;
    let sender = match authenticate::check_sender(&msg, &dir, settings.trusted_authserv_id.as_deref()) {
        SenderCheck::Staff(s) => format!("{} {} (staff)", s.first_name, s.last_name),
        SenderCheck::Refused(reason) => format!("would be quarantined: {reason}"),
    };
    let ident = identify::identify(&msg, &dir, rules.categories(), &settings.intake_address);
    let at = msg.occurred_at().map_or_else(|| app.now(), |d| d.with_timezone(&Utc));
    let earlier = history::earlier(&app.store, &rules, ident.pupils.iter().map(|p| p.pupil_id).collect(), at).await?;
    let history = history::counts(&rules, &ident, at, earlier.iter());
    let (suggestion, ai_error) = if with_ai { ask_model(app, &msg, &rules, &dir).await? } else { (None, None) };
    let ai_risk = suggestion.as_ref().and_then(|s| crate::ai::rules::risk_level(s.risk));
    let decision = rules.evaluate(&Facts { message: &msg, identification: &ident, directory: &dir, history: &history, ai_risk });
    let pupils: Vec<serde_json::Value> = ident
        .pupils
        .iter()
        .map(|m| {
            let p = dir.pupil(m.pupil_id);
            json!({
                "upn": p.map(|p| p.upn.clone()),
                "name": p.map(|p| p.full_name()),
                "role": m.role.as_str(),
                "how": m.how,
            })
        })
        .collect();
    let v = json!({
        "kind": msg.kind,
        "sender": sender,
        "pupils": pupils,
        "triage": ident.triage,
        "category_named": ident.category,
        "category_named_how": ident.category_how,
        "decision": decision,
    });
    let mut v = v;
    if with_ai {
        v["ai_suggestion"] = json!(suggestion.as_ref().map(|s| json!({
            "label": format!("AI suggestion ({})", s.model),
            "model": s.model, "risk": s.risk, "category": s.category, "reasons": s.reasons, "summary": s.summary,
            "pupils": s.pupils.iter().filter_map(|id| dir.pupil(*id).map(|p| p.full_name())).collect::<Vec<_>>(),
        })));
        v["ai_error"] = json!(ai_error);
    }
    if as_json {
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let mut out = format!("dry run of {} (nothing filed, nothing sent)\nsender: {sender}\n", file.display());
    if let Some(t) = &ident.triage {
        out.push_str(&format!("pupils: none certain: would await triage ({})\n", t.reason));
    }
    for (m, p) in ident.pupils.iter().filter_map(|m| dir.pupil(m.pupil_id).map(|p| (m, p))) {
        out.push_str(&format!("pupil: {} ({}), {} — {}\n", p.full_name(), p.upn, m.role.as_str(), m.how));
    }
    out.push_str(&format!("category: {} ({})\n", decision.category, decision.category_reason));
    out.push_str(&format!("priority: {}\nvisibility: {}\n", decision.priority.as_str(), decision.visibility));
    for m in &decision.matched {
        out.push_str(&format!("matched: {m}\n"));
    }
    // Staff by name and address, as a lead knows them.
    let who = |r: &crate::rules::Recipient| match dir.staff.iter().find(|s| s.id == r.staff_id) {
        Some(s) => format!("{} {} <{}>", s.first_name, s.last_name, r.email),
        None => r.email.clone(),
    };
    for r in &decision.recipients {
        out.push_str(&format!("alert: {} — {}\n", who(r), r.why));
    }
    match decision.outcome_within {
        Some(d) => out.push_str(&format!("outcome required within {}\n", describe_duration(d))),
        None => out.push_str("no outcome required\n"),
    }
    for rung in &decision.escalation {
        let names: Vec<String> = rung.recipients.iter().map(who).collect();
        out.push_str(&format!("escalate after {} to {}\n", describe_duration(rung.after), names.join(", ")));
    }
    for n in &decision.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    if with_ai {
        match (&suggestion, &ai_error) {
            (Some(s), _) => {
                out.push_str(&format!("AI suggestion ({}): risk {}", s.model, s.risk.as_str()));
                if let Some(c) = &s.category {
                    out.push_str(&format!(", category {c}"));
                }
                out.push('\n');
                if !s.summary.is_empty() {
                    out.push_str(&format!("  summary: {}\n", s.summary));
                }
                for r in &s.reasons {
                    out.push_str(&format!("  because: \"{r}\"\n"));
                }
                let named: Vec<String> = s.pupils.iter().filter_map(|id| dir.pupil(*id).map(|p| p.full_name())).collect();
                if !named.is_empty() {
                    out.push_str(&format!("  pupils mentioned: {}\n", named.join(", ")));
                }
                out.push_str("  (a suggestion, not a decision: only rules on when.ai_risk read it, and they only add)\n");
            }
            (None, Some(e)) => out.push_str(&format!("AI suggestion: none ({e})\n")),
            (None, None) => out.push_str("AI suggestion: none (the answer did not parse)\n"),
        }
    }
    Ok(out)
}

/// The model's suggestion for `msg`, as triage would ask for it; or why there is none.
async fn ask_model(
    app: &App,
    msg: &crate::message::Message,
    rules: &crate::rules::RuleSet,
    dir: &crate::directory::Directory,
) -> Result<(Option<crate::ai::Suggestion>, Option<String>), CliError> {
    let settings =
        app.config.ai.as_ref().ok_or_else(|| {
            CliError::Config("--ai: [ai] is not configured, so there is no model to ask (README \"AI suggestions\")".into())
        })?;
    let reader = crate::ai::Reader::new(settings);
    let original = msg.forwarded.as_ref();
    let subject = original.and_then(|f| f.subject.as_deref()).or(msg.subject.as_deref());
    let note = msg.note.as_deref().or(msg.reply_text.as_deref());
    let body = original.map_or(msg.text.as_str(), |f| f.body.as_str());
    let text = crate::ai::message_text(subject, note, body);
    let categories: Vec<String> = rules.categories().iter().map(|c| c.name.clone()).collect();
    Ok(match reader.suggest(&text, &categories, &std::sync::Arc::new(dir.clone())).await {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    })
}
