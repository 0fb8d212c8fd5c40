//! Runtime control: the live settings, the handle that changes them, the
//! schedule, the controller task that follows the schedule and runs the
//! tuner, and the measurement windows it reads.

pub(crate) mod controller;
mod handle;
mod schedule;
pub(crate) mod shared;
mod window;

pub use handle::PipelineHandle;
pub use schedule::{MAX_UTC_OFFSET_MINUTES, Schedule, ScheduleError};
pub use window::WindowReader;
