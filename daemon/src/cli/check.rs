//! `haven check`: everything `haven run` needs, tried the way the daemon would use it, one
//! line per check ("ok   imap     logged in to …" / "FAIL smtp     …: reason"), so a technician
//! or a monitoring system sees at once which part is broken. It logs in to IMAP and SMTP but
//! touches no mailbox and sends nothing; it reads the database but never migrates or writes
//! it. Exit 0 only when every check passes, 1 when one fails, 78 when the configuration itself
//! cannot be read (nothing else can then be checked).

use super::CliError;
use crate::config::{Config, SourceKind, TransportKind};
use crate::outbox::Transport;
use crate::outbox::smtp::SmtpSender;
use crate::seal::{KeyFiles, SealError, Sealer};
use crate::store::AuditKey;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

/// One check's verdict.
struct Line {
    ok: bool,
    part: &'static str,
    text: String,
}

impl Line {
    fn ok(part: &'static str, text: impl Into<String>) -> Line {
        Line { ok: true, part, text: text.into() }
    }

    fn fail(part: &'static str, text: impl Into<String>) -> Line {
        Line { ok: false, part, text: text.into() }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<5}{:<9}{}", if self.ok { "ok" } else { "FAIL" }, self.part, self.text)
    }
}

/// Prints each line as its check finishes (a login can take seconds) and counts failures.
struct Report {
    total: usize,
    failed: usize,
}

impl Report {
    fn print(&mut self, line: Line) {
        self.total += 1;
        if !line.ok {
            self.failed += 1;
        }
        let _ = writeln!(std::io::stdout(), "{line}");
    }
}

/// Runs every check against the configuration at `config_path`.
pub async fn run(config_path: &Path) -> Result<String, CliError> {
    let mut report = Report { total: 0, failed: 0 };
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            for error in &e.errors {
                report.print(Line::fail("config", format!("{}: {error}", e.file.display())));
            }
            return Err(CliError::Config("the configuration is invalid; nothing else was checked".into()));
        }
    };
    report.print(Line::ok("config", format!("{} read", config_path.display())));
    for line in check_keys(&config) {
        report.print(line);
    }
    report.print(check_rules(&config));
    for line in check_digests(&config) {
        report.print(line);
    }
    report.print(check_database(&config).await);
    report.print(check_intake(&config).await);
    report.print(check_outbox(&config).await);
    let _ = std::io::stdout().flush();
    if report.failed == 0 {
        Ok(String::new())
    } else {
        Err(CliError::Other(anyhow::anyhow!("{} of {} checks failed", report.failed, report.total)))
    }
}

