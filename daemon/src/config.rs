//! `haven.toml`: the keys in SPEC "Configuration", read with serde (`deny_unknown_fields`).
//! Every error is reported at once, each with its key path: a syntax error with its line and
//! column; an unknown key (with the nearest known one) without hiding the other errors of its
//! section. Secrets are never inline: a `*_file` key names a file and a `*_env` key an
//! environment variable. Relative paths are relative to the directory holding the config file.

mod keys;

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every problem found in a config file, one per line.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(|e| format!("{}: {e}", self.file.display())).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Clone)]
pub struct Config {
    /// The directory holding the config file: relative paths start here.
    pub base: PathBuf,
    pub school: School,
    database_url: String,
    /// `database.leader_lease`: how long the leader lease lasts unrenewed, so how soon
    /// another daemon takes over from one that died (PostgreSQL with several daemons).
    pub leader_lease: Duration,
    pub storage: Storage,
    pub intake: Intake,
    pub smtp: Smtp,
    pub rules: Rules,
    pub alerts: Alerts,
    pub digests: Vec<Digest>,
    pub directory: DirectorySettings,
    /// The web console; `None` (off) unless `[console]` is configured.
    pub console: Option<ConsoleSettings>,
    /// `/healthz` and `/metrics`; `None` (off) unless `[metrics]` is configured.
    pub metrics: Option<crate::metrics::MetricsSettings>,
    /// `[logging]`: text or JSON.
    pub logging: crate::logging::LogSettings,
    /// `[ai]`: AI suggestions after filing; `None` (off) unless configured.
    pub ai: Option<AiSettings>,
    /// The school's terms from `school.terms_file`, checked when the config is read.
    pub terms: Option<crate::terms::Terms>,
    /// `[transfer]`: the deadline for sending a leaver's child-protection file (defaults apply).
    pub transfer: crate::transfer::TransferSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AiRaw {
    provider: AiProvider,
    /// llamacpp, ollama, openai_compatible; azure names `endpoint` instead.
    base_url: Option<String>,
    api_key_file: Option<PathBuf>,
    /// The label of suggestions and the model the server is asked for (azure: defaults to
    /// the deployment).
    model: Option<String>,
    /// azure only.
    endpoint: Option<String>,
    deployment: Option<String>,
    api_version: Option<String>,
    #[serde(default = "default_ai_timeout")]
    timeout: String,
    /// Default: on unless `base_url` is on loopback.
    redact: Option<bool>,
    #[serde(default = "default_ai_max_chars")]
    max_chars: usize,
}

fn default_ai_max_chars() -> usize {
    6_000
}

/// The range `ai.max_chars` may take.
const AI_MAX_CHARS_RANGE: std::ops::RangeInclusive<usize> = 200..=100_000;

fn default_ai_timeout() -> String {
    "60s".into()
}

/// The model servers `[ai]` can name, all spoken to over the OpenAI chat API through rig-core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiProvider {
    /// llama.cpp's `llama-server`, on the school's own machine: the on-premises default.
    Llamacpp,
    /// An Ollama daemon (`http://127.0.0.1:11434/v1` unless `base_url` says otherwise).
    Ollama,
    /// Any server speaking the OpenAI chat API at `base_url`, with a key.
    OpenaiCompatible,
    /// Azure OpenAI: `endpoint`, `deployment`, `api_version`, a key.
    Azure,
}

impl AiProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            AiProvider::Llamacpp => "llamacpp",
            AiProvider::Ollama => "ollama",
            AiProvider::OpenaiCompatible => "openai_compatible",
            AiProvider::Azure => "azure",
        }
    }
}

/// Ollama's own address, when `base_url` is not given.
const OLLAMA_BASE_URL: &str = "http://127.0.0.1:11434/v1";

/// The range `ai.timeout` may take: one call to the model, after which it is retried later.
const AI_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(600);

/// `[ai]`: where the model that reads each filed incident a second time is, and how long one
/// call may take. The key is read from `api_key_file` and never shown.
#[derive(Clone)]
pub struct AiSettings {
    pub provider: AiProvider,
    /// The server's OpenAI-compatible API, such as `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// The model's name, as the server knows it and as suggestions are labelled.
    pub model: String,
    /// azure: the deployment the model is served as, and the API version asked for.
    pub deployment: Option<String>,
    pub api_version: Option<String>,
    pub timeout: Duration,
    /// Names, addresses, postcodes, phone numbers and email addresses become placeholders
    /// before the text leaves the process (`ai.redact`; on unless the server is on loopback).
    pub redact: bool,
    /// Text longer than this (characters) is cut before it is sent.
    pub max_chars: usize,
}

