//! Small concurrency primitives the stages share, with no knowledge of
//! pipelines: a resizable gate (semaphore with a permit debt), an agent
//! roster, a shared pause, a rate limiter and a shutdown latch.
//!
//! They are written by hand because each does one thing no crate offers as
//! is: the gate shrinks while permits are out (tokio's `Semaphore` can only
//! forget idle permits), the roster retires exactly the surplus between two
//! items, and the rate limiter re-books waiting callers when its rate changes
//! live. The roster and the debt are model-checked with loom.

mod debt;
pub(crate) mod gate;
pub(crate) mod pause;
pub(crate) mod rate;
pub(crate) mod roster;
pub(crate) mod shutdown;
