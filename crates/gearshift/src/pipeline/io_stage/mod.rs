//! The IO stage: a supervisor that keeps the stage's agents (tokio tasks)
//! alive, and the agents, which take items from the input channel, call the
//! stage function under their API budget (its gate of calls in flight, its
//! rate limit and its `Retry-After` pause, shared with every stage on the
//! same API) with a timeout, retries with backoff, and pass results on. Results bound for a stage that takes them in bulk wait
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
mod start;
mod units;

pub(crate) use self::start::start;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use self::agent::{Exit, agent};
pub(crate) use self::units::{Batched, Single, Unit, WithCall};
use super::item::{EndedTx, Item};
use super::link::{self, Outlet};
use crate::control::budget::Budget;
use crate::control::settings::{CallCell, Live};
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
    /// The API budget the stage draws on, and its gate, pause and rate
    /// limit (shared with every stage that names the same API).
    pub(crate) budget: Arc<Budget>,
    pub(crate) permits: Arc<Gate>,
    pub(crate) pause: Arc<Pause>,
    pub(crate) rate: Arc<RateLimit>,
    pub(crate) shrink: Notify,
    pub(crate) abort: Signal,
    /// The stage's resolved call settings (retry, timeouts, deadline,
    /// longest pause), live; each agent keeps a copy.
    pub(crate) calls: CallCell,
    /// The stage's index in the pipeline.
    pub(crate) index: usize,
    /// Whether this is the first stage: it starts each item's clock when it
    /// takes the item, so time queued behind the source is not counted.
    pub(crate) first: bool,
}

impl<T, U> IoCore<T, U> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        name: Arc<str>,
        input: link::Receiver<Item<T>>,
        output: Outlet<U>,
        ended: EndedTx,
        stats: Arc<StageStats>,
        roster: Arc<Roster>,
        budget: Arc<Budget>,
        abort: Signal,
        live: &Live,
    ) -> Self {
        IoCore {
            name,
            input,
            output,
            out_batch: AtomicUsize::new(live.items_per_batch(index)),
            ended,
            stats,
            roster,
            permits: Arc::clone(&budget.permits),
            pause: Arc::clone(&budget.pause),
            rate: Arc::clone(&budget.rate),
            calls: CallCell::new(live.calls(index, &budget.settings())),
            budget,
            shrink: Notify::new(),
            abort,
            index,
            first: index == 0,
        }
    }
}

/// Runs the stage until its input is closed and drained: applies changes of
/// its settings (agents, batch size, call settings, from the pipeline's
/// settings and its API budget's) and spawns agents.
pub(crate) async fn supervise<T, U, W>(
    core: Arc<IoCore<T, U>>,
    unit: Arc<W>,
    mut settings: watch::Receiver<Live>,
) where
    T: Clone + Send + 'static,
    U: Send + 'static,
    W: Unit<T, U>,
{
    let mut api = core.budget.subscribe();
    let mut agents = JoinSet::new();
    let mut next_id = 0;
    let mut input_done = false;
    let (mut watching, mut watching_api) = (true, true);
    let mut changed = true;
    loop {
        if changed {
            let live = settings.borrow_and_update();
            let api = api.borrow_and_update();
            let target = live.agents(core.index);
            let shrinking = target < core.roster.target();
            core.roster.set_target(target);
            core.out_batch
                .store(live.items_per_batch(core.index), Ordering::Relaxed);
            core.calls.publish(live.calls(core.index, &api));
            if shrinking {
                core.shrink.notify_waiters();
            }
        }
        changed = false;
        while !input_done && core.roster.try_enlist() {
            let span = tracing::debug_span!("agent", stage = %core.name, agent = next_id);
            agents.spawn(agent(Arc::clone(&core), Arc::clone(&unit), next_id).instrument(span));
            next_id += 1;
        }
        tokio::select! {
            c = settings.changed(), if watching => { watching = c.is_ok(); changed = true; }
            c = api.changed(), if watching_api => { watching_api = c.is_ok(); changed = true; }
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
