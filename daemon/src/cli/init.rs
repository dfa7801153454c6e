//! `haven init`: a commented starter `haven.toml`, the shipped `rules/` (with the leads'
//! reference, `rules/README.md`), the retention schedule's defaults (`retention.toml`) and new
//! keys (mode 0600, in a `secrets/` folder of mode 0700).
//! Either all in one folder (`haven init DIR`, to try Haven) or laid out as the packaged
//! systemd unit expects (`haven init --system`): configuration and rules in `/etc/haven`, keys
//! and the SQLite database in `/var/lib/haven`. Refuses to overwrite anything. The database
//! file is made 0600 by the store when it first opens it.

use super::CliError;
use super::key::write_new_key;
use std::path::{Path, PathBuf};

/// The shipped default rules, built into the binary so `init` works from anywhere.
const SHIPPED_RULES: &[(&str, &str)] = crate::rules::SHIPPED;

/// The safeguarding leads' reference to the rule files, written beside them.
const RULES_README: &str = include_str!("../../../rules/README.md");

/// Where `haven init` writes: the config file, the rules folder and the state folder (keys).
#[derive(Debug, Clone)]
pub struct Layout {
    pub config: PathBuf,
    pub rules: PathBuf,
    pub state: PathBuf,
    /// Extra folders to create (the try-it Maildirs).
    mailboxes: Vec<PathBuf>,
    /// The haven.toml text.
    starter: &'static str,
    /// Whether files are handed to the `haven` user (a system install run as root).
    system: bool,
}

impl Layout {
    /// Everything in `dir`: `haven.toml`, `rules/`, `secrets/`, and Maildirs for intake and
    /// outbox, so `haven run` works at once on mail dropped into `mail/intake/new/`.
    pub fn in_folder(dir: &Path) -> Layout {
        Layout {
            config: dir.join("haven.toml"),
            rules: dir.join("rules"),
            state: dir.to_path_buf(),
            mailboxes: ["mail/intake/new", "mail/intake/cur", "mail/intake/tmp", "mail/outbox"].iter().map(|m| dir.join(m)).collect(),
            starter: STARTER,
            system: false,
        }
    }

    /// The system layout under `root` (`/` on a real install): `etc/haven/haven.toml`,
    /// `etc/haven/rules/`, `var/lib/haven/secrets/`. The config names the final absolute
    /// paths, so a tree prepared under another root works once copied to `/`.
    pub fn system(root: &Path) -> Layout {
        Layout {
            config: root.join("etc/haven/haven.toml"),
            rules: root.join("etc/haven/rules"),
            state: root.join("var/lib/haven"),
            mailboxes: Vec::new(),
            starter: SYSTEM_STARTER,
            system: true,
        }
    }
}

const STARTER: &str = r#"# Haven configuration. Every key is documented in the README ("Configuration").
# Secrets are never written here: *_file names a file, *_env an environment variable.

[school]
name = "Example School"
timezone = "Europe/London"
intake_address = "safeguarding@school.example"   # the mailbox staff forward to

[database]
url = "sqlite://haven.db"            # or url_env = "HAVEN_DATABASE_URL" for postgres://…

[storage]
key_file = "secrets/haven.key"       # created by `haven init`; back it up separately
audit_key_file = "secrets/audit.key" # the audit log's HMAC key; its head is kept in secrets/audit.head

[intake]
source = "maildir"                   # "imap" for a real mailbox (see [intake.imap] below)
max_message_size = "50MB"
# trusted_authserv_id = "mx.school.example"   # strongly recommended: require DMARC/DKIM pass

[intake.maildir]
path = "mail/intake"

# [intake.imap]
# host = "outlook.office365.com"
# port = 993
# security = "tls"                   # "tls" | "starttls" | "plain" (loopback only)
# username = "safeguarding@school.example"
# auth = "password"                  # or "xoauth2" with token_file / token_command
# password_file = "secrets/imap-password"
# mailbox = "INBOX"
# filed_folder = "Haven/Filed"
# quarantine_folder = "Haven/Quarantine"
# poll_interval = "60s"              # only when the server has no IDLE

