//! Runs the real `haven` binary against a throwaway school: a config file, secrets, the
//! shipped rules and the test directory, on the database a [`super::db::TestDb`] made.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
        HavenEnv::build(db_url, intake_extra, "transport = \"maildir\"\nmaildir = \"var/outbox\"")
    }

    /// A Maildir-intake installation whose outbox sends by SMTP to `127.0.0.1:smtp_port`
    /// without TLS (a [`super::smtp::SmtpServer`] on loopback).
    pub fn with_smtp(db_url: &str, intake_extra: &str, smtp_port: u16) -> HavenEnv {
        HavenEnv::build(
            db_url,
            intake_extra,
            &format!("transport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"plain\""),
        )
    }

    fn build(db_url: &str, intake_extra: &str, smtp: &str) -> HavenEnv {
        // The fixtures are dated autumn 2026 and must stay live whenever the tests run: a test
        // about backfills gives its own `backfill_age`.
        let backfill_age = if intake_extra.contains("backfill_age") { "" } else { "backfill_age = \"3650d\"" };
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for d in ["secrets", "mail/intake/new", "mail/intake/cur", "mail/intake/tmp", "var"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        write_secret(&root.join("secrets/haven.key"));
        write_secret(&root.join("secrets/reply.key"));
        write_secret(&root.join("secrets/audit.key"));
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
{backfill_age}
{intake_extra}

[intake.maildir]
path = "mail/intake"

[smtp]
from = "Haven <safeguarding@school.example>"
{smtp}

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

    /// Points the installation's intake at the IMAP server on `127.0.0.1:port` (plain, as the
    /// test user) with `password`, and appends `extra` TOML at the end of the config.
    pub fn use_imap(&self, port: u16, password: &str, extra: &str) {
        std::fs::write(self.path("secrets/imap-password"), format!("{password}\n")).unwrap_or_else(|e| panic!("{e}"));
        let config = std::fs::read_to_string(&self.config).unwrap_or_else(|e| panic!("{e}"));
        let config = config.replace("source = \"maildir\"", "source = \"imap\"")
            + &format!(
                "\n[intake.imap]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"plain\"\n\
                 username = \"{}\"\nauth = \"password\"\npassword_file = \"secrets/imap-password\"\n{extra}",
                super::dovecot::USER
            );
        std::fs::write(&self.config, config).unwrap_or_else(|e| panic!("{e}"));
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

    /// Delivers `raw` into the intake Maildir the way a mail server does: written under
    /// `tmp/`, then renamed into `new/`, so the daemon never reads half a file.
    pub fn deliver(&self, name: &str, raw: &[u8]) {
        let tmp = self.path("mail/intake/tmp").join(name);
        std::fs::write(&tmp, raw).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
        let new = self.path("mail/intake/new").join(name);
        std::fs::rename(&tmp, &new).unwrap_or_else(|e| panic!("{}: {e}", new.display()));
    }

    /// Starts `haven run` in the background; stop it with [`Daemon::stop`].
    pub fn start(&self) -> Daemon {
        self.start_env(&[])
    }

    /// [`HavenEnv::start`] with extra environment variables (for example `RUST_LOG`).
    pub fn start_env(&self, env: &[(&str, &str)]) -> Daemon {
        self.start_program(Path::new(env!("CARGO_BIN_EXE_haven")), env)
    }

    /// [`HavenEnv::start_env`] with another build of the `haven` binary (a bench measuring a
    /// release daemon from a dev-profile harness).
    pub fn start_program(&self, program: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = self.path("var/haven-run.log");
        let out = std::fs::File::create(&log).expect("daemon log file");
        let err = out.try_clone().expect("daemon log file");
        let mut cmd = Command::new(program);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start haven run");
        Daemon { child: Some(child), log }
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

/// `haven run` in the background. Dropping it without [`Daemon::stop`] kills it.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's process id (to read its /proc entries).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon is running").id()
    }

    /// Panics, with the daemon's log, if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("haven run exited early ({status}):\n{}", self.log());
        }
    }

    /// Sends `signal` (for example "HUP") to the daemon.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the daemon is running");
        let sent = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().is_ok_and(|s| s.success());
        assert!(sent, "could not send SIG{signal} to haven run");
    }

    /// SIGTERM, then waits up to 20 s: the daemon must stop by itself and exit 0.
    pub fn stop(mut self) {
        let Some(mut child) = self.child.take() else { return };
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().is_ok_and(|s| s.success());
        assert!(sent, "could not send SIGTERM to haven run");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("haven run did not stop within 20 s of SIGTERM:\n{}", self.log());
                }
            }
        };
        assert_eq!(status.code(), Some(0), "haven run after SIGTERM: {status}\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 100 ms until it returns `Ok`, or panics after `timeout` naming `what`
/// and the last `Err` it gave (what was seen instead).
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
