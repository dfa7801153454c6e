//! A throwaway Dovecot IMAP server per test: its own config (nothing from /etc/dovecot), its
//! own directory under /tmp, a free loopback port, user `intake` / password `secret`, plain
//! IMAP on 127.0.0.1 only. The master runs as root and the mail processes as user `mail`, as
//! Dovecot requires; run the suite with tests/run.sh as root (it installs dovecot-imapd).
//!
//! Stopped on drop (master killed by its pid file, and every process of its session waited
//! for), so tests leave nothing running.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_imap::Session;
use futures_util::TryStreamExt;
use tokio::net::TcpStream;

const DOVECOT: &str = "/usr/sbin/dovecot";
const FIX: &str = "run tests/run.sh as root; it installs dovecot-imapd";
pub const USER: &str = "intake";
pub const PASSWORD: &str = "secret";

/// One running Dovecot instance.
pub struct Dovecot {
    /// Plain IMAP (and STARTTLS when started with TLS) on 127.0.0.1.
    pub port: u16,
    /// Implicit TLS (IMAPS) on 127.0.0.1, when started with [`Dovecot::start_tls`].
    pub tls_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts an instance with Dovecot's usual capabilities (IDLE, MOVE, UIDPLUS).
    pub fn start() -> Dovecot {
        Dovecot::start_with("")
    }

    /// Starts an instance with `extra` appended to its config, e.g.
    /// `imap_capability = IMAP4rev1 UIDPLUS` to play a server without IDLE and MOVE.
    pub fn start_with(extra: &str) -> Dovecot {
        Dovecot::start_inner(extra, Flavour::Plain)
    }

    /// Starts an instance that also speaks TLS: STARTTLS on `port`, IMAPS on `tls_port`, with a
    /// certificate for `localhost` and 127.0.0.1 signed by a throwaway CA ([`Dovecot::ca_file`]).
    pub fn start_tls() -> Dovecot {
        Dovecot::start_inner("", Flavour::Tls)
    }

    /// Starts an instance that also takes SASL XOAUTH2: tokens are HS256 JWTs for user
    /// `intake` made by [`Dovecot::oauth2_token`], checked by Dovecot itself (no token server).
    pub fn start_xoauth2() -> Dovecot {
        Dovecot::start_inner("", Flavour::Xoauth2)
    }

