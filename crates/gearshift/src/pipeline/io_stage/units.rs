//! How an IO stage turns what its agents take from the channel into calls:
//! one call per item ([`Single`]) or one per batch of items ([`Batched`]).

use std::future::Future;

use super::IoCore;
use super::agent::Held;
use super::call::CallError;
use crate::error::{ErrorKind, StageError};
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
        agent.taken.add(1);
        let (id, born) = (item.id, item.born);
        if core.abort.is_set() {
            return core.end(id, CallError::Cancelled).await;
        }
        held.in_hand.push(id);
        let result = core.call(item.value, &self.0, agent, held).await;
        held.in_hand.clear();
        match result {
            Ok(value) => core.pass(Item { id, born, value }, agent, held).await,
            Err(e) => core.end(id, e).await,
        }
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
        let mut keys = vec![(first.id, first.born)];
        let mut values = vec![first.value];
        while values.len() < self.max {
            let Ok(item) = core.input.try_recv() else {
                break;
            };
            keys.push((item.id, item.born));
            values.push(item.value);
        }
        agent.taken.add(keys.len() as u64);
        // Reversed, so each item's id is popped as the item is passed on or
        // ended, in order.
        held.in_hand.extend(keys.iter().rev().map(|(id, _)| *id));
        let result = if core.abort.is_set() {
            Err(CallError::Cancelled)
        } else {
            core.call(values, &self.f, agent, held).await
        };
        match result {
            Ok(outs) if outs.len() == keys.len() => {
                for ((id, born), value) in keys.into_iter().zip(outs) {
                    held.in_hand.pop();
                    core.pass(Item { id, born, value }, agent, held).await;
                }
            }
            Ok(outs) => {
                let msg = format!(
                    "batch call returned {} outputs for {} items",
                    outs.len(),
                    keys.len()
                );
                for (id, _) in keys {
                    held.in_hand.pop();
                    let error = StageError::msg(ErrorKind::BadPayload, msg.clone());
                    core.end(id, CallError::Failed(error, 1)).await;
                }
            }
            Err(e) => {
                for (id, _) in keys {
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
