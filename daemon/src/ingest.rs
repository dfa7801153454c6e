//! Finding messages on disk for `haven ingest`: single `.eml` files, Maildirs (their `new/`
//! and `cur/`), and directories of `.eml` files. Read-only: ingest never moves or deletes.

use std::path::{Path, PathBuf};

/// Every message file under the given paths, in a stable order (Maildir `cur/` before `new/`,
/// names sorted, so a backfill files mail in arrival order).
pub fn collect_message_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)?;
        if meta.is_file() {
            out.push(path.clone());
        } else if is_maildir(path) {
            for sub in ["cur", "new"] {
                out.extend(sorted_files(&path.join(sub), |_| true)?);
            }
        } else {
            out.extend(sorted_files(path, |p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("eml")))?);
        }
    }
    Ok(out)
}

pub fn is_maildir(path: &Path) -> bool {
    path.join("new").is_dir() || path.join("cur").is_dir()
}

fn sorted_files(dir: &Path, keep: impl Fn(&Path) -> bool) -> std::io::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .filter(|p| keep(p))
        .collect();
    files.sort();
    Ok(files)
}
