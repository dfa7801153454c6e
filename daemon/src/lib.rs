//! Haven: a safeguarding intake and alerting daemon for schools.
//!
//! # Layout
//!
//! - [`message`]: Haven's owned message type, the currency between stages.
//! - [`read`]: pure reading of raw bytes into a [`message::Message`] (the only user of mail-parser).
//! - [`directory`]: pupils, staff and contacts as plain data.
//! - [`clock`]: the one injected source of time.

pub mod clock;
pub mod directory;
pub mod inspect;
pub mod message;
pub mod read;
pub mod store;
