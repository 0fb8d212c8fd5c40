//! The mock API: a real HTTP server on 127.0.0.1 with a latency model that
//! saturates at a capacity, and deterministic faults.
//!
//! | I want to...                              | use                                  |
//! |-------------------------------------------|--------------------------------------|
//! | run it inside a benchmark or a test       | [`MockApi::start`] (own thread, port 0) |
//! | run it for my own pipeline to call        | `gearshift-bench mock-api --port P`, or [`serve`] |
//! | change latency or faults mid-run          | [`MockApi::set_config`]              |
//! | read what it saw                          | [`MockApi::stats`], or `GET /stats`  |
//!
//! The latency model and the faults are described on [`LatencyModel`] and
//! [`FaultRates`], and in the crate's README.

mod config;
mod draw;
mod routes;
mod server;
mod state;
mod timer;

pub use config::{FaultRates, LatencyModel, MockConfig, MockConfigError, Overload};
pub use draw::{Fault, fault as drawn_fault, latency as modelled_latency};
pub use routes::payload;
pub use server::{MockApi, MockApiError, serve};
pub use state::MockStats;
