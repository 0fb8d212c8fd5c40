//! gearshift on two APIs: [`gearshift_two_api`] builds the pipeline, one
//! budget per API; `run` feeds it the scenario's stage functions and checks
//! its accounting.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use gearshift::{Agents, Api, BuildError, Config, ErrorKind, Outcome, Pipeline, StageError};

use super::{GearPlan, check_ack};
use crate::ledger::Ledger;
use crate::systems::RunCtx;

/// The two-API pipeline, as the scenario builds it: `fetch` (IO) ->
/// `process` (CPU) -> `upload` (IO).
///
/// Under [`GearPlan::PerApi`], each API is a budget of its own: the fetch
/// API takes at most `limits.fetch` calls in flight (16 in the scenario: its
/// capacity) and the upload API at most `limits.upload` (4), and each stage
/// runs as many agents as its API takes:
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
/// Under [`GearPlan::OneConfig`]`(n)` both stages get the pipeline-wide
/// default of `n` agents, and nothing else limits either API: what one
/// setting for every stage gives.
///
/// Under [`GearPlan::NothingSet`] each API is a budget with nothing fixed:
/// each runs the default controller, from the seed's 2 agents per core.
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
    match plan {
        GearPlan::PerApi(limits) => {
            let fetch_api = Api::new("fetch").max_in_flight(limits.fetch);
            let upload_api = Api::new("upload").max_in_flight(limits.upload);
            Pipeline::from_iter(0..items)
                .config(config)
                .io(fetch)
                .named("fetch")
                .api(&fetch_api)
                .agents(Agents::Total(limits.fetch))
                .cpu(work)
                .named("process")
                .io(upload)
                .named("upload")
                .api(&upload_api)
                .agents(Agents::Total(limits.upload))
        }
        GearPlan::NothingSet => Pipeline::from_iter(0..items)
            .config(Config {
                agents: Agents::Auto,
                ..config
            })
            .io(fetch)
            .named("fetch")
            .api(&Api::new("fetch"))
            .cpu(work)
            .named("process")
            .io(upload)
            .named("upload")
            .api(&Api::new("upload")),
        GearPlan::OneConfig(n) => Pipeline::from_iter(0..items)
            .config(Config {
                agents: Agents::Total(n),
                ..config
            })
            .io(fetch)
            .named("fetch")
            .cpu(work)
            .named("process")
            .io(upload)
            .named("upload"),
    }
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
            Outcome::Ok { id, value, .. } if value == id => ledger.record(id, Ok(())),
            Outcome::Ok { id, value, .. } => {
                ledger.problem(format!("item {id} came out as item {value}"));
                ledger.record(id, Ok(()));
            }
            Outcome::Failed(f) => ledger.record(f.item, Err(f.kind())),
            Outcome::Cancelled { id } => ledger.record(id, Err(ErrorKind::Other)),
        }
    }
    let report = handle.join().await;
    crate::systems::gearshift::check_run(ledger, &cpu_calls, &report, ctx.items);
    Ok(())
}
