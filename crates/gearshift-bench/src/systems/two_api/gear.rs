//! gearshift on two APIs: [`gearshift_two_api`] builds the pipeline (the
//! one place to change when per-API budgets land), `run` feeds it the
//! scenario's stage functions and checks its accounting.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use gearshift::{Agents, BuildError, Config, ErrorKind, Outcome, Pipeline, StageError};
use tokio::sync::Semaphore;

use super::{GearPlan, check_ack, within};
use crate::ledger::Ledger;
use crate::systems::RunCtx;

/// The two-API pipeline, as the scenario builds it: `fetch` (IO) ->
/// `process` (CPU) -> `upload` (IO).
///
/// Under [`GearPlan::PerApi`], the fetch API gets at most `limits.fetch`
/// calls in flight (16 in the scenario: its capacity) and the upload API at
/// most `limits.upload` (4, its capacity). gearshift has one `Config` for
/// every stage today, so both IO stages get `max(fetch, upload)` agents and
/// permits, and each API's own limit is a semaphore in its stage function.
/// With per-API budgets this becomes:
///
/// ```text
/// let fetch_api = Api::new("fetch").max_in_flight(limits.fetch);
/// let upload_api = Api::new("upload").max_in_flight(limits.upload);
/// Pipeline::from_iter(0..items).config(config)
///     .io(fetch).named("fetch").api(&fetch_api).agents(Agents::Total(limits.fetch))
///     .cpu(work).named("process")
///     .io(upload).named("upload").api(&upload_api).agents(Agents::Total(limits.upload))
/// ```
///
/// Under [`GearPlan::OneConfig`]`(n)` both stages get `n` agents and `n`
/// permits, and nothing else limits either API.
pub fn gearshift_two_api<F, FFut, W, P, PFut>(
    items: u64,
    plan: GearPlan,
    config: Config,
    fetch: F,
    work: W,
    upload: P,
) -> Pipeline<u64>
where
    F: Fn(u64) -> FFut + Send + Sync + 'static,
    FFut: Future<Output = Result<(u64, Bytes), StageError>> + Send + 'static,
    W: Fn((u64, Bytes)) -> (u64, [u8; 32]) + Send + Sync + 'static,
    P: Fn((u64, [u8; 32])) -> PFut + Send + Sync + 'static,
    PFut: Future<Output = Result<u64, StageError>> + Send + 'static,
{
    let (agents, gates) = match plan {
        GearPlan::PerApi(l) => {
            let gate = |n: usize| Arc::new(Semaphore::new(n.max(1)));
            (l.fetch.max(l.upload), Some((gate(l.fetch), gate(l.upload))))
        }
        GearPlan::OneConfig(n) => (n, None),
    };
    let (fetch_gate, upload_gate) = gates.unzip();
    let config = Config {
        agents: Agents::Total(agents),
        api_permits: Some(agents),
        ..config
    };
    Pipeline::from_iter(0..items)
        .config(config)
        .io(move |id| {
            let gate = fetch_gate.clone();
            let call = fetch(id);
            async move { within(gate.as_deref(), call).await }
        })
        .named("fetch")
        .cpu(work)
        .named("process")
        .io(move |x| {
            let gate = upload_gate.clone();
            let call = upload(x);
            async move { within(gate.as_deref(), call).await }
        })
        .named("upload")
}

/// Runs [`gearshift_two_api`] with the scenario's stage functions; like the
/// one-API gearshift system it counts CPU calls per item (at most one each)
/// and checks the pipeline's own report against the ledger.
pub(super) async fn run(
    ctx: &RunCtx,
    ledger: &Arc<Ledger>,
    up: &str,
    plan: GearPlan,
    cores: usize,
) -> Result<(), BuildError> {
    let mut config = Config::default().with_cores(cores);
    config.api_timeout = ctx.timeout;
    config.stats_interval = None;
    let cpu_calls: Arc<Vec<AtomicU32>> =
        Arc::new((0..ctx.items).map(|_| AtomicU32::new(0)).collect());
    let (fetcher, base, up) = (ctx.fetcher.clone(), ctx.base_url.clone(), up.to_owned());
    let uploader = ctx.fetcher.clone();
    let started = Arc::clone(ledger);
    let (work, calls) = (ctx.work.clone(), Arc::clone(&cpu_calls));
    let pipeline = gearshift_two_api(
        ctx.items,
        plan,
        config,
        move |id: u64| {
            let (fetcher, url) = (fetcher.clone(), format!("{base}/item/{id}"));
            started.start_item(id);
            async move { fetcher.get(&url).await.map(|b| (id, b)) }
        },
        move |(id, body): (u64, Bytes)| {
            if let Some(c) = calls.get(id as usize) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            (id, work(&body))
        },
        move |(id, digest): (u64, [u8; 32])| {
            let (fetcher, url) = (uploader.clone(), format!("{up}/upload/{id}"));
            async move {
                let ack = fetcher.post(&url, digest.to_vec()).await?;
                check_ack(&ack).map(|()| id)
            }
        },
    );
    let (handle, mut outcomes) = pipeline.spawn_stream()?;
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Ok { id, value } if value == id => ledger.record(id, Ok(())),
            Outcome::Ok { id, value } => {
                ledger.problem(format!("item {id} came out as item {value}"));
                ledger.record(id, Ok(()));
            }
            Outcome::Failed(f) => ledger.record(f.item, Err(f.kind())),
            Outcome::Cancelled { id } => ledger.record(id, Err(ErrorKind::Other)),
        }
    }
    let report = handle.join().await;
    let computed_twice = cpu_calls
        .iter()
        .filter(|c| c.load(Ordering::Relaxed) > 1)
        .count();
    if computed_twice > 0 {
        ledger.problem(format!("{computed_twice} items computed more than once"));
    }
    if report.outcomes() != ctx.items {
        ledger.problem(format!(
            "gearshift reported {} outcomes for {} items",
            report.outcomes(),
            ctx.items
        ));
    }
    Ok(())
}
