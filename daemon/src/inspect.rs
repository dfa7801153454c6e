//! `haven inspect`: read one message file with no config and no database, and show how Haven
//! read it, as the SPEC's JSON contract or a readable summary.
//!
//! This is a command for a person at a terminal looking at one file, so it prints message
//! content; it never logs it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::message::{Address, Attachment, Forwarded, Kind, Message};
use crate::read::{self, Limits};

/// Exit code for input that is not a usable message (EX_DATAERR).
const EXIT_UNUSABLE: u8 = 65;

/// Exit code for a bad command line (EX_USAGE).
const EXIT_USAGE: u8 = 2;

/// Runs `haven inspect FILE [--json] [--timezone ZONE]`; exit 65 with a one-line reason for
/// unusable input, 2 (usage, as the SPEC says) for a zone that is not one.
pub fn run(path: &Path, json: bool, timezone: Option<&str>) -> ExitCode {
    let mut limits = Limits::default();
    if let Some(zone) = timezone {
        match zone.parse::<chrono_tz::Tz>() {
            Ok(tz) => limits.timezone = tz,
            Err(_) => {
                eprintln!("haven inspect: --timezone: unknown time zone {zone:?} (use a name such as Europe/London)");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let raw = match read_file(path, limits.max_message_size) {
        Ok(raw) => raw,
        Err(reason) => {
            eprintln!("haven inspect: {}: {reason}", path.display());
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    let msg = match read::read_message_with(&raw, &limits) {
        Ok(msg) => msg,
        Err(e) => {
            eprintln!("haven inspect: {}: {e}", path.display());
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    let out = if json {
        let mut s = serde_json::to_string_pretty(&inspect_json(&msg)).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    } else {
        summary(&msg)
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    ExitCode::SUCCESS
}

/// Reads the file, refusing one larger than `max` without loading it.
fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a directory, not a message file".into());
    }
    if meta.len() > max {
        return Err(format!("message is {} bytes, over the limit of {max}", meta.len()));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// The SPEC's `haven inspect --json` object (plus `text`, `html`, `forward_chain`, attachment
/// `inline`/`tnef`, the forwarded `date_text`/`attached`, and every top-level header).
pub fn inspect_json(msg: &Message) -> Value {
    json!({
        "message_id": msg.message_id,
        "from": msg.from.as_ref().map(address),
        "to": msg.to.iter().map(address).collect::<Vec<_>>(),
        "cc": msg.cc.iter().map(address).collect::<Vec<_>>(),
        "subject": msg.subject,
        "date": msg.date.map(|d| d.to_rfc3339()),
        "in_reply_to": msg.in_reply_to,
        "kind": kind_name(msg.kind),
        "note": msg.note,
        "forwarded": msg.forwarded.as_ref().map(forwarded),
        "forward_chain": msg.forward_chain.iter().map(forwarded).collect::<Vec<_>>(),
        "reply_text": msg.reply_text,
        "attachments": msg.attachments.iter().map(attachment).collect::<Vec<_>>(),
        "text": msg.text,
        "html": msg.html,
        "size": msg.size,
        "headers": msg.headers.iter().map(|h| json!({"name": h.name, "value": h.value})).collect::<Vec<_>>(),
    })
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Forward => "forward",
        Kind::Reply => "reply",
        Kind::New => "new",
    }
}

fn address(a: &Address) -> Value {
    json!({"address": a.address, "name": a.name})
}

fn forwarded(f: &Forwarded) -> Value {
    json!({
        "from": f.from.as_ref().map(address),
        "date": f.date.map(|d| d.to_rfc3339()),
        "date_text": f.date_text,
        "subject": f.subject,
        "to": f.to.iter().map(address).collect::<Vec<_>>(),
        "cc": f.cc.iter().map(address).collect::<Vec<_>>(),
        "body": f.body,
        "attached": f.attached,
    })
}

fn attachment(a: &Attachment) -> Value {
    json!({
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "inline": a.inline,
        "tnef": a.tnef,
    })
}

fn show_address(a: &Address) -> String {
    match &a.name {
        Some(n) => format!("{n} <{}>", a.address),
        None => a.address.clone(),
    }
}

/// A few readable lines: how the message was read and what it carries.
fn summary(msg: &Message) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        out.push_str(&format!("{label:<12} {value}\n"));
    };
    line("kind:", kind_name(msg.kind));
    line("from:", &msg.from.as_ref().map(show_address).unwrap_or_else(|| "-".into()));
    line("subject:", msg.subject.as_deref().unwrap_or("-"));
    line("date:", &msg.date.map(|d| d.to_rfc3339()).unwrap_or_else(|| "-".into()));
    if let Some(f) = &msg.forwarded {
        let how = if f.attached { " (attached)" } else { "" };
        line("forwarded:", &format!("{}{how}", f.from.as_ref().map(show_address).unwrap_or_else(|| "-".into())));
        let date = f.date.map(|d| d.to_rfc3339()).or_else(|| f.date_text.clone()).unwrap_or_else(|| "-".into());
        line("  date:", &date);
        line("  subject:", f.subject.as_deref().unwrap_or("-"));
        if msg.forward_chain.len() > 1 {
            line("  chain:", &format!("{} forwarded messages", msg.forward_chain.len()));
        }
    }
    if let Some(note) = &msg.note {
        line("note:", &first_line(note));
    }
    if let Some(reply) = &msg.reply_text {
        line("reply:", &first_line(reply));
    }
    if msg.attachments.is_empty() {
        line("attachments:", "none");
    } else {
        line("attachments:", &msg.attachments.len().to_string());
        for a in &msg.attachments {
            let mut flags = String::new();
            if a.inline {
                flags.push_str(" inline");
            }
            if a.tnef {
                flags.push_str(" winmail.dat (TNEF)");
            }
            line("", &format!("{} ({}, {} bytes){flags}", a.filename, a.content_type, a.size));
        }
    }
    out
}

/// The first line, shortened for a one-line summary.
fn first_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    let short: String = first.chars().take(100).collect();
    let more = first.chars().count() > 100 || text.lines().nth(1).is_some();
    if more { format!("{short} …") } else { short }
}
