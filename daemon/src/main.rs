//! The `haven` binary: parses the command line and hands over to the library (`haven::cli`).

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use haven::cli::{self, CliError};
use haven::store::MessageState;
use std::path::PathBuf;
use std::process::ExitCode;

/// The exit codes every command shares (SPEC "Command line"), shown under each command's help.
const EXIT_CODES: &str = "Exit codes: 0 done; 1 failed (a server, the database or a file could not be reached); \
2 the command line is wrong or the command may not do that; 65 the input is unusable; \
78 the configuration, the rules or a key file is invalid (fix it, then run `haven check`).";

#[derive(Parser)]
#[command(
    name = "haven",
    version,
    about = "Safeguarding intake and alerting for schools",
    long_about = "Haven reads the school's safeguarding mailbox, files each message on the right pupil's \
chronology, alerts the people the rules name and keeps reminding until every escalated incident has \
an outcome. `haven run` is the daemon; the other commands look at and look after what it keeps.",
    after_help = concat!(
        "Start: `haven init --system` (or `haven init DIR` to try it), edit haven.toml, \
`haven directory import …`, `haven check`, then `haven run` (or `systemctl enable --now haven`).\n\n",
        "Exit codes: 0 done; 1 failed (a server, the database or a file could not be reached); \
2 the command line is wrong or the command may not do that; 65 the input is unusable; \
78 the configuration, the rules or a key file is invalid."
    )
)]
struct Cli {
    /// The configuration file; relative paths inside it are relative to its folder.
    #[arg(long, short, global = true, env = "HAVEN_CONFIG", default_value = "haven.toml", value_name = "FILE")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: intake, outbox and scheduler until SIGTERM; SIGHUP reloads the rules.
    #[command(after_help = "Example: haven run --config /etc/haven/haven.toml\n\n\
Exit codes: 0 stopped by SIGTERM or SIGINT after finishing the message in hand; 1 failed; \
78 the configuration, the rules or a key file is invalid (systemd does not restart it).")]
    Run,
    /// Read one message file without config or database and show how Haven reads it.
    #[command(after_help = "Example: haven inspect forwarded.eml --timezone Europe/London\n\n\
Exit codes: 0 read; 2 usage (an unknown time zone among them); 65 the file is not a usable message.")]
    Inspect {
        /// The message file (.eml, as saved from a mail program or found in a Maildir).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the JSON contract instead of a summary.
        #[arg(long)]
        json: bool,
        /// Read forwarded dates written without a zone in this zone (the school's, such as
        /// Europe/London), as the daemon does; UTC when not given.
        #[arg(long, value_name = "ZONE")]
        timezone: Option<String>,
    },
    /// File message files, Maildir++ folders and mbox files through the full pipeline, as the
    /// daemon would (a backfill). Files are read, never moved; filing twice records nothing new.
    #[command(after_help = concat!(
        "Example: haven ingest /srv/old-mail/Maildir archive-2025.mbox\n\n",
        "A progress bar (or, when standard error is not a terminal, a line every few seconds) shows on \
standard error; the summary goes to standard output.\n\n",
        "Exit codes: 0 done (unreadable files are listed); 1 failed (the database); 2 a path cannot be \
read; 78 the configuration, rules or a key file is invalid."
    ))]
    Ingest {
        /// Message files (.eml), Maildir folders (with their .Subfolders), mbox files (first line
        /// "From "), or folders of .eml files; in this order.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Old records: file incidents and history, but queue no alerts and open no outcome
        /// deadlines (unless a rule says on_backfill = "alert").
        #[arg(long)]
        backfill: bool,
    },
    /// Check the routing rules, or dry-run one message through them.
    #[command(after_help = format!("Examples: haven rules check; haven rules test forwarded.eml\n\n{EXIT_CODES}"))]
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Import pupils, staff and contacts from CSV exports of the MIS.
    #[command(after_help = format!(
        "Example: haven directory import --pupils pupils.csv --staff staff.csv --contacts contacts.csv\n\n{EXIT_CODES}"
    ))]
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// A pupil's chronology (UPN or full name), as one member of staff may see it.
    #[command(after_help = format!(
        "Examples: haven chronology \"Jane Smith\" --as dsl@school.example; \
haven chronology E100000000001 --as dsl@school.example --format multiagency --out jane-multiagency.pdf\n\n\
--format multiagency: the incidents marked significant (`haven incident mark`) in the partnership's columns \
(date, significant event, source, impact on the child, action/outcome); CSV on standard output, or into --out \
as .csv, .html or .pdf.\n\n{EXIT_CODES}"
    ))]
    Chronology {
        /// The pupil: a UPN, or a full name as the directory has it.
        pupil: String,
        /// Who is looking (their email address): only what they may see is shown, and the view
        /// is audited under their name beside the operating-system user.
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
        /// Print the chronology as JSON (the same as --format json).
        #[arg(long)]
        json: bool,
        /// text (the default), json, or multiagency.
        #[arg(long, value_enum, conflicts_with = "json")]
        format: Option<ChronologyFormat>,
        /// With --format multiagency: the file to write (.csv, .html or .pdf; never overwritten).
        #[arg(long, value_name = "FILE", requires = "format")]
        out: Option<PathBuf>,
    },
    /// Mark an incident for the multi-agency chronology (DSL team).
    #[command(after_help = format!("Example: haven incident mark 12 --not-significant --by dsl@school.example\n\n{EXIT_CODES}"))]
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// A chronology bundle with attachments and SHA-256 manifest: HTML, JSON, or an archival
    /// PDF (PDF/A-2b) whose every page names the school, the UPN, the export id and the
    /// manifest's hash.
    #[command(after_help = format!(
        "Example: haven export E100000000001 --as dsl@school.example --format pdf --out jane-smith\n\n{EXIT_CODES}"
    ))]
    Export {
        /// The pupil: a UPN, or a full name as the directory has it.
        pupil: String,
        /// The bundle's format: html, json, or pdf (chronology.pdf beside chronology.json).
        #[arg(long, value_enum, default_value = "html")]
        format: cli::export::Format,
        /// Who is exporting (their email address): only what they may see is exported.
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
        /// Where to write the bundle; a name made from the pupil and the date when not given.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Record the outcome of an incident ("NFA" is an outcome). Start it with a decision code
    /// to have it counted: NFA, MONITOR, EARLY-HELP, REFERRED CSC ref …, LADO, POLICE, or
    /// NO-REFERRAL because ….
    #[command(after_help = format!(
        "Example: haven outcome 42 \"REFERRED CSC ref 2026/4471; parents spoken to\" --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Outcome {
        /// The incident's number, as alerts and `haven outcomes` show it.
        incident: i64,
        /// What was decided or done, in a few words, optionally starting with a decision code
        /// (a NO-REFERRAL without "because …" is refused).
        text: String,
        /// The member of staff recording it (email address): the DSL team, or someone the
        /// incident was alerted to who may still see it.
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Confirm or remove a pupil only mentioned by name in an incident's text (DSL team).
    #[command(after_help = format!("Example: haven link confirm 42 \"Leo Smith\" --by dsl@school.example\n\n{EXIT_CODES}"))]
    Link {
        /// confirm: the pupil becomes linked to the incident; remove: the incident leaves their
        /// chronology.
        action: cli::link::LinkAction,
        /// The incident's number.
        incident: i64,
        /// The pupil: UPN or full name.
        pupil: String,
        /// The member of the DSL team deciding (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// The DSL console's sign-in: unlock a second factor locked by wrong codes, or reset it.
    #[command(after_help = format!("Example: haven console unlock teacher@school.example --by dsl@school.example\n\n{EXIT_CODES}"))]
    Console {
        #[command(subcommand)]
        command: ConsoleCommand,
    },
    /// Messages received and what became of each (the reason for every quarantine and triage).
    #[command(after_help = format!("Examples: haven messages --state quarantined; haven messages release 17 --by dsl@school.example --reason \"former colleague\"\n\n{EXIT_CODES}"))]
    Messages {
        #[command(subcommand)]
        command: Option<MessagesCommand>,
        /// Only the messages in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Outstanding outcomes, oldest due first.
    #[command(after_help = format!("Example: haven outcomes --overdue\n\n{EXIT_CODES}"))]
    Outcomes {
        /// Only those past their due time.
        #[arg(long)]
        overdue: bool,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What a technician checks first.
    #[command(after_help = format!("Example: haven status --json\n\n{EXIT_CODES}"))]
    Status {
        /// Print the status as JSON (the SPEC's contract).
        #[arg(long)]
        json: bool,
    },
    /// The audit log.
    #[command(after_help = format!("Example: haven audit verify\n\n{EXIT_CODES}"))]
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The encryption key.
    #[command(after_help = format!("Examples: haven key rotate; haven key verify --without KEY_ID; haven key retire KEY_ID\n\n{EXIT_CODES}"))]
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check the installation as the daemon would use it: keys and their permissions, rules,
    /// digest schedules, database migrations, IMAP login, SMTP login (nothing is sent). One
    /// line per check; exit 0 only when all pass, 1 when one fails, 78 for an unreadable
    /// configuration.
    #[command(after_help = "Example: sudo -u haven haven check --config /etc/haven/haven.toml\n\n\
Exit codes: 0 every check passed; 1 a check failed (its line says FAIL and why); 78 the \
configuration cannot be read.")]
    Check,
    /// Write a commented starter haven.toml, the default rules and new keys: into DIR to try
    /// Haven, or with --system where the packaged systemd unit expects them.
    #[command(after_help = "Examples: haven init ./school; sudo haven init --system\n\n\
--system writes /etc/haven/haven.toml, /etc/haven/rules/ (with README.md), and keys and the \
database under /var/lib/haven (secrets/ and the SQLite file), owned by the haven user when it \
exists. Nothing that exists is overwritten.\n\n\
Exit codes: 0 written; 1 a file could not be written; 2 the configuration exists already or \
the arguments are wrong.")]
    Init {
        /// The folder to write into (created when missing).
        #[arg(required_unless_present = "system", conflicts_with = "system", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Lay out a system install: /etc/haven for configuration and rules, /var/lib/haven for
        /// keys and data, matching the packaged systemd unit.
        #[arg(long)]
        system: bool,
        /// With --system: write under this folder instead of / (to prepare an image or try the
        /// layout without root).
        #[arg(long, requires = "system", value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example: haven completions bash > /etc/bash_completion.d/haven\n\nExit codes: 0 printed; 2 unknown shell.")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), as the package installs it as haven(1).
    #[command(after_help = "Example: haven man | man -l -\n\nExit codes: 0 printed; 1 it could not be written.")]
    Man,
    /// The retention schedule (retention.toml beside haven.toml): check it, list what falls due
    /// for review, record a review decision. Nothing is ever deleted by these commands.
    #[command(after_help = format!("Examples: haven retention check; haven retention due --within 90d\n\n{EXIT_CODES}"))]
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// AI suggestions: measure the configured model on a labelled set.
    #[command(after_help = format!("Example: haven ai eval tests/fixtures/ai-eval\n\n{EXIT_CODES}"))]
    Ai {
        #[command(subcommand)]
        command: AiCommand,
    },
    /// Set or release a hold (litigation, police, inquiry, SAR, complaint) on a pupil or an
    /// incident: while it stands nothing of theirs can be decided for destruction.
    #[command(after_help = format!("Example: haven hold set --pupil A123456789012 --reason police --note \"Op Elm\" --by dsl@school.example\n\n{EXIT_CODES}"))]
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// Destroy a pupil's records in one retention series: asked for by the DSL team, approved
    /// by the head or the DPO (never the one who asked), carried out after a cooling-off period.
    #[command(after_help = format!(
        "Example: haven dispose request A123456789012 --series child_protection_file --by dsl@school.example \
         --reason \"past retention, reviewed\"\n\n{EXIT_CODES}"
    ))]
    Dispose {
        #[command(subcommand)]
        command: DisposeCommand,
    },
    /// Every disposal, newest first, with its state (requested, approved, cancelled, done).
    #[command(after_help = format!("Example: haven disposals --json\n\n{EXIT_CODES}"))]
    Disposals {
        /// Print the disposals as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Subject access requests: open one (the answer is due a calendar month from receipt; an
    /// open request holds the subject's records), collect what the school holds, decide each
    /// item with an exemption code, export exactly what is disclosed as a PDF, close it.
    #[command(after_help = format!(
        "Example: haven sar open --subject p.nowak@example.com --received 2026-11-20 --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Sar {
        #[command(subcommand)]
        command: SarCommand,
    },
    /// Record that a pupil has left (with their destination school when known): a pupil with
    /// any record gets a transfer case, its deadline counted in school days (school.terms_file,
    /// [transfer]). An unknown destination raises the children-missing-education action.
    #[command(after_help = format!(
        "Example: haven leaver A123456789012 --left-on 2026-10-23 --destination \"Brook Academy <dsl@brook.sch.example>\" \
         --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Leaver {
        /// The pupil: a UPN, or a full name as the directory has it.
        pupil: String,
        /// The day they left the roll (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        left_on: chrono::NaiveDate,
        /// The destination school and its DSL: "SCHOOL NAME <dsl@school>" (or just the name).
        #[arg(long, value_name = "SCHOOL")]
        destination: Option<String>,
        /// The member of the DSL team recording it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Transfer cases of pupils who left: the deadline and how it stands, the destination, the
    /// receipt (DSL team only; audited).
    #[command(after_help = format!("Example: haven transfers --as dsl@school.example\n\n{EXIT_CODES}"))]
    Transfers {
        /// Who is looking (a member of the DSL team, email address).
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
        /// Closed cases too.
        #[arg(long)]
        all: bool,
        /// Print the cases as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A leaver's child-protection file: prepare the signed bundle, record it as sent, or
    /// receive one from another school (DSL team only; audited).
    #[command(after_help = format!(
        "Examples: haven transfer prepare 3 --summary concerns.txt --by dsl@school.example; \
         haven transfer send 3 --by dsl@school.example; haven transfer receive transfer-3-A123456789012-20270209.zip --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Transfer {
        #[command(subcommand)]
        command: TransferCommand,
    },
    /// Reports across pupils: the safeguarding summary for governors or the DSL team.
    #[command(after_help = format!(
        "Example: haven report summary --term \"Autumn 2026\" --as dsl@school.example --format pdf --out autumn.pdf\n\n{EXIT_CODES}"
    ))]
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Record a referral of an incident to another agency (the DSL team); reports count them
    /// and the inspection pack lists them.
    #[command(after_help = format!(
        "Example: haven referral add 42 --agency CSC --reference 2026/4471 --on 2026-11-18 --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Referral {
        #[command(subcommand)]
        command: ReferralCommand,
    },
    /// Every referral recorded, newest first (the DSL team; audited).
    #[command(after_help = format!("Example: haven referrals --as dsl@school.example\n\n{EXIT_CODES}"))]
    Referrals {
        /// Who is looking: a member of the DSL team (email address).
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record or end a multi-agency plan a pupil is on (the DSL team); reviews are reminded.
    #[command(after_help = format!(
        "Example: haven plan add E100000000003 --kind child-protection --starts 2026-11-20 --review-every 6w --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// The plans open now (or, with --all, every plan), newest first (the DSL team; audited).
    #[command(after_help = format!("Example: haven plans --as dsl@school.example\n\n{EXIT_CODES}"))]
    Plans {
        /// Ended plans too.
        #[arg(long)]
        all: bool,
        /// Who is looking: a member of the DSL team (email address).
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The holds that stand (or, with --all, every hold ever set).
    #[command(after_help = format!("Example: haven holds --all\n\n{EXIT_CODES}"))]
    Holds {
        /// Released holds too.
        #[arg(long)]
        all: bool,
        /// Print the holds as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ChronologyFormat {
    Text,
    Json,
    /// The significant events in the partnership's columns.
    Multiagency,
}

#[derive(Subcommand)]
enum IncidentCommand {
    /// Mark it significant (with a summary and its impact on the child) or not significant.
    #[command(after_help = format!(
        "Example: haven incident mark 12 --significant --summary \"Disclosed being hit by uncle at weekend\" \
--impact \"Frightened to go home; bruise on arm\" --by dsl@school.example\n\n\
A mark is kept beside the incident, which is never changed; the newest mark counts, and every mark is audited.\n\n{EXIT_CODES}"
    ))]
    Mark {
        /// The incident's number.
        incident: i64,
        /// A significant event: it is a row of the multi-agency chronology.
        #[arg(long, conflicts_with = "not_significant", required_unless_present = "not_significant")]
        significant: bool,
        /// Not (or no longer) significant: left out of the multi-agency chronology.
        #[arg(long)]
        not_significant: bool,
        /// One line on what happened, as partner agencies will read it.
        #[arg(long, value_name = "TEXT")]
        summary: Option<String>,
        /// What it meant for the child.
        #[arg(long, value_name = "TEXT")]
        impact: Option<String>,
        /// Who marks it: a member of the DSL team (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Counts for a term beside the two before it (or for two dates): incidents by category,
    /// month, year group, house and SEN; outcomes, referrals, plans, open and overdue actions;
    /// median and 90th-percentile times. For governors no one is named and counts from 1 to 5
    /// read "fewer than 5". The DSL team, SLT or the head may run it (the DSL's: the DSL team).
    #[command(after_help = format!(
        "Example: haven report summary --term \"Autumn 2026\" --as head@school.example --format html --out autumn.html\n\n\
         Terms come from school.terms_file (README \"Reports\").\n\n{EXIT_CODES}"
    ))]
    Summary {
        /// A term named in school.terms_file; the two terms before it are shown beside it.
        #[arg(long, conflicts_with_all = ["from", "to"], value_name = "NAME")]
        term: Option<String>,
        /// The first day (YYYY-MM-DD), with --to.
        #[arg(long, requires = "to", value_name = "DATE")]
        from: Option<chrono::NaiveDate>,
        /// The last day, included (YYYY-MM-DD), with --from.
        #[arg(long, requires = "from", value_name = "DATE")]
        to: Option<chrono::NaiveDate>,
        /// governors: nobody named, small numbers hidden; dsl: exact counts, recorders named.
        #[arg(long, value_enum, default_value = "governors")]
        audience: haven::report::summary::Audience,
        #[arg(long, value_enum, default_value = "text")]
        format: cli::report::ReportFormat,
        /// Write the report to this new file instead of printing it (needed for pdf).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Who runs it (their email address); the run is audited under their name.
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
    },
    /// The lists an inspector asks for at 8am on the first day: referrals to the DSL with their
    /// resolution, LADO referrals, pupils with open social-care cases or plans, overdue
    /// outcomes; written as a folder with MANIFEST.sha256. The DSL team only.
    #[command(after_help = format!(
        "Example: haven report inspection --as dsl@school.example --format pdf --out inspection\n\n{EXIT_CODES}"
    ))]
    Inspection {
        /// The first day the lists cover (YYYY-MM-DD); a year ago when not given.
        #[arg(long, value_name = "DATE")]
        since: Option<chrono::NaiveDate>,
        #[arg(long, value_enum, default_value = "html")]
        format: cli::report::ReportFormat,
        /// The folder to write (new); a name with the date when not given.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Who runs it: a member of the DSL team (email address); audited.
        #[arg(long = "as", value_name = "STAFF_EMAIL")]
        viewer: String,
    },
}

