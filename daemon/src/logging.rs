//! Logs go to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Haven's own events (target `haven…`) carry ids and states only, never pupil names, email
//! addresses, subjects or message text, so they may go to any level `RUST_LOG` asks for. Other
//! crates' events are capped at `warn` whatever `RUST_LOG` says: at debug and trace the HTML
//! parser, the IMAP client and the rest quote what they handle, which is the messages
//! themselves. That includes `log` records bridged into tracing, which carry the target of the
//! crate that wrote them. `HAVEN_LOG_THIRD_PARTY=1` lifts the cap for a debugging session and
//! says at start, as a warning, that the log may now hold pupil data. Until then a panic's
//! message, which can quote the text being handled, is withheld too (its location is not).
//!
//! The format is `[logging] format = "text"` (the default) or `"json"` (one object per line,
//! the event's fields at the top level, for a log shipper). Colours only on a terminal; under
//! systemd (`JOURNAL_STREAM` names stderr) text lines carry no timestamp, since the journal
//! stamps each line itself.
//!
//! This module must not decide what Haven logs; it only decides whose events get through and
//! how they are written.

use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The environment variable that lifts the cap on other crates' events.
pub const THIRD_PARTY_ENV: &str = "HAVEN_LOG_THIRD_PARTY";

/// `[logging]` in haven.toml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
}

/// How each event is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event for people (and the journal).
    #[default]
    Text,
    /// One JSON object per line for log shippers.
    Json,
}

impl LogSettings {
    /// The `[logging]` table of the config at `path`, read before the rest so the first
    /// lines are already in the right format. Anything unreadable gives the default: loading
    /// the config properly reports the mistake.
    pub fn peek(path: &std::path::Path) -> LogSettings {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|mut t| t.remove("logging"))
            .and_then(|v| v.try_into().ok())
            .unwrap_or_default()
    }
}

/// Whether stderr is the journal's stream (`JOURNAL_STREAM` is "device:inode" of it), so
/// the journal adds timestamps itself.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Installs the stderr subscriber. Problems with `RUST_LOG` or [`THIRD_PARTY_ENV`] are logged
/// as warnings once it is in place; logging never stops Haven from starting.
pub fn init(settings: LogSettings) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, filter_problem) = match EnvFilter::try_from_default_env() {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), rust_log.filter(|v| !v.trim().is_empty()).map(|v| (v, e.to_string()))),
    };
    let switch = std::env::var(THIRD_PARTY_ENV).ok();
    let lifted = parse_switch(switch.as_deref());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match settings.format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text if stderr_is_journal() => fmt.with_ansi(ansi).with_target(false).without_time().boxed(),
        LogFormat::Text => fmt.with_ansi(ansi).with_target(false).boxed(),
    };
    let cap = ThirdPartyCap { lifted: lifted == Ok(true) };
    if tracing_subscriber::registry().with(cap).with(filter).with(fmt).try_init().is_err() {
        return;
    }
    if lifted != Ok(true) {
        std::panic::set_hook(Box::new(withhold_panic_message));
    }
    if let Some((value, error)) = filter_problem {
        tracing::warn!(rust_log = %value, %error, "RUST_LOG is not understood; logging at info");
    }
    match lifted {
        Ok(true) => {
            let text = "HAVEN_LOG_THIRD_PARTY is set: other crates now log at the level RUST_LOG gives them; \
                        at debug and trace this log WILL hold pupil names, addresses and message text. \
                        Unset it, and delete this log, when the debugging session is over";
            if tracing::enabled!(target: "haven", Level::WARN) {
                tracing::warn!("{text}");
            } else {
                eprintln!("WARNING: {text}");
            }
        }
        Ok(false) => {}
        Err(value) => tracing::warn!(
            value = %value,
            "HAVEN_LOG_THIRD_PARTY is not understood (use 1 to lift the cap, 0 or unset to keep it); \
             other crates' logs stay capped at warn"
        ),
    }
}

/// A panic's message can quote the text being handled (a string sliced out of bounds shows
/// the string), so the hook says where it happened, and the backtrace if `RUST_BACKTRACE` asks
/// for one, but not what it said; `HAVEN_LOG_THIRD_PARTY=1` keeps Rust's own hook.
fn withhold_panic_message(info: &std::panic::PanicHookInfo<'_>) {
    let at = info.location().map_or_else(|| "an unknown place".to_string(), ToString::to_string);
    let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
    let backtrace = std::backtrace::Backtrace::capture();
    let backtrace = match backtrace.status() {
        std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
        _ => String::new(),
    };
    eprintln!(
        "haven panicked at {at} (thread {thread}); the panic message is withheld because it may quote \
         pupil data (HAVEN_LOG_THIRD_PARTY=1 shows it){backtrace}"
    );
}

/// `Ok(true)` lifts the cap; anything not understood keeps it and is returned as `Err`.
fn parse_switch(value: Option<&str>) -> Result<bool, String> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(_) => Err(value.unwrap_or_default().to_string()),
    }
}

/// Whether a target is Haven's own (the library and the binary are both `haven`).
fn is_haven(target: &str) -> bool {
    target == "haven" || target.starts_with("haven::")
}

/// Lets every Haven event through and other crates' only at `warn` and above (unless lifted).
/// `RUST_LOG` then filters what is left.
struct ThirdPartyCap {
    lifted: bool,
}

impl ThirdPartyCap {
    fn allows(&self, meta: &Metadata<'_>) -> bool {
        self.lifted || is_haven(meta.target()) || *meta.level() <= Level::WARN
    }
}

impl<S: Subscriber> Layer<S> for ThirdPartyCap {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.allows(meta) { Interest::always() } else { Interest::never() }
    }

    // `log` records bridged into tracing are checked here with the writing crate's target,
    // not through a callsite.
    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        self.allows(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_reads_yes_and_no_and_refuses_the_rest() {
        assert_eq!(parse_switch(None), Ok(false));
        assert_eq!(parse_switch(Some("0")), Ok(false));
        assert_eq!(parse_switch(Some("1")), Ok(true));
        assert_eq!(parse_switch(Some(" TRUE ")), Ok(true));
        assert_eq!(parse_switch(Some("maybe")), Err("maybe".to_string()));
    }

    #[test]
    fn only_haven_targets_are_haven() {
        assert!(is_haven("haven"));
        assert!(is_haven("haven::read::html"));
        assert!(!is_haven("havenly"));
        assert!(!is_haven("html5ever::tokenizer"));
        assert!(!is_haven("log"));
    }
}