impl fmt::Debug for AiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiSettings")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "(set)"))
            .field("model", &self.model)
            .field("deployment", &self.deployment)
            .field("api_version", &self.api_version)
            .field("timeout", &self.timeout)
            .field("redact", &self.redact)
            .field("max_chars", &self.max_chars)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleRaw {
    listen: String,
    public_url: Option<String>,
    #[serde(default = "default_link_lifetime")]
    link_lifetime: String,
    #[serde(default = "default_idle_timeout")]
    idle_timeout: String,
    #[serde(default = "default_absolute_timeout")]
    absolute_timeout: String,
    trusted_proxy: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

fn default_idle_timeout() -> String {
    "30m".into()
}

fn default_absolute_timeout() -> String {
    "12h".into()
}

fn default_link_lifetime() -> String {
    "10m".into()
}

/// `[console]`: where the DSL console listens (plain HTTP, loopback only).
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub listen: std::net::SocketAddr,
    /// Where staff reach the console (the reverse proxy's address); sign-in links start here.
    pub public_url: String,
    /// How long an emailed sign-in link works.
    pub link_lifetime: Duration,
    /// A session unused this long is ended (30 minutes).
    pub idle_timeout: Duration,
    /// A session is ended this long after sign-in however busy (12 hours).
    pub absolute_timeout: Duration,
    /// The reverse proxy whose X-Forwarded-For is believed for the client's address.
    pub trusted_proxy: Option<std::net::IpAddr>,
    /// Built-in TLS: (certificate chain, private key) PEM files, reloaded on SIGHUP.
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct School {
    pub name: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    pub intake_address: String,
    /// `school.terms_file`: the school's terms (see `crate::terms`), for reports by term and
    /// deadlines in school days; resolved against the config's folder.
    pub terms_file: Option<PathBuf>,
}

fn default_timezone() -> String {
    "Europe/London".into()
}

impl School {
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Europe::London)
    }

    /// The domain of the intake address, used in Message-IDs of Haven's own mail.
    pub fn mail_domain(&self) -> &str {
        self.intake_address.rsplit_once('@').map_or("haven.invalid", |(_, d)| d)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseRaw {
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    leader_lease: Option<String>,
}

/// The range `database.leader_lease` may take: shorter leases are renewed too often to ride
/// out a slow query; longer ones leave the intake unread too long after a leader dies.
const LEADER_LEASE_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_secs(3)..=Duration::from_secs(600);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// `storage.dir` named a folder Haven never used (everything is in the database and the
    /// key files); still accepted, and ignored, so configs written before load unchanged.
    #[serde(default, rename = "dir")]
    _dir: Option<serde::de::IgnoredAny>,
    pub key_file: PathBuf,
    /// The audit chain's HMAC key (hex), kept out of the database so that nobody who can
    /// only write to the database can rewrite the log. Default: `audit.key` beside `key_file`;
    /// the chain's head is anchored in `audit.head` beside it.
    #[serde(default)]
    pub audit_key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Imap,
    Maildir,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Imap => "imap",
            SourceKind::Maildir => "maildir",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Tls,
    Starttls,
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeRaw {
    source: SourceKind,
    #[serde(default = "default_max_size")]
    max_message_size: String,
    #[serde(default = "default_max_attachments")]
    max_attachments: usize,
    #[serde(default = "default_max_header_size")]
    max_header_size: String,
    #[serde(default = "default_max_mime_depth")]
    max_mime_depth: usize,
    trusted_authserv_id: Option<String>,
    #[serde(default = "default_backfill_age")]
    backfill_age: String,
    /// `[intake.imap]` and `[intake.maildir]` are read as sections of their own, so an error
    /// in one does not hide the errors of `[intake]`.
    imap: Option<toml::Value>,
    maildir: Option<toml::Value>,
}

fn default_max_size() -> String {
    "50MB".into()
}
fn default_max_attachments() -> usize {
    100
}
fn default_max_header_size() -> String {
    "256KB".into()
}
fn default_max_mime_depth() -> usize {
    20
}
fn default_backfill_age() -> String {
    "7d".into()
}

#[derive(Debug, Clone)]
pub struct Intake {
    pub source: SourceKind,
    pub max_message_size: u64,
    pub max_attachments: usize,
    pub max_header_size: u64,
    pub max_mime_depth: usize,
    pub trusted_authserv_id: Option<String>,
    /// A message whose original date is older than this when it is filed is historical (a
    /// backfill): filed with its history, but it alerts nobody and opens no outcome deadline.
    pub backfill_age: Duration,
    pub imap: Option<Imap>,
    pub maildir: Option<MaildirConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImapRaw {
    host: String,
    #[serde(default = "default_imap_port")]
    port: u16,
    #[serde(default = "default_tls")]
    security: Security,
    username: String,
    #[serde(default = "default_auth")]
    auth: String,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    token_file: Option<PathBuf>,
    token_command: Option<String>,
    #[serde(default = "default_mailbox")]
    mailbox: String,
    #[serde(default = "default_filed")]
    filed_folder: String,
    #[serde(default = "default_quarantine")]
    quarantine_folder: String,
    #[serde(default = "default_poll")]
    poll_interval: String,
}

fn default_imap_port() -> u16 {
    993
}
fn default_tls() -> Security {
    Security::Tls
}
fn default_auth() -> String {
    "password".into()
}
fn default_mailbox() -> String {
    "INBOX".into()
}
fn default_filed() -> String {
    "Haven/Filed".into()
}
fn default_quarantine() -> String {
    "Haven/Quarantine".into()
}
fn default_poll() -> String {
    "60s".into()
}

/// How Haven logs in to the intake mailbox.
#[derive(Clone)]
pub enum ImapCredential {
    Password(String),
    TokenFile(PathBuf),
    TokenCommand(String),
}

impl fmt::Debug for ImapCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImapCredential::Password(_) => f.write_str("Password(…)"),
            ImapCredential::TokenFile(p) => write!(f, "TokenFile({})", p.display()),
            ImapCredential::TokenCommand(_) => f.write_str("TokenCommand(…)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Imap {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub credential: ImapCredential,
    pub mailbox: String,
    pub filed_folder: String,
    pub quarantine_folder: String,
    pub poll_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaildirConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Smtp,
    Maildir,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpRaw {
    transport: TransportKind,
    host: Option<String>,
    port: Option<u16>,
    #[serde(default = "default_starttls")]
    security: Security,
    username: Option<String>,
    /// "password" (the default) or "xoauth2".
    auth: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    token_file: Option<PathBuf>,
    token_command: Option<String>,
    from: String,
    maildir: Option<PathBuf>,
}

fn default_starttls() -> Security {
    Security::Starttls
}

#[derive(Clone)]
pub struct Smtp {
    pub transport: TransportKind,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    /// With `auth = "xoauth2"`: where the OAuth2 access token comes from (read afresh when
    /// the server rejects the one in use).
    pub token: Option<TokenConfig>,
    pub from: String,
    pub maildir: PathBuf,
}

/// Where an OAuth2 access token comes from (`token_file` or `token_command`).
#[derive(Clone)]
pub enum TokenConfig {
    File(PathBuf),
    Command(String),
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smtp")
            .field("transport", &self.transport)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    #[default]
    Minimal,
    Summary,
    Full,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    #[serde(default)]
    pub detail: Detail,
    /// The HMAC key that signs reply tokens (hex, 32 bytes), kept apart from the storage key.
    pub reply_key_file: Option<PathBuf>,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// `[alerts.quiet_hours]`: non-urgent alerts wait until these hours end (none by default).
    #[serde(default)]
    pub quiet_hours: Option<crate::outbox::QuietHours>,
}

fn default_attempts() -> u32 {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// `role:dsl` or a staff email address.
    pub to: String,
    /// Cron, 5 fields (min hour day month weekday) or 6 (sec first), in the school's time zone;
    /// numeric weekdays are POSIX (0 or 7 Sunday, 1 Monday). See [`crate::schedule::due::parse_cron`].
    pub cron: String,
    #[serde(default)]
    pub send_empty: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryRaw {
    #[serde(default = "default_max_change")]
    max_change: String,
}

fn default_max_change() -> String {
    "10%".into()
}

/// `[directory]`: how much one `haven directory import` may change without
/// `--allow-mass-change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectorySettings {
    /// The largest share of the pupils on roll an import may mark as left, and of the active
    /// staff it may deactivate.
    pub max_change: Share,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        DirectorySettings { max_change: Share { basis_points: 1000 } }
    }
}

/// A share written as a percentage ("10%", "2.5%"), kept in hundredths of a percent so that
/// "10% of 30" is exactly 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    basis_points: u32,
}

impl Share {
    /// How many of `whole` this share is, rounded down.
    pub fn of(self, whole: u64) -> u64 {
        whole.saturating_mul(u64::from(self.basis_points)) / 10_000
    }
}

impl fmt::Display for Share {
    /// "10 %", "2.5 %".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.basis_points / 100, self.basis_points % 100);
        match frac {
            0 => write!(f, "{whole} %"),
            _ if frac % 10 == 0 => write!(f, "{whole}.{} %", frac / 10),
            _ => write!(f, "{whole}.{frac:02} %"),
        }
    }
}