/// The storage key, every key in the keyring folder, the reply key and the audit key: each
/// readable, well formed and private to the daemon's user.
fn check_keys(config: &Config) -> Vec<Line> {
    let mut lines = Vec::new();
    let storage = &config.storage.key_file;
    lines.push(match Sealer::from_key_file(storage).and_then(|_| pupil_keys_open(storage)) {
        Ok(()) => Line::ok("keys", format!("{} (storage key) is private", storage.display())),
        Err(e) => Line::fail("keys", e.to_string()),
    });
    let ring = KeyFiles::new(storage).ring_dir();
    match std::fs::read_dir(&ring) {
        Ok(entries) => {
            if let Some(mode) = mode_open_to_others(&ring) {
                lines.push(Line::fail(
                    "keys",
                    format!(
                        "the keyring folder {} is open to group or others (mode {mode:o}); run: chmod 700 {}",
                        ring.display(),
                        ring.display()
                    ),
                ));
            }
            let mut files: Vec<_> =
                entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "key")).collect();
            files.sort();
            for file in files {
                lines.push(match Sealer::from_key_file(&file) {
                    Ok(_) => Line::ok("keys", format!("{} (keyring) is private", file.display())),
                    Err(e) => Line::fail("keys", e.to_string()),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => lines.push(Line::fail("keys", format!("cannot read the keyring folder {}: {e}", ring.display()))),
    }
    lines.push(match super::read_reply_key(config) {
        Err(e) => Line::fail("keys", e.to_string()),
        Ok(_) => {
            let path = config.alerts.reply_key_file.as_deref().unwrap_or(Path::new(""));
            match mode_open_to_others(path) {
                Some(mode) => Line::fail(
                    "keys",
                    format!(
                        "alerts.reply_key_file: {} is readable by group or others (mode {mode:o}); run: chmod 600 {}",
                        path.display(),
                        path.display()
                    ),
                ),
                None => Line::ok("keys", format!("{} (reply key) is private", path.display())),
            }
        }
    });
    let audit = &config.storage.audit_key_file;
    lines.push(match AuditKey::from_key_file(audit) {
        Ok(_) => Line::ok("keys", format!("{} (audit key) is private", audit.display())),
        Err(e) => Line::fail("keys", e.to_string()),
    });
    lines
}

/// Every pupil's own key beside `storage` opens with the keys on disk: commands open only the
/// keys they need, so a damaged one would otherwise show only when that pupil is next needed.
/// A ring that cannot be read is left to the lines of its key files.
fn pupil_keys_open(storage: &Path) -> Result<(), SealError> {
    let files = KeyFiles::new(storage);
    match Sealer::load(&files, None, &[]) {
        Ok(ring) => files.check_pupil_keys(&ring).map(drop),
        Err(_) => Ok(()),
    }
}

/// The permission bits when group or others have any access to `path`.
fn mode_open_to_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

fn check_rules(config: &Config) -> Line {
    match crate::rules::RuleSet::load(&config.rules.dir) {
        Ok(set) => Line::ok("rules", set.summary()),
        Err(e) => Line::fail("rules", format!("{} error(s), the daemon would refuse to start:\n{e}", e.0.len())),
    }
}

/// Every digest schedule must fire at some point: a cron that never matches (30 February)
/// parses but sends nothing.
fn check_digests(config: &Config) -> Vec<Line> {
    let tz = config.school.tz();
    let now = chrono::Utc::now();
    config
        .digests
        .iter()
        .enumerate()
        .map(|(i, d)| match cron::Schedule::from_str(&d.cron) {
            Err(e) => Line::fail("digests", format!("digest[{i}].cron {:?}: {e}", d.cron)),
            Ok(schedule) => match crate::schedule::due::next_digest_slot(&schedule, tz, now) {
                Some(next) => {
                    Line::ok("digests", format!("digest[{i}] to {}: next {}", d.to, next.with_timezone(&tz).format("%a %d %b %Y %H:%M %Z")))
                }
                None => Line::fail("digests", format!("digest[{i}].cron {:?} never fires", d.cron)),
            },
        })
        .collect()
}

async fn check_database(config: &Config) -> Line {
    match crate::store::migration_state(config.database_url()).await {
        Err(e) => Line::fail("database", e.to_string()),
        Ok(crate::store::MigrationState { missing_file: Some((file, true)), pending, .. }) => Line::ok(
            "database",
            format!(
                "sqlite: {} does not exist yet; Haven creates it, with all {} migrations, when it first opens it",
                file.display(),
                pending.len()
            ),
        ),
        Ok(crate::store::MigrationState { missing_file: Some((file, false)), .. }) => {
            Line::fail("database", format!("sqlite: {} cannot be created: its folder does not exist", file.display()))
        }
        Ok(state) if !state.unknown.is_empty() => Line::fail(
            "database",
            format!(
                "{}: migrated by a newer Haven (versions {} are unknown to this binary); install that version again",
                state.backend,
                state.unknown.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            ),
        ),
        Ok(state) if state.pending.is_empty() => {
            Line::ok("database", format!("{}: opened, {} migrations applied, none pending", state.backend, state.applied))
        }
        Ok(state) => Line::ok(
            "database",
            format!(
                "{}: opened, {} migrations applied, {} pending ({}): applied when haven next starts",
                state.backend,
                state.applied,
                state.pending.len(),
                state.pending.join(", ")
            ),
        ),
    }
}

async fn check_intake(config: &Config) -> Line {
    match config.intake.source {
        SourceKind::Maildir => {
            let Some(m) = &config.intake.maildir else {
                return Line::fail("intake", "intake.maildir: missing");
            };
            let missing: Vec<&str> = ["new", "cur", "tmp"].into_iter().filter(|d| !m.path.join(d).is_dir()).collect();
            if missing.is_empty() {
                Line::ok("maildir", format!("{} has new/, cur/ and tmp/", m.path.display()))
            } else {
                Line::fail("maildir", format!("{} lacks {}", m.path.display(), missing.join(", ")))
            }
        }
        SourceKind::Imap => {
            let Some(settings) = crate::daemon::imap_settings(config) else {
                return Line::fail("imap", "intake.imap: missing");
            };
            let who = format!("{}@{}:{}", settings.username, settings.host, settings.port);
            match crate::source::imap::check_login(&settings).await {
                Ok(()) => Line::ok("imap", format!("logged in to {who}")),
                Err(e) => Line::fail("imap", format!("{who}: {e}")),
            }
        }
    }
}

async fn check_outbox(config: &Config) -> Line {
    match (config.smtp.transport, crate::daemon::outbox_transport(config)) {
        (TransportKind::Smtp, Transport::Smtp(settings)) => {
            let whom = format!("{}:{}", settings.host, settings.port);
            let sender = match SmtpSender::new(&settings) {
                Ok(s) => s,
                Err(e) => return Line::fail("smtp", format!("{whom}: {e}")),
            };
            match sender.check_connection().await {
                Ok(()) => match &settings.username {
                    Some(user) => Line::ok("smtp", format!("authenticated to {whom} as {user} (nothing sent)")),
                    None => Line::ok("smtp", format!("connected to {whom}, no login configured (nothing sent)")),
                },
                Err(e) => Line::fail("smtp", format!("{whom}: {e}")),
            }
        }
        (_, _) => {
            Line::ok("smtp", format!("alerts are written to the Maildir {} (smtp.transport = \"maildir\")", config.smtp.maildir.display()))
        }
    }
}
