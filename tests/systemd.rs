//! `haven run` under systemd's notify protocol, with the test playing systemd: it binds the
//! datagram socket named by `NOTIFY_SOCKET` and reads what the daemon says. READY=1 comes only
//! once the intake works, WATCHDOG=1 keeps coming from the intake loop, and STATUS= lines say
//! what the daemon is doing.

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::db::{Backend, TestDb};
use support::dovecot::{Dovecot, PASSWORD};
use support::haven::{HavenEnv, school_fixtures, wait_for};

/// The socket systemd would listen on, and every datagram received on it so far.
struct FakeSystemd {
    path: std::path::PathBuf,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: tempfile::TempDir,
}

impl FakeSystemd {
    fn bind() -> FakeSystemd {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        FakeSystemd { path, got, _dir: dir }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        // A 2 s watchdog: the daemon must ping at least every 2 s (it pings every 0.5 s).
        vec![("NOTIFY_SOCKET", self.path.to_str().unwrap()), ("WATCHDOG_USEC", "2000000")]
    }

    /// Every line received, in order, with when it arrived.
    fn lines(&self) -> Vec<(Instant, String)> {
        let got = self.got.lock().unwrap().clone();
        got.into_iter().flat_map(|(t, d)| d.lines().map(|l| (t, l.to_string())).collect::<Vec<_>>()).collect()
    }

    fn texts(&self) -> Vec<String> {
        self.lines().into_iter().map(|(_, l)| l).collect()
    }

    fn count(&self, line: &str) -> usize {
        self.texts().iter().filter(|l| *l == line).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildir_intake_is_ready_after_its_first_pass_then_pings_and_reports_status() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = HavenEnv::new(&db.url, "");
    env.import_school();
    let systemd = FakeSystemd::bind();
    let started = Instant::now();
    let mut daemon = env.start_env(&systemd.env());
    wait_for("READY=1", Duration::from_secs(20), || {
        daemon.assert_running();
        if systemd.count("READY=1") == 1 { Ok(()) } else { Err(format!("{:?}", systemd.texts())) }
    });
    wait_for("an idle STATUS line", Duration::from_secs(10), || {
        systemd
            .texts()
            .iter()
            .any(|l| l == "STATUS=idle, 0 waiting, nothing filed yet")
            .then_some(())
            .ok_or_else(|| format!("{:?}", systemd.texts()))
    });
    // Over 3 s the loop keeps pinging, each gap well inside the 2 s period.
    std::thread::sleep(Duration::from_secs(3));
    let pings: Vec<Instant> = systemd.lines().into_iter().filter(|(_, l)| l == "WATCHDOG=1").map(|(t, _)| t).collect();
    assert!(pings.len() >= 5, "{} WATCHDOG=1 in {:?}", pings.len(), started.elapsed());
    let widest = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    assert!(widest < Duration::from_millis(1500), "a gap of {widest:?} between watchdog pings");

    // Filing a message refreshes the status line with its time.
    let raw = std::fs::read(school_fixtures().join("mail/forward-contact.eml")).unwrap();
    env.deliver("forward.eml", &raw);
    wait_for("a STATUS line with the filing", Duration::from_secs(20), || {
        systemd
            .texts()
            .iter()
            .any(|l| l.starts_with("STATUS=idle, ") && l.contains("waiting, last filed "))
            .then_some(())
            .ok_or_else(|| format!("{:?}", systemd.texts()))
    });
    assert_eq!(systemd.count("READY=1"), 1, "READY=1 is sent once");
    daemon.stop();
    wait_for("STOPPING=1", Duration::from_secs(5), || {
        (systemd.count("STOPPING=1") == 1).then_some(()).ok_or_else(|| format!("{:?}", systemd.texts()))
    });
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_intake_is_ready_only_after_it_logs_in() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dovecot = Dovecot::start();

    // A refused login: no READY=1, and the status line says why (so `systemctl status` does).
    let env = HavenEnv::new(&db.url, "");
    env.use_imap(dovecot.port, "wrong", "");
    let systemd = FakeSystemd::bind();
    let mut daemon = env.start_env(&systemd.env());
    wait_for("a retrying STATUS line", Duration::from_secs(20), || {
        daemon.assert_running();
        systemd
            .texts()
            .iter()
            .any(|l| l.starts_with("STATUS=retrying: ") && l.contains("refused the login"))
            .then_some(())
            .ok_or_else(|| format!("{:?}", systemd.texts()))
    });
    assert_eq!(systemd.count("READY=1"), 0, "READY=1 before the intake logged in: {:?}", systemd.texts());
    daemon.stop();

    let env = HavenEnv::new(&db.url, "");
    env.use_imap(dovecot.port, PASSWORD, "");
    let systemd = FakeSystemd::bind();
    let mut daemon = env.start_env(&systemd.env());
    wait_for("READY=1 after the IMAP login", Duration::from_secs(20), || {
        daemon.assert_running();
        (systemd.count("READY=1") == 1).then_some(()).ok_or_else(|| format!("{:?}", systemd.texts()))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(systemd.count("WATCHDOG=1") >= 3, "watchdog pings while idling: {:?}", systemd.texts());
    assert!(systemd.texts().iter().any(|l| l == "STATUS=idle, 0 waiting, nothing filed yet"), "{:?}", systemd.texts());
    daemon.stop();
    db.cleanup().await;
}

/// The watchdog. A hung IMAP server (Dovecot frozen with SIGSTOP: the kernel accepts the
/// connection, nothing greets) leaves the intake loop stuck connecting; within one watchdog
/// period the daemon stops sending WATCHDOG=1, which is what makes systemd (`WatchdogSec=`)
/// kill and restart it. When the server thaws, the loop logs in and the pings resume.
///
/// The restart itself is systemd's: this machine has no systemd as PID 1 (a container), so
/// `systemd-run -p WatchdogSec=…` cannot run here, and the test plays systemd's side of the
/// socket instead. On a host with systemd, the same check is
/// `systemd-run -p Type=notify -p WatchdogSec=10s -p Restart=on-failure haven run --config …`,
/// `kill -STOP` the IMAP server, and `systemctl status` shows "Watchdog timeout" and a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_intake_loop_stops_the_watchdog_pings() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dovecot = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    env.use_imap(dovecot.port, PASSWORD, "");
    dovecot.pause();
    let systemd = FakeSystemd::bind();
    let started = Instant::now();
    let mut daemon = env.start_env(&systemd.env());
    // Well past the 2 s period, and well inside the 30 s connect timeout.
    std::thread::sleep(Duration::from_secs(7));
    daemon.assert_running();
    let pings: Vec<Instant> = systemd.lines().into_iter().filter(|(_, l)| l == "WATCHDOG=1").map(|(t, _)| t).collect();
    assert!(!pings.is_empty(), "pings while the connection attempt was young: {:?}", systemd.texts());
    let quiet_from = started + Duration::from_secs(4);
    assert!(
        pings.iter().all(|t| *t < quiet_from),
        "WATCHDOG=1 kept coming while the loop was stuck: {:?}",
        pings.iter().map(|t| t.duration_since(started)).collect::<Vec<_>>()
    );
    assert_eq!(systemd.count("READY=1"), 0, "not ready while the server hangs: {:?}", systemd.texts());
    assert!(
        systemd.texts().iter().any(|l| l == "STATUS=connecting, 0 waiting, nothing filed yet"),
        "the status line says where it is stuck: {:?}",
        systemd.texts()
    );

    dovecot.resume();
    wait_for("READY=1 once the server answers", Duration::from_secs(45), || {
        daemon.assert_running();
        (systemd.count("READY=1") == 1).then_some(()).ok_or_else(|| format!("{:?}", systemd.texts()))
    });
    let before = systemd.count("WATCHDOG=1");
    std::thread::sleep(Duration::from_secs(2));
    assert!(systemd.count("WATCHDOG=1") >= before + 3, "the pings resume: {:?}", systemd.texts());
    daemon.stop();
    db.cleanup().await;
}

/// The unit's `RestartPreventExitStatus=78` relies on `haven run` exiting 78 when the
/// configuration, the rules or a key is broken (restarting cannot fix those), and on
/// anything else not doing so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_settings_exit_78_so_systemd_does_not_restart() {
    let db = TestDb::new(Backend::Sqlite).await;
    let env = HavenEnv::new(&db.url, "");
    let config = std::fs::read_to_string(&env.config).unwrap();

    std::fs::write(&env.config, format!("{config}\n[logging]\nformat = \"xml\"\n")).unwrap();
    let r = env.haven(&["run"]);
    assert_eq!(r.code, 78, "an invalid config: {}", r.stderr);
    assert!(r.stderr.contains("logging"), "{}", r.stderr);

    std::fs::write(&env.config, &config).unwrap();
    std::fs::write(env.path("rules/99-broken.toml"), "[[rule]]\nname = \"x\"\nalert = [\"dls\"]\n").unwrap();
    let r = env.haven(&["run"]);
    assert_eq!(r.code, 78, "invalid rules: {}", r.stderr);
    std::fs::remove_file(env.path("rules/99-broken.toml")).unwrap();

    std::fs::remove_file(env.path("secrets/reply.key")).unwrap();
    let r = env.haven(&["run"]);
    assert_eq!(r.code, 78, "a missing key file: {}", r.stderr);
    db.cleanup().await;
}

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd")
}