[smtp]
transport = "maildir"                # "smtp" to send for real
from = "Haven <safeguarding@school.example>"
maildir = "mail/outbox"
# host = "smtp.office365.com"
# port = 587
# security = "starttls"
# username = "safeguarding@school.example"
# password_file = "secrets/smtp-password"

[rules]
dir = "rules"

[alerts]
detail = "minimal"                   # "minimal" | "summary" | "full"
reply_key_file = "secrets/reply.key"

[[digest]]
to = "role:dsl"
cron = "0 30 7 * * Mon-Fri"          # sec min hour day month weekday, school time zone

# AI suggestions (off unless configured; see "AI suggestions" in the README): a model on the
# school's own machine reads each incident after filing and suggests; it never decides.
# [ai]
# provider = "llamacpp"              # llama-server; or "ollama", "openai_compatible", "azure"
# base_url = "http://127.0.0.1:8080/v1"
# api_key_file = "secrets/ai.key"    # the server's --api-key
# model = "smollm2-135m"             # suggestions are labelled with this name
# timeout = "60s"
# redact = true                      # names, addresses, phone numbers become placeholders
#                                    # (always on unless the server is on this machine)
# max_chars = 6000                   # longer messages are cut before they are sent
"#;

/// The system install's haven.toml: IMAP intake and SMTP alerts, secrets from the credentials
/// the systemd unit loads (`LoadCredential=`), state in `/var/lib/haven`.
const SYSTEM_STARTER: &str = r#"# Haven configuration (/etc/haven/haven.toml). Every key is documented in the README
# ("Configuration"). Secrets are never written here: *_file names a file, *_env an environment
# variable. The *_file paths under /run/credentials/haven.service/ are the files systemd hands
# to the service from /etc/haven/credentials/ (see LoadCredential= in haven.service).
# After editing: sudo -u haven haven check --config /etc/haven/haven.toml

[school]
name = "Example School"
timezone = "Europe/London"
intake_address = "safeguarding@school.example"   # the mailbox staff forward to

[database]
url = "sqlite:///var/lib/haven/haven.db"   # or url_file = "/run/credentials/haven.service/database-url" for postgres://…

[storage]
key_file = "/var/lib/haven/secrets/haven.key"         # back it up separately from the database
audit_key_file = "/var/lib/haven/secrets/audit.key"   # its head is kept in secrets/audit.head

[intake]
source = "imap"
max_message_size = "50MB"                  # MB = 1,000,000 bytes; MiB = 1,048,576
# trusted_authserv_id = "mx.school.example"   # strongly recommended: require DMARC/DKIM pass

[intake.imap]
host = "outlook.office365.com"
port = 993
security = "tls"                           # "tls" | "starttls" | "plain" (loopback only)
username = "safeguarding@school.example"
auth = "password"                          # or "xoauth2" with token_file / token_command
password_file = "/run/credentials/haven.service/imap-password"
mailbox = "INBOX"
filed_folder = "Haven/Filed"
quarantine_folder = "Haven/Quarantine"
poll_interval = "60s"                      # only when the server has no IDLE; 90s, 15m, 2h…

[smtp]
transport = "smtp"
host = "smtp.office365.com"
port = 587
security = "starttls"
username = "safeguarding@school.example"
password_file = "/run/credentials/haven.service/smtp-password"
from = "Haven <safeguarding@school.example>"

[rules]
dir = "rules"                              # /etc/haven/rules, beside this file

[alerts]
detail = "minimal"                         # "minimal" | "summary" | "full"
reply_key_file = "/var/lib/haven/secrets/reply.key"

[[digest]]
to = "role:dsl"
cron = "0 30 7 * * Mon-Fri"                # sec min hour day month weekday, school time zone
"#;

