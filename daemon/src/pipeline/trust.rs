//! What of a received message Haven trusts: the date it gives for its story (not when it is
//! unreadable or more than a day ahead), and the content that, with the Message-ID, makes a
//! later message a duplicate. Pure: no clock, no database.

use crate::message::Message;
use chrono::{DateTime, FixedOffset, Utc};
use sha2::{Digest, Sha256};

/// The note on an incident whose original's date could not be read.
pub const DATE_UNREADABLE: &str = "date unreadable in the original";
/// The note on an incident whose original's date is more than a day after it was filed.
pub const DATE_IN_FUTURE: &str = "date in the original is more than a day in the future";

/// When the message's story happened: the original's date (the forwarded message's when there
/// is one and it wrote a date, else the message's own), or `now` with the reason when that
/// date cannot be trusted. Pure.
pub(super) fn occurred(msg: &Message, now: DateTime<Utc>) -> (DateTime<Utc>, Option<&'static str>) {
    match msg.forwarded.as_ref().filter(|f| f.date.is_some() || f.date_text.is_some()) {
        Some(f) => trusted_date(f.date, true, now),
        None => trusted_date(msg.date, msg.header("Date").is_some(), now),
    }
}

/// A date as parsed (`written`: a date was written at all), or `now` and why not: unreadable,
/// or more than a day after `now` (a day's slack for wrong clocks and time zones). A message
/// without any date is simply dated when it was filed. Pure.
pub(super) fn trusted_date(
    date: Option<DateTime<FixedOffset>>,
    written: bool,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, Option<&'static str>) {
    match date.map(|d| d.with_timezone(&Utc)) {
        Some(d) if d > now + chrono::TimeDelta::days(1) => (now, Some(DATE_IN_FUTURE)),
        Some(d) => (d, None),
        None if written => (now, Some(DATE_UNREADABLE)),
        None => (now, None),
    }
}

/// SHA-256 (hex) of a message's body — everything after the header block — with carriage
/// returns removed and trailing whitespace dropped, so the same message has the same content
/// hash whichever server delivered it and whatever transport headers it gained. Pure.
pub fn content_sha256(raw: &[u8]) -> String {
    let start = [&b"\r\n\r\n"[..], &b"\n\n"[..]]
        .iter()
        .filter_map(|sep| raw.windows(sep.len()).position(|w| w == *sep).map(|i| i + sep.len()))
        .min()
        .unwrap_or(raw.len());
    let body: Vec<u8> = raw[start..].iter().copied().filter(|b| *b != b'\r').collect();
    let end = body.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    hex::encode(Sha256::digest(&body[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_date_is_trusted_up_to_a_day_ahead() {
        let now = at("2026-12-06T22:00:00Z");
        let date = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap());
        assert_eq!(trusted_date(date("2026-12-01T08:00:00+01:00"), true, now), (at("2026-12-01T07:00:00Z"), None));
        assert_eq!(trusted_date(date("2026-12-07T21:59:59Z"), true, now), (at("2026-12-07T21:59:59Z"), None));
        assert_eq!(trusted_date(date("2026-12-07T22:00:01Z"), true, now), (now, Some(DATE_IN_FUTURE)));
        assert_eq!(trusted_date(date("9999-12-31T23:59:00Z"), true, now), (now, Some(DATE_IN_FUTURE)));
        assert_eq!(trusted_date(None, true, now), (now, Some(DATE_UNREADABLE)));
        assert_eq!(trusted_date(None, false, now), (now, None));
    }

    #[test]
    fn content_ignores_headers_line_endings_and_trailing_space() {
        let lf = content_sha256(b"From: a@b\nMessage-ID: <x@y>\n\nHello\nthere\n");
        let crlf = content_sha256(b"Received: from mx\r\nFrom: a@b\r\nMessage-ID: <x@y>\r\n\r\nHello\r\nthere\r\n\r\n");
        assert_eq!(lf, crlf);
        assert_ne!(lf, content_sha256(b"From: a@b\nMessage-ID: <x@y>\n\nHello\nthere, again\n"));
        assert_eq!(content_sha256(b"Subject: no body"), content_sha256(b""));
    }
}
