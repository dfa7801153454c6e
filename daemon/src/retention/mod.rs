//! Retention: how long the school keeps each series of records and when they fall due for
//! review (`policy`). Holds and review decisions are in the store; the commands in
//! `cli::retention` and `cli::hold`.

mod policy;

pub use policy::{Applies, DEFAULT_FILE, DueDate, FILE_NAME, Keep, Policy, PolicyErrors, PupilDates, Series, due};
