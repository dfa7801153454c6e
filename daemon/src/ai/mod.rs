//! AI suggestions (issue 23): a second reader of every incident filed, which suggests and never
//! decides. Off unless `[ai]` is configured.
//!
//! - [`suggestion`]: what may be suggested, the bounded JSON schema and the checks on an answer (pure).
//! - [`model`]: the one call to the model through rig-core, bounded in time and tokens.
//! - [`eval`]: a labelled set of messages and how the model's suggestions score on it (pure).
//! - [`redact`]: names, addresses and numbers taken out before the text leaves (pure).
//! - [`roll`]: which names the model gives are pupils on the roll (pure).
//! - [`worker`]: the task of `haven run` that works the queue filing fills.
//! - [`rules`]: the rules with `when.ai_risk`, evaluated again once a suggestion is stored
//!   (or has not come within a rule's `ai_timeout`); they only ever add.
//!
//! The suggestion never lowers or removes anything: the rules' alerts, priority and deadlines
//! are decided at filing, before the model is asked, and only rules that name `ai_risk` may
//! add to them afterwards.

pub mod eval;
pub mod model;
pub mod redact;
pub mod roll;
pub mod rules;
pub mod suggestion;
pub mod worker;

pub use model::{AiError, Reader};
pub use suggestion::{Risk, Suggestion};

/// What the model reads of a message: only its own words (no labels of ours, so every quote is
/// one of them): the subject, the staff note unless the body already holds it (a note is often
/// the body again), and the body.
pub fn message_text(subject: Option<&str>, note: Option<&str>, body: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    parts.extend(subject);
    if let Some(n) = note
        && !body.contains(n.trim())
    {
        parts.push(n);
    }
    parts.push(body);
    parts.join("\n\n")
}

/// The digest's line for each suggestion that opens: "AI suggestion (MODEL): risk high. The
/// summary." A suggestion that does not open is left out (the digest still lists the incident).
pub fn digest_lines(sealer: &crate::seal::Sealer, sealed: Vec<(i64, String)>) -> std::collections::HashMap<i64, String> {
    sealed
        .into_iter()
        .filter_map(|(id, s)| {
            let json = crate::blind::open_or_clear(sealer, crate::pipeline::fields::AI_SUGGESTION, &s).ok()?;
            let s: Suggestion = serde_json::from_str(&json).ok()?;
            let summary = if s.summary.is_empty() { String::new() } else { format!(" {}", s.summary) };
            Some((id, format!("AI suggestion ({}): risk {}.{summary}", s.model, s.risk.as_str())))
        })
        .collect()
}

/// An "AI: right" or "AI: wrong" line in a reply (the DSL's verdict on the suggestion): true
/// for right. Quoted lines (`> …`) are not the sender's.
pub fn feedback_verdict(reply: &str) -> Option<bool> {
    reply.lines().map(str::trim).filter(|l| !l.starts_with('>')).find_map(|l| {
        let (key, rest) = l.split_once(':')?;
        if !key.trim().eq_ignore_ascii_case("ai") {
            return None;
        }
        let word: String = rest.trim().chars().take_while(|c| c.is_ascii_alphabetic()).collect::<String>().to_ascii_lowercase();
        match word.as_str() {
            "right" | "correct" => Some(true),
            "wrong" | "incorrect" => Some(false),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_line_gives_the_verdict_on_the_suggestion() {
        assert_eq!(feedback_verdict("AI: wrong"), Some(false));
        assert_eq!(feedback_verdict("Thanks.\n  ai: Right, it was neglect"), Some(true));
        assert_eq!(feedback_verdict("Outcome: NFA\nAI: incorrect"), Some(false));
        assert_eq!(feedback_verdict("> AI: wrong\nI disagree with the above"), None);
        assert_eq!(feedback_verdict("AI: maybe"), None);
        assert_eq!(feedback_verdict("Said: wrong"), None);
    }

    #[test]
    fn the_text_sent_is_the_messages_own_words_with_a_note_once() {
        assert_eq!(message_text(Some("S"), Some("N"), "B"), "S\n\nN\n\nB");
        assert_eq!(message_text(None, Some("body"), "the body again"), "the body again");
    }
}
