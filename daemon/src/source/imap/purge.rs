//! Deleting given messages from the mailbox, for a disposal: each is looked for in the Filed
//! and Quarantine folders and the intake mailbox, by its Message-ID (or, without one, by its
//! exact size), and only a message whose raw bytes have the SHA-256 Haven recorded is deleted,
//! by UID: `\Deleted` on exactly those UIDs, then UID EXPUNGE of exactly those UIDs (UIDPLUS),
//! never a plain EXPUNGE, which would also remove what another client flagged.
//!
//! Logs folder names and counts only, never Message-IDs, addresses or text.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

use super::connect::{self, ImapSession, command};
use super::drain::{folder_exists, list};
use super::wire::{quote, server_folder, uid_set};
use super::{ImapError, ImapSettings};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const BODY_TIMEOUT: Duration = Duration::from_secs(600);

/// One message to delete, as Haven recorded it.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub message_id: Option<String>,
    pub size: u64,
    /// SHA-256 of the raw bytes, hex.
    pub sha256: String,
}

/// What was deleted where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// (folder as configured, copies deleted there).
    pub by_folder: Vec<(String, u64)>,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.by_folder.iter().map(|(_, n)| n).sum()
    }
}

/// Deletes every copy of `wanted` from the Filed and Quarantine folders and the intake
/// mailbox. Idempotent: what is already gone is simply not found.
pub async fn delete_messages(settings: &ImapSettings, wanted: &[Wanted]) -> Result<Purged, ImapError> {
    settings.check()?;
    let mut out = Purged::default();
    if wanted.is_empty() {
        return Ok(out);
    }
    let mut session = connect::open(settings).await?;
    let result = purge(&mut session, settings, wanted, &mut out).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
    result.map(|()| out)
}

async fn purge(session: &mut ImapSession, settings: &ImapSettings, wanted: &[Wanted], out: &mut Purged) -> Result<(), ImapError> {
    let caps = command(COMMAND_TIMEOUT, "CAPABILITY", session.capabilities()).await?;
    if !caps.has_str("UIDPLUS") {
        return Err(ImapError::Settings(
            "the IMAP server has no UIDPLUS, so Haven cannot expunge exactly the disposed messages \
             (a plain EXPUNGE would remove what others flagged); delete them by hand, or use a server with UIDPLUS"
                .into(),
        ));
    }
    let delimiter = list(session, "\"\"").await?.into_iter().find_map(|(_, d, _)| d);
    for configured in [&settings.filed_folder, &settings.quarantine_folder, &settings.mailbox] {
        let folder = server_folder(configured, delimiter.as_deref());
        if !folder_exists(session, &folder).await? {
            continue;
        }
        command(COMMAND_TIMEOUT, "SELECT", session.select(&folder)).await?;
        let mut matched: Vec<u32> = Vec::new();
        for w in wanted {
            let candidates = search(session, w).await?;
            if candidates.is_empty() {
                continue;
            }
            for (uid, raw) in fetch_bodies(session, &candidates).await? {
                if hex::encode(Sha256::digest(&raw)) == w.sha256 {
                    matched.push(uid);
                }
            }
        }
        if !matched.is_empty() {
            let set = uid_set(&matched);
            let flag = async {
                let _: Vec<_> = session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect().await?;
                Ok::<_, async_imap::error::Error>(())
            };
            command(COMMAND_TIMEOUT, "UID STORE", flag).await?;
            let expunge = async {
                let _: Vec<_> = session.uid_expunge(&set).await?.try_collect().await?;
                Ok::<_, async_imap::error::Error>(())
            };
            command(COMMAND_TIMEOUT, "UID EXPUNGE", expunge).await?;
            tracing::info!(folder = %configured, deleted = matched.len(), "disposal: messages deleted from the mailbox");
        }
        out.by_folder.push((configured.clone(), matched.len() as u64));
    }
    Ok(())
}

/// The UIDs that may be `w`: those with its Message-ID when it has a plain one, else those of
/// its exact size. The hash decides.
async fn search(session: &mut ImapSession, w: &Wanted) -> Result<Vec<u32>, ImapError> {
    let query = match w.message_id.as_deref().map(str::trim).filter(|id| usable_in_search(id)) {
        Some(id) => format!("HEADER Message-ID {}", quote(id)),
        None => format!("LARGER {} SMALLER {}", w.size.saturating_sub(1), w.size + 1),
    };
    let found = command(COMMAND_TIMEOUT, "UID SEARCH", session.uid_search(&query)).await?;
    let mut uids: Vec<u32> = found.into_iter().collect();
    uids.sort_unstable();
    Ok(uids)
}

/// A Message-ID that can go in a quoted search string: printable ASCII, not empty.
fn usable_in_search(id: &str) -> bool {
    !id.is_empty() && id.len() <= 900 && id.bytes().all(|b| (0x20..0x7f).contains(&b))
}

async fn fetch_bodies(session: &mut ImapSession, uids: &[u32]) -> Result<HashMap<u32, Vec<u8>>, ImapError> {
    let set = uid_set(uids);
    let run = async {
        let fetches: Vec<_> = session.uid_fetch(&set, "(UID BODY.PEEK[])").await?.try_collect().await?;
        Ok::<_, async_imap::error::Error>(fetches.iter().filter_map(|f| Some((f.uid?, f.body()?.to_vec()))).collect::<HashMap<_, _>>())
    };
    command(BODY_TIMEOUT, "UID FETCH BODY.PEEK[]", run).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_message_ids_are_searched_for() {
        assert!(usable_in_search("<note-named-1@mail.school.example>"));
        assert!(!usable_in_search(""));
        assert!(!usable_in_search("<caf\u{e9}@x>"));
        assert!(!usable_in_search("<a\r\nb@x>"));
    }

    #[test]
    fn totals_add_up() {
        let p = Purged { by_folder: vec![("Haven/Filed".into(), 2), ("Haven/Quarantine".into(), 1)] };
        assert_eq!(p.total(), 3);
    }
}