/// "10%", "10 %", "2.5%": from 0 % to 100 %, at most two decimals.
pub fn parse_share(s: &str) -> Option<Share> {
    let n = s.trim().strip_suffix('%')?.trim_end();
    let (whole, frac) = n.split_once('.').unwrap_or((n, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let frac: u32 = format!("{frac:0<2}").parse().ok()?;
    let basis_points = whole.checked_mul(100)?.checked_add(frac)?;
    (basis_points <= 10_000).then_some(Share { basis_points })
}

/// The sections of `haven.toml`; a section not named here is reported as unknown.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Top {
    school: Option<toml::Value>,
    database: Option<toml::Value>,
    storage: Option<toml::Value>,
    intake: Option<toml::Value>,
    smtp: Option<toml::Value>,
    rules: Option<toml::Value>,
    alerts: Option<toml::Value>,
    digest: Option<Vec<toml::Value>>,
    directory: Option<toml::Value>,
    console: Option<toml::Value>,
    metrics: Option<toml::Value>,
    logging: Option<toml::Value>,
    ai: Option<toml::Value>,
    transfer: Option<toml::Value>,
}

/// Collects errors while the sections are read one by one.
struct Collect {
    errors: Vec<String>,
}

impl Collect {
    /// Reads the section at `path` into `T`, reporting every problem in it: each unknown key
    /// (with the nearest known one), then each key serde refuses, one at a time, until the
    /// rest reads or a required key is missing.
    fn section<T: serde::de::DeserializeOwned>(&mut self, path: &str, v: Option<toml::Value>, required: bool) -> Option<T> {
        let mut table = match v {
            None if required => {
                self.errors.push(format!("[{path}] is missing"));
                return None;
            }
            None => return None,
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                self.errors.push(format!("{path}: expected a table ([{path}]), found a {}", other.type_str()));
                return None;
            }
        };
        let known = keys::struct_fields::<T>();
        let unknown: Vec<String> = table.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            table.remove(&key);
            self.errors.push(format!("{path}.{key}: {}", keys::unknown_key(&key, known)));
        }
        loop {
            let attempt = serde_path_to_error::deserialize::<_, T>(toml::Value::Table(table.clone()));
            let e = match attempt {
                // With a wrong key removed its default stands in, so the checks after this one
                // still run and report their own errors.
                Ok(t) => return Some(t),
                Err(e) => e,
            };
            let message = crate::rules::suggest::field_message(&one_line(e.inner().message()));
            let key = e.path().iter().next().and_then(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            });
            match key.filter(|k| table.contains_key(k)) {
                Some(key) => {
                    self.errors.push(format!("{path}.{key}: {message}"));
                    table.remove(&key);
                }
                None => {
                    // A required key: missing, or removed above for being wrong.
                    match message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
                        Some(key) if !self.errors.iter().any(|e| e.starts_with(&format!("{path}.{key}:"))) => {
                            self.errors.push(format!("{path}.{key}: missing"));
                        }
                        Some(_) => {}
                        None => self.errors.push(format!("{path}: {message}")),
                    }
                    return None;
                }
            }
        }
    }

    fn err(&mut self, e: String) {
        self.errors.push(e);
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Config {
    /// Reads and checks the config at `path`, reading secrets named by `*_file` / `*_env`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |errors: Vec<String>| ConfigErrors { file: path.to_path_buf(), errors };
        let text = std::fs::read_to_string(path).map_err(|e| fail(vec![format!("cannot read: {e}")]))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        Config::parse(&text, &base).map_err(fail)
    }

    /// Parses config text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, Vec<String>> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| vec![keys::syntax_error(text, &e)])?;
        let mut c = Collect { errors: Vec::new() };
        let sections = keys::struct_fields::<Top>();
        let unknown: Vec<String> = table.keys().filter(|k| !sections.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            table.remove(&key);
            c.err(format!("[{key}]: {}", keys::unknown_section(&key, sections)));
        }
        let top: Top = match Top::deserialize(toml::Value::Table(table)) {
            Ok(top) => top,
            Err(e) => {
                c.err(one_line(e.message()));
                return Err(c.errors);
            }
        };
        let school: Option<School> = c.section("school", top.school, true);
        let database: Option<DatabaseRaw> = c.section("database", top.database, true);
        let storage: Option<Storage> = c.section("storage", top.storage, true);
        let intake: Option<IntakeRaw> = c.section("intake", top.intake, true);
        let smtp: Option<SmtpRaw> = c.section("smtp", top.smtp, true);
        let rules: Option<Rules> = c.section("rules", top.rules, false);
        let alerts: Option<Alerts> = c.section("alerts", top.alerts, false);
        let directory = c.section::<DirectoryRaw>("directory", top.directory, false).and_then(|d| {
            let share = parse_share(&d.max_change);
            if share.is_none() {
                c.err(format!("directory.max_change: expected a percentage from 0% to 100% such as \"10%\", found {:?}", d.max_change));
            }
            share.map(|max_change| DirectorySettings { max_change })
        });
        let metrics =
            c.section::<crate::metrics::MetricsRaw>("metrics", top.metrics, false).and_then(|r| r.resolve().map_err(|e| c.err(e)).ok());
        let logging: Option<crate::logging::LogSettings> = c.section("logging", top.logging, false);
        let console = c.section::<ConsoleRaw>("console", top.console, false).and_then(|r| resolve_console(&mut c, &r, base));
        let ai = c.section::<AiRaw>("ai", top.ai, false).and_then(|r| resolve_ai(&mut c, r, base));
        let mut transfer = c.section::<crate::transfer::TransferSettings>("transfer", top.transfer, false).unwrap_or_default();
        transfer.schools_file = transfer.schools_file.map(|f| base.join(f));
        transfer.check().into_iter().for_each(|e| c.err(e));
        let mut digests = Vec::new();
        for (i, d) in top.digest.unwrap_or_default().into_iter().enumerate() {
            if let Some(d) = c.section::<Digest>(&format!("digest[{i}]"), Some(d), true) {
                if let Err(e) = crate::schedule::due::parse_cron(&d.cron) {
                    c.err(format!("digest[{i}].cron: {e}"));
                }
                if !(d.to.starts_with("role:") || d.to.contains('@')) {
                    c.err(format!("digest[{i}].to: expected \"role:NAME\" or an email address"));
                }
                digests.push(d);
            }
        }

        if let Some(s) = &school {
            if s.timezone.parse::<chrono_tz::Tz>().is_err() {
                c.err(format!("school.timezone: unknown time zone {:?}", s.timezone));
            }
            if !s.intake_address.contains('@') {
                c.err("school.intake_address: expected an email address".into());
            }
        }
        let school = school.map(|s| School { terms_file: s.terms_file.map(|f| base.join(f)), ..s });
        let terms = school.as_ref().and_then(|s| s.terms_file.as_deref()).and_then(|f| {
            crate::terms::Terms::load(f)
                .map_err(|e| e.errors.iter().for_each(|m| c.err(format!("school.terms_file: {}: {m}", f.display()))))
                .ok()
        });
        let leader_lease = match database.as_ref().and_then(|d| d.leader_lease.as_deref()) {
            None => crate::lease::LeaseTimes::DEFAULT_TTL,
            Some(v) => match duration(&mut c, "database.leader_lease", v) {
                Some(d) if LEADER_LEASE_RANGE.contains(&d) => d,
                Some(_) => {
                    c.err(format!("database.leader_lease: expected between \"3s\" and \"10m\", found {v:?}"));
                    crate::lease::LeaseTimes::DEFAULT_TTL
                }
                None => crate::lease::LeaseTimes::DEFAULT_TTL,
            },
        };
        let database_url = database.and_then(|d| resolve_secret(&mut c, "database.url", d.url, d.url_file, d.url_env, base, true));
        let intake = intake.and_then(|i| resolve_intake(&mut c, i, base));
        let smtp = smtp.and_then(|s| resolve_smtp(&mut c, s, base));
        let alerts =
            alerts.unwrap_or(Alerts { detail: Detail::Minimal, reply_key_file: None, max_attempts: default_attempts(), quiet_hours: None });

        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        let (Some(school), Some(database_url), Some(storage), Some(intake), Some(smtp)) = (school, database_url, storage, intake, smtp)
        else {
            return Err(vec!["incomplete configuration".into()]);
        };
        Ok(Config {
            base: base.to_path_buf(),
            school,
            database_url,
            leader_lease,
            storage: Storage {
                _dir: None,
                audit_key_file: if storage.audit_key_file.as_os_str().is_empty() {
                    base.join(&storage.key_file).with_file_name("audit.key")
                } else {
                    base.join(storage.audit_key_file)
                },
                key_file: base.join(storage.key_file),
            },
            intake,
            smtp,
            rules: Rules { dir: base.join(rules.map_or_else(|| PathBuf::from("rules"), |r| r.dir)) },
            alerts: Alerts { reply_key_file: alerts.reply_key_file.map(|p| base.join(p)), ..alerts },
            digests,
            directory: directory.unwrap_or_default(),
            console,
            metrics,
            logging: logging.unwrap_or_default(),
            ai,
            terms,
            transfer,
        })
    }

    /// The database URL, with a relative SQLite path resolved against the config's directory.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }
}

