//! The `haven` binary: parses the command line and hands over to the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "haven", version, about = "Safeguarding intake and alerting for schools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read one message file without config or database and show how Haven reads it.
    Inspect {
        file: PathBuf,
        /// Print the JSON contract instead of a summary.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { file, json } => haven::inspect::run(&file, json),
    }
}
