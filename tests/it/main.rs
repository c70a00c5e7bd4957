//! Black-box integration tests: one binary, real servers on 127.0.0.1:0.

mod accounts;
mod alerts;
mod binary;
mod browser;
mod bus;
mod chat;
mod chat_browser;
mod chat_upload;
mod cli;
mod common;
mod grouping;
mod hardening;
mod ingest;
mod ingest_kill;
mod issues;
mod mail;
mod mail_support;
mod net;
mod receiver;
mod router_walk;
mod system;
mod upgrade;
mod uptime;
