//! Sync primitives that loom can swap in, as tokio does in `tokio/src/loom`:
//! under `--cfg loom` the hand-written concurrency state is model-checked.

#[cfg(not(gearshift_loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::atomic;
}

#[cfg(gearshift_loom)]
pub(crate) mod sync {
    pub(crate) use loom::sync::atomic;
}