/// Writes the layout; the lines to print (what was written, what to do next).
pub fn run(layout: &Layout) -> Result<String, CliError> {
    if layout.config.exists() {
        return Err(CliError::Usage(format!("{} already exists; nothing was changed", layout.config.display())));
    }
    let secrets = layout.state.join("secrets");
    let config_dir = layout.config.parent().unwrap_or(Path::new("."));
    for dir in [config_dir, &layout.rules, &layout.state, &secrets].into_iter().chain(layout.mailboxes.iter().map(PathBuf::as_path)) {
        std::fs::create_dir_all(dir).map_err(|e| CliError::Other(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    }
    // The keys, and on a system install the state folder (the database), are for Haven's user
    // only.
    set_mode(&secrets, 0o700)?;
    if layout.system {
        set_mode(&layout.state, 0o700)?;
    }
    let mut written = Vec::new();
    let rule_files = SHIPPED_RULES.iter().copied().chain([("README.md", RULES_README)]);
    for (name, text) in rule_files {
        let p = layout.rules.join(name);
        if !p.exists() {
            write(&p, text)?;
            written.push(p);
        }
    }
    for key in ["haven.key", "reply.key", "audit.key"] {
        let p = secrets.join(key);
        write_new_key(&p)?;
        written.push(p);
    }
    let head = secrets.join(crate::store::HEAD_FILE_NAME);
    crate::store::write_empty_anchor(&head).map_err(|e| CliError::Other(anyhow::anyhow!("cannot create {}: {e}", head.display())))?;
    written.push(head);
    // The retention schedule lives beside haven.toml (Haven reads it from the config's folder).
    let retention = config_dir.join(crate::retention::FILE_NAME);
    if !retention.exists() {
        write(&retention, crate::retention::DEFAULT_FILE)?;
        written.push(retention);
    }
    write(&layout.config, layout.starter)?;
    written.push(layout.config.clone());
    let mut out = format!("wrote\n{}\n", written.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n"));
    if layout.system {
        // The daemon runs as `haven` and reads the config; only root may change it.
        set_mode(&layout.config, 0o640)?;
        match haven_user() {
            Some((uid, gid)) => {
                chown(&layout.state, uid, gid)?;
                chown(&secrets, uid, gid)?;
                for p in written.iter().filter(|p| p.starts_with(&secrets)) {
                    chown(p, uid, gid)?;
                }
                std::os::unix::fs::chown(&layout.config, None, Some(gid))
                    .map_err(|e| CliError::Other(anyhow::anyhow!("cannot give {} to group haven: {e}", layout.config.display())))?;
                out.push_str(&format!("{} and its keys belong to the haven user.\n", layout.state.display()));
            }
            None => out.push_str(&format!(
                "There is no haven user yet: create it (systemd-sysusers, as the package does), then \
                 chown -R haven:haven {} and chgrp haven {}.\n",
                layout.state.display(),
                layout.config.display()
            )),
        }
        out.push_str(&format!(
            "Next: edit {config}; put the IMAP and SMTP passwords in /etc/haven/credentials/ (root, mode 0600); \
             import the directory with `sudo -u haven haven directory import …`; run \
             `sudo -u haven haven check --config {config}`; then `systemctl enable --now haven`.",
            config = "/etc/haven/haven.toml"
        ));
    } else {
        out.push_str("Next: edit haven.toml, then `haven directory import …`, `haven check` and `haven run`.");
    }
    Ok(out)
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|e| CliError::Other(anyhow::anyhow!("cannot write {}: {e}", path.display())))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot set the mode of {}: {e}", path.display())))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), CliError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot give {} to the haven user: {e}", path.display())))
}

/// The `haven` user's uid and gid from /etc/passwd, when the package (or sysusers) made it.
fn haven_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == "haven").then_some(())?;
        let (uid, gid) = (f.nth(1)?.parse().ok()?, f.next()?.parse().ok()?);
        Some((uid, gid))
    })
}
