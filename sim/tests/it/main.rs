//! The simulator's black-box tests: one binary, one module per area.
//! Shared helpers live in [`support`].

mod support;

mod admin_and_cli;
mod auth;
mod cloud_api;
mod code_search;
mod dataset;
mod estate;
mod faults;
mod global_listing;
mod history_api;
mod rate_limit;
mod server_api;
