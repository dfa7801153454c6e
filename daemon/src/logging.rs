//! Logs go to stderr, filtered by `RUST_LOG` (default `info`). Haven's own log lines carry ids
//! and states only: never pupil names, email addresses, subjects or message text.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).with_target(false).try_init();
}
