//! The heartbeat: an in-progress ack (`+WPI`) for every held item every
//! `ack_wait / 3`, so an item that takes long (a slow API, a queue in the
//! pipeline) is not redelivered while this worker still has it. Two beats
//! may be lost before the server gives up on the item.

use std::sync::Arc;

use async_nats::jetstream::AckKind;

use super::state::{Counters, Shared};

pub(crate) async fn run(shared: Arc<Shared>) {
    let period = shared.config.ack_wait / 3;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.stop_heartbeat.cancelled() => return,
        }
        let msgs: Vec<_> = shared.held().values().map(|h| h.msg.clone()).collect();
        for msg in msgs {
            match msg.ack_with(AckKind::Progress).await {
                Ok(()) => Counters::add(&shared.counters.heartbeats),
                // Transient: the next beat, or a redelivery, covers it.
                Err(e) => tracing::debug!(error = %e, "heartbeat not sent"),
            }
        }
    }
}
