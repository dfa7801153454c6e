//! The DSL console end to end: the real `haven run` serving `[console]` on a loopback port,
//! driven by a real headless Chromium through chromedriver (WebDriver, fantoccini), on SQLite
//! and on PostgreSQL. Headers and refusals are checked with raw HTTP requests. Each main page's
//! screenshot is written under target/console-screenshots/.

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::db::{Backend, TestDb};
use support::haven::{Daemon, HavenEnv, school_fixtures, wait_for};
use support::smtp::{SmtpServer, free_port};

const WAIT: Duration = Duration::from_secs(30);

/// chromedriver on a free loopback port, and one headless Chromium session; both stopped on drop.
struct Browser {
    driver: Child,
    client: Option<Client>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver: install the Debian packages chromium and chromium-driver (tests/run.sh does it)");
        wait_for("chromedriver to listen", WAIT, || TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string()));
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--window-size=1000,800".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "args": args, "binary": "/usr/bin/chromium" }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Browser { driver, client: Some(client), _profile: profile }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser is open")
    }

    /// Writes the page as it looks now to target/console-screenshots/NAME.png.
    async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A Haven installation with the console on a free loopback port and `haven run` running.
struct School {
    db: TestDb,
    smtp: SmtpServer,
    env: HavenEnv,
    daemon: Daemon,
    port: u16,
    /// The host the browser uses: 127.0.0.1, or localhost where passkeys are tried (WebAuthn
    /// needs a name).
    host: &'static str,
}

impl School {
    async fn start(backend: Backend) -> School {
        School::start_with(backend, "").await
    }

    /// [`School::start`] with extra keys in `[console]`.
    async fn start_with(backend: Backend, console_extra: &str) -> School {
        School::start_full(backend, console_extra, false).await
    }

    /// With `with_mail`, three messages are ingested first: a child-protection concern about
    /// Jane (an outcome outstanding), one naming no known pupil (awaiting triage) and one from
    /// a stranger (quarantined).
    async fn start_full(backend: Backend, console_extra: &str, with_mail: bool) -> School {
        School::start_at(backend, "127.0.0.1", console_extra, with_mail).await
    }

    /// [`School::start_full`] with `console.public_url` on `host` (the browser uses it too).
    async fn start_at(backend: Backend, host: &'static str, console_extra: &str, with_mail: bool) -> School {
        let db = TestDb::new(backend).await;
        let smtp = SmtpServer::start();
        let env = HavenEnv::with_smtp(&db.url, "", smtp.port);
        env.import_school();
        if with_mail {
            let mail = |name: &str| school_fixtures().join("mail").join(name);
            let forward = std::fs::read_to_string(mail("forward-contact.eml")).unwrap();
            let cp = forward
                .replace("To: safeguarding@school.example", "To: safeguarding+cp@school.example")
                .replace("fwd-contact-1@", "fwd-contact-cp@");
            let stranger = forward
                .replace("From: Terry Teach <teacher@school.example>", "From: Someone <someone@elsewhere.example>")
                .replace("fwd-contact-1@", "stranger-1@");
            std::fs::write(env.path("cp.eml"), cp).unwrap();
            std::fs::write(env.path("stranger.eml"), stranger).unwrap();
            let (cp, stranger, unknown) = (env.path("cp.eml"), env.path("stranger.eml"), mail("unknown-pupil.eml"));
            let r = env.haven(&["ingest", cp.to_str().unwrap(), unknown.to_str().unwrap(), stranger.to_str().unwrap()]);
            assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
        }
        School::serve(db, smtp, env, host, console_extra)
    }

    /// `haven run` with the console on a free loopback port (`console.public_url` on `host`), on an installation made ready.
    fn serve(db: TestDb, smtp: SmtpServer, env: HavenEnv, host: &'static str, console_extra: &str) -> School {
        let port = free_port();
        append_config(
            &env,
            &format!("\n[console]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://{host}:{port}\"\n{console_extra}\n"),
        );
        let mut daemon = env.start();
        wait_for("the console to listen", WAIT, || {
            daemon.assert_running();
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())
        });
        School { db, smtp, env, daemon, port, host }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.port)
    }

    /// One raw HTTP/1.1 request; the whole response (head and body) as text.
    fn raw(&self, request: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn finish(self) {
        self.daemon.stop();
        self.db.cleanup().await;
    }
}

fn append_config(env: &HavenEnv, toml: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(&env.config).unwrap();
    f.write_all(toml.as_bytes()).unwrap();
}

