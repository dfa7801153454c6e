//! Rule-set errors as a safeguarding lead sees them: `file:line:column: message`, one per
//! line, every error of the whole set at once so a single `haven rules check` shows them all.
//!
//! Positions come from byte offsets (toml's spans) turned into 1-based lines and character
//! columns here; nothing else in the module counts lines.

use std::fmt;
use std::ops::Range;

/// One problem in one rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file as the user named it (rules dir joined with the file name).
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Every error found while loading a rule set; `haven run` refuses to start on any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors for one file, turning byte spans into line and column.
pub(crate) struct FileErrors<'a> {
    file: &'a str,
    text: &'a str,
    pub(crate) errors: Vec<RuleError>,
}

impl<'a> FileErrors<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> FileErrors<'a> {
        FileErrors { file, text, errors: Vec::new() }
    }

    /// Records `message` at the start of `span` (start of the file when unknown).
    pub(crate) fn at(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, column) = line_column(self.text, span.map(|s| s.start).unwrap_or(0));
        self.errors.push(RuleError { file: self.file.to_string(), line, column, message: message.into() });
    }
}

/// 1-based line and character column of a byte offset (clamped to the text).
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // "é" is two bytes: the "=" after it is character 4.
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
