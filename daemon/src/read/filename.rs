//! Attachment file names made safe: whatever the sender wrote (already decoded from RFC 2231 or
//! encoded words by the parser), the result has no directory part, no control characters, no
//! leading dots, and is never empty, so it can be shown to staff and used in an export bundle.

/// Longest name kept, in characters (long enough for real names, short enough for filesystems).
const MAX_CHARS: usize = 200;

/// A safe file name for `raw`; `"attachment"` when nothing usable is left.
pub fn sanitize(raw: &str) -> String {
    // Keep only the last path component, whichever separator the sender's system used.
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .map(|c| match c {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches(['.', ' ']).trim_end_matches([' ', '.']);
    let short: String = trimmed.chars().take(MAX_CHARS).collect();
    if short.is_empty() { "attachment".to_string() } else { short }
}

/// Right-to-left overrides and friends can disguise `gpj.exe` as `exe.jpg`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn path_traversal_is_removed() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("..\\..\\windows\\win.ini"), "win.ini");
        assert_eq!(sanitize("/abs/report.pdf"), "report.pdf");
    }

    #[test]
    fn dots_controls_and_empties() {
        assert_eq!(sanitize(".htaccess"), "htaccess");
        assert_eq!(sanitize(".."), "attachment");
        assert_eq!(sanitize(""), "attachment");
        assert_eq!(sanitize("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(sanitize("photo\u{202E}gpj.exe"), "photogpj.exe");
        assert_eq!(sanitize("Zeugnis Müller.pdf"), "Zeugnis Müller.pdf");
    }
}
