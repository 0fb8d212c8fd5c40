//! How an IO stage turns what its agents take from the channel into calls:
//! one call per item ([`Single`], or [`WithCall`] when the stage function
//! also takes the item's [`Call`]) or one per batch of items ([`Batched`]).
//! Each adds the attempts its call took to the item's count, which ends in
//! `Outcome::Ok::attempts`.

use std::future::Future;

use super::IoCore;
use super::agent::Held;
use super::call::CallError;
use crate::error::{ErrorKind, StageError};
use crate::outcome::Call;
use crate::pipeline::item::Item;
use crate::stats::counters::AgentStats;

/// How an IO stage turns what agents take from the channel into calls.
pub(crate) trait Unit<T, U>: Send + Sync + 'static {
    /// Processes `first` (and, for batch calls, more items the agent takes),
    /// passing results on through what the agent holds.
    fn process<'a>(
        &'a self,
        core: &'a IoCore<T, U>,
        first: Item<T>,
        agent: &'a AgentStats,
        held: &'a mut Held<U>,
    ) -> impl Future<Output = ()> + Send + 'a;
}

/// One call per item.
pub(crate) struct Single<F>(pub(crate) F);

/// One call per item, to a function that also takes the item's [`Call`]
/// (its id and the attempt number).
pub(crate) struct WithCall<F>(pub(crate) F);

/// One call per batch of up to `max` items.
pub(crate) struct Batched<F> {
    pub(crate) f: F,
    pub(crate) max: usize,
}

impl<T, U, F, Fut, E> Unit<T, U> for Single<F>
where
    T: Clone + Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<StageError> + Send + 'static,
{
    async fn process(
        &self,
        core: &IoCore<T, U>,
        item: Item<T>,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) {
        let f = |value, _attempt| (self.0)(value);
        process_one(core, item, &f, agent, held).await;
    }
}

impl<T, U, F, Fut, E> Unit<T, U> for WithCall<F>
where
    T: Clone + Send + 'static,
    U: Send + 'static,
    F: Fn(T, Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<StageError> + Send + 'static,
{
    async fn process(
        &self,
        core: &IoCore<T, U>,
        item: Item<T>,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) {
        let id = item.id;
        let f = |value, attempt| (self.0)(value, Call { item: id, attempt });
        process_one(core, item, &f, agent, held).await;
    }
}

/// One item's call to `f` (which takes the value and the attempt number),
/// then the result passed on or the item ended.
async fn process_one<T, U, F, Fut, E>(
    core: &IoCore<T, U>,
    item: Item<T>,
    f: &F,
    agent: &AgentStats,
    held: &mut Held<U>,
) where
    T: Clone + Send + 'static,
    U: Send + 'static,
    F: Fn(T, u32) -> Fut,
    Fut: Future<Output = Result<U, E>>,
    E: Into<StageError>,
{
    agent.taken.add(1);
    let Item {
        id,
        born,
        attempts: before,
        value,
    } = item;
    if core.abort.is_set() {
        return core.end(id, CallError::Cancelled).await;
    }
    held.in_hand.push(id);
    let result = core.call(value, f, agent, held).await;
    held.in_hand.clear();
    match result {
        Ok((value, attempts)) => {
            let attempts = before.saturating_add(attempts);
            let item = Item {
                id,
                born,
                attempts,
                value,
            };
            core.pass(item, agent, held).await
        }
        Err(e) => core.end(id, e).await,
    }
}

impl<T, U, F, Fut, E> Unit<T, U> for Batched<F>
where
    T: Clone + Send + Sync + 'static,
    U: Send + 'static,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<U>, E>> + Send + 'static,
    E: Into<StageError> + Send + 'static,
{
    async fn process(
        &self,
        core: &IoCore<T, U>,
        first: Item<T>,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) {
        let mut keys = vec![(first.id, first.born, first.attempts)];
        let mut values = vec![first.value];
        while values.len() < self.max {
            let Ok(item) = core.input.try_recv() else {
                break;
            };
            keys.push((item.id, item.born, item.attempts));
            values.push(item.value);
        }
        agent.taken.add(keys.len() as u64);
        // Reversed, so each item's id is popped as the item is passed on or
        // ended, in order.
        held.in_hand.extend(keys.iter().rev().map(|(id, ..)| *id));
        let result = if core.abort.is_set() {
            Err(CallError::Cancelled)
        } else {
            let f = |values, _attempt| (self.f)(values);
            core.call(values, &f, agent, held).await
        };
        match result {
            Ok((outs, tries)) if outs.len() == keys.len() => {
                for ((id, born, before), value) in keys.into_iter().zip(outs) {
                    held.in_hand.pop();
                    let attempts = before.saturating_add(tries);
                    let item = Item {
                        id,
                        born,
                        attempts,
                        value,
                    };
                    core.pass(item, agent, held).await;
                }
            }
            Ok((outs, tries)) => {
                let msg = format!(
                    "batch call returned {} outputs for {} items",
                    outs.len(),
                    keys.len()
                );
                for (id, ..) in keys {
                    held.in_hand.pop();
                    let error = StageError::msg(ErrorKind::BadPayload, msg.clone());
                    core.end(id, CallError::Failed(error, tries)).await;
                }
            }
            Err(e) => {
                for (id, ..) in keys {
                    held.in_hand.pop();
                    let e = match &e {
                        CallError::Cancelled => CallError::Cancelled,
                        CallError::Failed(err, n) => CallError::Failed(err.clone(), *n),
                    };
                    core.end(id, e).await;
                }
            }
        }
    }
}
