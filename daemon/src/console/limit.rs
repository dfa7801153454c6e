//! Sign-in attempts per client address: at most [`PER_CLIENT`] in [`WINDOW`], counted in
//! memory (a restart forgets them; the per-address limit on emailed links is in the
//! database). Pure apart from its lock: the caller passes the time.

use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// Sign-in attempts (link requests and codes) one client address may make in [`WINDOW`]. A
/// whole school behind one address shares it, and the console is for a few people.
pub const PER_CLIENT: usize = 20;
pub const WINDOW: Duration = Duration::minutes(15);

#[derive(Default)]
pub struct Attempts {
    seen: Mutex<HashMap<IpAddr, VecDeque<DateTime<Utc>>>>,
}

impl Attempts {
    /// Counts an attempt from `ip` at `now`; false (and not counted) when it is over the limit.
    pub fn allow(&self, ip: IpAddr, now: DateTime<Utc>) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|_, times| {
            while times.front().is_some_and(|t| now - *t >= WINDOW) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = seen.entry(ip).or_default();
        if times.len() >= PER_CLIENT {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn each_client_gets_its_own_allowance_again_after_the_window() {
        let a = Attempts::default();
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let (one, two): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..PER_CLIENT {
            assert!(a.allow(one, t0));
        }
        assert!(!a.allow(one, t0 + Duration::minutes(1)));
        assert!(a.allow(two, t0 + Duration::minutes(1)), "another client is not held back");
        assert!(a.allow(one, t0 + WINDOW), "the window passed");
    }
}
