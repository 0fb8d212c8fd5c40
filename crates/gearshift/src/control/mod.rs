//! Runtime control: API budgets, the live settings of every stage, the
//! handles that change them, the schedule, the controller task that follows
//! the schedule and runs each budget's tuner, and the measurement windows
//! it reads.

mod api_handle;
pub(crate) mod budget;
pub(crate) mod controller;
mod handle;
mod schedule;
pub(crate) mod settings;
pub(crate) mod shared;
mod stage_handle;
mod window;

pub use api_handle::ApiHandle;
pub use budget::{Api, ApiSettings};
pub use handle::PipelineHandle;
pub use schedule::{MAX_UTC_OFFSET_MINUTES, Schedule, ScheduleError};
pub use settings::StageSettings;
pub use stage_handle::StageHandle;
pub use window::WindowReader;
