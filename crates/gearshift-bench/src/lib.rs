//! The gearshift benchmark library: an embedded mock API, a calibrated CPU
//! work model, the usual ways of writing "fetch, then compute" (baselines),
//! the scenarios that compare them with gearshift, and the report.
//!
//! The binary `gearshift-bench` is a thin CLI over [`cli`]; the scenarios
//! and the mock API are defined in the crate's README.
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod cluster;
pub mod cpu_share;
pub mod held_out;
pub mod ledger;
pub mod mock_api;
pub mod repeat;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod soak;
pub mod sweep;
pub mod systems;
pub mod tuner_bench;
pub mod work;
