//! The IMAP intake against a real Dovecot (one per test): every message is handed to the
//! filing pipeline once and then moved out of the intake mailbox, new mail is picked up from
//! IDLE within about a second, and failures (pipeline down, server restarted) delay but never
//! lose or duplicate. The sink here is the consumer that records what it got, not a fake server.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use haven::source::imap::{ImapAuth, ImapError, ImapSettings, ImapState, ImapStatus, Security, run};
use haven::source::{Disposition, Incoming, Origin, Payload, Sink, SinkError};
use support::dovecot::{Dovecot, PASSWORD, USER};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Messages carrying this header are quarantined by the test sink.
const QUARANTINE_ME: &str = "X-Test-Disposition: quarantine";
/// Batches holding a message with this header are refused (not transiently) by the test sink.
const REFUSE_ME: &str = "X-Test-Refuse: yes";

/// The pipeline's stand-in: records each message it commits and chooses its disposition.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<Incoming>>,
    calls: AtomicUsize,
    /// While set, every batch fails as if the database were unreachable.
    down: AtomicBool,
    /// Runs once, right after the first batch is committed (before the source moves it).
    after_commit: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// When each committed message arrived, in order.
    arrived: Mutex<Vec<Instant>>,
}

impl Recorder {
    fn got(&self) -> Vec<Incoming> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn uids(&self) -> Vec<u32> {
        self.got()
            .iter()
            .filter_map(|m| match &m.origin {
                Origin::Imap { uid, .. } => Some(*uid),
                _ => None,
            })
            .collect()
    }
}

fn contains(raw: &[u8], needle: &str) -> bool {
    raw.windows(needle.len()).any(|w| w == needle.as_bytes())
}

impl Sink for Recorder {
    async fn accept(&self, batch: Vec<Incoming>) -> Result<Vec<Disposition>, SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError::new(true, "database unavailable"));
        }
        let refused = |m: &Incoming| matches!(&m.payload, Payload::Raw(r) if contains(r, REFUSE_ME));
        if batch.iter().any(refused) {
            return Err(SinkError::new(false, "cannot file this message"));
        }
        let dispositions = batch
            .iter()
            .map(|m| match &m.payload {
                Payload::TooLarge { .. } => Disposition::Quarantine,
                Payload::Raw(r) if contains(r, QUARANTINE_ME) => Disposition::Quarantine,
                Payload::Raw(_) => Disposition::Filed,
            })
            .collect();
        if let Ok(mut arrived) = self.arrived.lock() {
            arrived.extend(batch.iter().map(|_| Instant::now()));
        }
        if let Ok(mut got) = self.got.lock() {
            got.extend(batch);
        }
        let hook = self.after_commit.lock().ok().and_then(|mut h| h.take());
        if let Some(hook) = hook {
            hook();
        }
        Ok(dispositions)
    }
}

/// A small message with CRLF line endings (what IMAP returns, so bytes compare equal).
fn message(n: usize, extra_header: &str) -> Vec<u8> {
    let extra = if extra_header.is_empty() { String::new() } else { format!("{extra_header}\r\n") };
    format!(
        "From: teacher{n}@school.example\r\nTo: safeguarding@school.example\r\n\
         Subject: concern {n}\r\nMessage-ID: <test-{n}@school.example>\r\n\
         Date: Mon, 2 Feb 2026 09:00:00 +0000\r\n{extra}\r\nBody of message {n}.\r\n"
    )
    .into_bytes()
}

fn settings(d: &Dovecot) -> ImapSettings {
    ImapSettings {
        host: "127.0.0.1".into(),
        port: d.port,
        security: Security::Plain,
        username: USER.into(),
        auth: ImapAuth::Password(PASSWORD.into()),
        mailbox: "INBOX".into(),
        filed_folder: "Haven/Filed".into(),
        quarantine_folder: "Haven/Quarantine".into(),
        poll_interval: Duration::from_millis(300),
        max_message_size: 1024 * 1024,
        batch_size: 50,
        idle_renew: Duration::from_secs(25 * 60),
    }
}

/// The source running in the background.
struct Running {
    shutdown: CancellationToken,
    status: ImapStatus,
    task: JoinHandle<Result<(), ImapError>>,
}

fn start(settings: ImapSettings, sink: &Arc<Recorder>) -> Running {
    let shutdown = CancellationToken::new();
    let status = ImapStatus::new();
    let (s, t, st) = (sink.clone(), shutdown.clone(), status.clone());
    let task = tokio::spawn(async move { run(settings, &*s, t, &st).await });
    Running { shutdown, status, task }
}

impl Running {
    /// Cancels and waits (a clean stop must come within seconds).
    async fn stop(self) {
        self.shutdown.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        match ended {
            Ok(Ok(Ok(()))) => {}
            other => panic!("the source did not stop cleanly: {other:?}"),
        }
        assert_eq!(self.status.state(), ImapState::Stopped);
    }

    async fn reach(&self, want: ImapState, within: Duration) {
        let mut rx = self.status.subscribe();
        let waited = tokio::time::timeout(within, rx.wait_for(|s| *s == want)).await;
        assert!(matches!(waited, Ok(Ok(_))), "the source did not reach {want:?} within {within:?}; it is {:?}", self.status.state());
    }
}

