//! The call path: [`IoCore::call`] runs the stage function on one input
//! until it succeeds or gives up, as a sequence of steps, each a function:
//!
//! 1. **pacing** ([`IoCore::pace`]): wait out the remote's `Retry-After`
//!    pause and the rate limit;
//! 2. **permit** ([`IoCore::take_permit`]): take an API permit, or keep the
//!    one from the agent's last call; a pause that began meanwhile sends
//!    the agent back to step 1 without it;
//! 3. **attempt** ([`IoCore::attempt`]): run the function once, under the
//!    per-attempt timeout;
//! 4. **retry** ([`IoCore::retry_or_give_up`]): classify the error, pause
//!    the stage on a `Retry-After`, and give up or back off and go again.
//!
//! Pacing comes before the permit so that no permit sits in an agent that
//! sleeps. Every wait goes through [`IoCore::wait`]: it ends early on an
//! abort and on the item's deadline, and the outbox is flushed before it.
//!
//! Just over 400 lines: one call's steps (pace, permit, attempt, retry) on
//! one type, in the order a call takes them, to be read top to bottom.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use backon::BackoffBuilder;
use futures::FutureExt;
use tokio::time::Instant;

use super::IoCore;
use super::agent::{Held, LATENCIES_HELD};
use crate::config::RetryPolicy;
use crate::error::{ErrorKind, StageError};
use crate::pipeline::item::panic_message;
use crate::stats::counters::AgentStats;
use crate::sync::gate::{Gate, GateRef, Kept};

/// Why a call gave up.
pub(crate) enum CallError {
    Failed(StageError, u32),
    Cancelled,
}

/// What ended a wait before it was over.
enum Interrupted {
    Aborted,
    Deadline,
}

/// The API permit a call runs under.
enum CallPermit<'a> {
    Taken(GateRef<'a>),
    Kept(Kept),
}

impl CallPermit<'_> {
    /// Keeps the permit for the agent's next call, if that starves nobody.
    fn keep(self, gate: &Arc<Gate>) -> Option<Kept> {
        match self {
            CallPermit::Taken(permit) => permit.keep(gate),
            CallPermit::Kept(kept) => kept.keep(),
        }
    }
}

/// Where one call stands: what its steps need to bound their waits and to
/// say why they gave up.
struct Tries {
    /// The stage's deadline per item, and when it ends for this item.
    item_deadline: Option<Duration>,
    deadline: Option<Instant>,
    /// Attempts started so far.
    attempts: u32,
    /// The last attempt's error, named if a later wait outlasts the deadline.
    last_error: Option<StageError>,
    /// The retry delays, built only once an attempt has failed.
    backoff: Option<backon::ExponentialBackoff>,
}

impl<T, U> IoCore<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
{
    /// Calls `f` on `input` and the attempt number (from 1) until it
    /// succeeds, attempts run out, the item's deadline passes, or the
    /// pipeline is aborted. On success, also the attempts it took.
    pub(super) async fn call<I, O, F, Fut, E>(
        &self,
        input: I,
        f: &F,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) -> Result<(O, u32), CallError>
    where
        I: Clone,
        F: Fn(I, u32) -> Fut,
        Fut: Future<Output = Result<O, E>>,
        E: Into<StageError>,
    {
        let mut input = Some(input);
        self.calls.refresh(&mut held.calls);
        let item_deadline = held.calls.settings.item_deadline;
        let mut tries = Tries {
            item_deadline,
            // Validated at most a year, so this only fails on a clock near its end.
            deadline: item_deadline.and_then(|d| held.now.checked_add(d)),
            attempts: 0,
            last_error: None,
            backoff: None,
        };
        loop {
            // Each wait polls the ready case first, so the abort signal is
            // only registered (which takes a lock) when the agent must wait.
            if self.abort.is_set() {
                return Err(CallError::Cancelled);
            }
            self.make_room(held, agent).await;
            let permit = loop {
                self.pace(&tries, agent, held).await?;
                let permit = self.take_permit(&tries, agent, held).await?;
                // Right before the call: a pause that began while this agent
                // waited for its permit holds too, without the permit.
                if !self.pause.is_on(held.now) {
                    break permit;
                }
                drop(permit);
            };
            tries.attempts += 1;
            let last = tries.attempts >= held.calls.settings.retry.max_attempts;
            let arg = if last { input.take() } else { input.clone() }
                .expect("input is kept until the last attempt");
            let result = self.attempt(f, arg, &tries, agent, held).await?;
            held.permit = match &result {
                Ok(_) => permit.keep(&self.permits),
                Err(_) => {
                    drop(permit);
                    None
                }
            };
            match result {
                Ok(out) => return Ok((out, tries.attempts)),
                Err(error) => {
                    self.retry_or_give_up(error, last, &mut tries, agent, held)
                        .await?
                }
            }
        }
    }

