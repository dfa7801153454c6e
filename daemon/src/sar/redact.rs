//! Burning a redaction into an item's text: every occurrence of a withheld text is replaced by
//! `[withheld: CODE]` before anything is laid out, so the words are not in the file at all
//! (nothing is drawn over them). Matching ignores case, and a space in the withheld text
//! matches any run of white space, so a name broken across a line is caught too.

/// The marker that stands where withheld text was.
pub fn marker(code: &str) -> String {
    format!("[withheld: {code}]")
}

/// Where `needle` first matches `hay` at or after byte `from`: (start, end) in bytes.
fn find_from(hay: &str, needle: &[char], from: usize) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    for (start, _) in hay.char_indices().filter(|(i, _)| *i >= from) {
        if let Some(end) = match_at(hay, start, needle) {
            return Some((start, end));
        }
    }
    None
}

/// The end of a match of `needle` starting at byte `start`, if it matches there.
fn match_at(hay: &str, start: usize, needle: &[char]) -> Option<usize> {
    let mut chars = hay[start..].char_indices().peekable();
    let mut n = 0;
    while n < needle.len() {
        let want = needle[n];
        if want.is_whitespace() {
            // One or more white space characters in the text.
            let mut any = false;
            while let Some((_, c)) = chars.peek() {
                if !c.is_whitespace() {
                    break;
                }
                any = true;
                chars.next();
            }
            if !any {
                return None;
            }
            while n < needle.len() && needle[n].is_whitespace() {
                n += 1;
            }
            continue;
        }
        let (_, got) = chars.next()?;
        if !got.to_lowercase().eq(want.to_lowercase()) {
            return None;
        }
        n += 1;
    }
    Some(start + chars.peek().map_or(hay.len() - start, |(i, _)| *i))
}

fn needle(text: &str) -> Vec<char> {
    text.trim().chars().collect()
}

/// Whether `text` occurs in `hay` (as [`burn`] would find it).
pub fn occurs(hay: &str, text: &str) -> bool {
    find_from(hay, &needle(text), 0).is_some()
}

/// `hay` with every occurrence of each of `texts` replaced by the marker for `code`.
pub fn burn(hay: &str, texts: &[String], code: &str) -> String {
    let mark = marker(code);
    let mut out = hay.to_string();
    // Longest first, so a full name goes before a first name inside it.
    let mut sorted: Vec<&String> = texts.iter().collect();
    sorted.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
    for t in sorted {
        let n = needle(t);
        let mut from = 0;
        while let Some((s, e)) = find_from(&out, &n, from) {
            out.replace_range(s..e, &mark);
            from = s + mark.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_goes_whatever_its_case_or_line_breaks() {
        let text = "Kai Turner pushed her. kai\n  turner said sorry. KAI TURNER again.";
        let out = burn(text, &["Kai Turner".into()], "S2P3-third-party");
        assert_eq!(
            out,
            "[withheld: S2P3-third-party] pushed her. [withheld: S2P3-third-party] said sorry. [withheld: S2P3-third-party] again."
        );
        assert!(!out.to_lowercase().contains("kai"));
        assert!(occurs(text, "kai turner"));
        assert!(!occurs(text, "Zofia"));
        assert!(!occurs(text, "  "));
    }

    #[test]
    fn longer_texts_go_first_and_other_scripts_are_matched() {
        let out = burn("Zoë Nowak and Zoë", &["Zoë".into(), "Zoë Nowak".into()], "X");
        assert_eq!(out, "[withheld: X] and [withheld: X]");
        assert_eq!(burn("ŁUKASZ", &["łukasz".into()], "X"), "[withheld: X]");
    }
}
