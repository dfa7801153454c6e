//! The opened directory, held between batches. Opening it decrypts every pupil's and
//! contact's sealed fields, which for a trust of 50,000 pupils costs more than filing a batch;
//! an import bumps the directory's generation (in the import's own transaction), so one cheap
//! read says whether the copy held is still the directory in the database.
//!
//! It must not hand out a copy older than the last committed import.

use super::{Result, Store, Tx, on_pool, on_tx};
use crate::directory::Directory;
use crate::seal::Sealer;
use std::sync::Arc;

/// The directory as last opened, with the generation it was opened at.
#[derive(Default)]
pub struct DirectoryCache {
    held: tokio::sync::Mutex<Option<(i64, Arc<Directory>)>>,
}

impl std::fmt::Debug for DirectoryCache {
    /// Never the directory itself: it holds pupils' names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryCache").finish_non_exhaustive()
    }
}

impl DirectoryCache {
    /// The directory as the database holds it now: the copy held when no import has committed
    /// since it was opened, else opened again with `sealer`.
    pub async fn current(&self, store: &Store, sealer: &Sealer) -> Result<Arc<Directory>> {
        let mut held = self.held.lock().await;
        let generation = store.directory_generation().await?;
        if let Some((at, dir)) = held.as_ref()
            && *at == generation
        {
            return Ok(dir.clone());
        }
        // Read after the generation: an import committing in between only makes the next
        // batch open it again.
        let dir = Arc::new(store.load_directory(sealer).await?);
        *held = Some((generation, dir.clone()));
        Ok(dir)
    }
}

impl Store {
    /// The directory's generation, bumped by every import.
    pub async fn directory_generation(&self) -> Result<i64> {
        on_pool!(self, |p| {
            Ok(sqlx::query_scalar::<_, i64>("SELECT generation FROM directory_generation WHERE id = 1").fetch_one(p).await?)
        })
    }
}

impl Tx {
    /// Marks the directory changed, for every holder of an opened copy.
    pub(crate) async fn bump_directory_generation(&mut self) -> Result<()> {
        on_tx!(self, |c| {
            sqlx::query("UPDATE directory_generation SET generation = generation + 1 WHERE id = 1").execute(&mut *c).await?;
        });
        Ok(())
    }
}