/// A secret given inline (only for non-secret-looking keys such as a database URL without a
/// password), in a file, or in an environment variable; exactly one.
fn resolve_secret(
    c: &mut Collect,
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    env: Option<String>,
    base: &Path,
    required: bool,
) -> Option<String> {
    let given = inline.is_some() as u8 + file.is_some() as u8 + env.is_some() as u8;
    if given > 1 {
        c.err(format!("{key}: give only one of {key}, {key}_file, {key}_env"));
        return None;
    }
    if let Some(v) = inline {
        return Some(resolve_sqlite(&v, base));
    }
    if let Some(f) = file {
        let p = base.join(&f);
        return match std::fs::read_to_string(&p) {
            Ok(s) => Some(resolve_sqlite(s.trim(), base)),
            Err(e) => {
                c.err(format!("{key}_file: cannot read {}: {e}", p.display()));
                None
            }
        };
    }
    if let Some(var) = env {
        return match std::env::var(&var) {
            Ok(s) => Some(resolve_sqlite(s.trim(), base)),
            Err(_) => {
                c.err(format!("{key}_env: environment variable {var} is not set"));
                None
            }
        };
    }
    if required {
        c.err(format!("{key}: missing (give {key}, {key}_file or {key}_env)"));
    }
    None
}

/// A password: only from a file or an environment variable.
fn resolve_password(c: &mut Collect, key: &str, file: Option<PathBuf>, env: Option<String>, base: &Path) -> Option<String> {
    if file.is_some() && env.is_some() {
        c.err(format!("{key}: give only one of {key}_file, {key}_env"));
        return None;
    }
    if let Some(f) = file {
        let p = base.join(&f);
        return match std::fs::read_to_string(&p) {
            Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_string()),
            Err(e) => {
                c.err(format!("{key}_file: cannot read {}: {e}", p.display()));
                None
            }
        };
    }
    if let Some(var) = env {
        return match std::env::var(&var) {
            Ok(s) => Some(s),
            Err(_) => {
                c.err(format!("{key}_env: environment variable {var} is not set"));
                None
            }
        };
    }
    None
}

/// `sqlite://haven.db` is relative to the config file, not to wherever Haven was started.
fn resolve_sqlite(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(rest) if !rest.starts_with('/') && !rest.starts_with(':') => {
            format!("sqlite://{}", base.join(rest).display())
        }
        _ => url.to_string(),
    }
}

fn resolve_intake(c: &mut Collect, i: IntakeRaw, base: &Path) -> Option<Intake> {
    let max_message_size = size(c, "intake.max_message_size", &i.max_message_size);
    let max_header_size = size(c, "intake.max_header_size", &i.max_header_size);
    let backfill_age = duration(c, "intake.backfill_age", &i.backfill_age);
    let imap = c.section::<ImapRaw>("intake.imap", i.imap, false).and_then(|raw| resolve_imap(c, raw, base));
    let maildir = c.section::<MaildirConfig>("intake.maildir", i.maildir, false);
    match i.source {
        SourceKind::Imap if imap.is_none() && !c.errors.iter().any(|e| e.starts_with("intake.imap")) => {
            c.err("intake.imap: missing ([intake.imap] is required when intake.source = \"imap\")".into());
        }
        SourceKind::Maildir if maildir.is_none() && !c.errors.iter().any(|e| e.starts_with("intake.maildir")) => {
            c.err("intake.maildir: missing ([intake.maildir] is required when intake.source = \"maildir\")".into());
        }
        _ => {}
    }
    Some(Intake {
        source: i.source,
        max_message_size: max_message_size?,
        max_attachments: i.max_attachments,
        max_header_size: max_header_size?,
        max_mime_depth: i.max_mime_depth,
        trusted_authserv_id: i.trusted_authserv_id,
        backfill_age: backfill_age?,
        imap,
        maildir: maildir.map(|m| MaildirConfig { path: base.join(m.path) }),
    })
}