fn header_line<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn the_sign_in_page_is_served_with_strict_security_headers(backend: Backend) {
    let school = School::start(backend).await;

    let r = school.raw("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let csp = header_line(&r, "content-security-policy").unwrap_or_else(|| panic!("no CSP: {r}"));
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "only this origin's passkey script: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header_line(&r, "x-frame-options"), Some("DENY"));
    assert_eq!(header_line(&r, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header_line(&r, "referrer-policy"), Some("no-referrer"));
    assert!(!r.to_lowercase().contains("<script"), "no JavaScript on the page: {r}");

    // An oversized body is refused before any handler reads it.
    let body = "email=".to_string() + &"a".repeat(64 * 1024);
    let r = school.raw(&format!(
        "POST /sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(r.starts_with("HTTP/1.1 413"), "{}", &r[..r.len().min(300)]);

    let browser = Browser::start().await;
    let c = browser.client();
    c.goto(&school.url("/")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Sign in · Haven");
    let field = c.find(Locator::Css("input#email")).await.expect("an email field");
    assert_eq!(field.attr("type").await.unwrap().as_deref(), Some("email"));
    browser.screenshot("sign-in").await;
    browser.close().await;
    school.finish().await;
}

async fn a_console_listening_beyond_loopback_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    append_config(&env, "\n[console]\nlisten = \"0.0.0.0:8080\"\n");
    let r = env.haven(&["run"]);
    assert_ne!(r.code, 0, "haven run must refuse: {}", r.stderr);
    assert!(
        r.stderr.contains("console.listen: 0.0.0.0:8080 is not a loopback address; the console serves plain HTTP (no TLS)"),
        "{}",
        r.stderr
    );
    db.cleanup().await;
}

/// The decoded text of every email the SMTP server received for `to` whose subject has `subject`.
fn emails_to(smtp: &SmtpServer, to: &str, subject: &str) -> Vec<String> {
    smtp.messages()
        .iter()
        .filter_map(|raw| {
            let m = mail_parser::MessageParser::default().parse(raw.as_bytes())?;
            let rcpt = m.to()?.first()?.address()?.to_string();
            (rcpt == to && m.subject().unwrap_or("").contains(subject)).then(|| m.body_text(0).unwrap_or_default().into_owned())
        })
        .collect()
}

impl School {
    /// Types `email` on the sign-in page in `browser` and returns the link Haven emailed.
    async fn ask_for_link(&self, browser: &Browser, email: &str) -> String {
        let before = emails_to(&self.smtp, email, "sign-in link").len();
        let c = browser.client();
        c.goto(&self.url("/")).await.unwrap();
        c.find(Locator::Css("input#email")).await.unwrap().send_keys(email).await.unwrap();
        click(c, "button[type=submit]").await;
        let page = c.source().await.unwrap();
        assert!(page.contains("Check your email"), "{page}");
        let body = wait_for("the sign-in email", WAIT, || {
            let all = emails_to(&self.smtp, email, "sign-in link");
            all.get(before).cloned().ok_or_else(|| format!("{} emails", all.len()))
        });
        let start = body.find(&self.url("/sign-in/")).unwrap_or_else(|| panic!("no link in the email:\n{body}"));
        body[start..].split_whitespace().next().unwrap().to_string()
    }

    /// The audit actions recorded so far, oldest first.
    async fn audit_actions(&self) -> Vec<String> {
        let store = haven::store::Store::open(&self.db.url).await.unwrap();
        let entries = store.audit_tail(500).await.unwrap();
        store.close().await;
        let mut actions: Vec<(i64, String)> = entries.into_iter().map(|e| (e.id, e.action)).collect();
        actions.sort();
        actions.into_iter().map(|(_, a)| a).collect()
    }
}

/// The code an authenticator app shows for the base32 key on the enrolment page, for a time
/// step this test run has not used for that key: a code signs in once (RFC 6238 section 5.2),
/// so a second sign-in within 30 seconds takes the next step, which the console accepts (one
/// step of skew), or waits until it may.
fn totp_code(base32: &str) -> String {
    static USED: std::sync::Mutex<Vec<(String, u64)>> = std::sync::Mutex::new(Vec::new());
    let secret = totp_rs::Secret::try_from_base32(base32).expect("the page shows a base32 key");
    let totp = totp_rs::Builder::new().with_secret(secret).build().unwrap();
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 30;
        let mut used = USED.lock().unwrap();
        let last = used.iter().find(|(k, _)| k == base32).map(|(_, step)| *step);
        let step = last.map_or(now, |l| (l + 1).max(now));
        if step <= now + 1 {
            used.retain(|(k, _)| k != base32);
            used.push((base32.to_string(), step));
            return totp.generate(step * 30).to_string();
        }
        drop(used);
        std::thread::sleep(Duration::from_secs(1));
    }
}

async fn submit_code(c: &Client, code: &str) -> String {
    c.find(Locator::Css("input#code")).await.unwrap().send_keys(code).await.unwrap();
    click(c, "form[action='/totp'] button").await;
    c.source().await.unwrap()
}

/// Clicks what `css` finds and waits for the next page: until the old one is gone (its
/// elements go stale), so the test never reads the page it just left.
async fn click(c: &Client, css: &str) {
    let before = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while before.tag_name().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "clicking {css} led nowhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_dsl_signs_in_with_an_emailed_link_and_totp(backend: Backend) {
    let school = School::start_full(backend, "", true).await;
    let browser = Browser::start().await;
    let c = browser.client();

    let link = school.ask_for_link(&browser, "dsl@school.example").await;
    c.goto(&link).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/totp");
    let secret = c.find(Locator::Css("#secret")).await.expect("the enrolment key").text().await.unwrap();
    let otpauth = c.find(Locator::Css("#otpauth")).await.unwrap().text().await.unwrap();
    assert!(otpauth.starts_with("otpauth://totp/") && otpauth.contains(&format!("secret={secret}")), "{otpauth}");
    assert!(otpauth.contains("issuer=Haven"), "{otpauth}");
    browser.screenshot("totp-enrol").await;

    let page = submit_code(c, &totp_code(&secret)).await;
    assert!(page.contains("Your recovery codes"), "{page}");
    let codes = c.find_all(Locator::Css("#recovery-codes li")).await.unwrap();
    assert_eq!(codes.len(), 10, "ten recovery codes, shown once");
    browser.screenshot("recovery-codes").await;
    click(c, "#continue").await;
    let who = c.find(Locator::Css("#signed-in-as")).await.unwrap().text().await.unwrap();
    assert_eq!(who, "Signed in as Dana Lead.");
    // What the DSL team sees first: the outcome awaited, the message awaiting triage and the
    // quarantined one with its reason.
    let outcomes = c.find(Locator::Css("#outcomes tbody")).await.expect("outcomes outstanding").text().await.unwrap();
    assert!(outcomes.starts_with("#1 "), "{outcomes}");
    assert!(outcomes.contains("Safeguarding / child protection"), "{outcomes}");
    assert!(!outcomes.contains("Jane"), "no pupil names in the list: {outcomes}");
    let triage = c.find_all(Locator::Css("#awaiting-triage tbody tr")).await.unwrap();
    assert_eq!(triage.len(), 1);
    let quarantined = c.find(Locator::Css("#quarantined tbody")).await.expect("quarantined messages").text().await.unwrap();
    assert_eq!(quarantined.lines().count(), 1, "{quarantined}");
    assert!(quarantined.contains("sender is not an active member of staff"), "the reason is shown: {quarantined}");
    browser.screenshot("home").await;

    // Pupil search and the chronology, as the CLI's visibility rule lets the DSL see it.
    c.find(Locator::Css("input#q")).await.unwrap().send_keys("jane").await.unwrap();
    click(c, "form[action='/pupils'] button").await;
    let results = c.find_all(Locator::Css("#pupil-results li")).await.unwrap();
    assert_eq!(results.len(), 1);
    click(c, "#pupil-results a").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/pupils/A100000000001");
    assert_eq!(c.find(Locator::Css("#pupil")).await.unwrap().text().await.unwrap(), "Jane Smith (A100000000001)");
    assert_eq!(c.find(Locator::Css("#count")).await.unwrap().text().await.unwrap(), "1 incident(s)");
    let entry = c.find(Locator::Css("#incident-1")).await.expect("incident #1 on Jane's chronology").text().await.unwrap();
    assert!(entry.contains("Safeguarding / child protection"), "{entry}");
    assert!(entry.contains("outstanding"), "{entry}");
    browser.screenshot("chronology").await;

    // Recording the outcome, with `haven outcome --by`'s own check.
    click(c, "#incident-1 h2 a").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/incidents/1");
    c.find(Locator::Css("textarea#outcome")).await.unwrap().send_keys("NFA: spoke to mother").await.unwrap();
    browser.screenshot("incident").await;
    click(c, "form[action='/incidents/1/outcome'] button").await;
    assert_eq!(c.find(Locator::Css("#notice")).await.unwrap().text().await.unwrap(), "Outcome recorded.");
    assert_eq!(c.find(Locator::Css("dd.outcome")).await.unwrap().text().await.unwrap(), "NFA: spoke to mother");
    assert!(c.find(Locator::Css("textarea#outcome")).await.is_err(), "no second outcome form");
    c.goto(&school.url("/home")).await.unwrap();
    assert!(c.find(Locator::Css("#no-outcomes")).await.is_ok(), "the outcome is no longer outstanding");

    // The session cookie is HttpOnly and SameSite=Strict; over loopback HTTP it is haven_session.
    let cookie = c.get_named_cookie("haven_session").await.expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");

    // The link worked once.
    c.goto(&link).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(page.contains("This sign-in link has already been used."), "{page}");

    c.goto(&school.url("/home")).await.unwrap();
    click(c, "#sign-out").await;
    assert!(c.source().await.unwrap().contains("You are signed out."));
    c.goto(&school.url("/home")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Sign in · Haven", "signed out means signed out");

    // Enrolled: the next sign-in asks for a code only (no key shown again).
    let link = school.ask_for_link(&browser, "dsl@school.example").await;
    c.goto(&link).await.unwrap();
    assert!(c.find(Locator::Css("#secret")).await.is_err(), "the key is shown only at enrolment");
    let code = totp_code(&secret);
    let page = submit_code(c, &code).await;
    assert!(page.contains("Signed in as Dana Lead."), "{page}");

    // A code works once: the same code again, still inside its 30-second window, is refused
    // and counted as a wrong code.
    click(c, "#sign-out").await;
    let link = school.ask_for_link(&browser, "dsl@school.example").await;
    c.goto(&link).await.unwrap();
    let page = submit_code(c, &code).await;
    assert!(page.contains("That code has been used already: each code signs in once."), "{page}");
    assert!(page.contains("4 more wrong codes lock sign-in."), "{page}");
    let page = submit_code(c, &totp_code(&secret)).await;
    assert!(page.contains("Signed in as Dana Lead."), "the next code signs in: {page}");

    let actions = school.audit_actions().await;
    for a in [
        "console_link_sent",
        "console_link_used",
        "console_sign_in",
        "console_sign_in_failed",
        "console_totp_reused",
        "console_sign_out",
        "console_view",
        "console_pupil_search",
        "console_chronology_view",
        "console_incident_view",
        "outcome",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    browser.close().await;
    school.finish().await;
}

async fn wrong_codes_lock_sign_in_and_teachers_see_only_how_to_report(backend: Backend) {
    // The directory may change by up to half, so one member of staff can leave.
    let school = School::start_full(backend, "\n[directory]\nmax_change = \"50%\"", true).await;
    let browser = Browser::start().await;
    let c = browser.client();

    // A teacher's link leads to the "write only" page and no session.
    let link = school.ask_for_link(&browser, "teacher@school.example").await;
    c.goto(&link).await.unwrap();
    let text = c.find(Locator::Css("#write-only")).await.expect("the write-only page").text().await.unwrap();
    assert!(text.contains("report concerns but not read safeguarding records"), "{text}");
    assert!(c.source().await.unwrap().contains("safeguarding@school.example"));
    assert!(c.get_named_cookie("haven_session").await.is_err(), "no session for a teacher");
    browser.screenshot("write-only").await;
    // A teacher opening a DSL-only incident's address is told there is nothing there.
    let r = school.raw("GET /incidents/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    c.goto(&school.url("/incidents/1")).await.unwrap();
    assert!(c.source().await.unwrap().contains("There is nothing here, or nothing you may see."));

    // So is Jane's HouseM, signed in with two factors: the incident is for the DSL team and
    // the head only, and her chronology shows nothing of it.
    let link = school.ask_for_link(&browser, "kestrel@school.example").await;
    c.goto(&link).await.unwrap();
    let secret = c.find(Locator::Css("#secret")).await.unwrap().text().await.unwrap();
    let page = submit_code(c, &totp_code(&secret)).await;
    assert!(page.contains("Your recovery codes"), "{page}");
    c.goto(&school.url("/incidents/1")).await.unwrap();
    assert!(c.source().await.unwrap().contains("There is nothing here, or nothing you may see."));
    c.goto(&school.url("/incidents/999")).await.unwrap();
    assert!(c.source().await.unwrap().contains("There is nothing here, or nothing you may see."), "the same for no such incident");
    c.goto(&school.url("/pupils/A100000000001")).await.unwrap();
    assert_eq!(c.find(Locator::Css("#count")).await.unwrap().text().await.unwrap(), "0 incident(s)");
    c.goto(&school.url("/home")).await.unwrap();
    assert!(c.find(Locator::Css("#no-outcomes")).await.is_ok(), "the HouseM is not shown the DSL-only outcome");
    assert!(c.find(Locator::Css("#quarantined")).await.is_err(), "nor the quarantine");

    // The HouseM leaves the staff list: signed out at the next request.
    let f = school_fixtures();
    let staff = std::fs::read_to_string(f.join("staff.csv")).unwrap();
    let without: String = staff.lines().filter(|l| !l.starts_with("kestrel@")).map(|l| format!("{l}\n")).collect();
    let staff_csv = school.env.path("staff-without-kestrel.csv");
    std::fs::write(&staff_csv, without).unwrap();
    let r = school.env.haven(&[
        "directory",
        "import",
        "--pupils",
        f.join("pupils.csv").to_str().unwrap(),
        "--staff",
        staff_csv.to_str().unwrap(),
        "--contacts",
        f.join("contacts.csv").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "directory import: {}{}", r.stdout, r.stderr);
    c.goto(&school.url("/home")).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(page.contains("You were signed out because your account is no longer active"), "{page}");
    c.goto(&school.url("/pupils/A100000000001")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Sign in · Haven", "the session is gone");

    // A HouseM enters wrong codes: after five, sign-in is locked and the DSL team is told.
    let link = school.ask_for_link(&browser, "heron@school.example").await;
    c.goto(&link).await.unwrap();
    let secret = c.find(Locator::Css("#secret")).await.unwrap().text().await.unwrap();
    let right = totp_code(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 500_000) % 1_000_000);
    for left in [4, 3, 2, 1] {
        let page = submit_code(c, &wrong).await;
        assert!(page.contains(&format!("That code is not right. {left} more wrong codes lock sign-in.")), "{page}");
    }
    let page = submit_code(c, &wrong).await;
    assert!(page.contains("Sign-in locked"), "{page}");
    browser.screenshot("totp-locked").await;
    // The sixth try, even with the right code, is refused.
    c.goto(&school.url("/totp")).await.unwrap();
    assert!(c.source().await.unwrap().contains("Sign-in locked"));
    c.goto(&school.url("/home")).await.unwrap();
    assert!(c.source().await.unwrap().contains("Sign-in locked"), "no way round the second factor");
    for dsl in ["dsl@school.example", "ddsl@school.example"] {
        wait_for("the DSL team to be told", WAIT, || {
            let n = emails_to(&school.smtp, dsl, "console sign-in locked");
            n.first().cloned().ok_or_else(|| "no notice yet".to_string())
        });
    }
    // Only the DSL team unlocks it, from the command line; then the right code works.
    let r = school.env.haven(&["console", "unlock", "heron@school.example", "--by", "esafety@school.example"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("only the DSL team may unlock console sign-in"), "{}", r.stderr);
    let r = school.env.haven(&["console", "unlock", "heron@school.example", "--by", "dsl@school.example"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("console sign-in unlocked"), "{}", r.stdout);
    c.goto(&school.url("/totp")).await.unwrap();
    let page = submit_code(c, &totp_code(&secret)).await;
    assert!(page.contains("Your recovery codes"), "unlocked: {page}");
    let actions = school.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "console_totp_failed").count(), 5, "{actions:?}");
    assert!(actions.iter().any(|a| a == "console_totp_locked"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "console_totp_unlock") && actions.iter().any(|a| a == "console_unlock_refused"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "console_sign_in_refused"), "the teacher: {actions:?}");
    assert!(actions.iter().any(|a| a == "console_incident_refused"), "the HouseM: {actions:?}");
    assert!(actions.iter().any(|a| a == "console_sign_out"), "the HouseM who left: {actions:?}");
    browser.close().await;
    school.finish().await;
}

async fn expired_links_and_forms_without_their_token_are_refused(backend: Backend) {
    let school = School::start_with(backend, "link_lifetime = \"1s\"").await;

    // A form posted without its CSRF token changes nothing and sends nothing.
    let body = "email=dsl%40school.example";
    let r = school.raw(&format!(
        "POST /sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: haven_browser=abc\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("The form did not come from this page in this browser"), "{r}");

    let browser = Browser::start().await;
    let c = browser.client();
    let link = school.ask_for_link(&browser, "dsl@school.example").await;
    std::thread::sleep(Duration::from_millis(2100));
    c.goto(&link).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(page.contains("This sign-in link has expired"), "{page}");
    browser.screenshot("link-expired").await;
    assert_eq!(emails_to(&school.smtp, "dsl@school.example", "sign-in link").len(), 1, "the forged form sent nothing");

    // At most five links per address in 15 minutes: the sixth request sends nothing.
    for _ in 0..4 {
        school.ask_for_link(&browser, "dsl@school.example").await;
    }
    c.goto(&school.url("/")).await.unwrap();
    c.find(Locator::Css("input#email")).await.unwrap().send_keys("dsl@school.example").await.unwrap();
    click(c, "button[type=submit]").await;
    assert!(c.source().await.unwrap().contains("Check your email"), "the page does not tell");
    let actions = school.audit_actions().await;
    assert!(actions.iter().any(|a| a == "console_link_rate_limited"), "{actions:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(emails_to(&school.smtp, "dsl@school.example", "sign-in link").len(), 5, "no sixth link");
    browser.close().await;
    school.finish().await;
}

impl School {
    /// One raw HTTP/1.1 request; the response head (text) and body (bytes).
    fn raw_bytes(&self, request: &str) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |i| i + 4);
        (String::from_utf8_lossy(&out[..split]).into_owned(), out[split..].to_vec())
    }

    /// `GET path` with a session cookie.
    fn get_as(&self, cookie: &str, path: &str) -> (String, Vec<u8>) {
        self.raw_bytes(&format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: haven_session={cookie}\r\nConnection: close\r\n\r\n"))
    }

    /// Signs `email` in through the browser (enrolling on first use, when `secret` is None)
    /// and returns the authenticator key and the session cookie's value.
    async fn sign_in(&self, browser: &Browser, email: &str, secret: Option<&str>) -> (String, String) {
        let c = browser.client();
        let link = self.ask_for_link(browser, email).await;
        c.goto(&link).await.unwrap();
        let secret = match secret {
            Some(s) => s.to_string(),
            None => c.find(Locator::Css("#secret")).await.expect("the enrolment key").text().await.unwrap(),
        };
        let page = submit_code(c, &totp_code(&secret)).await;
        assert!(page.contains("Your recovery codes") || page.contains("Signed in as"), "{page}");
        let cookie = c.get_named_cookie("haven_session").await.expect("a session cookie").value().to_string();
        (secret, cookie)
    }

    /// Waits until Haven has filed `n` incidents.
    fn wait_for_incidents(&self, n: u64) {
        wait_for("the message to be filed", WAIT, || {
            let got = self.env.status()["incidents"].as_u64().unwrap_or(0);
            if got >= n { Ok(()) } else { Err(format!("{got} incidents")) }
        });
    }
}

/// A parent's email forwarded with an HTML part and an attachment; the parent names Oliver,
/// who is therefore only *mentioned* beside Jane (the parent is her contact).
const RICH: &str = "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Fwd: This week\r\n\
Date: Tue, 10 Nov 2026 16:05:00 +0000\r\nMessage-ID: <rich-1@mail.school.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n\
--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCategory: DSL Team + HouseM\r\n\r\n---------- Forwarded message ---------\r\n\
From: Mary Smith <parent.smith@example.com>\r\nDate: Mon, 9 Nov 2026 at 21:14\r\nSubject: This week\r\nTo: Terry Teach <teacher@school.example>\r\n\r\n\
Oliver Brown took her lunch money on the bus again.\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>Category: DSL Team + HouseM</p><p>---------- Forwarded message ---------<br>From: Mary Smith &lt;parent.smith@example.com&gt;<br>\
Date: Mon, 9 Nov 2026 at 21:14<br>Subject: This week<br>To: Terry Teach &lt;teacher@school.example&gt;</p>\
<p><b>Oliver Brown</b> took her lunch money on the bus again.</p><img src=\"https://tracker.example/p.png\"><script>alert(1)</script>\r\n--a--\r\n\
--m\r\nContent-Type: text/plain; name=\"note from mum.txt\"\r\nContent-Disposition: attachment; filename=\"note from mum.txt\"\r\n\r\n\
She wrote this down for you.\r\n--m--\r\n";

/// The DSL team's actions, each through the CLI's or pipeline's own path: answer triage,
/// release a quarantine, confirm a mentioned pupil, download an attachment and an export, read
/// the original message in its sandbox, the access log, and sign out everywhere.
async fn the_dsl_team_acts_from_the_console(backend: Backend) {
    let school = School::start_full(backend, "", true).await;
    school.env.deliver("rich.eml", RICH.as_bytes());
    school.wait_for_incidents(2);
    let browser = Browser::start().await;
    let c = browser.client();
    let (secret, first_cookie) = school.sign_in(&browser, "dsl@school.example", None).await;

    // Answer triage: the message about "a Year 9 girl" is Amira's, as a victim.
    c.goto(&school.url("/home")).await.unwrap();
    click(c, "#awaiting-triage a").await;
    assert!(c.find(Locator::Css("#triage-form")).await.is_ok(), "the triage form");
    let text = c.find(Locator::Css("pre.body")).await.unwrap().text().await.unwrap();
    assert!(text.contains("being followed home"), "the DSL reads the message to decide: {text}");
    c.find(Locator::Css("#pupil_0")).await.unwrap().send_keys("A100000000003").await.unwrap();
    c.find(Locator::Css("#role_0 option[value=victim]")).await.unwrap().click().await.unwrap();
    browser.screenshot("triage").await;
    click(c, "#triage-form button").await;
    let notice = c.find(Locator::Css("#notice")).await.expect("filed").text().await.unwrap();
    assert!(notice.contains("was filed as this incident under"), "{notice}");
    let pupils = c.find(Locator::Css("#pupils")).await.unwrap().text().await.unwrap();
    assert!(pupils.contains("Amira Khan (A100000000003): victim"), "{pupils}");
    c.goto(&school.url("/home")).await.unwrap();
    assert!(c.find(Locator::Css("#no-triage")).await.is_ok(), "no longer awaiting triage");

    // Release the quarantined message with a reason: it is filed on Jane (her mother's email).
    click(c, "#quarantined a").await;
    c.find(Locator::Css("#reason-text")).await.unwrap().send_keys("A supply teacher's own address; genuine").await.unwrap();
    click(c, "#release-form button").await;
    let notice = c.find(Locator::Css("#notice")).await.unwrap().text().await.unwrap();
    assert!(notice.contains("was released and filed as incident #"), "{notice}");
    browser.screenshot("released").await;

    // A release without a reason changes nothing and says why (the CLI's own check).
    c.goto(&school.url("/home")).await.unwrap();
    assert!(c.find(Locator::Css("#no-quarantine")).await.is_ok(), "no longer quarantined");

    // The forwarded email with HTML, an attachment and a mention: incident #2 on Jane's chronology.
    c.goto(&school.url("/incidents/2")).await.unwrap();
    let frame = c.find(Locator::Css("iframe#original")).await.expect("the original message in a frame");
    let sandbox = frame.attr("sandbox").await.unwrap();
    assert!(sandbox.is_some_and(|s| !s.contains("allow")), "a frame sandboxed of everything");
    let pupils = c.find(Locator::Css("#pupils")).await.unwrap().text().await.unwrap();
    assert!(pupils.contains("Oliver Brown (A100000000002): mentioned"), "{pupils}");
    let alerted = c.find(Locator::Css("#alerted")).await.expect("who was told").text().await.unwrap();
    assert!(alerted.contains("Kit Kestrel") && alerted.contains("Dana Lead"), "{alerted}");
    let attachment = c.find(Locator::Css("#attachments a")).await.unwrap();
    assert_eq!(attachment.text().await.unwrap(), "note from mum.txt");
    browser.screenshot("incident-detail").await;
    click(c, "#pupils button.confirm").await;
    let notice = c.find(Locator::Css("#notice")).await.unwrap().text().await.unwrap();
    assert_eq!(notice, "Pupil A100000000002 confirmed as linked to incident #2.");
    let pupils = c.find(Locator::Css("#pupils")).await.unwrap().text().await.unwrap();
    assert!(pupils.contains("Oliver Brown (A100000000002): linked"), "{pupils}");
    let viewers = c.find(Locator::Css("#viewers")).await.expect("who has viewed it").text().await.unwrap();
    assert!(viewers.contains("Dana Lead"), "{viewers}");

    // The attachment is a download, never shown: opaque type, attachment, no sniffing.
    let cookie = c.get_named_cookie("haven_session").await.unwrap().value().to_string();
    let (head, body) = school.get_as(&cookie, "/incidents/2/attachments/0");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header_line(&head, "content-type"), Some("application/octet-stream"), "{head}");
    assert!(
        header_line(&head, "content-disposition").is_some_and(|d| d.starts_with("attachment; filename=\"note from mum.txt\"")),
        "{head}"
    );
    assert_eq!(header_line(&head, "x-content-type-options"), Some("nosniff"));
    assert_eq!(String::from_utf8_lossy(&body).trim(), "She wrote this down for you.");
    let (head, _) = school.get_as("not-a-session", "/incidents/2/attachments/0");
    assert!(head.starts_with("HTTP/1.1 303") || head.starts_with("HTTP/1.1 404"), "no download without a session: {head}");

    // The original message: sanitised, in a sandbox that may load nothing.
    let (head, body) = school.get_as(&cookie, "/incidents/2/message");
    let csp = header_line(&head, "content-security-policy").unwrap_or_else(|| panic!("{head}"));
    assert!(csp.starts_with("sandbox;") && csp.contains("default-src 'none'") && csp.contains("img-src data:"), "{csp}");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("took her lunch money") && !body.contains("<script") && !body.contains("alert(1)"), "{body}");

    // The export: haven export's bundle as a zip, with the attachment and the manifest.
    let (head, zip) = school.get_as(&cookie, "/pupils/A100000000001/export?format=json");
    assert!(header_line(&head, "content-disposition").is_some_and(|d| d.contains(".zip")), "{head}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e.zip"), &zip).unwrap();
    let listed = Command::new("unzip").args(["-l", "e.zip"]).current_dir(dir.path()).output().expect("unzip (tests/run.sh installs it)");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("chronology.json") && listed.contains("note from mum.txt") && listed.contains("MANIFEST.sha256"), "{listed}");
    let (head, zip) = school.get_as(&cookie, "/pupils/A100000000001/export?format=pdf");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    std::fs::write(dir.path().join("p.zip"), &zip).unwrap();
    let listed = Command::new("unzip").args(["-l", "p.zip"]).current_dir(dir.path()).output().expect("unzip (tests/run.sh installs it)");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("chronology.pdf") && listed.contains("chronology.json") && listed.contains("MANIFEST.sha256"), "{listed}");
    let (head, _) = school.get_as(&cookie, "/pupils/A100000000001/export?format=docx");
    assert!(head.starts_with("HTTP/1.1 400"), "an unknown format is refused: {head}");

    // The access log: who saw Jane's records, and what Dana has seen.
    c.goto(&school.url("/access?pupil=A100000000001")).await.unwrap();
    let log = c.find(Locator::Css("#access")).await.expect("the access log").text().await.unwrap();
    for what in ["downloaded an attachment", "exported the chronology", "read an original message", "opened an incident"] {
        assert!(log.contains(what), "{what}: {log}");
    }
    assert!(log.contains("Dana Lead"), "{log}");
    browser.screenshot("access-log").await;
    c.goto(&school.url("/access?staff=dsl@school.example")).await.unwrap();
    let log = c.find(Locator::Css("#access")).await.unwrap().text().await.unwrap();
    assert!(log.contains("Jane Smith (A100000000001)"), "{log}");

    // Sign out everywhere ends the earlier session too.
    let (head, _) = school.get_as(&first_cookie, "/home");
    assert!(head.starts_with("HTTP/1.1 200"), "the first session is alive: {head}");
    // A second session: the same person signing in afresh (as on another device).
    c.delete_cookie("haven_session").await.unwrap();
    let (_, second_cookie) = school.sign_in(&browser, "dsl@school.example", Some(&secret)).await;
    assert_ne!(first_cookie, second_cookie);
    click(c, "#sign-out-everywhere").await;
    assert!(c.source().await.unwrap().contains("You are signed out everywhere"));
    for cookie in [&first_cookie, &second_cookie] {
        let (head, _) = school.get_as(cookie, "/home");
        assert!(head.starts_with("HTTP/1.1 303"), "signed out: {head}");
    }

    let actions = school.audit_actions().await;
    for a in [
        "triage",
        "release",
        "link_confirm",
        "console_attachment_download",
        "console_message_frame",
        "export",
        "console_export_download",
        "console_access_log",
        "console_sign_out_everywhere",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    // Audit entries outlive a disposal: none names a pupil (the export's file name holds the UPN).
    let store = haven::store::Store::open(&school.db.url).await.unwrap();
    for e in store.audit_tail(500).await.unwrap() {
        assert!(!e.detail.contains("A100000000001") && !e.subject.contains("A100000000001"), "a pupil's UPN in the audit log: {e:?}");
    }
    store.close().await;
    browser.close().await;
    school.finish().await;
}

/// A session unused for `idle_timeout`, or older than `absolute_timeout` however busy, is
/// over: the next request is refused and must sign in again.
async fn sessions_end_when_idle_and_at_their_absolute_limit(backend: Backend) {
    let school = School::start_with(backend, "idle_timeout = \"6s\"\nabsolute_timeout = \"16s\"").await;
    let browser = Browser::start().await;
    let (secret, cookie) = school.sign_in(&browser, "dsl@school.example", None).await;
    std::thread::sleep(Duration::from_millis(6500));
    let (head, body) = school.get_as(&cookie, "/home");
    assert!(head.starts_with("HTTP/1.1 401"), "idle too long: {head}");
    assert!(String::from_utf8_lossy(&body).contains("You were signed out"), "and told so");
    let (head, _) = school.get_as(&cookie, "/home");
    assert!(head.starts_with("HTTP/1.1 303"), "the session is gone: {head}");

    // Timed from before the sign-in, so never later than the session's start.
    let signed_in = std::time::Instant::now();
    let (_, cookie) = school.sign_in(&browser, "dsl@school.example", Some(&secret)).await;
    // Busy (a request every second) but past sixteen seconds: refused all the same.
    while signed_in.elapsed() < Duration::from_secs(13) {
        let (head, _) = school.get_as(&cookie, "/home");
        assert!(head.starts_with("HTTP/1.1 200"), "in use, within the limit ({:?}): {head}", signed_in.elapsed());
        std::thread::sleep(Duration::from_secs(1));
    }
    let refused = wait_for("the absolute limit", Duration::from_secs(10), || {
        let (head, _) = school.get_as(&cookie, "/home");
        std::thread::sleep(Duration::from_millis(700));
        if head.starts_with("HTTP/1.1 401") { Ok(signed_in.elapsed()) } else { Err(head) }
    });
    assert!(refused >= Duration::from_secs(16), "not before sixteen seconds: {refused:?}");
    let actions = school.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "console_session_expired").count(), 2, "{actions:?}");
    browser.close().await;
    school.finish().await;
}

/// Sign-in attempts are limited per client address; behind `trusted_proxy` the address is
/// the one the proxy names last in X-Forwarded-For, and nobody else's header is believed.
async fn sign_in_attempts_are_limited_per_client(backend: Backend) {
    let school = School::start_with(backend, "trusted_proxy = \"127.0.0.1\"").await;
    let post = |forwarded: &str| {
        let body = "email=dsl%40school.example";
        school.raw(&format!(
            "POST /sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: {forwarded}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    for _ in 0..20 {
        let r = post("203.0.113.7");
        assert!(r.starts_with("HTTP/1.1 403"), "counted, refused for its missing token: {}", &r[..r.len().min(200)]);
    }
    let r = post("203.0.113.7");
    assert!(r.starts_with("HTTP/1.1 429"), "{}", &r[..r.len().min(200)]);
    assert!(r.contains("Too many sign-in attempts"), "{r}");
    assert!(post("203.0.113.8").starts_with("HTTP/1.1 403"), "another client is not held back");
    assert!(post("203.0.113.8, 203.0.113.7").starts_with("HTTP/1.1 429"), "only the proxy's own entry is believed");
    let actions = school.audit_actions().await;
    assert!(actions.iter().any(|a| a == "console_client_rate_limited"), "{actions:?}");
    school.finish().await;
}

/// The served certificate's PEM, as `openssl s_client` (a real TLS client) received it.
fn served_certificate(port: u16) -> Result<String, String> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl (tests/run.sh installs it): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----").ok_or_else(|| format!("no certificate: {text}"))?;
    let end = text.find("-----END CERTIFICATE-----").ok_or("no end")? + "-----END CERTIFICATE-----".len();
    Ok(text[start..end].to_string())
}

/// A self-signed certificate for `name` in secrets/console.{crt,key}; the certificate's PEM.
fn make_certificate(env: &HavenEnv, name: &str) -> String {
    let (crt, key) = (env.path("secrets/console.crt"), env.path("secrets/console.key"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}"), "-keyout", key.to_str().unwrap(), "-out", crt.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (tests/run.sh installs it)");
    assert!(ok.success());
    std::fs::read_to_string(crt).unwrap().trim().to_string()
}

/// Built-in TLS: the console is served over TLS with the configured pair, and a SIGHUP makes
/// it serve the certificate now in the files (a pair that does not load is refused and the
/// one in use kept).
async fn the_console_serves_tls_and_reloads_its_certificate_on_sighup(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HavenEnv::new(&db.url, "");
    let first = make_certificate(&env, "first.haven.test");
    let port = free_port();
    append_config(
        &env,
        &format!("\n[console]\nlisten = \"127.0.0.1:{port}\"\ncert_file = \"secrets/console.crt\"\nkey_file = \"secrets/console.key\"\n"),
    );
    let mut daemon = env.start();
    let served = wait_for("the console to serve TLS", WAIT, || {
        daemon.assert_running();
        served_certificate(port)
    });
    assert_eq!(served, first);
    let page = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("Sign in to the safeguarding console"), "{page}");
    assert!(page.contains("__Host-haven-browser="), "over TLS the cookies are __Host- and Secure: {page}");

    let second = make_certificate(&env, "second.haven.test");
    assert_ne!(first, second);
    daemon.signal("HUP");
    wait_for("the new certificate to be served", WAIT, || match served_certificate(port) {
        Ok(pem) if pem == second => Ok(()),
        other => Err(format!("{other:?}")),
    });

    std::fs::write(env.path("secrets/console.crt"), "not a certificate").unwrap();
    daemon.signal("HUP");
    wait_for("the refusal to be logged", WAIT, || {
        if daemon.log().contains("TLS certificate not reloaded") { Ok(()) } else { Err(daemon.log()) }
    });
    assert_eq!(served_certificate(port).unwrap(), second, "the pair in use is kept");
    daemon.stop();
    db.cleanup().await;
}

/// The console on a phone's width and from the keyboard alone: a DSL signs in without the mouse
/// (Tab to each field, type, Enter), and no page of the flow scrolls sideways at 375 pixels;
/// every control on each page can take the keyboard's focus and has a name a screen reader can
/// say. Screenshots: target/console-screenshots/phone-*.png.
async fn the_console_works_at_a_phones_width_and_from_the_keyboard(backend: Backend) {
    let school = School::start_full(backend, "", true).await;
    let browser = Browser::start().await;
    let c = browser.client();
    c.set_window_size(375, 812).await.unwrap();
    let enter = fantoccini::key::Key::Enter.to_string();

    c.goto(&school.url("/")).await.unwrap();
    check_phone_page(&browser, "phone-sign-in").await;
    let email = "dsl@school.example";
    let field = tab_to(c, "email").await;
    field.send_keys(email).await.unwrap();
    field.send_keys(&enter).await.unwrap();
    wait_for_text(c, "Check your email").await;
    let body = wait_for("the sign-in email", WAIT, || {
        emails_to(&school.smtp, email, "sign-in link").pop().ok_or_else(|| "no email yet".to_string())
    });
    let start = body.find(&school.url("/sign-in/")).unwrap_or_else(|| panic!("no link in the email:\n{body}"));
    c.goto(body[start..].split_whitespace().next().unwrap()).await.unwrap();

    check_phone_page(&browser, "phone-totp-enrol").await;
    let secret = c.find(Locator::Css("#secret")).await.expect("the enrolment key").text().await.unwrap();
    let field = tab_to(c, "code").await;
    field.send_keys(&totp_code(&secret)).await.unwrap();
    field.send_keys(&enter).await.unwrap();
    wait_for_text(c, "Your recovery codes").await;
    check_phone_page(&browser, "phone-recovery-codes").await;
    tab_to(c, "continue").await.send_keys(&enter).await.unwrap();
    wait_for_text(c, "Signed in as Dana Lead.").await;
    check_phone_page(&browser, "phone-home").await;

    let field = tab_to(c, "q").await;
    field.send_keys("jane").await.unwrap();
    field.send_keys(&enter).await.unwrap();
    wait_for_text(c, "A100000000001").await;
    check_phone_page(&browser, "phone-pupil-search").await;
    for (path, name) in [
        ("/pupils/A100000000001", "phone-chronology"),
        ("/incidents/1", "phone-incident"),
        ("/messages/2", "phone-triage"),
        ("/messages/3", "phone-quarantined"),
    ] {
        c.goto(&school.url(path)).await.unwrap();
        check_phone_page(&browser, name).await;
    }
    browser.close().await;
    school.finish().await;
}

/// Presses Tab (at most 40 times) until the element with `id` has the focus, and returns it:
/// the control is reachable from the keyboard, in the page's own order.
async fn tab_to(c: &Client, id: &str) -> fantoccini::elements::Element {
    let tab = fantoccini::key::Key::Tab.to_string();
    c.find(Locator::Css("body")).await.unwrap();
    for _ in 0..40 {
        let focused = c.active_element().await.unwrap();
        if focused.attr("id").await.unwrap().as_deref() == Some(id) {
            return focused;
        }
        focused.send_keys(&tab).await.unwrap();
    }
    panic!("#{id} never took the focus from the keyboard: {}", c.source().await.unwrap());
}

async fn wait_for_text(c: &Client, text: &str) {
    for _ in 0..100 {
        if c.source().await.unwrap().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{text:?} never appeared: {}", c.source().await.unwrap());
}

/// The page fits a phone's width (nothing scrolls sideways but a table inside its own frame)
/// and every control can be focused and has an accessible name; a screenshot as NAME.png.
async fn check_phone_page(browser: &Browser, name: &str) {
    let c = browser.client();
    let found = c
        .execute(
            "const bad = [];
             for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, iframe')) {
               const label = el.labels && el.labels.length ? el.labels[0].textContent : '';
               const named = (el.getAttribute('aria-label') || label || el.textContent || el.title || el.value || '').trim();
               if (!named) bad.push('unnamed: ' + el.outerHTML.slice(0, 120));
               if (el.tabIndex < 0) bad.push('not focusable: ' + el.outerHTML.slice(0, 120));
             }
             return { scroll: document.documentElement.scrollWidth, width: window.innerWidth, bad: bad };",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot(name).await;
    let (scroll, width) = (found["scroll"].as_u64().unwrap(), found["width"].as_u64().unwrap());
    assert!(scroll <= width, "{name}: the page is {scroll} px wide on a {width} px phone screen");
    assert_eq!(found["bad"], serde_json::json!([]), "{name}: every control focusable and named");
}

/// A pupil with a long chronology: the page shows the latest hundred entries, oldest first,
/// with links to the earlier ones; only the page shown is opened, and the audit log says which
/// entries were read. An old entry's own page opens just that entry.
async fn a_long_chronology_is_read_a_page_at_a_time(backend: Backend) {
    let school = School::start(backend).await;
    let dir = school.env.path("long");
    std::fs::create_dir_all(&dir).unwrap();
    for n in 0..230u32 {
        let (day, hour) = (1 + n / 10, 8 + n % 10);
        let eml = format!(
            "From: Terry Teach <teacher@school.example>\r\nTo: safeguarding@school.example\r\nSubject: Jane Smith, note {n}\r\n\
             Date: Tue, {day:02} Sep 2026 {hour:02}:00:00 +0000\r\nMessage-ID: <long-{n}@mail.school.example>\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nJane Smith was quiet in lesson, note number {n}.\r\n"
        );
        std::fs::write(dir.join(format!("{n:03}.eml")), eml).unwrap();
    }
    // Old notes, filed as a backfill: no alerts queued ahead of the sign-in email.
    let r = school.env.haven(&["ingest", "--backfill", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);
    let listed = school.env.haven(&["chronology", "A100000000001", "--as", "dsl@school.example", "--json"]);
    let all: Vec<i64> = serde_json::from_str::<serde_json::Value>(&listed.stdout).unwrap()["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["incident"].as_i64().unwrap())
        .collect();
    assert!(all.len() >= 230, "every note is on Jane's chronology: {}", all.len());
    let (total, pages) = (all.len(), all.len().div_ceil(100));

    let browser = Browser::start().await;
    let c = browser.client();
    school.sign_in(&browser, "dsl@school.example", None).await;
    let shown = async || -> (String, Vec<i64>) {
        let count = c.find(Locator::Css("#count")).await.unwrap().text().await.unwrap();
        let mut ids = Vec::new();
        for e in c.find_all(Locator::Css("section.entry")).await.unwrap() {
            let id = e.attr("id").await.unwrap().unwrap_or_default();
            ids.push(id.trim_start_matches("incident-").parse::<i64>().unwrap());
        }
        (count, ids)
    };

    c.goto(&school.url("/pupils/A100000000001")).await.unwrap();
    let (count, ids) = shown().await;
    let first = (pages - 1) * 100;
    assert_eq!(count, format!("{total} incident(s); entries {}–{total}, oldest first (page {pages} of {pages})", first + 1), "{count}");
    assert_eq!(ids, all[first..], "the latest page holds the newest entries, oldest first");
    assert!(c.find(Locator::Css("#later")).await.is_err(), "nothing after the latest page");
    browser.screenshot("chronology-long").await;
    click(c, "#earlier").await;
    let (count, ids) = shown().await;
    assert!(count.contains(&format!("page {} of {pages}", pages - 1)), "{count}");
    assert_eq!(ids, all[first - 100..first], "the page before holds the hundred before");
    click(c, "#later").await;
    assert_eq!(shown().await.1, all[first..], "and back");
    // A page beyond the last shows the last; page 0 the first.
    c.goto(&school.url("/pupils/A100000000001?page=999")).await.unwrap();
    assert_eq!(shown().await.1, all[first..]);
    c.goto(&school.url("/pupils/A100000000001?page=0")).await.unwrap();
    assert_eq!(shown().await.1, all[..100]);

    // The oldest entry's own page, and what the audit log recorded for each view.
    c.goto(&school.url(&format!("/incidents/{}", all[0]))).await.unwrap();
    let body = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(body.contains("note number 0."), "{body}");
    let log = school.db.store.audit_tail(20).await.unwrap();
    let detail = |action: &str| log.iter().rev().find(|e| e.action == action).map(|e| e.detail.clone()).unwrap_or_default();
    assert_eq!(detail("console_chronology_view"), format!("entries=100 of {total} from=0"));
    assert_eq!(detail("console_incident_view"), format!("incident={}", all[0]));
    browser.close().await;
    school.finish().await;
}

/// Reports are downloads for those who may run them: the DSL fills in the summary's form in
/// the browser; the PDF it downloads is the governors' report (poppler reads it back), the
/// inspection lists come zipped with their manifest, a pupil's multi-agency chronology as CSV;
/// the head gets the governors' summary but not the DSL's nor the inspection lists; a head of
/// house finds no reports page at all. Each download is audited.
async fn reports_are_downloads_for_those_who_may_run_them(backend: Backend) {
    let school = School::start_full(backend, "", true).await;
    school.wait_for_incidents(1);
    let browser = Browser::start().await;
    let c = browser.client();
    let (_, dsl) = school.sign_in(&browser, "dsl@school.example", None).await;

    c.goto(&school.url("/home")).await.unwrap();
    click(c, "#reports").await;
    assert!(c.find(Locator::Css("#summary-form")).await.is_ok() && c.find(Locator::Css("#inspection-form")).await.is_ok());
    browser.screenshot("reports").await;
    // What the form asks for, as the browser sends it.
    let (head, pdf) = school.get_as(&dsl, "/reports/summary?from=2026-09-01&to=2026-12-31&audience=governors&format=pdf");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        header_line(&head, "content-disposition")
            .is_some_and(|d| d.contains("safeguarding-summary-2026-09-01-to-2026-12-31-governors.pdf")),
        "{head}"
    );
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.pdf"), &pdf).unwrap();
    let text = Command::new("pdftotext")
        .args(["s.pdf", "-"])
        .current_dir(dir.path())
        .output()
        .expect("pdftotext (tests/run.sh installs poppler-utils)");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Safeguarding report for governors") && text.contains("Incidents per month"), "{text}");
    assert!(!text.contains("Dana") && !text.contains("Jane"), "the governors' report names nobody: {text}");
    let (head, html) = school.get_as(&dsl, "/reports/summary?from=2026-09-01&to=2026-12-31&audience=dsl&format=html");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains("Safeguarding report for the DSL team") && html.contains("<img class=\"chart\""), "{html}");
    let (head, body) = school.get_as(&dsl, "/reports/summary?from=2026-12-31&to=2026-09-01&format=pdf");
    assert!(head.starts_with("HTTP/1.1 400"), "dates the wrong way round: {head}");
    assert!(String::from_utf8_lossy(&body).contains("2026-12-31"), "the CLI's own words say what is wrong");

    let (head, zip) = school.get_as(&dsl, "/reports/inspection?format=html");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    std::fs::write(dir.path().join("i.zip"), &zip).unwrap();
    let listed = Command::new("unzip").args(["-l", "i.zip"]).current_dir(dir.path()).output().expect("unzip (tests/run.sh installs it)");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("inspection.html") && listed.contains("inspection.json") && listed.contains("MANIFEST.sha256"), "{listed}");

    let (head, csv) = school.get_as(&dsl, "/pupils/A100000000001/multiagency?format=csv");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&csv).to_lowercase().contains("significant event"), "the partnership's columns");
    let (head, _) = school.get_as(&dsl, "/pupils/A999999999999/multiagency?format=csv");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // The head: the governors' summary, not the DSL's, not the inspection lists.
    c.delete_cookie("haven_session").await.unwrap();
    let (_, head_cookie) = school.sign_in(&browser, "head@school.example", None).await;
    let (head, _) = school.get_as(&head_cookie, "/reports/summary?from=2026-09-01&to=2026-12-31&audience=governors&format=pdf");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, body) = school.get_as(&head_cookie, "/reports/summary?from=2026-09-01&to=2026-12-31&audience=dsl&format=pdf");
    assert!(head.starts_with("HTTP/1.1 400") && String::from_utf8_lossy(&body).contains("only the DSL team may run this report"), "{head}");
    let (head, _) = school.get_as(&head_cookie, "/reports/inspection?format=pdf");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // A head of house: no reports at all.
    c.delete_cookie("haven_session").await.unwrap();
    let (_, housem) = school.sign_in(&browser, "kestrel@school.example", None).await;
    for path in ["/reports", "/reports/summary?from=2026-09-01&to=2026-12-31&format=pdf"] {
        let (head, _) = school.get_as(&housem, path);
        assert!(head.starts_with("HTTP/1.1 404"), "{path}: {head}");
    }

    let actions = school.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "console_report_download").count(), 5, "{actions:?}");
    assert!(actions.iter().any(|a| a == "report_refused"), "{actions:?}");
    browser.close().await;
    school.finish().await;
}

