//! The gearshift benchmark library: an embedded mock API, a calibrated CPU
//! work model, the usual ways of writing "fetch, then compute" (baselines),
//! the scenarios that compare them with gearshift, and the report.
#![warn(missing_docs)]

pub mod client;
pub mod ledger;
pub mod mock_api;
pub mod systems;
pub mod work;
