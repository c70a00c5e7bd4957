//! Black-box integration tests: one binary, real servers on 127.0.0.1:0.

mod accounts;
mod browser;
mod bus;
mod cli;
mod common;
mod router_walk;
mod system;
