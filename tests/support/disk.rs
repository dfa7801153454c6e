//! Disks that fill up: a small tmpfs mounted for one test (needs root), and a database whose
//! files live on it (a SQLite file, or a PostgreSQL database in a tablespace there).

use super::db::{Backend, admin_url};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs mounted for one test, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} ({}): these tests must run as root, as tests/run.sh does",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the filesystem has no space left.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).expect("filler file");
        let block = vec![0u8; 64 * 1024];
        let mut small = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&small).is_ok() {}
        small.truncate(1);
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
    }

    pub fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler file");
    }

    pub fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A database whose files live on a small tmpfs of its own: a SQLite file on it, or a
/// PostgreSQL database created in a tablespace on it.
///
/// Dropping it (also when a test panics) drops the PostgreSQL database and tablespace BEFORE
/// the tmpfs is unmounted: a database whose files vanish under the server would leave dirty
/// buffers no checkpoint can write, and every later CREATE DATABASE on the server would fail.
pub struct DiskDb {
    pub url: String,
    /// The PostgreSQL database's name (also its tablespace's).
    pub pg: Option<String>,
    pub disk: Tmpfs,
}

impl DiskDb {
    pub async fn new(backend: Backend, size: &str) -> DiskDb {
        let disk = Tmpfs::mount(size);
        match backend {
            Backend::Sqlite => DiskDb { url: format!("sqlite://{}", disk.path().join("haven.db").display()), pg: None, disk },
            Backend::Postgres => {
                let name = format!("haven_test_{}_{}", std::process::id(), rand::random::<u32>());
                let chown = Command::new("chown").args(["postgres:postgres"]).arg(disk.path()).status();
                assert!(chown.is_ok_and(|s| s.success()), "chown postgres {}", disk.path().display());
                let base = admin_url().rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
                let db = DiskDb { url: format!("{base}/{name}"), pg: Some(name.clone()), disk };
                let mut admin = admin().await;
                for sql in [
                    format!("CREATE TABLESPACE {name} LOCATION '{}'", db.disk.path().display()),
                    format!("CREATE DATABASE {name} TABLESPACE {name}"),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut admin).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
                db
            }
        }
    }

    /// Drops the PostgreSQL database and its tablespace (also done on drop).
    pub async fn cleanup(self) {
        drop(self);
    }
}

impl Drop for DiskDb {
    fn drop(&mut self) {
        let Some(name) = self.pg.take() else { return };
        for sql in [format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), format!("DROP TABLESPACE IF EXISTS {name}")] {
            let ok = Command::new("psql")
                .arg(admin_url())
                .args(["-qAtc", &sql])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("could not run {sql:?}: run it by hand before unmounting {}", self.disk.path().display());
            }
        }
    }
}

pub async fn admin() -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url()).await.unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", admin_url()))
}
