//! Retention: how long the school keeps each series of records and when they fall due for
//! review (`policy`), and the certificate of destruction a disposal leaves (`certificate`).
//! Holds, review decisions and disposals are in the store; the commands in `cli::retention`,
//! `cli::hold` and `cli::dispose`.

pub mod certificate;
mod policy;

pub use policy::{
    Applies, DEFAULT_FILE, DisposalSettings, DueDate, FILE_NAME, Keep, Policy, PolicyErrors, PupilDates, Series, describe, due,
};
