//! Black-box integration tests: one binary, real servers on 127.0.0.1:0.

mod accounts;
mod alerts;
mod binary;
mod browser;
mod bus;
mod chat;
mod chat_alerts;
mod chat_browser;
mod chat_search;
mod chat_support;
mod chat_upload;
mod cli;
mod common;
// issue 16: every dashboard screen in Chromium (dash)
mod dashboard_screens;
// issue 16 (dash): every screen at 390 px
mod dashboard_phone;
// issue 16 (dash): the screens and states the first dashboard test does not reach
mod dashboard_more;
mod grouping;
mod hardening;
mod ingest;
mod ingest_kill;
// issue 12: hostile input, attachment caps, retention, session counts (harden-ingest)
mod ingest_limits;
// issue 16 (dash): browser events without a user count the client address as the user
mod ingest_users;
mod issues;
mod mail;
mod mail_support;
mod net;
mod receiver;
mod router_walk;
// issue 20: source maps uploaded with the real sentry-cli
mod sourcemaps;
mod storage;
// issue 19 (bandit): reply suggestions that learn
mod suggest;
mod system;
mod upgrade;
mod uptime;
mod uptime_dashboard;
// issue 15 (finish): the DNS kind against a local DNS server
mod uptime_dns;
mod uptime_heartbeats;
mod uptime_monitors;
mod uptime_pages;
