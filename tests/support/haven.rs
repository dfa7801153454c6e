//! Runs the real `haven` binary against a throwaway school: a config file, secrets, the
//! shipped rules and the test directory, on the database a [`super::db::TestDb`] made.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The test school's directory and messages (tests/fixtures/school).
pub fn school_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/school")
}

/// A configured Haven installation in a temp dir.
pub struct HavenEnv {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// What one command did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl HavenEnv {
    /// A Maildir-intake, Maildir-outbox installation on `db_url`, with `extra` TOML appended
    /// to the `[intake]` table (for example `trusted_authserv_id = "mx.school.example"`).
    pub fn new(db_url: &str, intake_extra: &str) -> HavenEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for d in ["secrets", "mail/intake/new", "mail/intake/cur", "mail/intake/tmp", "var"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        write_secret(&root.join("secrets/haven.key"));
        write_secret(&root.join("secrets/reply.key"));
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules"), &root.join("rules"));
        let config = root.join("haven.toml");
        std::fs::write(
            &config,
            format!(
                r#"[school]
name = "Test School"
timezone = "Europe/London"
intake_address = "safeguarding@school.example"

[database]
url = "{db_url}"

[storage]
dir = "var/data"
key_file = "secrets/haven.key"

[intake]
source = "maildir"
max_message_size = "10MB"
{intake_extra}

[intake.maildir]
path = "mail/intake"

[smtp]
transport = "maildir"
from = "Haven <safeguarding@school.example>"
maildir = "var/outbox"

[rules]
dir = "rules"

[alerts]
detail = "minimal"
reply_key_file = "secrets/reply.key"
"#
            ),
        )
        .unwrap();
        HavenEnv { dir, config }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `haven ARGS… --config CONFIG`, with `RUST_LOG` as given.
    pub fn haven(&self, args: &[&str]) -> Run {
        self.haven_env(args, &[])
    }

    pub fn haven_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_haven"));
        cmd.args(args).arg("--config").arg(&self.config).current_dir(self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run haven").into()
    }

    /// Imports the test school's directory; panics with haven's stderr if it fails.
    pub fn import_school(&self) {
        let f = school_fixtures();
        let r = self.haven(&[
            "directory",
            "import",
            "--pupils",
            f.join("pupils.csv").to_str().unwrap(),
            "--staff",
            f.join("staff.csv").to_str().unwrap(),
            "--contacts",
            f.join("contacts.csv").to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "directory import failed: {}{}", r.stdout, r.stderr);
    }

    /// `haven status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let r = self.haven(&["status", "--json"]);
        assert_eq!(r.code, 0, "status failed: {}", r.stderr);
        serde_json::from_str(&r.stdout).expect("status --json is JSON")
    }
}

fn write_secret(path: &Path) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key: [u8; 32] = rand::random();
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    writeln!(f, "{}", hex::encode(key)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