    /// A bearer token Dovecot accepts until `valid_for` seconds from now (a negative value
    /// gives a token that has already expired).
    pub fn oauth2_token(&self, valid_for: i64) -> String {
        use base64::Engine as _;
        use hmac::{KeyInit as _, Mac as _};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let iat = now.min(now + valid_for) - 60;
        let header = b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64.encode(format!(r#"{{"sub":"{USER}","iat":{iat},"exp":{}}}"#, now + valid_for));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(OAUTH2_KEY).unwrap_or_else(|e| panic!("hmac key: {e}"));
        mac.update(format!("{header}.{body}").as_bytes());
        let signature = b64.encode(mac.finalize().into_bytes());
        format!("{header}.{body}.{signature}")
    }

    /// The PEM file of the CA that signed the TLS certificate (trust it to connect).
    pub fn ca_file(&self) -> PathBuf {
        self.root().join("tls/ca.pem")
    }

    fn start_inner(extra: &str, flavour: Flavour) -> Dovecot {
        if !Path::new(DOVECOT).exists() {
            panic!("{DOVECOT} is missing: {FIX}");
        }
        // Short path: Dovecot's unix sockets live under it and must fit in 108 bytes.
        let dir = tempfile::Builder::new().prefix("hvd").tempdir_in("/tmp").unwrap_or_else(|e| panic!("temp dir under /tmp: {e}"));
        let root = dir.path().to_path_buf();
        let (uid, gid) = (id_of("-u"), id_of("-g"));
        let maildir = root.join("home").join(USER).join("Maildir");
        for d in ["run", "state", "log"] {
            std::fs::create_dir_all(root.join(d)).unwrap_or_else(|e| panic!("mkdir {d}: {e}"));
        }
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(d)).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        // The mail processes run as `mail`: every directory down to the Maildir must be
        // traversable by it (tempdir makes 0700 directories).
        set_mode(&root, 0o755);
        set_mode(&root.join("home"), 0o755);
        for p in [root.join("home").join(USER), maildir.clone(), maildir.join("cur"), maildir.join("new"), maildir.join("tmp")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e} ({FIX})", p.display()));
            set_mode(&p, 0o700);
        }
        let port = free_port();
        let tls_port = (flavour == Flavour::Tls).then(free_port);
        let r = root.display();
        let auth = match flavour {
            Flavour::Xoauth2 => {
                write_oauth2_config(&root);
                format!(
                    "auth_mechanisms = plain login xoauth2\n\
                     passdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n  \
                     args = {r}/oauth2/oauth2.conf.ext\n}}\n"
                )
            }
            _ => "auth_mechanisms = plain login\n".to_string(),
        };
        let ssl = match tls_port {
            Some(tls_port) => {
                make_certificates(&root.join("tls"));
                format!(
                    "ssl = yes\nssl_cert = <{r}/tls/cert.pem\nssl_key = <{r}/tls/key.pem\n\
                     service imap-login {{\n  inet_listener imaps {{\n    address = 127.0.0.1\n    \
                     port = {tls_port}\n    ssl = yes\n  }}\n}}\n"
                )
            }
            None => "ssl = no\nservice imap-login {\n  inet_listener imaps {\n    port = 0\n  }\n}\n".into(),
        };
        let conf = format!(
            "# Haven test instance: self-contained, everything under {r}.\n\
             instance_name = haven-test-{port}\n\
             base_dir = {r}/run\n\
             state_dir = {r}/state\n\
             log_path = {r}/log/dovecot.log\n\
             info_log_path = {r}/log/dovecot.log\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             disable_plaintext_auth = no\n\
             {auth}\
             default_login_user = dovenull\n\
             default_internal_user = dovecot\n\
             first_valid_uid = {uid}\n\
             last_valid_uid = {uid}\n\
             first_valid_gid = {gid}\n\
             last_valid_gid = {gid}\n\
             passdb {{\n  driver = static\n  args = nopassword=y\n  deny = yes\n  username_filter = !{USER}\n}}\n\
             passdb {{\n  driver = static\n  args = password={PASSWORD}\n  username_filter = {USER}\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={r}/home/%u\n}}\n\
             mail_location = maildir:~/Maildir\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n\
             {ssl}\
             protocol imap {{\n  mail_max_userip_connections = 100\n}}\n\
             {extra}\n"
        );
        std::fs::write(root.join("dovecot.conf"), conf).unwrap_or_else(|e| panic!("config: {e}"));
        let dovecot = Dovecot { port, tls_port, dir };
        dovecot.launch();
        dovecot
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn conf(&self) -> PathBuf {
        self.root().join("dovecot.conf")
    }

    /// Dovecot's log (useful in failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("log/dovecot.log")).unwrap_or_default()
    }

    /// Starts the master (again, after [`Dovecot::stop`]) and waits for its greeting.
    pub fn restart(&self) {
        self.launch();
    }

