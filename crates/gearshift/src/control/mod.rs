//! Runtime control: the handle, schedules, and the small concurrency pieces
//! the stages share (resizable gate, agent roster, shared pause, rate limit,
//! shutdown latch).

mod debt;
pub(crate) mod gate;
mod handle;
pub(crate) mod pause;
pub(crate) mod rate;
pub(crate) mod roster;
mod schedule;
pub(crate) mod shutdown;

pub use handle::PipelineHandle;
pub use schedule::{MAX_UTC_OFFSET_MINUTES, Schedule, ScheduleError};