/// Polls `check` until it holds or `within` passes (then fails with `what`).
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server's own spelling of a configured folder (its hierarchy delimiter may be `.`).
async fn server_name(d: &Dovecot, configured: &str) -> String {
    let folders = d.folders().await;
    let leaf = configured.rsplit('/').next().unwrap_or(configured);
    folders
        .into_iter()
        .find(|f| f.ends_with(leaf) && f.starts_with("Haven"))
        .unwrap_or_else(|| panic!("no folder for {configured} on the server"))
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn waiting_messages_are_delivered_once_and_moved_by_disposition() {
    let d = Dovecot::start();
    for n in 0..3 {
        d.append(&message(n, "")).await;
    }
    d.append(&message(3, QUARANTINE_ME)).await;
    let sink = Arc::new(Recorder::default());
    let src = start(settings(&d), &sink);

    eventually("4 messages delivered", WAIT, || async { sink.got().len() >= 4 }).await;
    eventually("INBOX empty", WAIT, || async { d.count("INBOX").await == 0 }).await;
    src.reach(ImapState::Idle, WAIT).await;
    src.stop().await;

    let got = sink.got();
    assert_eq!(got.len(), 4, "each message exactly once");
    for (n, m) in got.iter().enumerate() {
        match &m.origin {
            Origin::Imap { mailbox, uidvalidity, uid } => {
                assert_eq!(mailbox, "INBOX");
                assert!(*uidvalidity > 0);
                assert_eq!(*uid as usize, n + 1, "UID order");
            }
            other => panic!("origin {other:?}"),
        }
        let extra = if n == 3 { QUARANTINE_ME } else { "" };
        assert_eq!(m.payload, Payload::Raw(message(n, extra)), "message {n} bytes intact");
    }
    let filed = server_name(&d, "Haven/Filed").await;
    let quarantine = server_name(&d, "Haven/Quarantine").await;
    assert_eq!(d.count(&filed).await, 3);
    assert_eq!(d.count(&quarantine).await, 1);
    assert_eq!(d.search(&filed, "SEEN").await, Vec::<u32>::new(), "Haven never sets \\Seen");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_appended_during_idle_arrives_within_seconds() {
    let d = Dovecot::start();
    let sink = Arc::new(Recorder::default());
    let src = start(settings(&d), &sink);
    src.reach(ImapState::Idle, WAIT).await;
    // Let IDLE settle on the server side.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let appended = Instant::now();
    d.append(&message(1, "")).await;
    eventually("the new message delivered", WAIT, || async { sink.got().len() == 1 }).await;
    let latency = appended.elapsed();
    println!("IDLE pick-up latency: {} ms (Dovecot batches notifications ~500 ms)", latency.as_millis());
    assert!(latency < Duration::from_secs(5), "latency {latency:?}");
    eventually("INBOX empty", WAIT, || async { d.count("INBOX").await == 0 }).await;
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_stay_while_the_pipeline_is_down_and_arrive_after_it_recovers() {
    let d = Dovecot::start();
    d.append(&message(1, "")).await;
    d.append(&message(2, "")).await;
    let sink = Arc::new(Recorder::default());
    sink.down.store(true, Ordering::SeqCst);
    let src = start(settings(&d), &sink);

    eventually("two refused attempts", WAIT, || async { sink.calls.load(Ordering::SeqCst) >= 2 }).await;
    assert_eq!(d.count("INBOX").await, 2, "nothing leaves INBOX before a commit");
    assert!(sink.got().is_empty());

    sink.down.store(false, Ordering::SeqCst);
    eventually("both delivered", WAIT, || async { sink.got().len() == 2 }).await;
    eventually("INBOX empty", WAIT, || async { d.count("INBOX").await == 0 }).await;
    assert_eq!(sink.uids(), [1, 2]);
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_is_handed_over_by_size_without_being_downloaded() {
    let d = Dovecot::start();
    let mut big = message(1, "");
    big.extend(std::iter::repeat_n(b"0123456789abcdef0123456789abcdef0123456789abcdef012345678\r\n", 5000).flatten());
    let big_size = big.len() as u64;
    d.append(&big).await;
    d.append(&message(2, "")).await;
    let sink = Arc::new(Recorder::default());
    let mut s = settings(&d);
    s.max_message_size = 100 * 1024;
    assert!(big_size > s.max_message_size);
    let src = start(s, &sink);

    eventually("both delivered", WAIT, || async { sink.got().len() == 2 }).await;
    eventually("INBOX empty", WAIT, || async { d.count("INBOX").await == 0 }).await;
    src.stop().await;

    let got = sink.got();
    assert_eq!(got.first().map(|m| &m.payload), Some(&Payload::TooLarge { size: big_size }));
    assert_eq!(got.get(1).map(|m| &m.payload), Some(&Payload::Raw(message(2, ""))));
    assert_eq!(d.count(&server_name(&d, "Haven/Quarantine").await).await, 1);

    // Dovecot logs, per session, how many body bytes it sent: only the small message's.
    let mut body_bytes = 0u64;
    eventually("Dovecot logged the session's logout", WAIT, || {
        let log = d.log();
        body_bytes = log
            .lines()
            .filter(|l| l.contains("Logged out"))
            .filter_map(|l| l.split("body_bytes=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
            .sum();
        async move { body_bytes > 0 }
    })
    .await;
    assert!(body_bytes < big_size / 10, "sent {body_bytes} body bytes; the large message is {big_size}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_source_delivers_nothing_twice() {
    let d = Dovecot::start();
    d.append(&message(1, "")).await;
    d.append(&message(2, "")).await;
    let sink = Arc::new(Recorder::default());

    let src = start(settings(&d), &sink);
    eventually("first two delivered", WAIT, || async { sink.got().len() == 2 }).await;
    src.reach(ImapState::Idle, WAIT).await;
    src.stop().await;

    d.append(&message(3, "")).await;
    let src = start(settings(&d), &sink);
    eventually("the third delivered", WAIT, || async { sink.got().len() >= 3 }).await;
    src.reach(ImapState::Idle, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    src.stop().await;
    assert_eq!(sink.uids(), [1, 2, 3], "each message exactly once across restarts");
    assert_eq!(d.count("INBOX").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_source_reconnects_after_the_server_restarts() {
    let d = Dovecot::start();
    let sink = Arc::new(Recorder::default());
    let src = start(settings(&d), &sink);
    src.reach(ImapState::Idle, WAIT).await;

    d.stop();
    src.reach(ImapState::Retrying, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    d.restart();
    d.append(&message(1, "")).await;

    eventually("delivered after the restart", Duration::from_secs(30), || async { sink.got().len() == 1 }).await;
    eventually("INBOX empty", WAIT, || async { d.count("INBOX").await == 0 }).await;
    src.stop().await;
}

/// Pick-up latency while idling, beside a bare IDLE client on the same server in the same run
/// (Dovecot itself waits about 0.5 s before it notifies an idling client): Haven's median must
/// stay close to the bare client's, and no message may take much longer.
#[tokio::test(flavor = "multi_thread")]
async fn idle_pickup_latency_is_close_to_a_bare_idle_client() {
    const N: usize = 30;
    const PROBE: &str = "Probe";
    let d = Dovecot::start();
    {
        let mut c = d.client().await;
        c.create(PROBE).await.unwrap_or_else(|e| panic!("CREATE: {e}"));
        let _ = c.logout().await;
    }
    let sink = Arc::new(Recorder::default());
    let src = start(settings(&d), &sink);
    src.reach(ImapState::Idle, WAIT).await;

    // The bare client: IDLE on its own mailbox, note when each EXISTS arrives.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let stop = CancellationToken::new();
    let watcher = d.idle_watcher(PROBE, tx, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut haven, mut bare) = (Vec::new(), Vec::new());
    let mut c = d.client().await;
    for n in 0..N {
        c.append("INBOX", None, None, message(n, "")).await.unwrap_or_else(|e| panic!("APPEND: {e}"));
        let to_haven = Instant::now();
        c.append(PROBE, None, None, message(n, "")).await.unwrap_or_else(|e| panic!("APPEND: {e}"));
        let to_bare = Instant::now();
        let seen = tokio::time::timeout(WAIT, rx.recv()).await;
        let Ok(Some(seen)) = seen else { panic!("the bare IDLE client saw nothing") };
        bare.push(seen.saturating_duration_since(to_bare));
        eventually("Haven took it", WAIT, || async { sink.got().len() == n + 1 }).await;
        let arrived = sink.arrived.lock().ok().and_then(|a| a.last().copied());
        haven.push(arrived.map_or(Duration::MAX, |t| t.saturating_duration_since(to_haven)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = c.logout().await;
    stop.cancel();
    let _ = watcher.await;
    src.stop().await;

    let pct = |v: &mut Vec<Duration>, p: usize| {
        v.sort_unstable();
        v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).copied().unwrap_or(Duration::MAX)
    };
    let (h50, h99) = (pct(&mut haven, 50), pct(&mut haven, 99));
    let (b50, b99) = (pct(&mut bare, 50), pct(&mut bare, 99));
    println!(
        "IDLE pick-up over {N} messages: Haven p50 {} ms, p99 {} ms; bare IDLE client p50 {} ms, p99 {} ms",
        h50.as_millis(),
        h99.as_millis(),
        b50.as_millis(),
        b99.as_millis()
    );
    assert!(h50 <= b50 + Duration::from_millis(150), "Haven's median {h50:?} vs the bare client's {b50:?}");
    assert!(h99 < Duration::from_millis(1500), "Haven's p99 {h99:?}");
}

/// A backlog (a weekend's mail, or a first start on a full mailbox) drains in batches; prints
/// the rate so a regression shows in the test output.
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_drains_in_batches() {
    const N: usize = 400;
    let d = Dovecot::start();
    let msgs: Vec<Vec<u8>> = (0..N).map(|n| message(n, "")).collect();
    d.append_all(&msgs).await;
    let sink = Arc::new(Recorder::default());
    let started = Instant::now();
    let src = start(settings(&d), &sink);
    eventually("the backlog delivered", Duration::from_secs(60), || async { sink.got().len() == N }).await;
    let elapsed = started.elapsed();
    src.reach(ImapState::Idle, WAIT).await;
    src.stop().await;
    println!(
        "backlog: {N} messages in {} ms ({:.0} msgs/s, {} sink commits)",
        elapsed.as_millis(),
        N as f64 / elapsed.as_secs_f64(),
        sink.calls.load(Ordering::SeqCst)
    );
    assert_eq!(sink.uids(), (1..=N as u32).collect::<Vec<_>>());
    assert_eq!(sink.calls.load(Ordering::SeqCst), N / 50, "batches of batch_size");
    assert_eq!(d.count("INBOX").await, 0);
}

/// The server goes away after the pipeline committed a batch but before the source moved it:
/// the messages come again after the reconnect, with the same origin (mailbox, UIDVALIDITY,
/// UID), which is what lets the pipeline recognise them instead of filing them twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_committed_but_not_moved_comes_again_with_the_same_origin() {
    let d = Arc::new(Dovecot::start());
    d.append(&message(1, "")).await;
    d.append(&message(2, "")).await;
    let sink = Arc::new(Recorder::default());
    let server = d.clone();
    if let Ok(mut hook) = sink.after_commit.lock() {
        *hook = Some(Box::new(move || server.stop()));
    }
    let src = start(settings(&d), &sink);
    src.reach(ImapState::Retrying, WAIT).await;
    assert_eq!(sink.got().len(), 2);
    d.restart();
    eventually("delivered again", Duration::from_secs(30), || async { sink.got().len() == 4 }).await;
    eventually("INBOX empty", WAIT, || async { d.count("INBOX").await == 0 }).await;
    src.stop().await;
    let got = sink.got();
    let (first, again) = got.split_at(2);
    assert_eq!(first, again, "same origin and bytes the second time");
    assert_eq!(d.count(&server_name(&d, "Haven/Filed").await).await, 2);
}

/// Folder names are configured with `/` and may be non-ASCII: the server gets them in its
/// own hierarchy and in modified UTF-7 (expected spellings written out here by hand).
#[tokio::test(flavor = "multi_thread")]
async fn folder_names_follow_the_server_hierarchy_and_modified_utf7() {
    let d = Dovecot::start();
    let sep = d.delimiter().await;
    let intake = format!("&AMk-coles{sep}Intake");
    d.create(&intake).await;
    d.append_to(&intake, &message(1, ""), None).await;
    d.append_to(&intake, &message(2, QUARANTINE_ME), None).await;
    let mut s = settings(&d);
    s.mailbox = "Écoles/Intake".into();
    s.filed_folder = "Haven/Classé".into();
    s.quarantine_folder = "Haven/Quarantaine & Co".into();
    let sink = Arc::new(Recorder::default());
    let src = start(s, &sink);
    eventually("both delivered", WAIT, || async { sink.got().len() == 2 }).await;
    eventually("intake emptied", WAIT, || async { d.count(&intake).await == 0 }).await;
    src.stop().await;
    assert_eq!(d.count(&format!("Haven{sep}Class&AOk-")).await, 1);
    assert_eq!(d.count(&format!("Haven{sep}Quarantaine &- Co")).await, 1);
    assert!(sink.got().iter().all(|m| matches!(&m.origin,
        Origin::Imap { mailbox, .. } if mailbox == "Écoles/Intake")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_another_client_marked_seen_is_still_taken() {
    let d = Dovecot::start();
    d.append_to("INBOX", &message(1, ""), Some("(\\Seen)")).await;
    d.append(&message(2, "")).await;
    assert_eq!(d.search("INBOX", "SEEN").await, [1]);
    let sink = Arc::new(Recorder::default());
    let src = start(settings(&d), &sink);
    eventually("both delivered", WAIT, || async { sink.got().len() == 2 }).await;
    eventually("INBOX empty", WAIT, || async { d.count("INBOX").await == 0 }).await;
    src.stop().await;
    assert_eq!(sink.uids(), [1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_imap_to_a_remote_host_is_refused_with_a_clear_error() {
    let sink = Recorder::default();
    let mut s = ImapSettings { host: "imap.example.org".into(), ..settings_without_server() };
    s.security = Security::Plain;
    let status = ImapStatus::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), run(s, &sink, CancellationToken::new(), &status)).await;
    let err = match ended {
        Ok(Err(e)) => e,
        other => panic!("expected an immediate refusal, got {other:?}"),
    };
    let text = err.to_string();
    assert!(text.contains("plain") && text.contains("loopback") && text.contains("imap.example.org"), "{text}");
    assert!(err.is_permanent());
    assert_eq!(status.state(), ImapState::Stopped);
    assert_eq!(sink.calls.load(Ordering::SeqCst), 0);
}

fn settings_without_server() -> ImapSettings {
    ImapSettings {
        host: "127.0.0.1".into(),
        port: 1,
        security: Security::Tls,
        username: USER.into(),
        auth: ImapAuth::Password(PASSWORD.into()),
        mailbox: "INBOX".into(),
        filed_folder: "Haven/Filed".into(),
        quarantine_folder: "Haven/Quarantine".into(),
        poll_interval: Duration::from_secs(1),
        max_message_size: 1024,
        batch_size: 50,
        idle_renew: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_message_the_pipeline_refuses_does_not_block_the_others() {
    let d = Dovecot::start();
    d.append(&message(1, "")).await;
    d.append(&message(2, REFUSE_ME)).await;
    d.append(&message(3, "")).await;
    let sink = Arc::new(Recorder::default());
    let src = start(settings(&d), &sink);
    eventually("the good two delivered", WAIT, || async { sink.got().len() == 2 }).await;
    eventually("only the refused one left", WAIT, || async { d.count("INBOX").await == 1 }).await;
    src.reach(ImapState::Idle, WAIT).await;
    src.stop().await;
    assert_eq!(sink.uids(), [1, 3]);
    assert_eq!(d.search("INBOX", "ALL").await, [2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_idle_and_move_the_source_polls_and_copies_then_expunges_by_uid() {
    let d = Dovecot::start_with("protocol imap {\n  imap_capability = IMAP4rev1 LITERAL+ UIDPLUS\n}");
    d.append(&message(1, "")).await;
    // A message the pipeline refuses stays; that another client flagged it \Deleted must not
    // make it go: Haven expunges by UID, never with a plain EXPUNGE.
    d.append_to("INBOX", &message(9, REFUSE_ME), Some("(\\Deleted)")).await;
    let sink = Arc::new(Recorder::default());
    let src = start(settings(&d), &sink);
    src.reach(ImapState::Polling, WAIT).await;
    d.append(&message(2, "")).await;
    eventually("both delivered by polling", WAIT, || async { sink.got().len() >= 2 }).await;
    eventually("INBOX down to the refused one", WAIT, || async { d.count("INBOX").await == 1 }).await;
    src.stop().await;
    assert_eq!(sink.uids(), [1, 3]);
    let filed = server_name(&d, "Haven/Filed").await;
    assert_eq!(d.count(&filed).await, 2);
    assert_eq!(d.search("INBOX", "ALL").await, [2], "the refused, flagged message is still there");
}

/// The environment variable that turns the TLS test into its own child process (see below).
const TLS_CHILD: &str = "HAVEN_TEST_TLS_CHILD";

/// Trusting the test CA means pointing the OS trust store at it (`SSL_CERT_FILE`), which a
/// test can only do for a process it starts: so this test re-runs itself as a child with that
/// variable set, once over STARTTLS and once over implicit TLS, and checks what the child did.
#[tokio::test(flavor = "multi_thread")]
async fn starttls_and_tls_deliver_when_the_certificate_is_trusted() {
    if let Ok(spec) = std::env::var(TLS_CHILD) {
        return tls_child(&spec).await;
    }
    let d = Dovecot::start_tls();
    let tls_port = d.tls_port.unwrap_or_else(|| panic!("no TLS port"));
    for (n, (mode, port)) in [("starttls", d.port), ("tls", tls_port)].into_iter().enumerate() {
        d.append(&message(n, "")).await;
        let marker = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("temp file: {e}"));
        let out = std::process::Command::new(std::env::current_exe().unwrap_or_else(|e| panic!("{e}")))
            .args(["--exact", "starttls_and_tls_deliver_when_the_certificate_is_trusted", "--nocapture"])
            .env(TLS_CHILD, format!("{mode}:{port}:{}", marker.path().display()))
            .env("SSL_CERT_FILE", d.ca_file())
            .output()
            .unwrap_or_else(|e| panic!("cannot re-run the test binary: {e}"));
        assert!(
            out.status.success() && std::fs::read_to_string(marker.path()).is_ok_and(|m| m == "delivered"),
            "{mode} child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(d.count("INBOX").await, 0, "{mode}: moved out of INBOX");
        assert_eq!(d.count(&server_name(&d, "Haven/Filed").await).await, n as u32 + 1);
    }
}

/// The child's part: deliver the one waiting message over `mode` and record success.
async fn tls_child(spec: &str) {
    let mut parts = spec.splitn(3, ':');
    let (mode, port, marker) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(f)) => (m, p.parse::<u16>().unwrap_or(0), f),
        _ => panic!("bad {TLS_CHILD}={spec}"),
    };
    let mut s = settings_without_server();
    s.host = "localhost".into();
    s.port = port;
    s.security = if mode == "tls" { Security::Tls } else { Security::Starttls };
    let sink = Arc::new(Recorder::default());
    let src = start(s, &sink);
    eventually("delivered over TLS", WAIT, || async { sink.got().len() == 1 }).await;
    src.reach(ImapState::Idle, WAIT).await;
    src.stop().await;
    std::fs::write(marker, "delivered").unwrap_or_else(|e| panic!("marker: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_server_certificate_is_refused() {
    let d = Dovecot::start_tls();
    d.append(&message(1, "")).await;
    let tls_port = d.tls_port.unwrap_or_else(|| panic!("no TLS port"));
    for (security, port) in [(Security::Starttls, d.port), (Security::Tls, tls_port)] {
        let mut s = settings_without_server();
        s.host = "localhost".into();
        s.port = port;
        s.security = security;
        let sink = Arc::new(Recorder::default());
        let src = start(s, &sink);
        src.reach(ImapState::Retrying, WAIT).await;
        let error = src.status.last_error().unwrap_or_default();
        assert!(error.contains("TLS") && error.contains("certificate"), "{security:?}: {error}");
        src.stop().await;
        assert!(sink.got().is_empty());
    }
    assert_eq!(d.count("INBOX").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_one_mailbox_take_every_message_and_stay_healthy() {
    let d = Dovecot::start();
    for n in 0..20 {
        d.append(&message(n, "")).await;
    }
    let mut s = settings(&d);
    s.batch_size = 3;
    let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let (src_a, src_b) = (start(s.clone(), &a), start(s, &b));
    eventually("INBOX empty", WAIT, || async { d.count("INBOX").await == 0 }).await;
    src_a.reach(ImapState::Idle, WAIT).await;
    src_b.reach(ImapState::Idle, WAIT).await;
    // Both may commit the same message (the real pipeline then files it once); what matters
    // here is that none is missed and that a message the other daemon moved first is no error.
    let mut uids = a.uids();
    uids.extend(b.uids());
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids, (1..=20).collect::<Vec<u32>>());
    assert_eq!(src_a.status.last_error(), None);
    assert_eq!(src_b.status.last_error(), None);
    src_a.stop().await;
    src_b.stop().await;
    // Two sessions moving the same message at once can each copy it (Dovecot's MOVE is copy
    // + expunge): Filed may hold duplicates, never fewer than every message.
    let filed = d.count(&server_name(&d, "Haven/Filed").await).await;
    assert!(filed >= 20, "Filed holds {filed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn xoauth2_rereads_the_token_after_the_server_rejects_an_expired_one() {
    use haven::source::imap::TokenSource;
    let d = Dovecot::start_xoauth2();
    d.append(&message(1, "")).await;
    let token_file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("temp file: {e}"));
    std::fs::write(token_file.path(), d.oauth2_token(-60)).unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(&d);
    s.auth = ImapAuth::Xoauth2 { token_source: TokenSource::File(token_file.path().into()) };
    let sink = Arc::new(Recorder::default());
    let src = start(s.clone(), &sink);

    src.reach(ImapState::Retrying, WAIT).await;
    let error = src.status.last_error().unwrap_or_default();
    assert!(error.contains("refused the login"), "{error}");
    assert!(sink.got().is_empty());

    // Whatever refreshes tokens writes a new one; the next attempt uses it.
    std::fs::write(token_file.path(), format!("{}\n", d.oauth2_token(3600))).unwrap_or_else(|e| panic!("{e}"));
    eventually("delivered after the token was refreshed", WAIT, || async { sink.got().len() == 1 }).await;
    src.reach(ImapState::Idle, WAIT).await;
    assert_eq!(src.status.last_error(), None);
    src.stop().await;

    // The same through a token command.
    d.append(&message(2, "")).await;
    let command = format!("cat {}", token_file.path().display());
    s.auth = ImapAuth::Xoauth2 { token_source: TokenSource::Command(command) };
    let src = start(s, &sink);
    eventually("delivered with the command's token", WAIT, || async { sink.got().len() == 2 }).await;
    src.stop().await;
    assert_eq!(d.count("INBOX").await, 0);
}

// --- The whole daemon on IMAP (issue 7's end-to-end checks) ------------------------------

use support::db::{Backend, TestDb};
use support::haven::{HavenEnv, school_fixtures};

/// Points a test installation's intake at `d` (plain IMAP on loopback), with a 50 MB limit.
fn use_imap(env: &HavenEnv, d: &Dovecot, password: &str) {
    std::fs::write(env.path("secrets/imap-password"), format!("{password}\n")).unwrap_or_else(|e| panic!("{e}"));
    let config = std::fs::read_to_string(&env.config).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.contains("source = \"maildir\"") && config.contains("max_message_size = \"10MB\""), "the test config changed shape");
    let config =
        config.replace("source = \"maildir\"", "source = \"imap\"").replace("max_message_size = \"10MB\"", "max_message_size = \"50MB\"")
            + &format!(
                "\n[intake.imap]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             username = \"{USER}\"\nauth = \"password\"\npassword_file = \"secrets/imap-password\"\n\
             poll_interval = \"1s\"\n",
                d.port
            );
    std::fs::write(&env.config, config).unwrap_or_else(|e| panic!("{e}"));
}

/// `haven run` in the background; every run of one test appends to the same log.
struct Daemon {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(env: &HavenEnv) -> Daemon {
        let log = env.path("haven.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap_or_else(|e| panic!("{e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["run", "--config"])
            .arg(&env.config)
            .current_dir(env.dir.path())
            .env("RUST_LOG", "info,haven=debug")
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start haven run: {e}"));
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("haven run exited ({status}):\n{}", self.log());
        }
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap_or_else(|e| panic!("kill -9: {e}"));
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code must be 0 within 20 s.
    async fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            assert!(Instant::now() < deadline, "haven run ignored SIGTERM:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(code, Some(0), "haven run after SIGTERM:\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed assertion must not leave a daemon behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The test school's teacher forward with its own Message-ID (and CRLF line ends).
fn forward(i: usize) -> Vec<u8> {
    let template = std::fs::read_to_string(school_fixtures().join("mail/forward-contact.eml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    assert!(template.contains("fwd-contact-1@"));
    template.replace("fwd-contact-1@", &format!("fwd-imap-{i}@")).into_bytes()
}

/// The same forward with a PDF of about `mb` megabytes (base64) attached.
fn forward_with_attachment(i: usize, mb: usize) -> Vec<u8> {
    use base64::Engine as _;
    let plain = String::from_utf8(forward(i)).unwrap_or_default();
    let (head, body) = plain.split_once("\r\n\r\n").unwrap_or((&plain, ""));
    let head = head.replace("Content-Type: text/plain; charset=utf-8", "Content-Type: multipart/mixed; boundary=\"b-haven\"");
    let pdf: Vec<u8> = (0..mb * 1024 * 1024 * 3 / 4).map(|n| (n % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(pdf);
    let mut lines = String::with_capacity(encoded.len() * 78 / 76 + 64);
    for chunk in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        lines.push_str("\r\n");
    }
    format!(
        "{head}\r\n\r\n--b-haven\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
         --b-haven\r\nContent-Type: application/pdf; name=\"letter.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"letter.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{lines}--b-haven--\r\n"
    )
    .into_bytes()
}

/// Nothing in the daemon's log that names a person or quotes a message.
fn assert_log_is_clean(log: &str) {
    for private in ["Jane", "Smith", "lunch money", "teacher@school.example", "Worried"] {
        assert!(!log.contains(private), "the daemon's log contains {private:?}");
    }
}

/// 500 messages appended while the daemon runs; the daemon killed with SIGKILL at random
/// moments five times and restarted each time: every message filed exactly once, INBOX
/// empty, then SIGTERM stops it cleanly.
async fn the_daemon_files_500_messages_once_across_five_kill_9s(backend: Backend) {
    const N: usize = 500;
    let db = TestDb::new(backend).await;
    let d = Arc::new(Dovecot::start());
    let env = HavenEnv::new(&db.url, "");
    use_imap(&env, &d, PASSWORD);
    env.import_school();

    let mut daemon = Daemon::start(&env);
    let appender = {
        let d = d.clone();
        tokio::spawn(async move {
            for chunk in (0..N).collect::<Vec<_>>().chunks(25) {
                let msgs: Vec<Vec<u8>> = chunk.iter().map(|i| forward(*i)).collect();
                d.append_all(&msgs).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut kills = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(rand::random_range(150..900))).await;
        daemon.assert_running();
        daemon.kill_9();
        kills.push(d.count("INBOX").await);
        daemon = Daemon::start(&env);
    }
    println!("kill -9 five times; messages waiting in INBOX at each kill: {kills:?}");
    appender.await.unwrap_or_else(|e| panic!("appending failed: {e}"));
    eventually("INBOX emptied", Duration::from_secs(120), || async { d.count("INBOX").await == 0 }).await;
    daemon.assert_running();
    let log = daemon.log();
    daemon.terminate().await;

    let s = env.status();
    assert_eq!(s["messages"]["filed"], N, "{s}");
    assert_eq!(s["incidents"], N, "each forward filed exactly once: {s}");
    for other in ["awaiting_triage", "quarantined", "duplicate", "ignored"] {
        assert_eq!(s["messages"][other], 0, "{other}: {s}");
    }
    let filed = server_name(&d, "Haven/Filed").await;
    assert!(d.count(&filed).await as usize >= N);
    assert_log_is_clean(&log);
    db.cleanup().await;
}

/// While the daemon idles: a new forward is filed and moved within seconds; a malformed
/// message goes to Quarantine and the one after it is still filed; a 20 MB attachment is
/// filed; a message another client marked \Seen is filed like any other.
async fn the_daemon_files_what_arrives_while_it_idles(backend: Backend) {
    let db = TestDb::new(backend).await;
    let d = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    use_imap(&env, &d, PASSWORD);
    env.import_school();
    d.append_to("INBOX", &forward(1), Some("(\\Seen)")).await;
    let mut daemon = Daemon::start(&env);
    eventually("the first forward filed", WAIT, || async { d.count("INBOX").await == 0 }).await;
    // Let it settle into IDLE.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let appended = Instant::now();
    d.append(&forward(2)).await;
    eventually("the idle pick-up filed and moved", WAIT, || async { d.count("INBOX").await == 0 }).await;
    println!("daemon: APPEND to moved out of INBOX (after commit) in {} ms", appended.elapsed().as_millis());
    assert!(appended.elapsed() < Duration::from_secs(5));

    d.append_all(&[b"%PDF-1.4 not an email at all\r\n\x00\x01\x02 binary junk\r\n".to_vec(), forward(3), forward_with_attachment(4, 20)])
        .await;
    eventually("the rest handled", Duration::from_secs(60), || async { d.count("INBOX").await == 0 }).await;
    daemon.assert_running();
    let log = daemon.log();
    daemon.terminate().await;

    let s = env.status();
    assert_eq!(s["messages"]["filed"], 4, "{s}");
    assert_eq!(s["messages"]["quarantined"], 1, "{s}");
    assert_eq!(s["incidents"], 4, "{s}");
    assert_eq!(d.count(&server_name(&d, "Haven/Filed").await).await, 4);
    assert_eq!(d.count(&server_name(&d, "Haven/Quarantine").await).await, 1);
    assert_log_is_clean(&log);
    db.cleanup().await;
}

/// A wrong password: a clear error in the log, retries with backoff (logged once, not per
/// retry), and the daemon keeps running until told to stop.
async fn a_wrong_password_is_reported_once_and_retried(backend: Backend) {
    let db = TestDb::new(backend).await;
    let d = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    use_imap(&env, &d, "not-the-password");
    env.import_school();
    d.append(&forward(1)).await;
    let mut daemon = Daemon::start(&env);
    eventually("the login refusal logged", WAIT, || {
        let found = daemon.log().contains("refused the login");
        async move { found }
    })
    .await;
    // Dovecot answers a failed login after 2 s; with backoff the attempts go on.
    let failed_logins = || d.log().lines().filter(|l| l.contains("auth failed") && l.contains(USER)).count();
    eventually("three failed login attempts", Duration::from_secs(40), || {
        let n = failed_logins();
        async move { n >= 3 }
    })
    .await;
    daemon.assert_running();
    let log = daemon.log();
    let warnings = log.lines().filter(|l| l.contains("WARN") && l.contains("refused the login")).count();
    assert_eq!(warnings, 1, "logged once per state change, not per retry:\n{log}");
    assert_eq!(d.count("INBOX").await, 1, "nothing taken without a login");
    daemon.terminate().await;
    db.cleanup().await;
}

/// Dovecot stopped for 10 s in the middle of a run: Haven reconnects and finishes.
async fn the_daemon_finishes_after_the_server_is_down_for_10_seconds(backend: Backend) {
    const N: usize = 200;
    let db = TestDb::new(backend).await;
    let d = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    use_imap(&env, &d, PASSWORD);
    env.import_school();
    d.append_all(&(0..N).map(forward).collect::<Vec<_>>()).await;
    let mut daemon = Daemon::start(&env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.count("INBOX").await as usize == N {
        assert!(Instant::now() < deadline, "nothing filed:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.stop();
    tokio::time::sleep(Duration::from_secs(10)).await;
    d.restart();
    eventually("INBOX emptied after the outage", Duration::from_secs(60), || async { d.count("INBOX").await == 0 }).await;
    daemon.assert_running();
    daemon.terminate().await;
    let s = env.status();
    assert_eq!(s["messages"]["filed"], N, "{s}");
    assert_eq!(s["incidents"], N, "{s}");
    db.cleanup().await;
}

/// Messages Haven already filed show up again in the intake under a new UIDVALIDITY (a
/// restored mailbox): they are recognised by Message-ID and content and moved, never filed again.
async fn already_filed_messages_under_a_new_uidvalidity_are_moved_not_refiled(backend: Backend) {
    let db = TestDb::new(backend).await;
    let d = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    use_imap(&env, &d, PASSWORD);
    env.import_school();
    d.append_all(&(0..3).map(forward).collect::<Vec<_>>()).await;
    let daemon = Daemon::start(&env);
    eventually("filed", WAIT, || async { d.count("INBOX").await == 0 }).await;
    daemon.terminate().await;
    assert_eq!(env.status()["incidents"], 3);

    let filed = server_name(&d, "Haven/Filed").await;
    d.copy_all(&filed, "INBOX").await;
    let before = d.uidvalidity().await;
    d.reset_inbox_uidvalidity();
    assert_ne!(d.uidvalidity().await, before, "the test needs a new UIDVALIDITY");
    assert_eq!(d.count("INBOX").await, 3);

    let daemon = Daemon::start(&env);
    eventually("moved again", WAIT, || async { d.count("INBOX").await == 0 }).await;
    daemon.terminate().await;
    let s = env.status();
    assert_eq!(s["incidents"], 3, "nothing filed twice: {s}");
    assert_eq!(s["messages"]["filed"], 3, "{s}");
    assert_eq!(d.count(&filed).await, 6);
    db.cleanup().await;
}

/// The database's disk fills while 100 messages wait in INBOX: none leaves INBOX; the daemon
/// is killed with SIGKILL while the disk is full; once there is room again (and it is started
/// again) every message is filed exactly once and moved to Filed.
async fn a_full_disk_leaves_every_message_in_inbox_until_space_returns(backend: Backend) {
    const N: usize = 100;
    let db = support::disk::DiskDb::new(backend, "64m").await;
    let disk = &db.disk;
    let d = Dovecot::start();
    let env = HavenEnv::new(&db.url, "");
    use_imap(&env, &d, PASSWORD);
    env.import_school();
    let mut daemon = Daemon::start(&env);
    eventually("the daemon connected", Duration::from_secs(30), || async { daemon.log().contains("IMAP intake connected") }).await;

    disk.fill();
    // About 30 KB each: more than the space the database may already hold can take.
    let pad = "The same padding line, to make the message large enough.\r\n".repeat(500);
    let msgs: Vec<Vec<u8>> = (0..N).map(|i| [forward(i), pad.clone().into_bytes()].concat()).collect();
    d.append_all(&msgs).await;
    eventually("a refused commit", Duration::from_secs(60), || async { daemon.log().contains("IMAP intake failed; retrying") }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.assert_running();
    // A full disk may still take a first batch into space the database already holds; what
    // must hold is that nothing left INBOX that the database does not have.
    let left = N - d.count("INBOX").await as usize;
    let filed = env.status()["messages"]["filed"].as_u64().unwrap_or(0) as usize;
    assert_eq!(left, filed, "a message left INBOX without being in the database:\n{}", daemon.log());
    assert!(left < N, "the full disk refused nothing: the test proved nothing");
    daemon.kill_9();

    disk.free();
    let mut daemon = Daemon::start(&env);
    eventually("INBOX emptied", Duration::from_secs(120), || async { d.count("INBOX").await == 0 }).await;
    daemon.assert_running();
    daemon.terminate().await;
    let s = env.status();
    assert_eq!(s["messages"]["filed"], N, "{s}");
    assert_eq!(s["incidents"], N, "each forward filed exactly once: {s}");
    let filed = server_name(&d, "Haven/Filed").await;
    assert_eq!(d.count(&filed).await as usize, N);
    db.cleanup().await;
}

backend_tests!(
    the_daemon_files_500_messages_once_across_five_kill_9s,
    a_full_disk_leaves_every_message_in_inbox_until_space_returns,
    already_filed_messages_under_a_new_uidvalidity_are_moved_not_refiled,
    the_daemon_files_what_arrives_while_it_idles,
    a_wrong_password_is_reported_once_and_retried,
    the_daemon_finishes_after_the_server_is_down_for_10_seconds,
);
