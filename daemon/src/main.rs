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
    },
    /// File .eml files or Maildirs through the full pipeline, as the daemon would.
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
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
    /// A pupil's chronology (UPN or full name).
    Chronology {
        pupil: String,
        /// Only what this member of staff may see (their email address).
        #[arg(long = "as")]
        viewer: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A chronology bundle with attachments and SHA-256 manifest.
    Export {
        pupil: String,
        #[arg(long, value_enum, default_value = "html")]
        format: cli::export::Format,
        #[arg(long = "as")]
        viewer: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Record the outcome of an incident ("NFA" is an outcome).
    Outcome {
        incident: i64,
        text: String,
        /// The member of staff recording it (email address).
        #[arg(long)]
        by: String,
    },
    /// Messages received and what became of each (the reason for every quarantine and triage).
    Messages {
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
    /// Write a commented starter haven.toml, the default rules and new keys into DIR.
    Init { dir: PathBuf },
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
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; names the first broken entry.
    Verify,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Re-seal everything under a new key; the old key is kept beside it as KEY.old-<id>.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    haven::logging::init();
    if let Command::Inspect { file, json } = &cli.command {
        return haven::inspect::run(file, *json);
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
    let config = cli::load_config(&cli.config)?;
    if let Command::Rules { command: RulesCommand::Check } = &cli.command {
        return cli::rules::check(&config);
    }
    if let Command::Run = &cli.command {
        return haven::daemon::run(config).await.map(|()| String::new());
    }
    let app = cli::App::open(config).await?;
    let now = app.now();
    match cli.command {
        Command::Run | Command::Inspect { .. } | Command::Init { .. } | Command::Rules { command: RulesCommand::Check } => {
            unreachable!("handled above")
        }
        Command::Rules { command: RulesCommand::Test { file, json } } => cli::rules::test(&app, &file, json).await,
        Command::Ingest { paths, json } => {
            let filer = app.filer()?;
            let summary = cli::ingest::run(&filer, &paths).await?;
            Ok(if json { serde_json::to_string_pretty(&summary).unwrap_or_default() } else { summary.to_string() })
        }
        Command::Directory { command: DirectoryCommand::Import { pupils, staff, contacts } } => {
            let files = cli::directory::ImportFiles { pupils: &pupils, staff: &staff, contacts: &contacts };
            cli::directory::import(&app.store, &app.sealer()?, &app.blind_index()?, files, app.config.school.tz(), now).await.map(|r| r.to_string())
        }
        Command::Chronology { pupil, viewer, json } => {
            cli::chronology::run(&app.store, &app.sealer()?, &pupil, viewer.as_deref(), app.config.school.tz(), now, json).await
        }
        Command::Export { pupil, format, viewer, out } => {
            let req = cli::export::ExportRequest {
                query: &pupil,
                viewer: viewer.as_deref(),
                format,
                out,
                school: &app.config.school.name,
                tz: app.config.school.tz(),
                now,
            };
            cli::export::run(&app.store, &app.sealer()?, req).await.map(|p| format!("exported to {}", p.display()))
        }
        Command::Outcome { incident, text, by } => cli::outcome::record(&app.store, &app.sealer()?, incident, &text, &by, now).await,
        Command::Messages { state, json } => cli::messages::run(&app.store, state.as_deref(), json).await,
        Command::Outcomes { overdue, json } => cli::outcomes::run(&app.store, now, app.config.school.tz(), overdue, json).await,
        Command::Status { json } => cli::status::run(&app.store, app.config.intake.source.as_str(), now, json).await,
        Command::Audit { command: AuditCommand::Verify } => match app.store.verify_audit().await? {
            haven::store::AuditVerdict::Intact { entries } => Ok(format!("audit log intact: {entries} entries")),
            haven::store::AuditVerdict::Broken { id } => Err(CliError::Data(format!(
                "audit log broken at entry {id}: its hash does not match its content and the entry before it"
            ))),
        },
        Command::Key { command: KeyCommand::Rotate } => {
            let (count, id) = cli::key::rotate(&app.store, &app.config.storage.key_file).await?;
            Ok(format!("re-sealed {count:?} under key {id}; the old key is kept beside it until you delete it"))
        }
    }
}
