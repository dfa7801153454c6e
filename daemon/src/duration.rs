//! The one way Haven reads a written duration, in `haven.toml` and in the rules alike: a whole
//! number and a unit, `s`, `m`, `h`, `d` or `w` (seconds, minutes, hours, days, weeks), in
//! either case, such as `90s`, `15m`, `4H` or `2d`. Pure.
//!
//! There is no month or year unit (their length varies) and no bare number (is `60` seconds
//! or minutes?). Callers add their own bounds: the rules, for example, count in whole minutes.

use std::time::Duration;

/// What the grammar accepts, for error messages.
pub const GRAMMAR: &str = "a whole number and s, m, h, d or w, like \"90s\", \"15m\", \"4h\" or \"2d\"";

/// `None` for anything outside the grammar, or longer than u64 seconds can hold.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let digits = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let unit: u64 = match s[digits..].to_ascii_lowercase().as_str() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_in_either_case() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("15M"), Some(Duration::from_secs(900)), "M is minutes, not months");
        assert_eq!(parse_duration(" 4H "), Some(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_duration("1W"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO), "bounds are the caller's");
        for bad in ["", "s", "60", "1.5h", "-1d", "2 days", "2x", "1h30m", "99999999999999999999d", "30000000000000000w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
