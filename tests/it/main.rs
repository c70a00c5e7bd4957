//! Black-box integration tests: one binary, real servers on 127.0.0.1:0.

mod common;
mod ingest;
mod ingest_kill;
mod issues;
mod system;
