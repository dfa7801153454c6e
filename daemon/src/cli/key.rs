//! `haven key rotate`: move everything sealed at rest to a new key, crash-safely.
//!
//! Order: the new key is written to `KEY.new` (mode 0600) → every sealed value is re-sealed
//! in one transaction → after commit the old key is kept as `KEY.old-<id>` and the new one
//! renamed into place. A crash before commit leaves the old key in force; after commit the new
//! key is at `KEY.new` and errors name the key id they need.

use super::CliError;
use crate::seal::Sealer;
use crate::store::{ResealCount, Store};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a new hex key to `path` with mode 0600, failing if it exists.
pub fn write_new_key(path: &Path) -> Result<(), CliError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| CliError::Usage(format!("cannot create key file {}: {e}", path.display())))?;
    writeln!(f, "{}", Sealer::generate_key_hex())
        .and_then(|_| f.sync_all())
        .map_err(|e| CliError::Other(anyhow::anyhow!("writing {}: {e}", path.display())))
}

pub async fn rotate(store: &Store, key_file: &Path) -> Result<(ResealCount, String), CliError> {
    let old = Sealer::from_key_file(key_file).map_err(|e| CliError::Config(e.to_string()))?;
    let new_path = with_suffix(key_file, ".new");
    if new_path.exists() {
        return Err(CliError::Usage(format!(
            "{} exists: a rotation was interrupted. If `haven status` works with it, move it to {}; otherwise delete it and run the rotation again",
            new_path.display(),
            key_file.display()
        )));
    }
    write_new_key(&new_path)?;
    let new = Sealer::from_key_file(&new_path).map_err(|e| CliError::Config(e.to_string()))?;
    let bytes = |field: &str, data: &[u8]| -> Result<Vec<u8>, String> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let plain = old.open(field, data).map_err(|e| e.to_string())?;
        Ok(new.seal(field, &plain))
    };
    let text = |field: &str, data: &str| -> Result<String, String> {
        let plain = old.open_text(field, data).map_err(|e| e.to_string())?;
        Ok(new.seal_text(field, &plain))
    };
    let count = match store.reseal_all(&bytes, &text).await {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&new_path);
            return Err(CliError::Other(anyhow::anyhow!("rotation rolled back, the old key stays in force: {e}")));
        }
    };
    let kept = with_suffix(key_file, &format!(".old-{}", old.key_id()));
    std::fs::rename(key_file, &kept)
        .and_then(|_| std::fs::rename(&new_path, key_file))
        .map_err(|e| CliError::Other(anyhow::anyhow!("re-sealed, but moving the key files failed ({e}); the new key is {}", new_path.display())))?;
    Ok((count, new.key_id()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