fn resolve_imap(c: &mut Collect, r: ImapRaw, base: &Path) -> Option<Imap> {
    let poll_interval = duration(c, "intake.imap.poll_interval", &r.poll_interval);
    let credential = match r.auth.as_str() {
        "password" => match resolve_password(c, "intake.imap.password", r.password_file, r.password_env, base) {
            Some(p) => Some(ImapCredential::Password(p)),
            None => {
                if !c.errors.iter().any(|e| e.starts_with("intake.imap.password")) {
                    c.err("intake.imap.password: missing (give password_file or password_env)".into());
                }
                None
            }
        },
        "xoauth2" => match (r.token_file, r.token_command) {
            (Some(f), None) => Some(ImapCredential::TokenFile(base.join(f))),
            (None, Some(cmd)) => Some(ImapCredential::TokenCommand(cmd)),
            _ => {
                c.err("intake.imap: auth = \"xoauth2\" needs exactly one of token_file, token_command".into());
                None
            }
        },
        other => {
            c.err(format!("intake.imap.auth: expected \"password\" or \"xoauth2\", found {other:?}"));
            None
        }
    };
    if r.security == Security::Plain && !is_loopback(&r.host) {
        c.err("intake.imap.security: \"plain\" is refused unless the host is loopback (use tls or starttls)".into());
    }
    Some(Imap {
        host: r.host,
        port: r.port,
        security: r.security,
        username: r.username,
        credential: credential?,
        mailbox: r.mailbox,
        filed_folder: r.filed_folder,
        quarantine_folder: r.quarantine_folder,
        poll_interval: poll_interval?,
    })
}

fn resolve_smtp(c: &mut Collect, r: SmtpRaw, base: &Path) -> Option<Smtp> {
    let password = resolve_password(c, "smtp.password", r.password_file, r.password_env, base);
    let token = match r.auth.as_deref() {
        None | Some("password") => {
            if r.token_file.is_some() || r.token_command.is_some() {
                c.err("smtp: token_file and token_command need auth = \"xoauth2\"".into());
            }
            None
        }
        Some("xoauth2") => {
            if r.username.is_none() {
                c.err("smtp.username: missing (auth = \"xoauth2\" logs in as this mailbox)".into());
            }
            if password.is_some() {
                c.err("smtp: auth = \"xoauth2\" takes token_file or token_command, not a password".into());
            }
            match (r.token_file, r.token_command) {
                (Some(f), None) => Some(TokenConfig::File(base.join(f))),
                (None, Some(cmd)) => Some(TokenConfig::Command(cmd)),
                _ => {
                    c.err("smtp: auth = \"xoauth2\" needs exactly one of token_file, token_command".into());
                    None
                }
            }
        }
        Some(other) => {
            c.err(format!("smtp.auth: expected \"password\" or \"xoauth2\", found {other:?}"));
            None
        }
    };
    let host = r.host.unwrap_or_default();
    match r.transport {
        TransportKind::Smtp => {
            if host.is_empty() {
                c.err("smtp.host: missing (required when smtp.transport = \"smtp\")".into());
            }
            if r.security == Security::Plain && !is_loopback(&host) {
                c.err("smtp.security: \"plain\" is refused unless the host is loopback".into());
            }
        }
        TransportKind::Maildir if r.maildir.is_none() => {
            c.err("smtp.maildir: missing (required when smtp.transport = \"maildir\")".into());
        }
        TransportKind::Maildir => {}
    }
    let port = r.port.unwrap_or(match r.security {
        Security::Tls => 465,
        Security::Starttls => 587,
        Security::Plain => 25,
    });
    Some(Smtp {
        transport: r.transport,
        host,
        port,
        security: r.security,
        username: r.username,
        password,
        token,
        from: r.from,
        maildir: base.join(r.maildir.unwrap_or_default()),
    })
}

fn resolve_console(c: &mut Collect, r: &ConsoleRaw, base: &Path) -> Option<ConsoleSettings> {
    let Ok(listen) = r.listen.parse::<std::net::SocketAddr>() else {
        c.err(format!("console.listen: expected an address and port such as \"127.0.0.1:8080\", found {:?}", r.listen));
        return None;
    };
    let tls = match (&r.cert_file, &r.key_file) {
        (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
        (None, None) => None,
        _ => {
            c.err("console.cert_file and console.key_file: give both (built-in TLS) or neither (plain HTTP on loopback)".to_string());
            return None;
        }
    };
    if tls.is_none() && !listen.ip().is_loopback() {
        c.err(format!(
            "console.listen: {listen} is not a loopback address; the console serves plain HTTP (no TLS), so it listens only on \
             loopback (127.0.0.1 or ::1) behind a TLS reverse proxy, or set console.cert_file and console.key_file"
        ));
        return None;
    }
    let trusted_proxy = match &r.trusted_proxy {
        None => None,
        Some(p) => match p.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                c.err(format!("console.trusted_proxy: expected an IP address such as \"127.0.0.1\", found {p:?}"));
                return None;
            }
        },
    };
    let link_lifetime = duration(c, "console.link_lifetime", &r.link_lifetime)?;
    let idle_timeout = duration(c, "console.idle_timeout", &r.idle_timeout)?;
    let absolute_timeout = duration(c, "console.absolute_timeout", &r.absolute_timeout)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = r.public_url.clone().unwrap_or_else(|| format!("{scheme}://{listen}"));
    Some(ConsoleSettings {
        listen,
        public_url: public_url.trim_end_matches('/').to_string(),
        link_lifetime,
        idle_timeout,
        absolute_timeout,
        trusted_proxy,
        tls,
    })
}