    fn launch(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        // The master daemonizes and keeps its inherited stdout/stderr: give it a file, not a
        // pipe, or waiting for its output would wait for the server to exit.
        let err_path = self.root().join("log/start.err");
        loop {
            let err = std::fs::File::create(&err_path).unwrap_or_else(|e| panic!("{}: {e}", err_path.display()));
            let status = Command::new(DOVECOT).arg("-c").arg(self.conf()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(err).status();
            match status {
                Ok(s) if s.success() => break,
                // Most likely the port is still held by the previous master's children.
                Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                Ok(s) => panic!(
                    "dovecot failed to start ({s}; {FIX}):\n{}\n--- log ---\n{}",
                    std::fs::read_to_string(&err_path).unwrap_or_default(),
                    self.log()
                ),
                Err(e) => panic!("cannot run {DOVECOT}: {e} ({FIX})"),
            }
        }
        while Instant::now() < deadline {
            if greets(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dovecot gave no IMAP greeting on 127.0.0.1:{} ({FIX}):\n{}", self.port, self.log());
    }

    /// Stops the master and waits until every process of the instance has gone. Safe to call
    /// when already stopped.
    pub fn stop(&self) {
        let Some(pid) = std::fs::read_to_string(self.root().join("run/master.pid")).ok().and_then(|s| s.trim().parse::<u32>().ok()) else {
            return;
        };
        // Dovecot's master calls setsid(): its services share its session id.
        if session_of(pid) != Some(pid) {
            return;
        }
        let members = session_members(pid);
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && !session_members(pid).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in members.into_iter().filter(|p| session_of(*p) == Some(pid)) {
            let _ = Command::new("kill").arg("-KILL").arg(p.to_string()).status();
        }
    }

    /// Freezes every process of the instance (SIGSTOP): connections are still accepted by
    /// the kernel, but nothing answers, as with a hung mail server. Undo with [`Dovecot::resume`].
    pub fn pause(&self) {
        self.signal_all("-STOP");
    }

    /// Lets a [`Dovecot::pause`]d instance run again (SIGCONT).
    pub fn resume(&self) {
        self.signal_all("-CONT");
    }

    fn signal_all(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.root().join("run/master.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("dovecot is not running: no master.pid"));
        let members = session_members(pid);
        assert!(!members.is_empty(), "dovecot's session {pid} has no processes");
        for p in members {
            let sent = Command::new("kill").arg(signal).arg(p.to_string()).status().is_ok_and(|s| s.success());
            assert!(sent, "kill {signal} {p} failed");
        }
    }

    /// A logged-in client session for the test's own look at the mailbox.
    pub async fn client(&self) -> Session<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap_or_else(|e| panic!("connect to dovecot: {e}"));
        let mut client = async_imap::Client::new(tcp);
        let _greeting = client.read_response().await;
        client.login(USER, PASSWORD).await.unwrap_or_else(|(e, _)| panic!("login to dovecot: {e}\n{}", self.log()))
    }

    /// APPENDs one message to INBOX.
    pub async fn append(&self, raw: &[u8]) {
        self.append_to("INBOX", raw, None).await;
    }

    /// APPENDs many messages to INBOX over one session, in order.
    pub async fn append_all(&self, raws: &[Vec<u8>]) {
        let mut s = self.client().await;
        for raw in raws {
            s.append("INBOX", None, None, raw).await.unwrap_or_else(|e| panic!("APPEND: {e}"));
        }
        let _ = s.logout().await;
    }

    /// APPENDs one message to `folder` with `flags` such as `(\Seen)`.
    pub async fn append_to(&self, folder: &str, raw: &[u8], flags: Option<&str>) {
        let mut s = self.client().await;
        s.append(folder, flags, None, raw).await.unwrap_or_else(|e| panic!("APPEND to {folder}: {e}"));
        let _ = s.logout().await;
    }

    /// Copies every message of `from` into `to` (same bytes, new UIDs).
    pub async fn copy_all(&self, from: &str, to: &str) {
        let mut s = self.client().await;
        s.select(from).await.unwrap_or_else(|e| panic!("SELECT {from}: {e}"));
        s.uid_copy("1:*", to).await.unwrap_or_else(|e| panic!("COPY: {e}"));
        let _ = s.logout().await;
    }

    /// Gives INBOX a new UIDVALIDITY (what a restored or migrated mailbox looks like): stops
    /// the server, removes INBOX's UID list and indexes, starts it again.
    pub fn reset_inbox_uidvalidity(&self) {
        self.stop();
        let maildir = self.root().join("home").join(USER).join("Maildir");
        let entries = std::fs::read_dir(&maildir).unwrap_or_else(|e| panic!("{e}"));
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("dovecot-uidlist") || name.starts_with("dovecot.index") {
                std::fs::remove_file(entry.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        // UIDVALIDITY comes from the clock (seconds): make sure it moves on.
        std::thread::sleep(Duration::from_millis(1100));
        self.restart();
    }

    /// INBOX's UIDVALIDITY.
    pub async fn uidvalidity(&self) -> u32 {
        let mut s = self.client().await;
        let m = s.examine("INBOX").await.unwrap_or_else(|e| panic!("EXAMINE: {e}"));
        let _ = s.logout().await;
        m.uid_validity.unwrap_or(0)
    }

    /// How many messages `folder` holds; 0 when it does not exist.
    pub async fn count(&self, folder: &str) -> u32 {
        let mut s = self.client().await;
        let n = match s.status(folder, "(MESSAGES)").await {
            Ok(mailbox) => mailbox.exists,
            Err(_) => 0,
        };
        let _ = s.logout().await;
        n
    }

    /// UIDs in `folder` matching an IMAP search such as `SEEN` or `ALL`.
    pub async fn search(&self, folder: &str, query: &str) -> Vec<u32> {
        let mut s = self.client().await;
        s.examine(folder).await.unwrap_or_else(|e| panic!("EXAMINE {folder}: {e}"));
        let mut uids: Vec<u32> = s.uid_search(query).await.unwrap_or_else(|e| panic!("SEARCH: {e}")).into_iter().collect();
        uids.sort_unstable();
        let _ = s.logout().await;
        uids
    }

    /// The server's hierarchy delimiter (`LIST "" ""`).
    pub async fn delimiter(&self) -> String {
        let mut s = self.client().await;
        let names: Vec<_> = match s.list(Some(""), Some("\"\"")).await {
            Ok(stream) => stream.try_collect().await.unwrap_or_default(),
            Err(e) => panic!("LIST: {e}"),
        };
        let d = names
            .first()
            .and_then(|n| n.delimiter().map(str::to_string))
            .unwrap_or_else(|| panic!("the server named no hierarchy delimiter"));
        let _ = s.logout().await;
        d
    }

    /// Creates a mailbox (name as the server spells it).
    pub async fn create(&self, folder: &str) {
        let mut s = self.client().await;
        s.create(folder).await.unwrap_or_else(|e| panic!("CREATE {folder}: {e}"));
        let _ = s.logout().await;
    }

    /// A bare IDLE client on `folder`: sends the instant each EXISTS arrives until `stop`. The
    /// yardstick for Haven's pick-up latency (Dovecot waits about 0.5 s before it notifies).
    pub async fn idle_watcher(
        &self,
        folder: &str,
        seen: tokio::sync::mpsc::UnboundedSender<Instant>,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        use async_imap::extensions::idle::IdleResponse;
        use async_imap::imap_proto::{MailboxDatum, Response};
        let mut session = self.client().await;
        session.select(folder).await.unwrap_or_else(|e| panic!("SELECT {folder}: {e}"));
        tokio::spawn(async move {
            loop {
                let mut idle = session.idle();
                idle.init().await.unwrap_or_else(|e| panic!("IDLE: {e}"));
                let (event, _interrupt) = idle.wait_with_timeout(Duration::from_secs(300));
                let done = tokio::select! {
                    r = event => {
                        if let Ok(IdleResponse::NewData(data)) = r
                            && matches!(data.parsed(), Response::MailboxData(MailboxDatum::Exists(_)))
                        {
                            let _ = seen.send(Instant::now());
                        }
                        false
                    }
                    _ = stop.cancelled() => true,
                };
                session = idle.done().await.unwrap_or_else(|e| panic!("DONE: {e}"));
                if done {
                    return;
                }
            }
        })
    }

    /// The mailbox names the server lists (its own spelling and delimiter).
    pub async fn folders(&self) -> Vec<String> {
        let mut s = self.client().await;
        let names: Vec<String> = match s.list(Some(""), Some("*")).await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.unwrap_or_default().iter().map(|n| n.name().to_string()).collect(),
            Err(e) => panic!("LIST: {e}"),
        };
        let _ = s.logout().await;
        names
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Plain,
    Tls,
    Xoauth2,
}

/// The HMAC key Dovecot checks test tokens with.
const OAUTH2_KEY: &[u8] = b"haven-test-oauth2-hmac-key-0123456789";

/// Dovecot's local JWT validation: the key (base64) at keys/<azp>/<alg>/<kid>, readable by
/// the auth process (user dovecot).
fn write_oauth2_config(root: &Path) {
    use base64::Engine as _;
    let dir = root.join("oauth2");
    let keys = dir.join("keys/default/HS256");
    std::fs::create_dir_all(&keys).unwrap_or_else(|e| panic!("mkdir {}: {e}", keys.display()));
    for d in [dir.clone(), dir.join("keys"), dir.join("keys/default"), keys.clone()] {
        set_mode(&d, 0o755);
    }
    let key = keys.join("default");
    std::fs::write(&key, base64::engine::general_purpose::STANDARD.encode(OAUTH2_KEY))
        .unwrap_or_else(|e| panic!("write {}: {e}", key.display()));
    set_mode(&key, 0o644);
    let conf = format!(
        "introspection_mode = local\n\
         local_validation_key_dict = fs:posix:prefix={}/\n\
         username_attribute = sub\n",
        dir.join("keys").display()
    );
    std::fs::write(dir.join("oauth2.conf.ext"), conf).unwrap_or_else(|e| panic!("write oauth2.conf.ext: {e}"));
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id").arg(flag).arg("mail").output().unwrap_or_else(|e| panic!("id {flag} mail: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("no system user `mail` ({FIX})"))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// True when 127.0.0.1:port answers with an IMAP `* OK` greeting.
fn greets(port: u16) -> bool {
    let Ok(mut tcp) = StdTcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let ok = BufReader::new(&tcp).read_line(&mut line).is_ok() && line.starts_with("* OK");
    let _ = tcp.write_all(b"a LOGOUT\r\n");
    ok
}

/// The session id of a live (not zombie) process.
fn session_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // state ppid pgrp session ...
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(3)?.parse().ok()
}

fn session_members(sid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).filter(|p| session_of(*p) == Some(sid)).collect()
}

/// A throwaway CA and a server certificate it signed for localhost / 127.0.0.1 (a CA-signed
/// leaf, as webpki rejects a self-signed certificate used directly as its own anchor).
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", ext.display()));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Haven test CA"]].concat(),
    );
    openssl(dir, &[&["req"][..], &ec, &["-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost"]].concat());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e} (the TLS tests make their certificates with it: apt-get install openssl)"));
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}
