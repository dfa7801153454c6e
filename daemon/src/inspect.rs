//! `haven inspect`: read one message file with no config and no database, and show how Haven
//! read it, as the SPEC's JSON contract or a readable summary.

use std::path::Path;
use std::process::ExitCode;

/// Runs `haven inspect FILE [--json]`; exit 65 with a one-line reason for unusable input.
pub fn run(path: &Path, json: bool) -> ExitCode {
    let _ = (path, json);
    eprintln!("haven inspect: not written yet");
    ExitCode::from(65)
}
