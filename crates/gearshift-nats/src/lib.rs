//! gearshift on many machines: processes share a JetStream work queue and
//! one API budget, on one engine, NATS.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod budget;
mod error;
pub mod kv;
pub mod server;

pub use error::Error;