#[derive(Subcommand)]
enum ReferralCommand {
    /// Record that INCIDENT was referred to an agency on a day.
    #[command(after_help = format!(
        "Example: haven referral add 42 --agency LADO --on 2026-11-18 --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Add {
        /// The incident's number.
        incident: i64,
        /// Where it was referred: CSC (children's social care), LADO, POLICE, EARLY-HELP or OTHER.
        #[arg(long, value_enum)]
        agency: cli::referral::Agency,
        /// The agency's reference, if it gave one (kept sealed).
        #[arg(long, value_name = "TEXT")]
        reference: Option<String>,
        /// The day it was referred (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        on: chrono::NaiveDate,
        /// The member of the DSL team recording it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Record a plan a pupil is on, from a day, with reviews reminded every so often.
    #[command(after_help = format!(
        "Example: haven plan add \"Amira Khan\" --kind early-help --starts 2026-11-20 --review-every 6w --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Add {
        /// The pupil: a UPN, or a full name as the directory has it.
        pupil: String,
        #[arg(long, value_enum)]
        kind: cli::plan::PlanKind,
        /// The day the plan started (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        starts: chrono::NaiveDate,
        /// How often it is reviewed (e.g. 6w, 30d): the DSL team is emailed when a review falls due.
        #[arg(long, value_name = "DURATION", value_parser = cli::plan::parse_review_every)]
        review_every: Option<i64>,
        /// The member of the DSL team recording it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// End a plan on a day, with the reason (stepped down, closed, moved).
    #[command(after_help = format!(
        "Example: haven plan end 3 --on 2027-02-01 --reason \"stepped down to early help\" --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    End {
        /// The plan's number, as `haven plans` shows it.
        plan: i64,
        /// The day it ended (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        on: chrono::NaiveDate,
        /// Why it ended (kept sealed).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The member of the DSL team recording it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Validate retention.toml against the school's categories (exit 78 with file:line:column
    /// errors); without a retention.toml, shows the shipped IRMS defaults.
    #[command(after_help = "Example: haven retention check\n\nExit codes: 0 valid; 78 invalid (each error with file:line:column).")]
    Check,
    /// Pupils whose records fall due for review: today, or within --within (e.g. 90d).
    #[command(after_help = format!("Example: haven retention due --within 90d\n\n{EXIT_CODES}"))]
    Due {
        /// Also list what falls due within this long from today (e.g. 30d, 90d).
        #[arg(long, default_value = "0s", value_parser = parse_within)]
        within: std::time::Duration,
        /// Work from this date instead of today (YYYY-MM-DD), to plan ahead.
        #[arg(long, value_name = "YYYY-MM-DD")]
        on: Option<chrono::NaiveDate>,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record what was decided when a pupil's series fell due (DSL team, head or DPO; audited).
    #[command(after_help = format!(
        "Example: haven retention review A123456789012 --series pastoral --decision retain --until 2031-09-01 \
         --reason \"sibling case open\" --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Review {
        /// The pupil: UPN or full name.
        pupil: String,
        /// The series, as `haven retention check` lists them.
        #[arg(long)]
        series: String,
        /// Keep the records until --until, or record that they should be destroyed.
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
enum DisposeCommand {
    /// Ask for a pupil's records in one series to be destroyed (DSL team). Refused unless a
    /// destroy decision stands on review or the series is past its date, and while any hold
    /// stands on the pupil or one of their incidents.
    #[command(after_help = format!(
        "Example: haven dispose request A123456789012 --series child_protection_file --by dsl@school.example \
         --reason \"past retention, reviewed 3 Mar\"\n\n{EXIT_CODES}"
    ))]
    Request {
        /// The pupil: UPN or full name.
        pupil: String,
        /// The retention series, as `haven retention check` lists them.
        #[arg(long)]
        series: String,
        /// Who asks: a member of the DSL team (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// Why (kept sealed; cleared when the disposal is carried out).
        #[arg(long)]
        reason: String,
    },
    /// Approve a requested disposal (the head or the DPO, not the person who asked); the
    /// cooling-off period starts.
    #[command(after_help = format!("Example: haven dispose approve 3 --by head@school.example\n\n{EXIT_CODES}"))]
    Approve {
        /// The disposal's number (`haven disposals`).
        id: i64,
        /// Who approves: the head or the DPO (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Cancel a disposal that has not been carried out (DSL team, head or DPO).
    #[command(after_help = format!("Example: haven dispose cancel 3 --by dsl@school.example --reason \"sibling case reopened\"\n\n{EXIT_CODES}"))]
    Cancel {
        /// The disposal's number.
        id: i64,
        /// Who cancels: the DSL team, the head or the DPO (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// Why (kept sealed).
        #[arg(long)]
        reason: String,
    },
    /// Carry out an approved disposal once its cooling-off is over: deletes the records from
    /// the database and the original messages from the mailbox, and writes the disposal log.
    #[command(after_help = format!("Example: haven dispose run 3 --by dsl@school.example\n\n{EXIT_CODES}"))]
    Run {
        /// The disposal's number.
        id: i64,
        /// Who carries it out: the DSL team, the head or the DPO (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Print the certificate of destruction of a carried-out disposal (no pupil content).
    #[command(after_help = format!("Examples: haven dispose certificate 3 --format html > certificate.html; haven dispose certificate 3 --format pdf --out D-0003.pdf\n\n{EXIT_CODES}"))]
    Certificate {
        /// The disposal's number.
        id: i64,
        /// text or html (to standard output), or pdf (PDF/A, into --out).
        #[arg(long, value_enum, default_value = "text")]
        format: cli::dispose::CertificateFormat,
        /// The PDF file to write (a new file; never overwritten).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SarCommand {
    /// Open a request about a pupil (UPN or full name) or an adult (a contact's or a member of
    /// staff's address). Holds are placed at once on the pupil, or on the adult's children.
    #[command(after_help = format!(
        "Example: haven sar open --subject p.nowak@example.com --received 2026-11-20 --requester \"Piotr Nowak, by email\" \
         --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Open {
        /// What is asked for: the subject's personal data (subject-access, one calendar month),
        /// or a parent's request for their child's educational record (educational-record,
        /// maintained schools: 15 school days from school.terms_file, without the safeguarding
        /// chronology).
        #[arg(long, value_enum, default_value_t = cli::sar::Kind::SubjectAccess)]
        kind: cli::sar::Kind,
        /// Whom the request is about: a pupil's UPN or full name, or an adult's email address.
        #[arg(long)]
        subject: String,
        /// The day the request reached the school (day 1 of the month the school has to answer).
        #[arg(long, value_name = "YYYY-MM-DD")]
        received: chrono::NaiveDate,
        /// Who opens it: the DSL team or the DPO (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// Who asked and how to reach them, if not the subject (kept sealed).
        #[arg(long)]
        requester: Option<String>,
    },
    /// Every request, newest first, with its deadline and how many items are undecided.
    #[command(after_help = format!("Example: haven sar list --by dsl@school.example --json\n\n{EXIT_CODES}"))]
    List {
        /// Who is looking: the DSL team or the DPO (email address; audited).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// Print the requests as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Extend an open request's deadline (by up to two more months, decided within the first).
    #[command(after_help = format!(
        "Example: haven sar extend 1 --to 2027-01-20 --reason \"complex: four years of records\" --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Extend {
        /// The request's number (`haven sar list`).
        id: i64,
        /// The new date the answer is due.
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: chrono::NaiveDate,
        /// Why it needs longer (kept sealed; the requester must be told).
        #[arg(long)]
        reason: String,
        /// Who does it: the DSL team or the DPO (email address; audited).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Close a request; the holds it placed are released.
    #[command(after_help = format!("Example: haven sar close 1 --by dsl@school.example\n\n{EXIT_CODES}"))]
    Close {
        /// The request's number (`haven sar list`).
        id: i64,
        /// Who does it: the DSL team or the DPO (email address; audited).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Gather everything about the subject as the request's items, each flagged for review.
    #[command(after_help = format!("Example: haven sar collect 1 --by dsl@school.example\n\n{EXIT_CODES}"))]
    Collect {
        /// The request's number (`haven sar list`).
        id: i64,
        /// Who does it: the DSL team or the DPO (email address; audited).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Show every item of a request in full, with its flags and its decision.
    #[command(after_help = format!("Example: haven sar items 1 --by dsl@school.example\n\n{EXIT_CODES}"))]
    Items {
        /// The request's number (`haven sar list`).
        id: i64,
        /// Who does it: the DSL team or the DPO (email address; audited).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Decide one item (or several): disclose it, withhold it, or disclose it with texts
    /// withheld, each withholding under an exemption code, always with a reason.
    #[command(
        group(clap::ArgGroup::new("choice").required(true).args(["disclose", "withhold", "redact"])),
        after_help = format!(
            "Example: haven sar decide 1 3 --redact \"Kai Turner\" --exemption S2P3-third-party --reason \"another pupil\" \
             --by dsl@school.example\n\nExemption codes: {}\n\n{EXIT_CODES}",
            haven::sar::Exemption::ALL.iter().map(|e| e.code()).collect::<Vec<_>>().join(", ")
        )
    )]
    Decide {
        /// The request's number.
        id: i64,
        /// The item's number (`haven sar items`), or several: 1,4 or 2-9 (the same decision for each).
        #[arg(value_name = "ITEMS")]
        item: String,
        /// Disclose the item as it is.
        #[arg(long)]
        disclose: bool,
        /// Withhold the whole item (with --exemption).
        #[arg(long)]
        withhold: bool,
        /// Disclose the item with these texts withheld (with --exemption); each must occur in it.
        #[arg(long, num_args = 1.., value_name = "TEXT")]
        redact: Vec<String>,
        /// The exemption code withholding relies on.
        #[arg(long, value_name = "CODE")]
        exemption: Option<String>,
        /// Why (kept sealed, in the disclosure log).
        #[arg(long)]
        reason: String,
        /// Who was consulted (social care, the police), when, and what they said: needed for an
        /// item of child abuse data and a serious-harm or best-interests decision (kept sealed).
        #[arg(long, value_name = "TEXT", conflicts_with = "no_consultation_reason")]
        consulted: Option<String>,
        /// Or why nobody was consulted.
        #[arg(long, value_name = "TEXT")]
        no_consultation_reason: Option<String>,
        /// Who does it: the DSL team or the DPO (email address; audited).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Write the answer as a PDF of exactly what is disclosed, and log a sealed copy of it.
    #[command(after_help = format!("Example: haven sar export 1 --out sar-0001.pdf --by dsl@school.example\n\n{EXIT_CODES}"))]
    Export {
        /// The request's number (`haven sar list`).
        id: i64,
        /// The PDF to write (never overwritten).
        #[arg(long, value_name = "FILE.pdf")]
        out: PathBuf,
        /// Who does it: the DSL team or the DPO (email address; audited).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// Check the disclosure log's sealed copies against their SHA-256 and the audit chain
    /// (exit 65 when one does not match), and with --file, that a file is what was sent.
    #[command(after_help = format!("Example: haven sar verify 1 --file sar-0001.pdf --by dsl@school.example\n\n{EXIT_CODES}"))]
    Verify {
        /// The request's number (`haven sar list`).
        id: i64,
        /// A file to compare with the latest copy sent.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Who does it: the DSL team or the DPO (email address; audited).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
}

#[derive(Subcommand)]
enum AiCommand {
    /// Run a labelled set of messages through the model [ai] configures and print per-category
    /// accuracy, recall and precision of high/urgent risk, the valid-JSON rate and latency.
    /// Files nothing, sends nothing (the text goes to the model as triage would send it).
    #[command(after_help = format!("Example: haven ai eval tests/fixtures/ai-eval --json\n\n{EXIT_CODES}"))]
    Eval {
        /// A folder of *.toml files of [[scenario]] entries (id, category, risk, text).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The model's measured precision at this school, from the DSL team's "AI: right" and
    /// "AI: wrong" replies to alerts. For the DSL team (audited).
    #[command(after_help = format!("Example: haven ai report --as dsl@school.example\n\n{EXIT_CODES}"))]
    Report {
        /// The member of the DSL team asking.
        #[arg(long = "as", value_name = "EMAIL")]
        viewer: String,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HoldCommand {
    /// Place a hold on a pupil (--pupil) or one incident (--incident).
    #[command(after_help = format!(
        "Example: haven hold set --pupil A123456789012 --reason police --note \"Op Elm, DC Shah\" --by dsl@school.example\n\n{EXIT_CODES}"
    ))]
    Set {
        /// The pupil: UPN or full name.
        #[arg(long, conflicts_with = "incident", required_unless_present = "incident")]
        pupil: Option<String>,
        /// The incident's number.
        #[arg(long)]
        incident: Option<i64>,
        /// Why the records must be kept.
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
    #[command(after_help = format!("Example: haven hold release 3 --note \"case closed\" --by dsl@school.example\n\n{EXIT_CODES}"))]
    Release {
        /// The hold's number.
        id: i64,
        /// Why it ends (kept sealed).
        #[arg(long)]
        note: String,
        /// Who releases it: the DSL team, the head or the DPO (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
}

async fn sar(app: &cli::App, command: SarCommand) -> Result<String, CliError> {
    use cli::{sar, sar_export, sar_items};
    match command {
        SarCommand::Open { kind, subject, received, by, requester } => {
            sar::open(app, sar::OpenRequest { kind, subject: &subject, received, by: &by, requester: requester.as_deref() }).await
        }
        SarCommand::List { by, json } => sar::list(app, &by, json).await,
        SarCommand::Extend { id, to, reason, by } => sar::extend(app, id, to, &reason, &by).await,
        SarCommand::Close { id, by } => sar::close(app, id, &by).await,
        SarCommand::Collect { id, by } => sar_items::collect(app, id, &by).await,
        SarCommand::Items { id, by } => sar_items::items(app, id, &by).await,
        SarCommand::Decide { id, item, disclose: _, withhold, redact, exemption, reason, consulted, no_consultation_reason, by } => {
            let choice = if !redact.is_empty() {
                sar_items::Choice::Redact(redact)
            } else if withhold {
                sar_items::Choice::Withhold
            } else {
                sar_items::Choice::Disclose
            };
            let items = haven::sar::parse_items(&item).map_err(|e| CliError::Usage(format!("{e}; nothing was done")))?;
            let req = sar_items::DecideRequest {
                id,
                items,
                choice,
                exemption: exemption.as_deref(),
                reason: &reason,
                consulted: consulted.as_deref(),
                no_consultation: no_consultation_reason.as_deref(),
                by: &by,
            };
            sar_items::decide(app, req).await
        }
        SarCommand::Export { id, out, by } => sar_export::export(app, id, &out, &by).await,
        SarCommand::Verify { id, file, by } => sar_export::verify(app, id, file.as_deref(), &by).await,
    }
}

fn parse_within(s: &str) -> Result<std::time::Duration, String> {
    haven::config::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (e.g. 30d, 90d)"))
}

/// The states `haven messages --state` lists.
#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    /// Filed on a pupil's chronology.
    Filed,
    /// Waiting for someone to say which pupil it is about.
    #[value(name = "awaiting_triage", alias = "awaiting-triage")]
    AwaitingTriage,
    /// Kept apart: the sender could not be trusted, or it could not be read.
    Quarantined,
    /// The same message was recorded before.
    Duplicate,
    /// Auto-replies, bounces and Haven's own mail.
    Ignored,
}

impl StateArg {
    fn state(self) -> MessageState {
        match self {
            StateArg::Filed => MessageState::Filed,
            StateArg::AwaitingTriage => MessageState::AwaitingTriage,
            StateArg::Quarantined => MessageState::Quarantined,
            StateArg::Duplicate => MessageState::Duplicate,
            StateArg::Ignored => MessageState::Ignored,
        }
    }
}

#[derive(Subcommand)]
enum TransferCommand {
    /// Build the bundle: the chronology (PDF and JSON) with its attachments, a front sheet with
    /// your summary of the main concerns, receipt instructions, every file's SHA-256 and a
    /// manifest signed with the school's transfer key; a folder and the same as one .zip.
    #[command(after_help = format!("Example: haven transfer prepare 3 --summary concerns.txt --by dsl@school.example\n\n{EXIT_CODES}"))]
    Prepare {
        /// The transfer case's number, as `haven transfers` shows it.
        case: i64,
        /// A text file with the summary of the main concerns for the receiving DSL.
        #[arg(long, value_name = "FILE")]
        summary: PathBuf,
        /// The member of the DSL team preparing it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// Where to write the folder (the .zip goes beside it); a name from the case, the UPN and
        /// the date when not given.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Record the prepared bundle as sent through the school's own encrypted mail, now, by
    /// you; the receipt is chased after [transfer] receipt_within school days.
    #[command(after_help = format!("Example: haven transfer send 3 --by dsl@school.example\n\n{EXIT_CODES}"))]
    Send {
        /// The transfer case's number.
        case: i64,
        /// The member of the DSL team who sent it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// The destination runs Haven: send this prepared .zip encrypted to its key pinned in
        /// transfer.schools_file, to its intake address.
        #[arg(long, value_name = "ZIP")]
        to_haven: Option<PathBuf>,
    },
    /// Tell the destination school's DSL, before the file goes, that a safeguarding file will
    /// follow and whom to contact here; the pupil is not named unless [transfer]
    /// notice_names_pupil = true. The daemon sends it; it is recorded on the case.
    #[command(
        name = "notify-ahead",
        after_help = format!("Example: haven transfer notify-ahead 3 --by dsl@school.example\n\n{EXIT_CODES}")
    )]
    NotifyAhead {
        /// The transfer case's number, as `haven transfers` shows it.
        case: i64,
        /// The member of the DSL team sending it (email address): the notice gives their name
        /// and address as the contact.
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
    },
    /// This school's transfer keys: the signing key's fingerprint, and the entry other Haven
    /// schools put in their transfer.schools_file to send to it.
    #[command(after_help = format!("Example: haven transfer key\n\n{EXIT_CODES}"))]
    Key,
    /// Receive another school's bundle (folder or .zip): every file and the signed manifest are
    /// checked (a changed bundle is refused and nothing filed), the entries are filed under
    /// "Previous school: NAME" with their original dates, the DSL (and the SENCO for a pupil
    /// with SEN) are alerted and the receipt is sent.
    #[command(after_help = format!("Example: haven transfer receive transfer-3-A123456789012-20270209.zip --by dsl@school.example\n\n{EXIT_CODES}"))]
    Receive {
        /// The bundle: its folder, or the .zip.
        #[arg(value_name = "BUNDLE", required_unless_present = "message", conflicts_with = "message")]
        bundle: Option<PathBuf>,
        /// A message the intake kept: a file another Haven school sent encrypted to this one.
        #[arg(long, value_name = "N")]
        message: Option<i64>,
        /// The member of the DSL team receiving it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// The sending school's signing-key fingerprint, as their DSL gave it: the bundle must
        /// be signed with that key.
        #[arg(long, value_name = "FINGERPRINT")]
        key: Option<String>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate every rule file (exit 78 with file:line:column errors).
    #[command(after_help = "Example: haven rules check\n\nExit codes: 0 valid; 78 invalid (each error with file:line:column).")]
    Check,
    /// Dry run: what Haven would do with this message. Files nothing, sends nothing.
    #[command(after_help = format!("Examples: haven rules test forwarded.eml --json; haven rules test forwarded.eml --ai\n\n{EXIT_CODES}"))]
    Test {
        /// The message file (.eml).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
        /// Ask the model [ai] configures too, and show its suggestion (the text is sent to it
        /// as triage would send it).
        #[arg(long)]
        ai: bool,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Replace the directory with the MIS's current export (pupils who left are kept, marked left).
    #[command(after_help = format!(
        "Example: haven directory import --pupils pupils.csv --staff staff.csv --contacts contacts.csv\n\n{EXIT_CODES}"
    ))]
    Import {
        /// Pupils CSV (UPN, names, year, tutor group…; README "Directory import" lists the columns).
        #[arg(long, value_name = "CSV")]
        pupils: PathBuf,
        /// Staff CSV (email, names, roles).
        #[arg(long, value_name = "CSV")]
        staff: PathBuf,
        /// Parent and carer contacts CSV (email, pupil UPN, relationship).
        #[arg(long, value_name = "CSV")]
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
    #[command(after_help = format!(
        "Example: haven messages release 17 --by dsl@school.example --reason \"former colleague, confirmed by phone\"\n\n{EXIT_CODES}"
    ))]
    Release {
        /// The message's number, as `haven messages --state quarantined` lists it.
        id: i64,
        /// The member of the DSL team releasing it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// Why it may be filed, for the audit log.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum ConsoleCommand {
    /// Unlock STAFF_EMAIL's authenticator after wrong codes (DSL team only, audited); with
    /// --reset, they enrol a new authenticator at their next sign-in and every session ends.
    #[command(after_help = format!("Example: haven console unlock teacher@school.example --by dsl@school.example --reset\n\n{EXIT_CODES}"))]
    Unlock {
        /// The member of staff whose authenticator is locked (email address).
        #[arg(value_name = "STAFF_EMAIL")]
        email: String,
        /// The member of the DSL team unlocking it (email address).
        #[arg(long, value_name = "STAFF_EMAIL")]
        by: String,
        /// Forget their authenticator and recovery codes: they enrol afresh at next sign-in.
        #[arg(long)]
        reset: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the HMAC chain and its anchored head; names the first entry that disagrees.
    #[command(
        after_help = "Example: haven audit verify\n\nExit codes: 0 the chain is whole; 65 it is broken (the first bad entry is named); 78 a key file is invalid."
    )]
    Verify,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Add a new key to the keyring, make it current and re-seal everything under it (online;
    /// safe to interrupt). The old key stays in the ring until you retire it.
    #[command(after_help = format!("Example: haven key rotate\n\n{EXIT_CODES}"))]
    Rotate,
    /// Re-seal whatever is not yet under the current key (resumes an interrupted rotation).
    #[command(after_help = format!("Example: haven key reseal\n\n{EXIT_CODES}"))]
    Reseal,
    /// Open every sealed value with the keyring and count them by key; with --without, as if
    /// that key were gone. Changes nothing.
    #[command(after_help = format!("Example: haven key verify --without 3f2a9c1d\n\n{EXIT_CODES}"))]
    Verify {
        /// Check as if this key (an id `haven key verify` prints) were gone.
        #[arg(long, value_name = "KEY_ID")]
        without: Option<String>,
    },
    /// Stop using an old key: only when every sealed value opens without it.
    #[command(after_help = format!("Example: haven key retire 3f2a9c1d\n\n{EXIT_CODES}"))]
    Retire {
        /// The old key's id, as `haven key rotate` printed it.
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
    if let Command::Init { dir, system: _, root } = &cli.command {
        let layout = match dir {
            Some(dir) => cli::init::Layout::in_folder(dir),
            None => cli::init::Layout::system(root),
        };
        return report(cli::init::run(&layout));
    }
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "haven", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Command::Man = &cli.command {
        return report(
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map(|()| String::new())
                .map_err(|e| CliError::Other(anyhow::anyhow!("cannot write the manual page: {e}"))),
        );
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
        Command::Run
        | Command::Check
        | Command::Inspect { .. }
        | Command::Init { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Rules { command: RulesCommand::Check } => {
            unreachable!("handled above")
        }
        Command::Rules { command: RulesCommand::Test { file, json, ai } } => cli::rules::test(&app, &file, json, ai).await,
        Command::Ai { command: AiCommand::Eval { dir, json } } => cli::ai::eval(&app, &dir, json).await,
        Command::Ai { command: AiCommand::Report { viewer, json } } => cli::ai::report(&app, &viewer, json, now).await,
        Command::Ingest { paths, json, backfill } => {
            let filer = if backfill { app.filer().await?.backfilling() } else { app.filer().await? };
            let summary = cli::ingest::run(&filer, &paths, app.config.intake.max_message_size).await?;
            Ok(if json { serde_json::to_string_pretty(&summary).unwrap_or_default() } else { summary.to_string() })
        }
        Command::Directory { command: DirectoryCommand::Import { pupils, staff, contacts, allow_mass_change } } => {
            let files = cli::directory::ImportFiles { pupils: &pupils, staff: &staff, contacts: &contacts };
            let guard = cli::directory::ImportGuard { max_change: app.config.directory.max_change, allow_mass_change };
            let imported =
                cli::directory::import(&app.store, &app.sealer().await?, &app.blind_index()?, files, guard, app.config.school.tz(), now)
                    .await?;
            for warning in &imported.warnings {
                eprintln!("haven: warning: {warning}");
            }
            let transfers = cli::transfer::open_for_leavers(&app).await?;
            Ok([imported.report.to_string()].into_iter().chain(transfers).collect::<Vec<_>>().join("\n"))
        }
        Command::Chronology { pupil, viewer, json: _, format: Some(ChronologyFormat::Multiagency), out } => {
            let req = cli::multiagency::Request {
                query: &pupil,
                viewer: &viewer,
                school: &app.config.school.name,
                out: out.as_deref(),
                tz: app.config.school.tz(),
                now,
            };
            cli::multiagency::run(&app.store, &app.sealer().await?, &app.blind_index()?, &req).await
        }
        Command::Chronology { out: Some(_), .. } => Err(CliError::Usage("--out is for --format multiagency".into())),
        Command::Chronology { pupil, viewer, json, format, out: None } => {
            let json = json || format == Some(ChronologyFormat::Json);
            cli::chronology::run(&app.store, &app.sealer().await?, &app.blind_index()?, &pupil, &viewer, app.config.school.tz(), now, json)
                .await
        }
        Command::Incident { command: IncidentCommand::Mark { incident, significant, not_significant: _, summary, impact, by } } => {
            let req = cli::mark::MarkRequest { incident, significant, summary: summary.as_deref(), impact: impact.as_deref(), by: &by };
            cli::mark::mark(&app.store, &app.sealer().await?, &req, now).await
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
            cli::export::run(&app.store, &app.sealer().await?, &app.blind_index()?, req)
                .await
                .map(|p| format!("exported to {}", p.display()))
        }
        Command::Retention { command: RetentionCommand::Check } => unreachable!("handled above"),
        Command::Retention { command: RetentionCommand::Due { within, on, json } } => {
            cli::retention::due_list(&app, within, on, json).await
        }
        Command::Retention { command: RetentionCommand::Review { pupil, series, decision, until, reason, by } } => {
            cli::retention::review(
                &app,
                cli::retention::ReviewRequest { pupil: &pupil, series: &series, decision, until, reason: &reason, by: &by },
            )
            .await
        }
        Command::Hold { command: HoldCommand::Set { pupil, incident, reason, note, by } } => {
            let target = match (&pupil, incident) {
                (Some(p), _) => cli::hold::Target::Pupil(p),
                (None, Some(i)) => cli::hold::Target::Incident(i),
                (None, None) => return Err(CliError::Usage("give --pupil or --incident".into())),
            };
            cli::hold::set(&app.store, &app.sealer().await?, target, reason, &note, &by, now).await
        }
        Command::Hold { command: HoldCommand::Release { id, note, by } } => {
            cli::hold::release(&app.store, &app.sealer().await?, id, &note, &by, now).await
        }
        Command::Dispose { command: DisposeCommand::Request { pupil, series, by, reason } } => {
            cli::dispose::request(&app, cli::dispose::Request { pupil: &pupil, series: &series, by: &by, reason: &reason }).await
        }
        Command::Dispose { command: DisposeCommand::Approve { id, by } } => cli::dispose::approve(&app, id, &by).await,
        Command::Dispose { command: DisposeCommand::Cancel { id, by, reason } } => cli::dispose::cancel(&app, id, &by, &reason).await,
        Command::Dispose { command: DisposeCommand::Run { id, by } } => cli::dispose::run(&app, id, &by).await,
        Command::Dispose { command: DisposeCommand::Certificate { id, format, out } } => {
            cli::dispose::certificate(&app, id, format, out.as_deref()).await
        }
        Command::Disposals { json } => cli::dispose::list(&app, json).await,
        Command::Sar { command } => sar(&app, command).await,
        Command::Leaver { pupil, left_on, destination, by } => {
            cli::transfer::leaver(&app, cli::transfer::Leaver { pupil: &pupil, left_on, destination: destination.as_deref(), by: &by })
                .await
        }
        Command::Transfer { command: TransferCommand::Prepare { case, summary, by, out } } => {
            cli::transfer_send::prepare(&app, cli::transfer_send::Prepare { case, summary: &summary, by: &by, out }).await
        }
        Command::Transfer { command: TransferCommand::Send { case, by, to_haven } } => {
            cli::transfer_send::send(&app, case, &by, to_haven.as_deref()).await
        }
        Command::Transfer { command: TransferCommand::NotifyAhead { case, by } } => {
            cli::transfer_notice::notify_ahead(&app, case, &by).await
        }
        Command::Transfer { command: TransferCommand::Key } => cli::transfer_send::key(&app),
        Command::Transfer { command: TransferCommand::Receive { bundle, message, by, key } } => {
            let from = match (&bundle, message) {
                (Some(path), _) => cli::transfer_receive::BundleFrom::Path(path),
                (None, Some(id)) => cli::transfer_receive::BundleFrom::Message(id),
                (None, None) => return Err(CliError::Usage("give the bundle, or --message N".into())),
            };
            cli::transfer_receive::receive(&app, from, &by, key.as_deref()).await
        }
        Command::Transfers { viewer, all, json } => cli::transfer::list(&app, &viewer, all, json).await,
        Command::Report { command: ReportCommand::Summary { term, from, to, audience, format, out, viewer } } => {
            let req = cli::report::SummaryRequest { term: term.as_deref(), from, to, audience, format, out, viewer: &viewer };
            cli::report::summary(&app, req).await
        }
        Command::Report { command: ReportCommand::Inspection { since, format, out, viewer } } => {
            cli::inspection::run(&app, cli::inspection::InspectionRequest { since, format, out, viewer: &viewer }).await
        }
        Command::Referral { command: ReferralCommand::Add { incident, agency, reference, on, by } } => {
            let req = cli::referral::AddReferral { incident, agency, reference: reference.as_deref(), on, by: &by };
            cli::referral::add(&app.store, &app.sealer().await?, req, app.config.school.tz(), now).await
        }
        Command::Referrals { viewer, json } => cli::referral::list(&app.store, &app.sealer().await?, &viewer, json, now).await,
        Command::Plan { command: PlanCommand::Add { pupil, kind, starts, review_every, by } } => {
            let req = cli::plan::AddPlan { pupil: &pupil, kind, starts, review_every_days: review_every, by: &by };
            cli::plan::add(&app.store, &app.sealer().await?, req, app.config.school.tz(), now).await
        }
        Command::Plan { command: PlanCommand::End { plan, on, reason, by } } => {
            let req = cli::plan::EndPlan { id: plan, on, reason: &reason, by: &by };
            cli::plan::end(&app.store, &app.sealer().await?, req, app.config.school.tz(), now).await
        }
        Command::Plans { all, viewer, json } => cli::plan::list(&app.store, &app.sealer().await?, &viewer, all, json, now).await,
        Command::Holds { all, json } => cli::hold::list(&app.store, &app.sealer().await?, all, app.config.school.tz(), json).await,
        Command::Outcome { incident, text, by } => cli::outcome::record(&app.store, &app.sealer().await?, incident, &text, &by, now).await,
        Command::Link { action, incident, pupil, by } => {
            cli::link::run(&app.store, &app.sealer().await?, action, incident, &pupil, &by, now).await
        }
        Command::Messages { command: Some(MessagesCommand::Release { id, by, reason }), .. } => {
            cli::messages::release(&app.filer().await?, id, &by, &reason).await
        }
        Command::Console { command: ConsoleCommand::Unlock { email, by, reset } } => {
            cli::console::unlock(&app.store, &app.sealer().await?, &email, &by, reset, now).await
        }
        Command::Messages { command: None, state, json } => cli::messages::run(&app.store, state.map(|s| s.state().as_str()), json).await,
        Command::Outcomes { overdue, json } => cli::outcomes::run(&app.store, now, app.config.school.tz(), overdue, json).await,
        Command::Status { json } => {
            cli::status::run(&app.store, app.config.intake.source.as_str(), app.config.school.tz(), now, json).await
        }
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
