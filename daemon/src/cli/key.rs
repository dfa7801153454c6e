//! `haven key …`: the keyring, crash-safe and online.
//!
//! Rotation never overwrites or deletes a key file. Its steps, each durable before the next:
//! a new key file is written into the keyring folder (fsynced with its folder) → the database
//! names it current (a running daemon starts sealing with it at its next batch) → values under
//! older keys are re-sealed a batch per transaction → `verify` opens every value without the
//! old key. Killed at any moment, every value still opens (the ring holds every key not
//! retired), and `haven key reseal` finishes the job. `retire` takes an old key out of the ring
//! only after every value opened without it.

use super::CliError;
use super::progress::Progress;
use crate::seal::{KeyFiles, Sealer};
use crate::store::{KeyWalk, Store};
use chrono::{DateTime, Utc};
use std::io::Write;
use std::path::Path;

/// Writes a new hex key to `path` with mode 0600, failing if it exists.
pub fn write_new_key(path: &Path) -> Result<(), CliError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| CliError::Usage(format!("cannot create key file {}: {e}", path.display())))?;
    writeln!(f, "{}", *Sealer::generate_key_hex())
        .and_then(|_| f.sync_all())
        .map_err(|e| CliError::Other(anyhow::anyhow!("writing {}: {e}", path.display())))
}

/// The keyring, sealing with the key the database names as current.
pub async fn load_ring(store: &Store, key_file: &Path) -> Result<Sealer, CliError> {
    let state = store.key_state().await?;
    Sealer::load(&KeyFiles::new(key_file), state.current.as_deref(), &state.retired).map_err(|e| CliError::Config(e.to_string()))
}

/// How many times rotation walks the database: a daemon's batch that began before the switch
/// may commit under the old key after the first walk passed it.
const RESEAL_WALKS: usize = 3;

pub async fn rotate(store: &Store, key_file: &Path, now: DateTime<Utc>) -> Result<String, CliError> {
    let files = KeyFiles::new(key_file);
    let previous = load_ring(store, key_file).await?.key_id();
    let id = files
        .add_new_key()
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot write a new key into {}: {e}", files.ring_dir().display())))?;
    store.make_key_current(&id, &previous, "cli", now).await?;
    let ring = load_ring(store, key_file).await?;
    let mut resealed = 0;
    for _ in 0..RESEAL_WALKS {
        let walk = walk_showing(store, "rows re-sealed", async |progress| store.reseal_to_current(&ring, progress).await).await?;
        resealed += walk.resealed;
        if walk.resealed == 0 {
            break;
        }
    }
    let rewrapped = rewrap(&files, &ring)?;
    let verdict = match ring.without(&previous) {
        Some(rest) => {
            walk_showing(store, "rows checked without the old key", async |progress| store.verify_keys(&rest, progress).await).await?
        }
        None => KeyWalk::default(),
    };
    let file = files.path_for(&id);
    let mut out = format!(
        "key {id} is now current ({}); {resealed} values and {rewrapped} pupils' keys re-sealed under it.\n\
         Back up that file now: without it nothing sealed from now on can be read.\n",
        file.display()
    );
    if verdict.failed == 0 {
        out.push_str(&format!("Every sealed value opens without the old key {previous}: retire it with `haven key retire {previous}`."));
    } else {
        out.push_str(&format!(
            "{} values still need the old key {previous} (a batch that was being filed during the switch); run `haven key reseal`, then `haven key retire {previous}`.",
            verdict.failed
        ));
    }
    Ok(out)
}

pub async fn reseal(store: &Store, key_file: &Path) -> Result<String, CliError> {
    let ring = load_ring(store, key_file).await?;
    let walk = walk_showing(store, "rows re-sealed", async |progress| store.reseal_to_current(&ring, progress).await).await?;
    let rewrapped = rewrap(&KeyFiles::new(key_file), &ring)?;
    failures_or(
        &walk,
        format!(
            "{} values and {rewrapped} pupils' keys re-sealed under the current key {}; {}",
            walk.resealed,
            ring.key_id(),
            counts(&walk)
        ),
    )
}

