//! A fresh database per test, on SQLite and on PostgreSQL.
