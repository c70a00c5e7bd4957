//! Black-box integration tests: one binary, real servers on 127.0.0.1:0.

mod accounts;
mod alerts;
mod binary;
mod browser;
mod bus;
mod cli;
mod common;
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
mod uptime_dashboard;
mod uptime_heartbeats;
mod uptime_monitors;
mod uptime_pages;
