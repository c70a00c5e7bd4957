//! Black-box integration tests: one binary, real servers on 127.0.0.1:0.

mod alerts;
mod common;
mod mail;
mod mail_support;
mod system;
