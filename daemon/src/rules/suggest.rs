//! "Did you mean …?": the nearest known name to a misspelt key, role or category, so a
//! safeguarding lead sees `dls` → `dsl` rather than a list to search. Pure.

/// The candidate nearest to `wrong` (ignoring case, spaces and punctuation), when it is close
/// enough to be a slip: at most one edit in four characters, and at least one edit allowed.
pub(crate) fn nearest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = fold(wrong);
    if w.is_empty() {
        return None;
    }
    let limit = (w.chars().count() / 4).max(1);
    candidates.into_iter().map(|c| (edits(&w, &fold(c)), c)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, c)| c)
}

/// ` Did you mean "dsl"?`, or nothing.
pub(crate) fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(wrong, candidates).map(|c| format!(" (did you mean {c:?}?)")).unwrap_or_default()
}

/// toml's "unknown field `alerts`, expected one of `name`, `when`, …" (or "expected `a` or
/// `b`") with the nearest expected field named.
/// An unknown enum value ("unknown variant `imapp`, expected `imap` or `maildir`") is
/// answered the same way.
pub(crate) fn field_message(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("unknown variant `")) else {
        return message.to_string();
    };
    let Some((wrong, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let fields: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match nearest(wrong, fields.iter().copied()) {
        Some(f) => format!("{message} (did you mean `{f}`?)"),
        None => message.to_string(),
    }
}

fn fold(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters each count one.
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    if let Some(first) = d.first_mut() {
        for (j, cell) in first.iter_mut().enumerate() {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_slips_are_named_and_strangers_are_not() {
        let roles = ["dsl", "ddsl", "slt", "head", "senco", "esafety"];
        assert_eq!(nearest("dls", roles), Some("dsl"));
        assert_eq!(nearest("SENC0", roles), Some("senco"));
        assert_eq!(nearest("e-safty", roles), Some("esafety"));
        assert_eq!(nearest("caretaker", roles), None);
        assert_eq!(nearest("E-saftey", ["Pastoral issue", "E-safety"]), Some("E-safety"));
        assert_eq!(
            field_message("unknown field `alerts`, expected one of `name`, `when`, `alert`, `set_category`"),
            "unknown field `alerts`, expected one of `name`, `when`, `alert`, `set_category` (did you mean `alert`?)"
        );
        assert_eq!(field_message("unknown field `zzz`, expected `a` or `b`"), "unknown field `zzz`, expected `a` or `b`");
        assert_eq!(
            field_message("unknown variant `imapp`, expected `imap` or `maildir`"),
            "unknown variant `imapp`, expected `imap` or `maildir` (did you mean `imap`?)"
        );
    }
}