    /// Pacing: waits out the stage's `Retry-After` pause and the rate limit
    /// before the agent takes a permit, and gives back the permit it kept if
    /// it must sleep, so no permit sits idle in a sleeping agent. Fails at
    /// once a pause that outlasts the item's deadline.
    async fn pace(
        &self,
        tries: &Tries,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) -> Result<(), CallError> {
        if !self.pause.is_on(held.now) && !self.rate.is_limited() {
            return Ok(());
        }
        if let (Some(until), Some(d)) = (self.pause.until(), tries.deadline)
            && until >= d
        {
            return Err(self.interrupted(Interrupted::Deadline, "the remote's pause", tries));
        }
        self.flush(held, agent).await;
        let paced = self.wait(
            async {
                self.pause.wait().await;
                self.rate.ready().await;
                self.pause.wait().await;
            },
            tries.deadline,
        );
        let mut paced = pin!(paced);
        // A turn that is due now costs no sleep: the kept permit stays.
        let paced = match futures::poll!(paced.as_mut()) {
            Poll::Ready(paced) => paced,
            Poll::Pending => {
                held.permit = None;
                paced.await
            }
        };
        paced
            .map_err(|why| self.interrupted(why, "the remote's pause or the rate limit", tries))?;
        held.now = Instant::now();
        Ok(())
    }

