//! Finding and reading messages on disk for `haven ingest`: single message files, Maildir and
//! Maildir++ folders (`cur/` and `new/` of the top folder and of every `.Folder` below it),
//! mbox files, and directories of `.eml` files. Read-only: ingest never moves or deletes.
//!
//! Finding ([`plan`]) counts the messages before any is read, so a progress bar knows its
//! length; reading ([`Plan::read`]) then streams them one at a time (an mbox through
//! mail-parser's mbox iterator), so a large archive is never held in memory whole. Maildir
//! folders are listed here rather than with mail-parser's Maildir iterator because that one
//! reads every message while listing, in directory order, and does not sort.

use crate::source::{Incoming, Origin, Payload};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Where messages were found, in the order they will be filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// One message in a file of its own (an `.eml` file or a Maildir entry).
    File(PathBuf),
    /// An mbox file holding `messages` messages.
    Mbox { path: PathBuf, messages: u64 },
}

/// Everything `haven ingest` was given, found and counted.
#[derive(Debug, Default)]
pub struct Plan {
    pub found: Vec<Found>,
}

impl Plan {
    /// How many messages the plan holds.
    pub fn messages(&self) -> u64 {
        self.found
            .iter()
            .map(|f| match f {
                Found::File(_) => 1,
                Found::Mbox { messages, .. } => *messages,
            })
            .sum()
    }

    /// Reads the messages in order. A message file larger than `max_size` is not read: it is
    /// handed over as [`Payload::TooLarge`] and quarantined, as the daemon does.
    pub fn read(self, max_size: u64) -> impl Iterator<Item = Read> {
        self.found.into_iter().flat_map(move |found| -> Box<dyn Iterator<Item = Read>> {
            match found {
                Found::File(path) => Box::new(std::iter::once(read_file(path, max_size))),
                Found::Mbox { path, .. } => read_mbox(path),
            }
        })
    }
}

/// One message read from disk, or why it could not be.
pub type Read = Result<Incoming, Unreadable>;

/// A message file or mbox that could not be read (named, with the reason).
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", where_.display())]
pub struct Unreadable {
    pub where_: PathBuf,
    pub error: std::io::Error,
}

/// Finds every message under `paths`, in a stable order: each path in the order given; in a
/// Maildir the top folder's `cur/` then `new/`, then each `.Folder` by name; names sorted, so a
/// backfill files mail in arrival order.
pub fn plan(paths: &[PathBuf]) -> Result<Plan, Unreadable> {
    let mut found = Vec::new();
    for path in paths {
        let fail = |error| Unreadable { where_: path.clone(), error };
        let meta = std::fs::metadata(path).map_err(fail)?;
        if meta.is_file() {
            found.push(match count_mbox(path).map_err(fail)? {
                Some(messages) => Found::Mbox { path: path.clone(), messages },
                None => Found::File(path.clone()),
            });
        } else if is_maildir(path) {
            for folder in maildir_folders(path).map_err(fail)? {
                for sub in ["cur", "new"] {
                    found.extend(sorted_files(&folder.join(sub), |_| true).map_err(fail)?.into_iter().map(Found::File));
                }
            }
        } else {
            let emls = sorted_files(path, |p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("eml"))).map_err(fail)?;
            found.extend(emls.into_iter().map(Found::File));
        }
    }
    Ok(Plan { found })
}

pub fn is_maildir(path: &Path) -> bool {
    path.join("new").is_dir() || path.join("cur").is_dir()
}

/// The Maildir at `root` and its Maildir++ subfolders (`.Sent`, `.Archive.2024`, …), the top
/// folder first and the rest by name.
fn maildir_folders(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut subs: Vec<PathBuf> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) && p.is_dir() && is_maildir(p))
        .collect();
    subs.sort();
    subs.insert(0, root.to_path_buf());
    Ok(subs)
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

/// `Some(count)` when the file is an mbox (its first line is a `From ` separator), counting
/// the separators as mail-parser's mbox iterator splits them; `None` for a single message.
fn count_mbox(path: &Path) -> std::io::Result<Option<u64>> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut line = Vec::with_capacity(128);
    reader.read_until(b'\n', &mut line)?;
    if !line.starts_with(b"From ") {
        return Ok(None);
    }
    let mut count = 1;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(Some(count));
        }
        if line.starts_with(b"From ") {
            count += 1;
        }
    }
}

fn read_file(path: PathBuf, max_size: u64) -> Read {
    let size = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(error) => return Err(Unreadable { where_: path, error }),
    };
    let payload = if size > max_size {
        Payload::TooLarge { size }
    } else {
        match std::fs::read(&path) {
            Ok(raw) => Payload::Raw(raw),
            Err(error) => return Err(Unreadable { where_: path, error }),
        }
    };
    Ok(Incoming { origin: Origin::File { path }, payload })
}

/// The messages of an mbox, each recorded as coming from `PATH#N` (N from 1).
fn read_mbox(path: PathBuf) -> Box<dyn Iterator<Item = Read>> {
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(error) => return Box::new(std::iter::once(Err(Unreadable { where_: path, error }))),
    };
    let messages = mail_parser::mailbox::mbox::MessageIterator::new(std::io::BufReader::new(file));
    Box::new(messages.enumerate().map(move |(i, m)| {
        let origin = PathBuf::from(format!("{}#{}", path.display(), i + 1));
        match m {
            Ok(m) => Ok(Incoming { origin: Origin::File { path: origin }, payload: Payload::Raw(m.unwrap_contents()) }),
            Err(error) => Err(Unreadable { where_: origin, error }),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn maildir_plus_plus_folders_and_mboxes_are_found_in_order_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        write(&md.join("new/2"), "Subject: b\n\nb\n");
        write(&md.join("cur/1:2,S"), "Subject: a\n\na\n");
        write(&md.join(".Archive/cur/3:2,S"), "Subject: c\n\nc\n");
        std::fs::create_dir_all(md.join(".Empty/new")).unwrap();
        std::fs::create_dir_all(md.join("tmp")).unwrap();
        write(&md.join("tmp/half"), "Subject: half-written\n");
        let mbox = dir.path().join("archive.mbox");
        write(
            &mbox,
            "From a@x Mon Dec  7 09:00:00 2026\nSubject: one\n\n>From here\nFrom b@x Mon Dec  7 09:01:00 2026\nSubject: two\n\nbody\n",
        );
        let plan = plan(&[md.clone(), mbox.clone()]).unwrap();
        assert_eq!(plan.messages(), 5);
        let read: Vec<Incoming> = plan.read(1_000_000).map(|r| r.unwrap()).collect();
        let origins: Vec<String> = read
            .iter()
            .map(|i| match &i.origin {
                Origin::File { path } => path.strip_prefix(dir.path()).unwrap_or(path).display().to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(origins, ["Maildir/cur/1:2,S", "Maildir/new/2", "Maildir/.Archive/cur/3:2,S", "archive.mbox#1", "archive.mbox#2"]);
        assert_eq!(read[3].payload, Payload::Raw(b"Subject: one\n\nFrom here\n".to_vec()), "mboxrd quoting undone");
    }

    #[test]
    fn a_file_over_the_size_limit_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.eml");
        write(&big, &"x".repeat(100));
        let read: Vec<Read> = plan(std::slice::from_ref(&big)).unwrap().read(50).collect();
        assert_eq!(read[0].as_ref().unwrap().payload, Payload::TooLarge { size: 100 });
    }

    #[test]
    fn a_missing_path_is_named() {
        let e = plan(&[PathBuf::from("/nonexistent/haven-mail")]).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/haven-mail: "), "{e}");
    }
}
