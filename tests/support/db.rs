//! A fresh database per test, on SQLite and on PostgreSQL.
//!
//! Write a storage test once as `async fn name(backend: Backend)` and list it in
//! `backend_tests!(name, …)`: it then runs as `sqlite::name` and `postgres::name`. PostgreSQL
//! tests each get their own database on the server named by `HAVEN_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); an unreachable server fails the test with
//! the command that starts it.

use haven::blind::BlindIndex;
use haven::seal::Sealer;
use haven::store::Store;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn admin_url() -> String {
    std::env::var("HAVEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A migrated, empty database that is removed when [`TestDb::cleanup`] runs (PostgreSQL) or
/// its directory is dropped (SQLite).
pub struct TestDb {
    pub url: String,
    pub store: Store,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, pg_name) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("haven.db").display()), None),
            Backend::Postgres => {
                let name =
                    format!("haven_test_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), rand::random::<u32>());
                let admin = admin_url();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {admin}: {e}\n\
                             fix: start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                             or set HAVEN_TEST_PG to a server where this user may CREATE DATABASE"
                    )
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("CREATE DATABASE for the test");
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin).to_string();
                (format!("{base}/{name}"), Some(name))
            }
        };
        let store = Store::open(&url).await.expect("open and migrate the test database");
        TestDb { url, store, dir, pg_name }
    }

    /// Closes the pool and drops the PostgreSQL database.
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some(name) = self.pg_name
            && let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url()).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut conn).await;
        }
    }
}

/// The storage key of the tests that use the store directly.
const TEST_KEY: [u8; 32] = [42; 32];

/// Seals and opens with the tests' storage key.
pub fn sealer() -> Sealer {
    Sealer::from_key(&TEST_KEY)
}

/// Blind indexes under the tests' storage key.
pub fn blind() -> BlindIndex {
    BlindIndex::from_storage_key(&TEST_KEY)
}

/// Generates `sqlite::NAME` and `postgres::NAME` tests from `async fn NAME(backend: Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::db::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::db::Backend::Postgres).await
                }
            )*
        }
    };
}
