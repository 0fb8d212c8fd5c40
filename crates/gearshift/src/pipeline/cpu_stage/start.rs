//! Starting a CPU stage: its input channel, its batch slots and workers,
//! its stats and gauges, the forwarder thread and the batcher task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use super::{BATCHES_PER_WORKER, CpuCore, CpuFn, spawn_forwarder};
use crate::error::BuildError;
use crate::pipeline::link::{Outlet, batch_channel};
use crate::pipeline::{Build, Ctx};
use crate::stats::counters::{
    Concurrency, ConcurrencyGauge, QueueLen, StageGauges, StageKind, StageStats,
};
use crate::sync::gate::Gate;

/// Starts CPU stage `index`, which runs `f` on what `upstream` sends it
/// and passes results to `output`.
pub(crate) fn start<T, U>(
    ctx: &mut Ctx,
    index: usize,
    f: CpuFn<T, U>,
    upstream: Build<T>,
    output: Outlet<U>,
) -> Result<(), BuildError>
where
    T: Send + 'static,
    U: Send + 'static,
{
    let capacity = ctx.live.channel_capacity(index);
    let (tx, input) = batch_channel(capacity);
    upstream(ctx, Outlet::Batches(tx))?;
    let pool = ctx.pool()?;
    let live = &ctx.live;
    let output = Arc::new(output);
    let name = Arc::clone(&ctx.shared.names[index]);
    let workers = live.workers(index);
    let slots = Gate::new(workers * BATCHES_PER_WORKER);
    let workers = Arc::new(AtomicUsize::new(workers));
    let queue = input.watcher();
    let (s, w) = (Arc::clone(&slots), Arc::clone(&workers));
    let gauges = StageGauges {
        concurrency: ConcurrencyGauge(Box::new(move || {
            let workers = w.load(std::sync::atomic::Ordering::Relaxed);
            Concurrency {
                alive: workers,
                target: workers,
                permits: s.size(),
                in_use: s.in_use(),
            }
        })),
        queue: QueueLen(Box::new(move || queue.len())),
        queue_capacity: capacity,
        peak_in_use: Arc::clone(slots.peaks()),
    };
    let stats = Arc::new(StageStats::new(
        Arc::clone(&name),
        StageKind::Cpu,
        gauges,
        live.defaults.cores,
    ));
    ctx.register(&stats);
    let results = spawn_forwarder(
        &name,
        Arc::clone(&output),
        ctx.ended.clone(),
        Arc::clone(&stats),
    )
    .map_err(|e| BuildError::Pool(format!("could not start a forwarder thread: {e}")))?;
    let core = Arc::new(CpuCore {
        index,
        name: Arc::clone(&name),
        f,
        input,
        ended: ctx.ended.clone(),
        stats,
        slots,
        workers,
        abort: ctx.shared.shutdown.abort.clone(),
        pool,
        output,
        ready: crossbeam_channel::unbounded(),
        active: AtomicUsize::new(0),
        item_nanos: AtomicU64::new(0),
        first: index == 0,
    });
    let span = tracing::info_span!("stage", stage = %name, kind = "cpu");
    let batcher = core.run(results, ctx.shared.settings.subscribe());
    tokio::spawn(tracing::Instrument::instrument(batcher, span));
    Ok(())
}