pub async fn verify(store: &Store, key_file: &Path, without: Option<&str>) -> Result<String, CliError> {
    let ring = load_ring(store, key_file).await?;
    let ring = match without {
        None => ring,
        Some(id) => ring_without(&ring, id)?,
    };
    let walk = walk_showing(store, "rows checked", async |progress| store.verify_keys(&ring, progress).await).await?;
    let what = match without {
        Some(id) => format!("without key {id}"),
        None => "with the keyring".to_string(),
    };
    failures_or(&walk, format!("current key {}; every sealed value opens {what}: {}", ring.key_id(), counts(&walk)))
}

pub async fn retire(store: &Store, key_file: &Path, id: &str, now: DateTime<Utc>) -> Result<String, CliError> {
    let ring = load_ring(store, key_file).await?;
    let rest = ring_without(&ring, id)?;
    let walk = walk_showing(store, "rows checked", async |progress| store.verify_keys(&rest, progress).await).await?;
    if let Err(e) = KeyFiles::new(key_file).check_pupil_keys(&rest) {
        return Err(CliError::Data(format!(
            "key {id} is still needed: a pupil's key does not open without it ({e}); run `haven key reseal` first. Nothing was changed."
        )));
    }
    if walk.failed > 0 {
        return Err(CliError::Data(format!(
            "key {id} is still needed: {} sealed values do not open without it ({}); run `haven key reseal` first. Nothing was changed.",
            walk.failed,
            first_failures(&walk)
        )));
    }
    store.retire_key(id, "cli", now).await?;
    Ok(format!(
        "key {id} retired: every sealed value opened without it ({}). Haven no longer loads it; keep its file with your offline key backups or destroy it as your policy says.",
        counts(&walk)
    ))
}

/// Seals every pupil's own key file again under the current key.
fn rewrap(files: &KeyFiles, ring: &Sealer) -> Result<u64, CliError> {
    files.rewrap_pupil_keys(ring).map_err(|e| CliError::Other(anyhow::anyhow!("cannot re-seal the pupils' keys: {e}")))
}

fn ring_without(ring: &Sealer, id: &str) -> Result<Sealer, CliError> {
    if ring.key_id() == id {
        return Err(CliError::Usage(format!("key {id} is the current key; rotate first")));
    }
    if !ring.key_ids().iter().any(|k| k == id) {
        return Err(CliError::Usage(format!("key {id} is not in the keyring (its ids: {})", ring.key_ids().join(", "))));
    }
    ring.without(id).ok_or_else(|| CliError::Usage(format!("key {id} is the current key")))
}

fn counts(walk: &KeyWalk) -> String {
    let by: Vec<String> = walk.by_key.iter().map(|(k, n)| format!("{n} under {k}")).collect();
    if by.is_empty() { "nothing is sealed yet".into() } else { by.join(", ") }
}

fn first_failures(walk: &KeyWalk) -> String {
    walk.failures.iter().map(|(at, why)| format!("{at}: {why}")).collect::<Vec<_>>().join("; ")
}

fn failures_or(walk: &KeyWalk, ok: String) -> Result<String, CliError> {
    if walk.failed == 0 {
        Ok(ok)
    } else {
        Err(CliError::Data(format!("{} sealed values do not open: {}", walk.failed, first_failures(walk))))
    }
}

/// Runs one walk over every sealed row with a progress bar (or plain lines) on stderr.
async fn walk_showing(
    store: &Store,
    what: &'static str,
    walk: impl AsyncFnOnce(&mut dyn FnMut(u64)) -> Result<KeyWalk, crate::store::StoreError>,
) -> Result<KeyWalk, CliError> {
    let mut progress = Progress::start(what, store.sealed_rows().await?);
    let walked = walk(&mut |n| progress.advance(n)).await?;
    progress.finish();
    Ok(walked)
}
