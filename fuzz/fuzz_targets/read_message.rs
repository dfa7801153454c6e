//! Any bytes into the reader: it must return a message or a reason, never panic, hang or
//! exhaust memory. Also reads the text paths on their own (forward, reply) with the input as
//! text, since those see every body Haven receives.
#![no_main]

use haven::read::forward::{self, Context};
use haven::read::{read_message, reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = read_message(data) {
        let _ = haven::inspect::inspect_json(&msg);
    }
    let text = String::from_utf8_lossy(data);
    let ctx = Context { forward_subject: data.first().is_some_and(|b| b & 1 == 1), ..Context::default() };
    let _ = forward::find(&text, &ctx);
    let _ = reply::reply_text(&text);
});
