//! `haven init DIR`: a commented starter `haven.toml`, the shipped `rules/`, the retention
//! schedule's defaults (`retention.toml`), and new keys
//! (mode 0600) in `DIR/secrets/` (mode 0700, as is `DIR/data/`). Refuses to overwrite anything.
//! The database file is made 0600 by the store when it first opens it.

use super::CliError;
use super::key::write_new_key;
use std::path::{Path, PathBuf};

/// The shipped default rules, built into the binary so `init` works from anywhere.
const SHIPPED_RULES: &[(&str, &str)] = crate::rules::SHIPPED;

const STARTER: &str = r#"# Haven configuration. Every key is documented in the README ("Configuration").
# Secrets are never written here: *_file names a file, *_env an environment variable.

[school]
name = "Example School"
timezone = "Europe/London"
intake_address = "safeguarding@school.example"   # the mailbox staff forward to

[database]
url = "sqlite://haven.db"            # or url_env = "HAVEN_DATABASE_URL" for postgres://…

[storage]
dir = "data"
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
"#;

pub fn run(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let config = dir.join("haven.toml");
    if config.exists() {
        return Err(CliError::Usage(format!("{} already exists; nothing was changed", config.display())));
    }
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| CliError::Usage(format!("cannot create {}: {e}", p.display())))
    };
    for sub in ["rules", "secrets", "data", "mail/intake/new", "mail/intake/cur", "mail/intake/tmp", "mail/outbox"] {
        mkdir(&dir.join(sub))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The keys, and the storage folder (data at rest), are for Haven's user only.
        for private in ["secrets", "data"] {
            let _ = std::fs::set_permissions(dir.join(private), std::fs::Permissions::from_mode(0o700));
        }
    }
    let mut written = Vec::new();
    for (name, text) in SHIPPED_RULES {
        let p = dir.join("rules").join(name);
        if !p.exists() {
            std::fs::write(&p, text).map_err(|e| CliError::Usage(format!("cannot write {}: {e}", p.display())))?;
            written.push(p);
        }
    }
    for key in ["secrets/haven.key", "secrets/reply.key", "secrets/audit.key"] {
        let p = dir.join(key);
        write_new_key(&p)?;
        written.push(p);
    }
    let head = dir.join("secrets").join(crate::store::HEAD_FILE_NAME);
    crate::store::write_empty_anchor(&head)
        .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", head.display())))?;
    written.push(head);
    let retention = dir.join(crate::retention::FILE_NAME);
    if !retention.exists() {
        std::fs::write(&retention, crate::retention::DEFAULT_FILE)
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", retention.display())))?;
        written.push(retention);
    }
    std::fs::write(&config, STARTER).map_err(|e| CliError::Usage(format!("cannot write {}: {e}", config.display())))?;
    written.push(config);
    Ok(written)
}