/// The model the AI suggestion below is labelled with; no server is asked.
const AI_MODEL: &str = "test-model";

impl School {
    /// An installation with `[ai]` on, where RICH (about Jane, Oliver mentioned) is incident #1
    /// and carries an AI suggestion before `haven run` starts: the model's answer read by the
    /// real `suggestion::parse` against the roll, and stored by the triage worker's own
    /// `AiRules::complete`, so the daemon's worker finds no job left to ask about.
    async fn start_with_ai_suggestion(backend: Backend) -> School {
        let db = TestDb::new(backend).await;
        let smtp = SmtpServer::start();
        let env = HavenEnv::with_smtp(&db.url, "", smtp.port);
        std::fs::write(env.path("secrets/ai.key"), "unused\n").unwrap();
        append_config(
            &env,
            &format!(
                "\n[ai]\nprovider = \"llamacpp\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_file = \"secrets/ai.key\"\nmodel = \"{AI_MODEL}\"\n"
            ),
        );
        env.import_school();
        let rich = env.path("rich.eml");
        std::fs::write(&rich, RICH).unwrap();
        let r = env.haven(&["ingest", rich.to_str().unwrap()]);
        assert_eq!(r.code, 0, "ingest: {}{}", r.stdout, r.stderr);

        let config = haven::config::Config::load(&env.config).expect("config");
        let sealer = haven::seal::Sealer::from_key_file(&config.storage.key_file).expect("key");
        let roll = haven::ai::roll::Roll::new(&db.store.load_directory(&sealer).await.unwrap());
        let answer = r#"{"risk":"high","category":"Bullying","reasons":["took her lunch money on the bus again","she is scared"],
            "summary":"Oliver may be taking money from Jane. It has happened before.","pupils":["Jane Smith","Tom Pryce","oliver brown"]}"#;
        let text = "Oliver Brown took her lunch money on the bus again.";
        let categories = vec!["Bullying".to_string()];
        let suggestion = haven::ai::suggestion::parse(answer, text, &categories, AI_MODEL, &|n| roll.find(n)).expect("the answer parses");
        let keys = std::sync::Arc::new(haven::store::LiveKeys::new(sealer, None));
        let rules = std::sync::Arc::new(haven::rules::LiveRules::new(haven::rules::RuleSet::load(&config.rules.dir).expect("rules")));
        let after = haven::ai::rules::AiRules::new(&config, db.store.clone(), keys, rules);
        let now = chrono::Utc::now();
        let job = db.store.claim_ai_job(now, now + chrono::Duration::minutes(5), "console-test").await.unwrap().expect("filing queued it");
        after.complete(job.incident_id, "console-test", Some(&suggestion), AI_MODEL, now).await.expect("stored");
        School::serve(db, smtp, env, "127.0.0.1", "")
    }
}

