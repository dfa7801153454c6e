//! A real SMTP server on a loopback port, for the outbox tests: Debian's aiosmtpd, storing what
//! it receives in a Maildir the test reads. [`SmtpServer::start`] runs aiosmtpd's own Mailbox
//! handler; [`SmtpServer::flaky`] runs tests/support/smtp_flaky.py, which answers 451 or 550
//! on demand. The server is killed when the value is dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";

pub struct SmtpServer {
    pub port: u16,
    /// The Maildir the server delivers into.
    pub dir: tempfile::TempDir,
    child: Child,
}

/// A loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

fn require_aiosmtpd() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{PYTHON} cannot import aiosmtpd: install python3-aiosmtpd (tests/run.sh does it)");
}

impl SmtpServer {
    /// aiosmtpd with its Mailbox handler on a free port.
    pub fn start() -> SmtpServer {
        SmtpServer::start_on(free_port())
    }

    /// aiosmtpd with its Mailbox handler on `port` (for "the server comes back" tests).
    pub fn start_on(port: u16) -> SmtpServer {
        require_aiosmtpd();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(PYTHON);
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("mail"));
        SmtpServer::spawn(cmd, port, dir)
    }

    /// tests/support/smtp_flaky.py: 451 for the first `fail_first` messages, 550 for `reject`.
    pub fn flaky(fail_first: u32, reject: &[&str]) -> SmtpServer {
        require_aiosmtpd();
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/support/smtp_flaky.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script).arg(port.to_string()).arg(dir.path().join("mail")).args(["--fail-first", &fail_first.to_string()]);
        for r in reject {
            cmd.args(["--reject", r]);
        }
        SmtpServer::spawn(cmd, port, dir)
    }

    /// tests/support/smtp_xoauth2.py on `port`: SASL XOAUTH2 only, valid tokens read from
    /// `tokens` at every AUTH, each AUTH logged to [`SmtpServer::auth_log`]; mail only after a
    /// successful login, stored with an X-Auth-Token header.
    pub fn xoauth2_on(port: u16, tokens: &std::path::Path) -> SmtpServer {
        require_aiosmtpd();
        let dir = tempfile::tempdir().expect("temp dir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/support/smtp_xoauth2.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script).arg(port.to_string()).arg(dir.path().join("mail")).arg(tokens).arg(dir.path().join("auth.log"));
        SmtpServer::spawn(cmd, port, dir)
    }

    /// Every AUTH the XOAUTH2 server saw: "ok USER TOKEN" or "rejected USER TOKEN".
    pub fn auth_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("auth.log")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn spawn(mut cmd: Command, port: u16, dir: tempfile::TempDir) -> SmtpServer {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e}; install python3-aiosmtpd (tests/run.sh does it)"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("the SMTP server exited ({status}) before accepting on {port}:\n{err}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the SMTP server did not accept connections on port {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer { port, dir, child }
    }

    /// Every message received so far, raw, in delivery order.
    pub fn messages(&self) -> Vec<String> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.dir.path().join("mail").join(sub)) {
                for e in rd.flatten() {
                    let modified = e.metadata().and_then(|m| m.modified()).ok();
                    files.push((modified, e.path()));
                }
            }
        }
        files.sort();
        files.into_iter().filter_map(|(_, p)| std::fs::read(p).ok()).map(|b| String::from_utf8_lossy(&b).into_owned()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first header `name` in a raw message (unfolded), if present.
pub fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let head = head.split("\n\n").next().unwrap_or(head);
    let mut value: Option<String> = None;
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_string());
        }
    }
    value
}