fn resolve_ai(c: &mut Collect, r: AiRaw, base: &Path) -> Option<AiSettings> {
    let before = c.errors.len();
    let provider = r.provider;
    let name = provider.as_str();
    let azure = provider == AiProvider::Azure;
    let url = |c: &mut Collect, key: &str, v: &str, example: &str| -> Option<String> {
        let u = v.trim().trim_end_matches('/').to_string();
        let ok = (u.starts_with("http://") || u.starts_with("https://")) && url_host(&u).is_some();
        if !ok {
            c.err(format!("ai.{key}: expected an http:// or https:// URL such as \"{example}\", found {v:?}"));
        }
        ok.then_some(u)
    };
    // Keys that belong to another provider are refused, so a half-changed section is noticed.
    for (key, given) in
        [("endpoint", r.endpoint.is_some()), ("deployment", r.deployment.is_some()), ("api_version", r.api_version.is_some())]
    {
        if given && !azure {
            c.err(format!("ai.{key}: only for provider = \"azure\" (this is {name:?})"));
        }
    }
    let base_url = match (provider, &r.base_url) {
        (AiProvider::Azure, Some(_)) => {
            c.err("ai.base_url: not used with provider = \"azure\": give ai.endpoint (https://NAME.openai.azure.com), ai.deployment and ai.api_version".into());
            if r.endpoint.is_none() {
                c.err("ai.endpoint: missing: provider = \"azure\" needs the resource's endpoint, such as \"https://school-ai.openai.azure.com\"".into());
            }
            None
        }
        (AiProvider::Azure, None) => match &r.endpoint {
            None => {
                c.err("ai.endpoint: missing: provider = \"azure\" needs the resource's endpoint, such as \"https://school-ai.openai.azure.com\"".into());
                None
            }
            Some(e) => url(c, "endpoint", e, "https://school-ai.openai.azure.com").filter(|u| {
                let https = u.starts_with("https://");
                if !https {
                    c.err(format!("ai.endpoint: Azure is reached over https only, found {e:?}"));
                }
                https
            }),
        },
        (AiProvider::Ollama, None) => Some(OLLAMA_BASE_URL.to_string()),
        (_, None) => {
            c.err(format!(
                "ai.base_url: missing: provider = {name:?} needs the server's OpenAI-compatible API, such as \"http://127.0.0.1:8080/v1\""
            ));
            None
        }
        (_, Some(u)) => url(c, "base_url", u, "http://127.0.0.1:8080/v1"),
    };
    let mut deployment = None;
    let mut api_version = None;
    if azure {
        match r.deployment.as_deref().map(str::trim) {
            Some(d) if !d.is_empty() && d.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.')) => {
                deployment = Some(d.to_string());
            }
            Some(d) => c.err(format!("ai.deployment: expected the deployment's name (letters, digits, - _ .), found {d:?}")),
            None => c.err("ai.deployment: missing: provider = \"azure\" needs the name the model is deployed as".into()),
        }
        match r.api_version.as_deref().map(str::trim) {
            Some(v) if is_api_version(v) => api_version = Some(v.to_string()),
            Some(v) => c.err(format!("ai.api_version: expected a date such as \"2024-10-21\" (or \"2025-01-01-preview\"), found {v:?}")),
            None => c.err("ai.api_version: missing: provider = \"azure\" needs the API version, such as \"2024-10-21\"".into()),
        }
    }
    let model = match r.model.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => Some(m.to_string()),
        None if azure => deployment.clone(),
        _ => {
            c.err("ai.model: expected the model's name, such as \"smollm2-135m\"".into());
            None
        }
    };
    let timeout = duration(c, "ai.timeout", &r.timeout);
    if timeout.is_some_and(|t| !AI_TIMEOUT_RANGE.contains(&t)) {
        c.err(format!("ai.timeout: expected between \"1s\" and \"10m\", found {:?}", r.timeout));
    }
    let api_key = match r.api_key_file {
        None if matches!(provider, AiProvider::OpenaiCompatible | AiProvider::Azure) => {
            c.err(format!("ai.api_key_file: missing: provider = {name:?} needs a key (a file holding it, mode 0600)"));
            None
        }
        None => None,
        Some(f) => resolve_secret(c, "ai.api_key", None, Some(f), None, base, true),
    };
    if !AI_MAX_CHARS_RANGE.contains(&r.max_chars) {
        c.err(format!("ai.max_chars: expected between 200 and 100000 characters, found {}", r.max_chars));
    }
    if c.errors.len() > before {
        return None;
    }
    let (base_url, model, timeout) = (base_url?, model?, timeout?);
    let redact = r.redact.unwrap_or_else(|| !url_host(&base_url).is_some_and(is_loopback));
    Some(AiSettings { provider, base_url, api_key, model, deployment, api_version, timeout, redact, max_chars: r.max_chars })
}

/// `2024-10-21` or `2025-01-01-preview`.
fn is_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date.len() == 10
}

/// The host of an `http(s)://` URL, without brackets or port.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(host_port.split_once(':').map_or(host_port, |(h, _)| h)).filter(|h| !h.is_empty())
}

pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Sizes as disks and mail servers count them: `KB`, `MB`, `GB` are powers of 1000 (50MB is
/// 50,000,000 bytes); `KiB`, `MiB`, `GiB` powers of 1024; a bare number or `B` is bytes. Units
/// in either case. There is no bare `M`: it would leave the reader to guess which.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let mult = match s[digits..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KIB" => 1024,
        "MIB" => 1024 * 1024,
        "GIB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub use crate::duration::parse_duration;

fn size(c: &mut Collect, key: &str, v: &str) -> Option<u64> {
    let s = parse_size(v);
    if s.is_none() {
        c.err(format!("{key}: expected a size such as \"50MB\" (50,000,000 bytes) or \"50MiB\" (50 × 1,048,576 bytes), found {v:?}"));
    }
    s
}

fn duration(c: &mut Collect, key: &str, v: &str) -> Option<Duration> {
    let d = parse_duration(v);
    if d.is_none() {
        c.err(format!("{key}: expected a duration, {}; found {v:?}", crate::duration::GRAMMAR));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[school]
name = "Eaton"
intake_address = "safeguarding@eaton.sch.example"
[database]
url = "sqlite://var/haven.db"
[storage]
dir = "data"
key_file = "secrets/haven.key"
[intake]
source = "maildir"
[intake.maildir]
path = "mail/intake"
[smtp]
transport = "maildir"
from = "Haven <safeguarding@eaton.sch.example>"
maildir = "mail/outbox"
"#;

    #[test]
    fn a_good_config_resolves_paths_against_its_directory() {
        let c = Config::parse(GOOD, Path::new("/srv/haven")).unwrap();
        assert_eq!(c.database_url(), "sqlite:///srv/haven/var/haven.db");
        assert_eq!(c.storage.key_file, Path::new("/srv/haven/secrets/haven.key"));
        assert_eq!(c.storage.audit_key_file, Path::new("/srv/haven/secrets/audit.key"), "beside the storage key");
        assert_eq!(c.intake.max_message_size, 50_000_000, "MB is 10^6 bytes");
        assert_eq!(c.school.timezone, "Europe/London");
        assert_eq!(c.rules.dir, Path::new("/srv/haven/rules"));
    }

    #[test]
    fn every_error_is_reported_at_once_with_its_key_path() {
        let bad = GOOD
            .replace("[school]\n", "[school]\ncolour = \"blue\"\n")
            .replace("source = \"maildir\"", "source = \"maildir\"\nmax_message_size = \"lots\"")
            .replace("[smtp]\n", "[smtp]\nport = \"x\"\n");
        let errs = Config::parse(&bad, Path::new("/x")).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert_eq!(errs[0], "school.colour: unknown key; this section knows name, timezone, intake_address, terms_file");
        assert!(errs.iter().any(|e| e.starts_with("smtp.port: invalid type: string \"x\"")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.starts_with("intake.max_message_size: expected a size")), "{errs:#?}");
    }

    #[test]
    fn passwords_are_never_inline_and_plain_imap_only_on_loopback() {
        let bad = GOOD.replace("source = \"maildir\"", "source = \"imap\"")
            + "[intake.imap]\nhost = \"imap.example.com\"\nsecurity = \"plain\"\nusername = \"u\"\npassword = \"hunter2\"\n";
        let errs = Config::parse(&bad, Path::new("/x")).unwrap_err();
        assert!(
            errs.iter().any(|e| e.starts_with("intake.imap.password: unknown key: secrets are never written in haven.toml")),
            "{errs:#?}"
        );
        let bad = GOOD.replace("source = \"maildir\"", "source = \"imap\"")
            + "[intake.imap]\nhost = \"imap.example.com\"\nsecurity = \"plain\"\nusername = \"u\"\npassword_env = \"HAVEN_TEST_UNSET_VAR\"\n";
        let errs = Config::parse(&bad, Path::new("/x")).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("HAVEN_TEST_UNSET_VAR is not set")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("\"plain\" is refused")), "{errs:#?}");
    }

    #[test]
    fn the_leader_lease_defaults_to_15s_and_refuses_what_cannot_work() {
        assert_eq!(Config::parse(GOOD, Path::new("/x")).unwrap().leader_lease, Duration::from_secs(15));
        let with = |v: &str| GOOD.replace("[storage]", &format!("leader_lease = \"{v}\"\n[storage]"));
        assert_eq!(Config::parse(&with("6s"), Path::new("/x")).unwrap().leader_lease, Duration::from_secs(6));
        for bad in ["1s", "2h", "soon"] {
            let errs = Config::parse(&with(bad), Path::new("/x")).unwrap_err();
            assert!(errs.len() == 1 && errs[0].starts_with("database.leader_lease: expected"), "{bad}: {errs:#?}");
        }
    }

    #[test]
    fn ai_is_off_unless_configured_and_its_key_is_read_from_a_file_and_never_shown() {
        assert!(Config::parse(GOOD, Path::new("/x")).unwrap().ai.is_none());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ai.key"), "sk-local-1\n").unwrap();
        let ai =
            "[ai]\nprovider = \"llamacpp\"\nbase_url = \"http://127.0.0.1:8080/v1/\"\napi_key_file = \"ai.key\"\nmodel = \"smollm2\"\n";
        let c = Config::parse(&format!("{GOOD}{ai}"), dir.path()).unwrap();
        let a = c.ai.unwrap();
        assert_eq!((a.provider, a.base_url.as_str(), a.model.as_str()), (AiProvider::Llamacpp, "http://127.0.0.1:8080/v1", "smollm2"));
        assert_eq!(a.api_key.as_deref(), Some("sk-local-1"));
        assert_eq!(a.timeout, Duration::from_secs(60));
        assert!(!format!("{a:?}").contains("sk-local-1"), "the key is never shown");

        let errs = Config::parse(&format!("{GOOD}{ai}temperature = 0.2\napi_key = \"x\"\n"), dir.path()).unwrap_err();
        assert!(errs.iter().any(|e| e.starts_with("ai.temperature: unknown key")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.starts_with("ai.api_key: unknown key: secrets are never written")), "{errs:#?}");
        let errs = Config::parse(&format!("{GOOD}{}", ai.replace("llamacpp", "skynet")), dir.path()).unwrap_err();
        assert!(errs[0].starts_with("ai.provider: "), "{errs:#?}");
        let errs = Config::parse(&format!("{GOOD}{ai}timeout = \"2h\"\n"), dir.path()).unwrap_err();
        assert_eq!(errs, vec!["ai.timeout: expected between \"1s\" and \"10m\", found \"2h\"".to_string()]);
        let errs = Config::parse(&format!("{GOOD}{}", ai.replace("http://127.0.0.1:8080/v1/", "127.0.0.1:8080")), dir.path()).unwrap_err();
        assert!(errs[0].starts_with("ai.base_url: expected an http:// or https:// URL"), "{errs:#?}");
        let errs = Config::parse(&format!("{GOOD}{}", ai.replace("ai.key", "missing.key")), dir.path()).unwrap_err();
        assert!(errs[0].starts_with("ai.api_key_file: cannot read"), "{errs:#?}");
    }

    #[test]
    fn redaction_is_on_unless_the_model_server_is_on_loopback_and_long_text_is_cut() {
        let ai = |url: &str, extra: &str| format!("{GOOD}[ai]\nprovider = \"llamacpp\"\nbase_url = \"{url}\"\nmodel = \"m\"\n{extra}");
        let settings = |url: &str, extra: &str| Config::parse(&ai(url, extra), Path::new("/x")).unwrap().ai.unwrap();
        for (url, redact) in [
            ("http://127.0.0.1:8080/v1", false),
            ("http://localhost:8080/v1", false),
            ("http://[::1]:8080/v1", false),
            ("http://user@127.0.0.1/v1", false),
            ("https://models.trust.example/v1", true),
            ("http://10.0.0.5:8080/v1", true),
            ("https://127.0.0.1.evil.example/v1", true),
        ] {
            assert_eq!(settings(url, "").redact, redact, "{url}");
        }
        assert!(settings("http://127.0.0.1:8080/v1", "redact = true\n").redact, "may be set on for loopback");
        assert_eq!(settings("http://127.0.0.1:8080/v1", "").max_chars, 6_000);
        assert_eq!(settings("http://127.0.0.1:8080/v1", "max_chars = 2000\n").max_chars, 2_000);
        let errs = Config::parse(&ai("http://127.0.0.1:8080/v1", "max_chars = 10\n"), Path::new("/x")).unwrap_err();
        assert_eq!(errs, vec!["ai.max_chars: expected between 200 and 100000 characters, found 10".to_string()]);
        let errs = Config::parse(&ai("http://127.0.0.1:8080/v1", "redact = \"yes\"\n"), Path::new("/x")).unwrap_err();
        assert!(errs[0].starts_with("ai.redact: "), "{errs:#?}");
    }

    #[test]
    fn each_provider_is_checked_with_messages_that_say_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ai.key"), "k\n").unwrap();
        let parse = |ai: &str| Config::parse(&format!("{GOOD}[ai]\n{ai}"), dir.path());
        let errors = |ai: &str| parse(ai).unwrap_err();

        let a = parse("provider = \"ollama\"\nmodel = \"llama3.2:3b\"\n").unwrap().ai.unwrap();
        assert_eq!((a.provider, a.base_url.as_str(), a.redact), (AiProvider::Ollama, "http://127.0.0.1:11434/v1", false));
        let a = parse(
            "provider = \"openai_compatible\"\nbase_url = \"https://llm.trust.example/v1\"\napi_key_file = \"ai.key\"\nmodel = \"m\"\n",
        )
        .unwrap()
        .ai
        .unwrap();
        assert_eq!((a.provider, a.redact, a.api_key.as_deref()), (AiProvider::OpenaiCompatible, true, Some("k")));
        let a = parse(
            "provider = \"azure\"\nendpoint = \"https://school-ai.openai.azure.com/\"\ndeployment = \"gpt-4o-mini\"\n\
             api_version = \"2024-10-21\"\napi_key_file = \"ai.key\"\n",
        )
        .unwrap()
        .ai
        .unwrap();
        assert_eq!(a.base_url, "https://school-ai.openai.azure.com");
        assert_eq!(
            (a.deployment.as_deref(), a.api_version.as_deref(), a.model.as_str()),
            (Some("gpt-4o-mini"), Some("2024-10-21"), "gpt-4o-mini")
        );
        assert!(a.redact, "Azure is not on loopback: redaction is on");

        assert_eq!(
            errors("provider = \"openai_compatible\"\nbase_url = \"https://llm.example/v1\"\nmodel = \"m\"\n"),
            vec!["ai.api_key_file: missing: provider = \"openai_compatible\" needs a key (a file holding it, mode 0600)".to_string()]
        );
        assert_eq!(
            errors("provider = \"llamacpp\"\nmodel = \"m\"\n"),
            vec!["ai.base_url: missing: provider = \"llamacpp\" needs the server's OpenAI-compatible API, such as \"http://127.0.0.1:8080/v1\"".to_string()]
        );
        let e = errors("provider = \"azure\"\nbase_url = \"https://x.example/v1\"\napi_key_file = \"ai.key\"\n");
        assert!(e.iter().any(|e| e.starts_with("ai.base_url: not used with provider = \"azure\": give ai.endpoint")), "{e:#?}");
        assert!(e.iter().any(|e| e.starts_with("ai.endpoint: missing")), "{e:#?}");
        assert!(e.iter().any(|e| e.starts_with("ai.deployment: missing")), "{e:#?}");
        assert!(e.iter().any(|e| e.starts_with("ai.api_version: missing")), "{e:#?}");
        let e = errors(
            "provider = \"azure\"\nendpoint = \"http://school-ai.openai.azure.com\"\ndeployment = \"gpt 4o\"\n\
             api_version = \"latest\"\napi_key_file = \"ai.key\"\n",
        );
        assert_eq!(
            e,
            vec![
                "ai.endpoint: Azure is reached over https only, found \"http://school-ai.openai.azure.com\"".to_string(),
                "ai.deployment: expected the deployment's name (letters, digits, - _ .), found \"gpt 4o\"".to_string(),
                "ai.api_version: expected a date such as \"2024-10-21\" (or \"2025-01-01-preview\"), found \"latest\"".to_string(),
            ]
        );
        let e = errors("provider = \"ollama\"\nmodel = \"m\"\ndeployment = \"d\"\n");
        assert_eq!(e, vec!["ai.deployment: only for provider = \"azure\" (this is \"ollama\")".to_string()]);
        let e = errors("provider = \"openai\"\nmodel = \"m\"\n");
        assert!(e[0].starts_with("ai.provider: ") && e[0].contains("openai_compatible"), "{e:#?}");
    }

    #[test]
    fn the_console_is_off_unless_configured_and_plain_http_only_on_loopback() {
        assert!(Config::parse(GOOD, Path::new("/x")).unwrap().console.is_none());
        let c = Config::parse(&format!("{GOOD}[console]\nlisten = \"127.0.0.1:8080\"\n"), Path::new("/x")).unwrap();
        assert_eq!(c.console.unwrap().listen.to_string(), "127.0.0.1:8080");
        let errs = Config::parse(&format!("{GOOD}[console]\nlisten = \"0.0.0.0:8080\"\n"), Path::new("/x")).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].starts_with("console.listen: 0.0.0.0:8080 is not a loopback address;"), "{errs:#?}");
        let errs = Config::parse(&format!("{GOOD}[console]\nlisten = \"localhost\"\n"), Path::new("/x")).unwrap_err();
        assert!(errs[0].contains("expected an address and port"), "{errs:#?}");
    }

    #[test]
    fn the_directory_import_limit_is_a_percentage() {
        let c = Config::parse(GOOD, Path::new("/x")).unwrap();
        assert_eq!(c.directory.max_change.of(30), 3, "10 % by default");
        assert_eq!(c.directory.max_change.to_string(), "10 %");
        let c = Config::parse(&format!("{GOOD}[directory]\nmax_change = \"2.5%\"\n"), Path::new("/x")).unwrap();
        assert_eq!(c.directory.max_change.of(400), 10);
        assert_eq!(c.directory.max_change.to_string(), "2.5 %");
        for bad in ["ten", "10", "150%", "-5%", "1.234%", "%"] {
            let errs = Config::parse(&format!("{GOOD}[directory]\nmax_change = \"{bad}\"\n"), Path::new("/x")).unwrap_err();
            assert_eq!(errs, vec![format!("directory.max_change: expected a percentage from 0% to 100% such as \"10%\", found {bad:?}")]);
        }
        let errs = Config::parse(&format!("{GOOD}[directory]\nmax_changes = \"10%\"\n"), Path::new("/x")).unwrap_err();
        assert_eq!(errs, ["directory.max_changes: unknown key (did you mean \"max_change\"?)"]);
    }
}