/// An incident carrying an AI suggestion: the DSL sees it on the chronology and the incident
/// page, labelled as a suggestion with the model's name, with the pupils it names that are on
/// the roll; says "AI was wrong", which `haven ai report` then counts, and the page shows the
/// verdict. A form without its CSRF token records nothing. Jane's head of house, who may see
/// the incident, sees the suggestion but neither its pupils nor the buttons, and is refused
/// the form as any DSL action (404); a teacher sees nothing at all. Screenshot: ai-suggestion.
async fn the_dsl_judges_an_ai_suggestion_in_the_console(backend: Backend) {
    let school = School::start_with_ai_suggestion(backend).await;
    let browser = Browser::start().await;
    let c = browser.client();
    let (_, dsl) = school.sign_in(&browser, "dsl@school.example", None).await;
    let label = format!("AI suggestion ({AI_MODEL}) — a suggestion, not a decision");

    c.goto(&school.url("/pupils/A100000000001")).await.unwrap();
    let text =
        |css: &'static str| async move { c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap() };
    assert_eq!(text("#incident-1 .ai-label").await, label);
    assert_eq!(text("#incident-1 .ai-pupils").await, "Jane Smith, Oliver Brown", "only whole names on the roll");

    c.goto(&school.url("/incidents/1")).await.unwrap();
    assert_eq!(text(".ai-label").await, label);
    assert_eq!(text(".ai-risk").await, "high");
    assert_eq!(text(".ai-reasons").await, "took her lunch money on the bus again", "only a quote of the text");
    assert_eq!(text(".ai-summary").await, "Oliver may be taking money from Jane. It has happened before.");
    assert!(c.find(Locator::Css("#ai-verdict")).await.is_err(), "no verdict yet");
    c.execute("document.querySelector('.ai-suggestion').scrollIntoView()", Vec::new()).await.unwrap();
    browser.screenshot("ai-suggestion").await;
    click(c, "#ai-wrong").await;
    assert_eq!(text("#notice").await, "Recorded: the AI was wrong.");
    assert_eq!(text("#ai-verdict").await, "You said the AI was wrong.");

    let report = || {
        let r = school.env.haven(&["ai", "report", "--as", "dsl@school.example", "--json"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["models"][AI_MODEL]["verdicts"].clone()
    };
    assert_eq!(report(), serde_json::json!({"n": 0, "of": 1}), "one verdict, wrong");

    // The PDF chronology shows it labelled the same way, with its pupils for the DSL.
    let (head, zip) = school.get_as(&dsl, "/pupils/A100000000001/export?format=pdf");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.zip"), &zip).unwrap();
    let unzip = Command::new("unzip")
        .args(["-q", "-j", "p.zip", "*/chronology.pdf"])
        .current_dir(dir.path())
        .status()
        .expect("unzip (tests/run.sh installs it)");
    assert!(unzip.success());
    let pdf = Command::new("pdftotext").args(["-raw", "chronology.pdf", "-"]).current_dir(dir.path()).output().expect("pdftotext");
    let pdf = String::from_utf8_lossy(&pdf.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(pdf.contains(&label), "{pdf}");
    assert!(pdf.contains("Pupils mentioned Jane Smith, Oliver Brown"), "{pdf}");

    // Without the form's token: refused, nothing recorded.
    let post = |cookie: &str, body: &str| {
        school.raw(&format!(
            "POST /incidents/1/ai-feedback HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: haven_session={cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let r = post(&dsl, "verdict=right");
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert_eq!(report(), serde_json::json!({"n": 0, "of": 1}), "the forged form recorded nothing");
    let audit = school.audit_actions().await;
    assert_eq!(audit.iter().filter(|a| *a == "ai_feedback").count(), 1, "{audit:?}");
    assert!(audit.iter().any(|a| a == "console_csrf_refused"), "{audit:?}");

    // Jane's head of house: the suggestion, not its pupils, no buttons; the form is not theirs.
    c.delete_cookie("haven_session").await.unwrap();
    let (_, housem) = school.sign_in(&browser, "kestrel@school.example", None).await;
    c.goto(&school.url("/incidents/1")).await.unwrap();
    assert_eq!(text(".ai-label").await, label, "the head of house may see the incident and its suggestion");
    assert!(c.find(Locator::Css(".ai-pupils")).await.is_err(), "the pupils it names are the DSL team's");
    assert!(c.find(Locator::Css("#ai-feedback")).await.is_err(), "no verdict buttons");
    let csrf = c.find(Locator::Css("input[name=csrf]")).await.unwrap().attr("value").await.unwrap().unwrap();
    let r = post(&housem, &format!("csrf={csrf}&verdict=right"));
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert_eq!(report(), serde_json::json!({"n": 0, "of": 1}), "the head of house recorded nothing");
    let r = school.env.haven(&["chronology", "A100000000001", "--as", "kestrel@school.example", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
    let ai = &v["incidents"][0]["ai_suggestion"];
    assert_eq!((ai["pupils"].clone(), ai["pupil_names"].clone()), (serde_json::json!([]), serde_json::json!([])), "{ai:#}");

    // A teacher: no session, and the incident is not there.
    c.delete_cookie("haven_session").await.unwrap();
    let link = school.ask_for_link(&browser, "teacher@school.example").await;
    c.goto(&link).await.unwrap();
    assert!(c.find(Locator::Css("#write-only")).await.is_ok(), "a teacher reports, and reads no records");
    c.goto(&school.url("/incidents/1")).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(page.contains("There is nothing here, or nothing you may see.") && !page.contains("AI suggestion"), "{page}");
    browser.close().await;
    school.finish().await;
}

/// Chromium's virtual authenticator (WebDriver's WebAuthn extension, sent as a custom command):
/// a built-in passkey device that verifies its user, so the headless browser can add and use
/// passkeys.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    // The url crate, as ammonia re-exports it (the one fantoccini uses).
    fn endpoint(&self, base: &ammonia::url::Url, session: Option<&str>) -> Result<ammonia::url::Url, ammonia::url::ParseError> {
        base.join(&format!("session/{}/webauthn/authenticator", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &ammonia::url::Url) -> (axum::http::Method, Option<String>) {
        let body = serde_json::json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

/// A browser with a virtual passkey device.
async fn browser_with_authenticator() -> Browser {
    let browser = Browser::start().await;
    browser.client().issue_cmd(AddVirtualAuthenticator).await.expect("a virtual authenticator in Chromium");
    browser
}

/// Adds a passkey named `name` on the Security page of the signed-in browser.
async fn add_passkey(c: &Client, school: &School, name: &str) {
    c.goto(&school.url("/security")).await.unwrap();
    c.find(Locator::Css("input#passkey-name")).await.expect("the add form, shown by passkey.js").send_keys(name).await.unwrap();
    click(c, "#add-passkey").await;
    let notice = c.find(Locator::Css("#notice")).await.expect("a notice").text().await.unwrap();
    assert!(notice.starts_with("Passkey added."), "{notice}");
}

impl School {
    /// The session cookie and the code page's CSRF token, after following a sign-in link.
    async fn code_page_session(&self, browser: &Browser, email: &str) -> (String, String) {
        let c = browser.client();
        let link = self.ask_for_link(browser, email).await;
        c.goto(&link).await.unwrap();
        assert_eq!(c.current_url().await.unwrap().path(), "/totp");
        let cookie = c.get_named_cookie("haven_session").await.expect("a session cookie").value().to_string();
        let csrf = c.find(Locator::Css("form[action='/totp'] input[name=csrf]")).await.unwrap().attr("value").await.unwrap().unwrap();
        (cookie, csrf)
    }

    /// POSTs a form (`body` already encoded) with a session cookie; the whole response.
    fn post_as(&self, cookie: &str, path: &str, body: &str) -> String {
        self.raw(&format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nCookie: haven_session={cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host,
            body.len()
        ))
    }
}

/// Percent-encodes a form value.
fn form_value(v: &str) -> String {
    v.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// A DSL adds a passkey on the Security page, signs in with the emailed link and the passkey
/// (no code typed) and reads a chronology; once it is removed, sign-in asks for a code again.
async fn a_dsl_signs_in_with_a_passkey_added_on_the_security_page(backend: Backend) {
    let school = School::start_at(backend, "localhost", "", true).await;
    let browser = browser_with_authenticator().await;
    let c = browser.client();
    let (secret, cookie) = school.sign_in(&browser, "dsl@school.example", None).await;

    // Without one, the code page offers no passkey; the Security page offers to add one.
    c.goto(&school.url("/home")).await.unwrap();
    click(c, "#security").await;
    assert!(c.find(Locator::Css("#no-passkeys")).await.is_ok());
    // The add form refuses a post without its token.
    let r = school.post_as(&cookie, "/security/passkeys", "name=x&credential=%7B%7D");
    assert!(r.starts_with("HTTP/1.1 403"), "{}", &r[..r.len().min(300)]);
    add_passkey(c, &school, "Work laptop").await;
    let rows = c.find(Locator::Css("#passkeys tbody")).await.unwrap().text().await.unwrap();
    assert!(rows.contains("Work laptop") && rows.contains("never"), "{rows}");
    browser.screenshot("security").await;
    c.goto(&school.url("/home")).await.unwrap();
    click(c, "#sign-out").await;

    // The next sign-in: the link, then the passkey instead of a code.
    let link = school.ask_for_link(&browser, "dsl@school.example").await;
    c.goto(&link).await.unwrap();
    assert!(c.find(Locator::Css("input#code")).await.is_ok(), "the code is still accepted");
    browser.screenshot("totp-passkey").await;
    click(c, "#use-passkey").await;
    let page = c.source().await.unwrap();
    assert!(page.contains("Signed in as Dana Lead."), "{page}");
    c.goto(&school.url("/pupils/A100000000001")).await.unwrap();
    assert_eq!(c.find(Locator::Css("#count")).await.unwrap().text().await.unwrap(), "1 incident(s)");
    c.goto(&school.url("/security")).await.unwrap();
    let rows = c.find(Locator::Css("#passkeys tbody")).await.unwrap().text().await.unwrap();
    assert!(!rows.contains("never"), "its last use is shown: {rows}");

    // Removed: the next sign-in offers the code only, and the code signs in.
    click(c, "#passkeys button").await;
    assert_eq!(c.find(Locator::Css("#notice")).await.unwrap().text().await.unwrap(), "Passkey removed.");
    assert!(c.find(Locator::Css("#no-passkeys")).await.is_ok());
    c.goto(&school.url("/home")).await.unwrap();
    click(c, "#sign-out").await;
    let link = school.ask_for_link(&browser, "dsl@school.example").await;
    c.goto(&link).await.unwrap();
    assert!(c.find(Locator::Css("#use-passkey")).await.is_err(), "no passkey offered once removed");
    let page = submit_code(c, &totp_code(&secret)).await;
    assert!(page.contains("Signed in as Dana Lead."), "{page}");

    let actions = school.audit_actions().await;
    for a in ["console_passkey_added", "console_sign_in_passkey", "console_passkey_removed", "console_csrf_refused"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    browser.close().await;
    school.finish().await;
}

/// A passkey answer without the form's token is refused; forged or garbage answers are refused
/// and count towards the same lock as wrong codes, which then stops the passkey too.
async fn forged_passkey_answers_are_refused_and_count_towards_the_lock(backend: Backend) {
    let school = School::start_at(backend, "localhost", "", true).await;
    let browser = browser_with_authenticator().await;
    let c = browser.client();
    school.sign_in(&browser, "dsl@school.example", None).await;
    add_passkey(c, &school, "Phone").await;
    c.goto(&school.url("/home")).await.unwrap();
    click(c, "#sign-out").await;

    let (cookie, csrf) = school.code_page_session(&browser, "dsl@school.example").await;
    let r = school.post_as(&cookie, "/totp/passkey", "credential=%7B%7D");
    assert!(r.starts_with("HTTP/1.1 403") && r.contains("This form could not be accepted"), "{}", &r[..r.len().min(300)]);

    // A real challenge, answered with a signature the passkey never made.
    let r = school.post_as(&cookie, "/totp/passkey/options", &format!("csrf={csrf}"));
    assert!(r.starts_with("HTTP/1.1 200"), "{}", &r[..r.len().min(300)]);
    let options: serde_json::Value = serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let id = options["publicKey"]["allowCredentials"][0]["id"].as_str().expect("the passkey is allowed").to_string();
    let forged = serde_json::json!({
        "id": id, "rawId": id, "type": "public-key",
        "response": { "authenticatorData": "AAAA", "clientDataJSON": "e30", "signature": "AAAA", "userHandle": null },
    });
    let r = school.post_as(&cookie, "/totp/passkey", &format!("csrf={csrf}&credential={}", form_value(&forged.to_string())));
    assert!(r.starts_with("HTTP/1.1 401"), "{}", &r[..r.len().min(300)]);
    assert!(r.contains("That passkey was not accepted. 4 more wrong codes lock sign-in."), "{r}");
    // Garbage, and a wrong code, count the same way; the fifth failure locks sign-in.
    for left in [3, 2, 1] {
        let r = school.post_as(&cookie, "/totp/passkey", &format!("csrf={csrf}&credential=garbage"));
        assert!(r.contains(&format!("That passkey was not accepted. {left} more wrong codes lock sign-in.")), "{r}");
    }
    let r = school.post_as(&cookie, "/totp", &format!("csrf={csrf}&code=000000"));
    assert!(r.starts_with("HTTP/1.1 403") && r.contains("Sign-in locked"), "{}", &r[..r.len().min(300)]);
    let r = school.post_as(&cookie, "/totp/passkey/options", &format!("csrf={csrf}"));
    assert!(r.starts_with("HTTP/1.1 403") && r.contains("Sign-in locked"), "the passkey is locked too: {}", &r[..r.len().min(300)]);

    let actions = school.audit_actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "console_passkey_failed").count(), 4, "{actions:?}");
    assert!(actions.iter().any(|a| a == "console_totp_locked"), "{actions:?}");
    assert!(!actions.iter().any(|a| a == "console_sign_in_passkey"), "{actions:?}");
    browser.close().await;
    school.finish().await;
}

backend_tests!(
    the_dsl_judges_an_ai_suggestion_in_the_console,
    reports_are_downloads_for_those_who_may_run_them,
    the_sign_in_page_is_served_with_strict_security_headers,
    a_console_listening_beyond_loopback_is_refused,
    a_dsl_signs_in_with_an_emailed_link_and_totp,
    wrong_codes_lock_sign_in_and_teachers_see_only_how_to_report,
    expired_links_and_forms_without_their_token_are_refused,
    the_dsl_team_acts_from_the_console,
    sessions_end_when_idle_and_at_their_absolute_limit,
    sign_in_attempts_are_limited_per_client,
    the_console_serves_tls_and_reloads_its_certificate_on_sighup,
    the_console_works_at_a_phones_width_and_from_the_keyboard,
    a_long_chronology_is_read_a_page_at_a_time,
    a_dsl_signs_in_with_a_passkey_added_on_the_security_page,
    forged_passkey_answers_are_refused_and_count_towards_the_lock,
);
