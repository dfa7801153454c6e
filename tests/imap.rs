//! IMAP intake tests (being written).
