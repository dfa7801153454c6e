//! Progress of long work (`haven ingest`), on standard error so it never mixes with a command's
//! output: an indicatif bar with rate and time left on a terminal; otherwise (a log, a pipe, a
//! systemd unit) a plain line at most every [`PLAIN_EVERY`] and one when the work ends.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a plain progress line is written when standard error is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Counts done units of work out of a known total.
pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    shown: Shown,
}

enum Shown {
    Bar(ProgressBar),
    Plain { last: Instant },
}

impl Progress {
    /// Starts counting `total` units, called `what` ("messages") in the lines it writes.
    pub fn start(what: &'static str, total: u64) -> Progress {
        let now = Instant::now();
        let shown = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = format!("{{bar:40}} {{human_pos}}/{{human_len}} {what}, {{per_sec}}, {{eta}} left");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            Shown::Bar(bar)
        } else {
            Shown::Plain { last: now }
        };
        Progress { what, total, done: 0, started: now, shown }
    }

    /// `n` more units are done.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &mut self.shown {
            Shown::Bar(bar) => bar.inc(n),
            Shown::Plain { last } => {
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("haven: {}", self.line());
                }
            }
        }
    }

    /// The work is over: the bar is cleared and one closing line is written.
    pub fn finish(self) {
        if let Shown::Bar(bar) = &self.shown {
            bar.finish_and_clear();
        }
        eprintln!("haven: {}", self.line());
    }

    /// "1,500 of 10,000 messages, 1,210 a second, about 7 s left".
    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { self.done as f64 / secs } else { 0.0 };
        let mut line = format!("{} of {} {}, {:.0} a second", self.done, self.total, self.what, rate);
        if self.done < self.total && rate > 0.0 {
            line += &format!(", about {:.0} s left", (self.total - self.done) as f64 / rate);
        } else {
            line += &format!(", in {secs:.1} s");
        }
        line
    }
}
