//! Runtime control: the live settings, the handle that changes them, the
//! schedule, and the controller task that follows the schedule and runs the
//! tuner.

pub(crate) mod controller;
mod handle;
mod schedule;
pub(crate) mod shared;

pub use handle::PipelineHandle;
pub use schedule::{MAX_UTC_OFFSET_MINUTES, Schedule, ScheduleError};
