//! The IO stage: a supervisor that keeps `round(agents_per_core x cores)`
//! agents (tokio tasks) alive, and the agents, which take items from the
//! input channel, call the stage function under the API semaphore with a
//! timeout, retries with backoff and the stage-wide `Retry-After` pause, and
//! pass results on. Results bound for a stage that takes them in bulk wait
//! in the agent's outbox until it holds `items_per_batch`, the agent is about
//! to wait (for an item, or for a call that is not done at once), the next
//! stage has no room for them (then the agent waits before its next call, as
//! backpressure), or it stops: one channel operation per batch when calls are
//! instant, and no result held back behind a call or a wait that takes time.
//!
//! A call is a sequence of small steps (in `call`): pacing (the remote's
//! pause, the rate limit), then the API permit, then one attempt, then the
//! retry decision. Pacing comes before the permit, so no agent holds a
//! permit while it sleeps. Every wait of a call (for a permit, the remote's
//! pause, the rate limit, a backoff) ends early on an abort and on the
//! item's deadline. An agent that panics anyway (a bug in gearshift, or a
//! user's `Clone` or error conversion that panics outside the stage
//! function) ends every item it holds as `Failed` and is replaced, so no
//! item is lost with it.
//!
//! The files: this one holds what the agents share and the supervisor;
//! `agent` the agent's loop and how results are passed on; `call` the call
//! path; `units` how items become calls (one per item, or one per batch).

mod agent;
mod call;
mod units;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use self::agent::{Exit, agent};
pub(crate) use self::units::{Batched, Single, Unit};
use super::item::{EndedTx, Item};
use super::link::{self, Outlet};
use crate::config::{Config, RetryPolicy};
use crate::stats::counters::StageStats;
use crate::sync::gate::Gate;
use crate::sync::pause::Pause;
use crate::sync::rate::RateLimit;
use crate::sync::roster::Roster;
use crate::sync::shutdown::Signal;

/// Everything an IO stage's agents share.
pub(crate) struct IoCore<T, U> {
    pub(crate) name: Arc<str>,
    pub(crate) input: link::Receiver<Item<T>>,
    pub(crate) output: Outlet<U>,
    /// Results an agent keeps before passing them on in one batch (when the
    /// next stage takes batches): `items_per_batch`, live.
    pub(crate) out_batch: AtomicUsize,
    pub(crate) ended: EndedTx,
    pub(crate) stats: Arc<StageStats>,
    pub(crate) roster: Arc<Roster>,
    pub(crate) permits: Arc<Gate>,
    pub(crate) pause: Pause,
    pub(crate) rate: RateLimit,
    pub(crate) shrink: Notify,
    pub(crate) abort: Signal,
    pub(crate) retry: RetryPolicy,
    /// The longest pause a remote's `Retry-After` may impose.
    pub(crate) max_pause: Duration,
    pub(crate) api_timeout: Duration,
    pub(crate) item_deadline: Option<Duration>,
    /// Whether this is the first stage: it starts each item's clock when it
    /// takes the item, so time queued behind the source is not counted.
    pub(crate) first: bool,
}

/// Runs the stage until its input is closed and drained: applies
/// configuration changes (agents, permits, rate) and spawns agents.
pub(crate) async fn supervise<T, U, W>(
    core: Arc<IoCore<T, U>>,
    unit: Arc<W>,
    mut config: watch::Receiver<Config>,
) where
    T: Clone + Send + 'static,
    U: Send + 'static,
    W: Unit<T, U>,
{
    let mut agents = JoinSet::new();
    let mut next_id = 0;
    let mut input_done = false;
    let mut watching = true;
    loop {
        if watching {
            let c = config.borrow_and_update();
            let target = c.total_agents();
            let shrinking = target < core.roster.target();
            core.roster.set_target(target);
            core.permits.resize(c.total_api_permits());
            core.rate.set(c.rate_limit);
            core.out_batch.store(c.items_per_batch, Ordering::Relaxed);
            if shrinking {
                core.shrink.notify_waiters();
            }
        }
        while !input_done && core.roster.try_enlist() {
            let span = tracing::debug_span!("agent", stage = %core.name, agent = next_id);
            agents.spawn(agent(Arc::clone(&core), Arc::clone(&unit), next_id).instrument(span));
            next_id += 1;
        }
        tokio::select! {
            changed = config.changed(), if watching => watching = changed.is_ok(),
            joined = agents.join_next() => match joined {
                Some(Ok(Exit::InputClosed)) => input_done = true,
                Some(Ok(Exit::Retired | Exit::Panicked)) => {}
                Some(Err(e)) => {
                    // Agents catch every panic, their own included: this is
                    // a task cancelled by the runtime shutting down.
                    tracing::error!(stage = %core.name, error = %e, "agent task failed");
                    core.roster.leave();
                }
                None => break,
            },
        }
        if input_done && agents.is_empty() {
            break;
        }
    }
}