    /// Permit: the API permit the call runs under. The one kept from the
    /// agent's last call serves if no shrink wants it back (a permit's round
    /// trip through the semaphore takes its lock); else a free one; else the
    /// agent flushes its outbox and waits for one.
    async fn take_permit(
        &self,
        tries: &Tries,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) -> Result<CallPermit<'_>, CallError> {
        match held.permit.take() {
            Some(kept) if kept.still_ours() => return Ok(CallPermit::Kept(kept)),
            kept => drop(kept),
        }
        if let Some(permit) = self.permits.try_acquire_ref() {
            return Ok(CallPermit::Taken(permit));
        }
        self.flush(held, agent).await;
        let permit = self
            .wait(self.permits.acquire_ref(), tries.deadline)
            .await
            .map_err(|why| self.interrupted(why, "an API permit", tries))?;
        held.now = Instant::now();
        Ok(CallPermit::Taken(permit))
    }

    /// Attempt: runs `f` once (attempt number `tries.attempts`) under the per-attempt timeout (cut to the time
    /// left before the item's deadline), turns its panic or timeout into an
    /// error, and measures its latency. While a call that is not done at
    /// once runs, the outbox is passed on. `Err` only on an abort.
    async fn attempt<I, O, F, Fut, E>(
        &self,
        f: &F,
        arg: I,
        tries: &Tries,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) -> Result<Result<O, StageError>, CallError>
    where
        F: Fn(I, u32) -> Fut,
        Fut: Future<Output = Result<O, E>>,
        E: Into<StageError>,
    {
        let started = held.now;
        let timeout = match tries.deadline {
            Some(d) => (held.calls.settings.api_timeout).min(d.saturating_duration_since(started)),
            None => held.calls.settings.api_timeout,
        };
        let running = agent.running.start(started);
        let mut call = pin!(AssertUnwindSafe(f(arg, tries.attempts)).catch_unwind());
        // A call done at once needs no timer. One that is not is the moment
        // to pass on what the outbox holds, while it runs. The flush is never
        // dropped halfway (it owns a batch): it sees an abort itself, and the
        // call ends with `None` on one.
        let (result, ended) = match futures::poll!(call.as_mut()) {
            Poll::Ready(result) => (Ok(result), Instant::now()),
            Poll::Pending => {
                let timed = async {
                    tokio::select! {
                        biased;
                        result = tokio::time::timeout_at(started + timeout, call) => {
                            Some((result, Instant::now()))
                        }
                        _ = self.abort.triggered() => None,
                    }
                };
                match futures::join!(timed, self.flush(held, agent)).0 {
                    Some(done) => done,
                    None => return Err(CallError::Cancelled),
                }
            }
        };
        // The call's own time, not a flush it waited for (a flush that
        // blocked has read the clock after it).
        let took = ended - started;
        held.now = held.now.max(ended);
        drop(running);
        agent.api_nanos.add_time(took);
        agent.attempts.add(1);
        Ok(match result {
            Ok(Ok(Ok(out))) => {
                held.latencies.push(took);
                if held.latencies.len() >= LATENCIES_HELD {
                    self.record_latencies(held, agent);
                }
                agent.processed.add(1);
                Ok(out)
            }
            Ok(Ok(Err(e))) => Err(e.into()),
            Ok(Err(panic)) => Err(StageError::msg(ErrorKind::Panic, panic_message(&*panic))),
            Err(_) => Err(StageError::msg(
                ErrorKind::Timeout,
                format!("attempt timed out after {timeout:?}"),
            )),
        })
    }

    /// Retry: counts the error and pauses the stage if the remote asked to
    /// retry after a while; then gives up (the last attempt, an error the
    /// policy does not retry, or no time for a retry before the deadline)
    /// or waits out the backoff, so the caller tries again.
    async fn retry_or_give_up(
        &self,
        error: StageError,
        last: bool,
        tries: &mut Tries,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) -> Result<(), CallError> {
        let attempts = tries.attempts;
        agent.errors.add(1);
        self.stats.record_error(error.kind());
        self.record_api_error(error.kind(), held, agent);
        if let Some(asked) = error.retry_after() {
            self.pause_for(asked, held.calls.settings.max_pause);
        }
        if last || !held.calls.settings.retry.should_retry(&error) {
            tracing::debug!(stage = %self.name, attempts, error = %error, "giving up on item");
            return Err(CallError::Failed(error, attempts));
        }
        let retry = &held.calls.settings.retry;
        let backoff = tries.backoff.get_or_insert_with(|| delays(retry));
        let delay = backoff.next().unwrap_or(retry.max_backoff);
        // No retry that could not start before the deadline.
        let retry_at = Instant::now().checked_add(delay);
        if let Some(d) = tries.deadline
            && retry_at.is_none_or(|at| at >= d)
        {
            tracing::debug!(stage = %self.name, attempts, error = %error, "giving up on item: no time left for a retry");
            return Err(CallError::Failed(error, attempts));
        }
        agent.retries.add(1);
        self.stats.retries.add(1);
        tracing::trace!(stage = %self.name, attempt = attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
        tries.last_error = Some(error);
        self.flush(held, agent).await;
        let slept = match retry_at {
            Some(at) => {
                self.wait(tokio::time::sleep_until(at), tries.deadline)
                    .await
            }
            None => {
                self.wait(std::future::pending::<()>(), tries.deadline)
                    .await
            }
        };
        slept.map_err(|why| self.interrupted(why, "a backoff", tries))?;
        held.now = Instant::now();
        Ok(())
    }

    /// Waits for `wait` unless the pipeline is aborted or the item's
    /// deadline passes first.
    async fn wait<R>(
        &self,
        wait: impl Future<Output = R>,
        deadline: Option<Instant>,
    ) -> Result<R, Interrupted> {
        let deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.abort.triggered() => Err(Interrupted::Aborted),
            r = wait => Ok(r),
            _ = deadline => Err(Interrupted::Deadline),
        }
    }

    /// The outcome of a call whose wait was cut short: cancelled on an
    /// abort, failed as a timeout (naming the wait and the last error) when
    /// the item's deadline passed.
    fn interrupted(&self, why: Interrupted, waiting_for: &str, tries: &Tries) -> CallError {
        if let Interrupted::Aborted = why {
            return CallError::Cancelled;
        }
        let limit = tries.item_deadline.unwrap_or_default();
        let mut msg = format!("item deadline of {limit:?} passed while waiting for {waiting_for}");
        if let Some(e) = &tries.last_error {
            msg.push_str(&format!(" (last error: {e})"));
        }
        let attempts = tries.attempts;
        tracing::debug!(stage = %self.name, attempts, error = %msg, "giving up on item");
        CallError::Failed(StageError::msg(ErrorKind::Timeout, msg), attempts)
    }

    /// Pauses every agent of the stage for what the remote asked, cut to
    /// `max_pause`: a header is outside input, and an absurd one must not
    /// stall the stage for ever.
    fn pause_for(&self, asked: Duration, max_pause: Duration) {
        let pause = asked.min(max_pause);
        if pause < asked {
            tracing::info!(stage = %self.name, asked_s = asked.as_secs(), max_pause_s = pause.as_secs(), "remote asked for a pause longer than max_pause; cut to max_pause");
        }
        self.budget.pause_for(pause);
        self.stats.note_retry_after(pause);
        tracing::info!(stage = %self.name, pause_ms = pause.as_millis() as u64, "remote asked to retry after; stage paused");
    }
}

/// The retry delays, built only once an attempt has failed.
fn delays(retry: &RetryPolicy) -> backon::ExponentialBackoff {
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(retry.initial_backoff)
        .with_max_delay(retry.max_backoff)
        .with_max_times(retry.max_attempts as usize);
    if retry.jitter {
        backoff.with_jitter().build()
    } else {
        backoff.build()
    }
}
