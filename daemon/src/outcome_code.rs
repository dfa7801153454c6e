//! Outcome codes: the decision an outcome records, read from the start of its text so reports
//! can count them. `NFA`, `MONITOR`, `EARLY-HELP`, `REFERRED CSC ref …`, `LADO`, `POLICE`,
//! `NO-REFERRAL because …`, written in capitals as the first words of an outcome (`haven
//! outcome`, or an emailed `Outcome: …`). The whole text is kept beside the code; text that
//! starts with no code ("Early help assessment opened…") has none.
//!
//! Pure: no store, no clock.

/// The decision an outcome records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeCode {
    /// No further action.
    Nfa,
    Monitor,
    EarlyHelp,
    /// Referred to children's social care (the reference, when given, stays in the text).
    ReferredCsc,
    /// Referred to the local authority designated officer (an allegation against staff).
    Lado,
    Police,
    /// A decision not to refer, with its reason in the text.
    NoReferral,
}

impl OutcomeCode {
    /// As stored and reported.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeCode::Nfa => "NFA",
            OutcomeCode::Monitor => "MONITOR",
            OutcomeCode::EarlyHelp => "EARLY-HELP",
            OutcomeCode::ReferredCsc => "REFERRED-CSC",
            OutcomeCode::Lado => "LADO",
            OutcomeCode::Police => "POLICE",
            OutcomeCode::NoReferral => "NO-REFERRAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a decision not to refer records its reason: write `NO-REFERRAL because …`")]
    NoReferralWithoutReason,
    #[error("a referral to children's social care is written `REFERRED CSC` (with `ref …` when there is one)")]
    ReferredWithoutCsc,
}

/// The code an outcome's text starts with, if any. `Err` when it starts with a code written
/// incompletely (`NO-REFERRAL` without `because …`, `REFERRED` without `CSC`).
pub fn parse_outcome_code(text: &str) -> Result<Option<OutcomeCode>, CodeError> {
    let text = text.trim_start();
    let word_end = text.find(|c: char| !(c.is_ascii_uppercase() || c == '-')).unwrap_or(text.len());
    let (word, rest) = text.split_at(word_end);
    // A code is a whole word: "NFAs" or "POLICEMAN" are not codes.
    if rest.chars().next().is_some_and(char::is_alphanumeric) {
        return Ok(None);
    }
    let rest = rest.trim_start_matches([' ', '\t', ':', '.', ';', ',', '-', '—', '–']).trim_start();
    Ok(Some(match word {
        "NFA" => OutcomeCode::Nfa,
        "MONITOR" => OutcomeCode::Monitor,
        "EARLY-HELP" => OutcomeCode::EarlyHelp,
        "LADO" => OutcomeCode::Lado,
        "POLICE" => OutcomeCode::Police,
        "REFERRED" if starts_with_word(rest, "CSC") => OutcomeCode::ReferredCsc,
        "REFERRED" => return Err(CodeError::ReferredWithoutCsc),
        "NO-REFERRAL" => {
            let reason = rest.strip_prefix("because").or_else(|| rest.strip_prefix("BECAUSE")).map(str::trim);
            match reason {
                Some(r) if !r.is_empty() => OutcomeCode::NoReferral,
                _ => return Err(CodeError::NoReferralWithoutReason),
            }
        }
        _ => return Ok(None),
    }))
}

fn starts_with_word(s: &str, word: &str) -> bool {
    s.strip_prefix(word).is_some_and(|r| !r.starts_with(char::is_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_read_from_the_start_of_the_text() {
        for (text, code) in [
            ("NFA", OutcomeCode::Nfa),
            ("NFA: spoke to mum, all fine", OutcomeCode::Nfa),
            ("MONITOR for two weeks", OutcomeCode::Monitor),
            ("EARLY-HELP — assessment opened with mum", OutcomeCode::EarlyHelp),
            ("REFERRED CSC ref 2026/4471, strategy meeting Friday", OutcomeCode::ReferredCsc),
            ("REFERRED CSC", OutcomeCode::ReferredCsc),
            ("  LADO informed 14:00", OutcomeCode::Lado),
            ("POLICE. PC Jones, crime ref 12", OutcomeCode::Police),
            ("NO-REFERRAL because threshold not met; mum engaging", OutcomeCode::NoReferral),
        ] {
            assert_eq!(parse_outcome_code(text), Ok(Some(code)), "{text}");
        }
    }

    #[test]
    fn free_text_has_no_code() {
        for text in ["Early help assessment opened with mum", "nfa", "NFAs all round", "POLICEMAN visited", "Spoke to mum", ""] {
            assert_eq!(parse_outcome_code(text), Ok(None), "{text}");
        }
    }

    #[test]
    fn a_code_written_incompletely_is_refused_with_how_to_write_it() {
        assert_eq!(parse_outcome_code("NO-REFERRAL"), Err(CodeError::NoReferralWithoutReason));
        assert_eq!(parse_outcome_code("NO-REFERRAL because "), Err(CodeError::NoReferralWithoutReason));
        assert_eq!(parse_outcome_code("REFERRED to the nurse"), Err(CodeError::ReferredWithoutCsc));
        assert!(CodeError::NoReferralWithoutReason.to_string().contains("NO-REFERRAL because"));
    }
}
