//! Black-box integration tests: one binary, real servers on 127.0.0.1:0.

mod common;
mod system;
mod ingest;
mod issues;
mod ingest_kill;
