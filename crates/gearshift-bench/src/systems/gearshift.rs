//! gearshift as a system under test: a two-stage pipeline (fetch on the IO
//! stage, the work function on the CPU stage) whose outcomes go to the
//! ledger, with an optional live preset switch at the scenario's phase change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use gearshift::{Api, BuildError, Config, ErrorKind, Outcome, Pipeline, Preset, Report};

use super::RunCtx;
use crate::ledger::Ledger;

/// Runs a gearshift pipeline with `config` (under the default controller if
/// `tuned`) over the context's items. If `switch_to` is set and the scenario has a phase change, that preset is
/// applied through the handle when the phase changes.
///
/// Besides the ledger's outcome count per item, it counts CPU calls per item
/// (at most one each) and checks the pipeline's own report against the
/// ledger.
///
/// # Errors
///
/// [`BuildError`] if gearshift refuses the configuration.
pub async fn run(
    ctx: &RunCtx,
    ledger: &Arc<Ledger>,
    mut config: Config,
    switch_to: Option<Preset>,
    tuned: bool,
) -> Result<(), BuildError> {
    config.api_timeout = ctx.timeout;
    config.stats_interval = None;
    let cpu_calls: Arc<Vec<AtomicU32>> =
        Arc::new((0..ctx.items).map(|_| AtomicU32::new(0)).collect());
    let (fetcher, base) = (ctx.fetcher.clone(), ctx.base_url.clone());
    let io_ledger = Arc::clone(ledger);
    let (work, calls) = (ctx.work.clone(), Arc::clone(&cpu_calls));
    if tuned {
        // Nothing fixes the concurrency: the budget runs the default controller.
        config.agents = gearshift::Agents::Auto;
    }
    let api = Api::new("mock-api");
    let (handle, mut outcomes) = Pipeline::from_iter(0..ctx.items)
        .config(config)
        .io(move |id: u64| {
            let fetcher = fetcher.clone();
            let url = format!("{base}/item/{id}");
            io_ledger.start_item(id);
            async move { fetcher.get(&url).await.map(|b| (id, b)) }
        })
        .api(&api)
        .cpu(move |(id, body): (u64, Bytes)| {
            if let Some(c) = calls.get(id as usize) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            work(&body)
        })
        .spawn_stream()?;
    if let (Some(preset), Some(phase)) = (switch_to, &ctx.phase) {
        let mut fired = phase.subscribe();
        let (h, l) = (handle.clone(), Arc::clone(ledger));
        tokio::spawn(async move {
            if fired.wait_for(|f| *f).await.is_ok() {
                match h.apply(preset) {
                    Ok(()) => l.mark(format!("switch to {preset}")),
                    Err(e) => l.problem(format!("preset switch refused: {e}")),
                }
            }
        });
    }
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Ok { id, value, .. } => {
                std::hint::black_box(value);
                ledger.record(id, Ok(()));
            }
            Outcome::Failed(f) => ledger.record(f.item, Err(f.kind())),
            Outcome::Cancelled { id } => ledger.record(id, Err(ErrorKind::Other)),
        }
    }
    let report = handle.join().await;
    check_run(ledger, &cpu_calls, &report, ctx.items);
    Ok(())
}

/// After a gearshift run: no item computed twice (by the stage function's
/// own count), and the pipeline's report has an outcome for every item.
pub(crate) fn check_run(ledger: &Ledger, cpu_calls: &[AtomicU32], report: &Report, items: u64) {
    let computed_twice = cpu_calls
        .iter()
        .filter(|c| c.load(Ordering::Relaxed) > 1)
        .count();
    if computed_twice > 0 {
        ledger.problem(format!("{computed_twice} items computed more than once"));
    }
    if report.outcomes() != items {
        ledger.problem(format!(
            "gearshift reported {} outcomes for {} items",
            report.outcomes(),
            items
        ));
    }
}
