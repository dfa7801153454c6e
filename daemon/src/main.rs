//! The `haven` binary: parses the command line and hands over to the library (`haven::cli`).

use clap::{Parser, Subcommand};
use haven::cli::{self, CliError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "haven", version, about = "Safeguarding intake and alerting for schools")]
struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, env = "HAVEN_CONFIG", default_value = "haven.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: intake, outbox and scheduler until SIGTERM; SIGHUP reloads the rules.
    Run,
    /// Read one message file without config or database and show how Haven reads it.
    Inspect {
        file: PathBuf,
        /// Print the JSON contract instead of a summary.
        #[arg(long)]
        json: bool,
        /// Read forwarded dates written without a zone in this zone (the school's, such as
        /// Europe/London), as the daemon does; UTC when not given.
        #[arg(long)]
        timezone: Option<String>,
    },
    /// File .eml files or Maildirs through the full pipeline, as the daemon would.
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Old records: file incidents and history, but queue no alerts and open no outcome
        /// deadlines (unless a rule says on_backfill = "alert").
        #[arg(long)]
        backfill: bool,
    },
    /// Check the routing rules, or dry-run one message through them.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Import pupils, staff and contacts from CSV exports of the MIS.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// A pupil's chronology (UPN or full name), as one member of staff may see it.
    Chronology {
        pupil: String,
        /// Who is looking (their email address): only what they may see is shown, and the view
        /// is audited under their name beside the operating-system user.
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
        #[arg(long)]
        json: bool,
    },
    /// A chronology bundle with attachments and SHA-256 manifest.
    Export {
        pupil: String,
        #[arg(long, value_enum, default_value = "html")]
        format: cli::export::Format,
        /// Who is exporting (their email address): only what they may see is exported.
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Record the outcome of an incident ("NFA" is an outcome).
    Outcome {
        incident: i64,
        text: String,
        /// The member of staff recording it (email address): the DSL team, or someone the
        /// incident was alerted to who may still see it.
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Confirm or remove a pupil only mentioned by name in an incident's text (DSL team).
    Link {
        action: cli::link::LinkAction,
        incident: i64,
        /// The pupil: UPN or full name.
        pupil: String,
        /// The member of the DSL team deciding (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// The DSL console's sign-in: unlock a second factor locked by wrong codes, or reset it.
    Console {
        #[command(subcommand)]
        command: ConsoleCommand,
    },
    /// Messages received and what became of each (the reason for every quarantine and triage).
    Messages {
        #[command(subcommand)]
        command: Option<MessagesCommand>,
        /// filed | awaiting_triage | quarantined | duplicate | ignored
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Outstanding outcomes, oldest due first.
    Outcomes {
        /// Only those past their due time.
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        json: bool,
    },
    /// What a technician checks first.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The encryption key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check the installation as the daemon would use it: keys and their permissions, rules,
    /// digest schedules, database migrations, IMAP login, SMTP login (nothing is sent). One
    /// line per check; exit 0 only when all pass, 1 when one fails, 78 for an unreadable
    /// configuration.
    Check,
    /// Write a commented starter haven.toml, the default rules and new keys into DIR.
    Init { dir: PathBuf },
    /// The retention schedule (retention.toml beside haven.toml): check it, list what falls due
    /// for review, record a review decision. Nothing is ever deleted by these commands.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Set or release a hold (litigation, police, inquiry, SAR, complaint) on a pupil or an
    /// incident: while it stands nothing of theirs can be decided for destruction.
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// The holds that stand (or, with --all, every hold ever set).
    Holds {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Validate retention.toml against the school's categories (exit 78 with file:line:column
    /// errors); without a retention.toml, shows the shipped IRMS defaults.
    Check,
    /// Pupils whose records fall due for review: today, or within --within (e.g. 90d).
    ///
    /// Example: haven retention due --within 90d
    Due {
        /// Also list what falls due within this long from today (e.g. 30d, 90d).
        #[arg(long, default_value = "0s", value_parser = parse_within)]
        within: std::time::Duration,
        /// Work from this date instead of today (YYYY-MM-DD), to plan ahead.
        #[arg(long, value_name = "YYYY-MM-DD")]
        on: Option<chrono::NaiveDate>,
        #[arg(long)]
        json: bool,
    },
    /// Record what was decided when a pupil's series fell due (DSL team, head or DPO; audited).
    ///
    /// Example: haven retention review A123456789012 --series pastoral --decision retain
    /// --until 2031-09-01 --reason "sibling case open" --by dsl@school.example
    Review {
        /// The pupil: UPN or full name.
        pupil: String,
        /// The series, as `haven retention check` lists them.
        #[arg(long)]
        series: String,
        #[arg(long, value_enum)]
        decision: cli::retention::Decision,
        /// With retain: when the records are next reviewed.
        #[arg(long, value_name = "YYYY-MM-DD")]
        until: Option<chrono::NaiveDate>,
        /// Why (kept sealed, for the record).
        #[arg(long)]
        reason: String,
        /// Who decides (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
}

#[derive(Subcommand)]
enum HoldCommand {
    /// Place a hold on a pupil (--pupil) or one incident (--incident).
    ///
    /// Example: haven hold set --pupil A123456789012 --reason police --note "Op Elm, DC Shah" --by dsl@school.example
    Set {
        /// The pupil: UPN or full name.
        #[arg(long, conflicts_with = "incident", required_unless_present = "incident")]
        pupil: Option<String>,
        /// The incident's number.
        #[arg(long)]
        incident: Option<i64>,
        #[arg(long, value_enum)]
        reason: haven::store::HoldReason,
        /// What the hold is for: a case reference, who asked (kept sealed).
        #[arg(long)]
        note: String,
        /// Who sets it: the DSL team, the head or the DPO (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Release a standing hold by its number (`haven holds` lists them).
    Release {
        id: i64,
        /// Why it ends (kept sealed).
        #[arg(long)]
        note: String,
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
}

fn parse_within(s: &str) -> Result<std::time::Duration, String> {
    haven::config::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (e.g. 30d, 90d)"))
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate every rule file (exit 78 with file:line:column errors).
    Check,
    /// Dry run: what Haven would do with this message. Files nothing, sends nothing.
    Test {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    Import {
        #[arg(long)]
        pupils: PathBuf,
        #[arg(long)]
        staff: PathBuf,
        #[arg(long)]
        contacts: PathBuf,
        /// Apply an import that marks more pupils as left, or deactivates more staff, than
        /// `directory.max_change` allows (never one that leaves no DSL team).
        #[arg(long)]
        allow_mass_change: bool,
    },
}

#[derive(Subcommand)]
enum MessagesCommand {
    /// File a quarantined message as if its sender check had passed (DSL team only, audited).
    Release {
        /// The message's number, as `haven messages --state quarantined` lists it.
        id: i64,
        /// The member of the DSL team releasing it (email address).
        #[arg(long)]
        by: String,
        /// Why it may be filed, for the audit log.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum ConsoleCommand {
    /// Unlock STAFF_EMAIL's authenticator after wrong codes (DSL team only, audited); with
    /// --reset, they enrol a new authenticator at their next sign-in and every session ends.
    Unlock {
        #[arg(value_name = "STAFF_EMAIL")]
        email: String,
        /// The member of the DSL team unlocking it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        #[arg(long)]
        reset: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the HMAC chain and its anchored head; names the first entry that disagrees.
    Verify,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Add a new key to the keyring, make it current and re-seal everything under it (online;
    /// safe to interrupt). The old key stays in the ring until you retire it.
    Rotate,
    /// Re-seal whatever is not yet under the current key (resumes an interrupted rotation).
    Reseal,
    /// Open every sealed value with the keyring and count them by key; with --without, as if
    /// that key were gone. Changes nothing.
    Verify {
        #[arg(long, value_name = "KEY_ID")]
        without: Option<String>,
    },
    /// Stop using an old key: only when every sealed value opens without it.
    Retire {
        #[arg(value_name = "KEY_ID")]
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    haven::logging::init(haven::logging::LogSettings::peek(&cli.config));
    if let Command::Inspect { file, json, timezone } = &cli.command {
        return haven::inspect::run(file, *json, timezone.as_deref());
    }
    if let Command::Init { dir } = &cli.command {
        return report(cli::init::run(dir).map(|written| {
            let list: Vec<String> = written.iter().map(|p| format!("  {}", p.display())).collect();
            format!("wrote\n{}\nnext: edit haven.toml, then `haven directory import …` and `haven run`", list.join("\n"))
        }));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("haven: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    report(runtime.block_on(dispatch(cli)))
}

fn report(result: Result<String, CliError>) -> ExitCode {
    match result {
        Ok(out) => {
            if !out.is_empty() {
                // A closed pipe (`haven chronology … | head`) is not an error worth a panic.
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), "{}", out.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("haven: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<String, CliError> {
    if let Command::Check = &cli.command {
        return cli::check::run(&cli.config).await;
    }
    let config = cli::load_config(&cli.config)?;
    if let Command::Rules { command: RulesCommand::Check } = &cli.command {
        return cli::rules::check(&config);
    }
    if let Command::Retention { command: RetentionCommand::Check } = &cli.command {
        return cli::retention::check(&config);
    }
    if let Command::Run = &cli.command {
        return haven::daemon::run(config).await.map(|()| String::new());
    }
    let app = cli::App::open(config).await?;
    let now = app.now();
    match cli.command {
        Command::Run | Command::Check | Command::Inspect { .. } | Command::Init { .. } | Command::Rules { command: RulesCommand::Check } => {
            unreachable!("handled above")
        }
        Command::Rules { command: RulesCommand::Test { file, json } } => cli::rules::test(&app, &file, json).await,
        Command::Ingest { paths, json, backfill } => {
            let filer = if backfill { app.filer().await?.backfilling() } else { app.filer().await? };
            let summary = cli::ingest::run(&filer, &paths).await?;
            Ok(if json { serde_json::to_string_pretty(&summary).unwrap_or_default() } else { summary.to_string() })
        }
        Command::Directory { command: DirectoryCommand::Import { pupils, staff, contacts, allow_mass_change } } => {
            let files = cli::directory::ImportFiles { pupils: &pupils, staff: &staff, contacts: &contacts };
            let guard = cli::directory::ImportGuard { max_change: app.config.directory.max_change, allow_mass_change };
            let imported = cli::directory::import(&app.store, &app.sealer().await?, &app.blind_index()?, files, guard, app.config.school.tz(), now).await?;
            for warning in &imported.warnings {
                eprintln!("haven: warning: {warning}");
            }
            Ok(imported.report.to_string())
        }
        Command::Chronology { pupil, viewer, json } => {
            cli::chronology::run(&app.store, &app.sealer().await?, &pupil, &viewer, app.config.school.tz(), now, json).await
        }
        Command::Export { pupil, format, viewer, out } => {
            let req = cli::export::ExportRequest {
                query: &pupil,
                viewer: &viewer,
                format,
                out,
                school: &app.config.school.name,
                tz: app.config.school.tz(),
                now,
            };
            cli::export::run(&app.store, &app.sealer().await?, req).await.map(|p| format!("exported to {}", p.display()))
        }
        Command::Retention { command: RetentionCommand::Check } => unreachable!("handled above"),
        Command::Retention { command: RetentionCommand::Due { within, on, json } } => cli::retention::due_list(&app, within, on, json).await,
        Command::Retention { command: RetentionCommand::Review { pupil, series, decision, until, reason, by } } => {
            cli::retention::review(&app, cli::retention::ReviewRequest { pupil: &pupil, series: &series, decision, until, reason: &reason, by: &by }).await
        }
        Command::Hold { command: HoldCommand::Set { pupil, incident, reason, note, by } } => {
            let target = match (&pupil, incident) {
                (Some(p), _) => cli::hold::Target::Pupil(p),
                (None, Some(i)) => cli::hold::Target::Incident(i),
                (None, None) => return Err(CliError::Usage("give --pupil or --incident".into())),
            };
            cli::hold::set(&app.store, &app.sealer().await?, target, reason, &note, &by, now).await
        }
        Command::Hold { command: HoldCommand::Release { id, note, by } } => cli::hold::release(&app.store, &app.sealer().await?, id, &note, &by, now).await,
        Command::Holds { all, json } => cli::hold::list(&app.store, &app.sealer().await?, all, app.config.school.tz(), json).await,
        Command::Outcome { incident, text, by } => cli::outcome::record(&app.store, &app.sealer().await?, incident, &text, &by, now).await,
        Command::Link { action, incident, pupil, by } => cli::link::run(&app.store, &app.sealer().await?, action, incident, &pupil, &by, now).await,
        Command::Messages { command: Some(MessagesCommand::Release { id, by, reason }), .. } => {
            cli::messages::release(&app.filer().await?, id, &by, &reason).await
        }
        Command::Console { command: ConsoleCommand::Unlock { email, by, reset } } => {
            cli::console::unlock(&app.store, &app.sealer().await?, &email, &by, reset, now).await
        }
        Command::Messages { command: None, state, json } => cli::messages::run(&app.store, state.as_deref(), json).await,
        Command::Outcomes { overdue, json } => cli::outcomes::run(&app.store, now, app.config.school.tz(), overdue, json).await,
        Command::Status { json } => cli::status::run(&app.store, app.config.intake.source.as_str(), app.config.school.tz(), now, json).await,
        Command::Audit { command: AuditCommand::Verify } => cli::audit::verify(&app.store, &app.config).await,
        Command::Key { command } => {
            let key_file = &app.config.storage.key_file;
            match command {
                KeyCommand::Rotate => cli::key::rotate(&app.store, key_file, now).await,
                KeyCommand::Reseal => cli::key::reseal(&app.store, key_file).await,
                KeyCommand::Verify { without } => cli::key::verify(&app.store, key_file, without.as_deref()).await,
                KeyCommand::Retire { id } => cli::key::retire(&app.store, key_file, &id, now).await,
            }
        }
    }
}
