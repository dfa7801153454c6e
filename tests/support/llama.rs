//! A real model server for the AI tests: llama.cpp's `llama-server` with SmolLM2-135M-Instruct,
//! built and downloaded by `tests/support/llama.sh` (cached in /var/cache/haven-test), started
//! on a free loopback port with an API key and one thread, and killed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name the server answers to and suggestions are labelled with.
pub const MODEL: &str = "smollm2-135m";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/llama.sh")
}

/// A running `llama-server`.
pub struct LlamaServer {
    child: Child,
    pub port: u16,
    pub key: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LlamaServer {
    /// Builds (first time only) and starts the server; panics with the fix when a part is missing.
    pub fn start() -> LlamaServer {
        let ensure = Command::new("bash").arg(script()).arg("ensure").output().expect("run tests/support/llama.sh");
        assert!(
            ensure.status.success(),
            "tests/support/llama.sh could not provide llama-server and the model:\n{}\nfix: install what it names \
             (tests/run.sh installs cmake) and run `bash tests/support/llama.sh ensure` once (about 10 minutes)",
            String::from_utf8_lossy(&ensure.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let key = format!("test-{:016x}", rand::random::<u64>());
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("llama-server.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("bash")
            .arg(script())
            .args(["serve", &port.to_string(), &key])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start llama-server");
        let mut server = LlamaServer { child, port, key, log, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("llama-server exited ({status}):\n{}", server.log());
            }
            if server.get("/health").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return server;
            }
            assert!(Instant::now() < deadline, "llama-server was not ready within 120 s:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The OpenAI-compatible API's base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// An `[ai]` section for this server, its key written to `secrets/ai.key` under `root`.
    pub fn ai_config(&self, root: &Path, timeout: &str) -> String {
        std::fs::write(root.join("secrets/ai.key"), format!("{}\n", self.key)).expect("write the AI key");
        format!(
            "\n[ai]\nprovider = \"llamacpp\"\nbase_url = \"{}\"\napi_key_file = \"secrets/ai.key\"\nmodel = \"{MODEL}\"\ntimeout = \"{timeout}\"\n",
            self.base_url()
        )
    }

    /// Freezes the server (`kill -STOP`): it accepts connections and never answers.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server run again (`kill -CONT`).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().is_ok_and(|s| s.success());
        assert!(ok, "could not send SIG{signal} to llama-server");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A plain HTTP GET on loopback: the response's text, or None if the server is not up.
    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        // A frozen server dies of SIGKILL too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A recording proxy on loopback in front of a server (tests/support/record_proxy.py): every
/// request it forwards is appended to a file, so a test sees exactly what would have left the
/// school. Killed when dropped.
pub struct RecordingProxy {
    child: Child,
    pub port: u16,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl RecordingProxy {
    /// Starts the proxy in front of `127.0.0.1:target`.
    pub fn start(target: u16) -> RecordingProxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/record_proxy.py");
        let dir = tempfile::tempdir().expect("temp dir");
        let record = dir.path().join("requests.log");
        std::fs::write(&record, "").expect("record file");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(format!("http://127.0.0.1:{target}"))
            .arg(&record)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/support/record_proxy.py (python3 is needed: apt-get install python3)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("proxy stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("the proxy's port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the proxy did not print its port: {line:?}"));
        RecordingProxy { child, port, record, _dir: dir }
    }

    /// Every request forwarded so far.
    pub fn recorded(&self) -> String {
        std::fs::read_to_string(&self.record).unwrap_or_default()
    }

    /// The OpenAI-compatible base URL through the proxy.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
