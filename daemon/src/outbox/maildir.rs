//! The Maildir transport: alerts written as files, so someone trying Haven sees them without an
//! SMTP server (SPEC `[smtp] transport = "maildir"`).
//!
//! Each message is written to `DIR/tmp`, flushed to disk, then renamed into `DIR/new` (the
//! Maildir delivery protocol, so a reader never sees half a file). The file name comes from
//! the Message-ID, so a resend after a crash replaces the earlier copy instead of adding one.

use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The file name for a Message-ID: only characters that are safe in a Maildir name (no `/`,
/// no `:`, which Maildir reserves for flags).
pub fn file_name(message_id: &str) -> String {
    let name: String = message_id
        .trim_matches(['<', '>'])
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+') { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with('.') { format!("haven{name}") } else { name }
}

/// Delivers `raw` into the Maildir at `dir` under the name derived from `message_id`, creating
/// `tmp`, `new` and `cur` when missing. Returns the delivered file's path.
pub async fn deliver(dir: &Path, message_id: &str, raw: &[u8]) -> io::Result<PathBuf> {
    for sub in ["tmp", "new", "cur"] {
        tokio::fs::create_dir_all(dir.join(sub)).await?;
    }
    let name = file_name(message_id);
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(raw).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, &new).await?;
    // The rename is durable only once the directory itself is flushed.
    if let Ok(d) = tokio::fs::File::open(dir.join("new")).await {
        let _ = d.sync_all().await;
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_stable() {
        assert_eq!(file_name("<haven.12.alert.7@school.example>"), "haven.12.alert.7@school.example");
        assert_eq!(file_name("a/b:c"), "a_b_c");
        assert_eq!(file_name("../x"), "haven.._x");
        assert_eq!(file_name(""), "haven");
    }
}
