//! Shared helpers for Haven's integration tests: real servers started on loopback ports, and
//! a fresh database per test on each backend.
#![allow(dead_code)]

pub mod brook;
pub mod db;
pub mod disk;
pub mod dovecot;
pub mod eaton;
pub mod haven;
pub mod llama;
pub mod poppler;
pub mod smtp;
