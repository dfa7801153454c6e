//! Haven: a safeguarding intake and alerting daemon for schools.
//!
//! # Layout
//!
//! - [`message`]: Haven's owned message type, the currency between stages.
//! - [`read`]: pure reading of raw bytes into a [`message::Message`] (the only user of mail-parser's
//!   message parser; [`ingest`] uses only its mbox splitter).
//! - [`directory`]: pupils, staff and contacts as plain data.
//! - [`characteristics`]: pupils' vulnerable groups (FSM, in care, EAL, SEN N/K/E …) read from the directory import.
//! - [`clock`]: the one injected source of time.
//! - [`duration`]: the one grammar for written durations (`90s`, `15m`, `2d`), config and rules alike.
//! - [`ingest`]: message files, Maildir++ folders and mbox files found and read for `haven ingest`.
//! - [`noise`]: auto-replies, bounces and Haven's own mail, recognised so they are never filed.
//! - [`authenticate`]: whether a sender may file (active staff; DMARC/DKIM when configured).
//! - [`store`]: SQLite and PostgreSQL behind one interface; migrations; the audit chain.
//! - [`blind`]: keyed hashes (blind indexes) for equality look-ups on sealed directory values.
//! - [`console`]: the DSL console, a web page served by `haven run` (loopback HTTP).
//! - [`schedule`]: escalation reminders and digests when they fall due (pure cron maths in `due`).
//! - [`lease`]: which of several daemons on one PostgreSQL database leads (reads the intake,
//!   runs the scheduler); one daemon per SQLite database.
//! - [`health`]: the daemon's account of its intake, outbox and scheduler, for `haven status`.
//! - `pdf` (cargo feature `pdf`, on by default): views rendered as PDF/A-2b by typst, in memory.
//! - [`outcome_code`]: the decision an outcome records (`NFA`, `REFERRED CSC ref …`), read from its text.
//! - [`metrics`]: `/metrics` (Prometheus) and `/healthz`, served by `haven run` when configured.
//! - [`sar`]: subject access requests: deadlines, exemption codes, flags, burned-in redactions.
//! - [`ai`]: AI suggestions after filing (`[ai]`), shown as suggestions, never routing.
//! - [`transfer`]: a leaver's child-protection file: deadlines in school days, the reminder
//!   ladder, the signed bundle and its receipt.
//! - [`report`]: reports across pupils (governors', the DSL's, inspectors'), as typed models built from counts.

pub mod ai;
pub mod alert;
pub mod authenticate;
pub mod blind;
pub mod category;
pub mod characteristics;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod daemon;
pub mod directory;
pub mod directory_csv;
pub mod duration;
pub mod health;
pub mod history;
pub mod identify;
pub mod ingest;
pub mod inspect;
pub mod lease;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod noise;
pub mod notify;
pub mod outbox;
pub mod outcome_code;
#[cfg(feature = "pdf")]
pub mod pdf;
pub mod pipeline;
pub mod read;
pub mod reply_token;
pub mod report;
pub mod retention;
pub mod rules;
pub mod sar;
pub mod schedule;
pub mod seal;
pub mod source;
pub mod store;
pub mod terms;
pub mod transfer;
pub mod triage;
pub mod visibility;
