//! Reports across pupils (issue 21): the governors' and the DSL's summary of a period and the
//! terms before it, and the lists an inspector asks for. Each report is one typed model built
//! here from counts the store aggregated; templates render it as text, HTML, JSON and PDF.
//!
//! Pure: no store, no clock. `period` turns a term or two dates into the periods shown,
//! `suppress` keeps small numbers out of governors' hands, `summary` builds the summary's model.

pub mod charts;
pub mod inspection;
pub mod period;
pub mod summary;
pub mod suppress;
