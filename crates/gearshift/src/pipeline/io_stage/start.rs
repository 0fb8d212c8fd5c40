//! Starting an IO stage: its input channel, its stats and gauges, its
//! agents' shared core on the stage's API budget, and the supervisor task.

use std::sync::Arc;

use super::{IoCore, Unit, supervise};
use crate::error::BuildError;
use crate::pipeline::link::{self, Outlet};
use crate::pipeline::{Build, Ctx};
use crate::stats::counters::{
    Concurrency, ConcurrencyGauge, QueueLen, StageGauges, StageKind, StageStats,
};
use crate::sync::roster::Roster;

/// Starts IO stage `index`, which calls `unit` on what `upstream` sends it
/// and passes results to `output`.
pub(crate) fn start<T, U, W>(
    ctx: &mut Ctx,
    index: usize,
    unit: W,
    upstream: Build<T>,
    output: Outlet<U>,
) -> Result<(), BuildError>
where
    T: Clone + Send + 'static,
    U: Send + 'static,
    W: Unit<T, U>,
{
    let live = &ctx.live;
    let capacity = live.channel_capacity(index);
    let (tx, input) = link::bounded(capacity);
    upstream(ctx, Outlet::Items(tx))?;
    let live = &ctx.live;
    let name = Arc::clone(&ctx.shared.names[index]);
    let budget = ctx.shared.stage_apis[index]
        .clone()
        .expect("an IO stage has a budget");
    let roster = Arc::new(Roster::new(live.agents(index)));
    let queue = input.watcher();
    let permits = &budget.permits;
    let (r, p) = (Arc::clone(&roster), Arc::clone(permits));
    let gauges = StageGauges {
        concurrency: ConcurrencyGauge(Box::new(move || Concurrency {
            alive: r.alive(),
            target: r.target(),
            permits: p.size(),
            in_use: p.in_use(),
        })),
        queue: QueueLen(Box::new(move || queue.len())),
        queue_capacity: capacity,
        peak_in_use: Arc::clone(permits.peaks()),
    };
    let stats = Arc::new(StageStats::new(
        Arc::clone(&name),
        StageKind::Io,
        gauges,
        live.defaults.cores,
    ));
    ctx.register(&stats);
    let core = Arc::new(IoCore::new(
        index,
        name,
        input,
        output,
        ctx.ended.clone(),
        stats,
        roster,
        budget,
        ctx.shared.shutdown.abort.clone(),
        live,
    ));
    let span = tracing::info_span!("stage", stage = %core.name, kind = "io");
    let supervisor = supervise(core, Arc::new(unit), ctx.shared.settings.subscribe());
    tokio::spawn(tracing::Instrument::instrument(supervisor, span));
    Ok(())
}