fn systemd_tool(name: &str) -> std::process::Command {
    let path = format!("/usr/bin/{name}");
    assert!(std::path::Path::new(&path).exists(), "{path} is missing: install systemd (apt-get install systemd) to check the unit");
    std::process::Command::new(path)
}

/// The shipped unit passes `systemd-analyze verify` (with ExecStart pointing at the binary
/// under test) and scores 2.0 or better in `systemd-analyze security`; the sysusers file
/// creates the haven user. (Running the daemon under the unit needs systemd as PID 1, which
/// the test machine does not have.)
#[test]
fn the_unit_file_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(examples().join("haven.service")).unwrap();
    for line in ["Type=notify", "WatchdogSec=", "RestartPreventExitStatus=78", "LoadCredential="] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "the unit lacks {line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("haven.service");
    std::fs::write(&copy, unit.replace("/usr/bin/haven", env!("CARGO_BIN_EXE_haven"))).unwrap();
    let verify = systemd_tool("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stderr).into_owned() + &String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify:\n{said}");

    let security = systemd_tool("systemd-analyze").args(["security", "--offline=yes"]).arg(&copy).output().unwrap();
    let out = String::from_utf8_lossy(&security.stdout).into_owned();
    let score: f64 = out
        .lines()
        .find_map(|l| l.split("Overall exposure level for haven.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}{}", String::from_utf8_lossy(&security.stderr)));
    assert!(score <= 2.0, "systemd-analyze security scores the unit {score} (want 2.0 or better):\n{out}");

    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let sysusers = systemd_tool("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg("--dry-run")
        .arg(examples().join("haven.sysusers.conf"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&sysusers.stderr).into_owned() + &String::from_utf8_lossy(&sysusers.stdout);
    assert!(sysusers.status.success() && said.contains("Creating user 'haven'"), "systemd-sysusers:\n{said}");
}
