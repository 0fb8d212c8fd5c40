//! One case: build the pipeline, run it in the case's mode, make the
//! handle calls, and check that every item taken has one outcome.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gearshift::{
    Api, BuildError, Order, Outcome, Pipeline, PipelineHandle, Report, Schedule, ToSink,
};

use super::guard::{Fail, Pass, fail, guard, guard_async};
use super::values::Field;
use super::{BuildOp, Case, HandleOp, MARKER, Mode, Source};

/// A run without a handle must end within this.
const RUN_BOUND: Duration = Duration::from_secs(15);
/// How long a run with a handle may go on before it is aborted.
const PATIENCE: Duration = Duration::from_secs(1);
/// An abort must end the run within this.
const ABORT_BOUND: Duration = Duration::from_secs(10);

/// What the case saw: items pulled from the source, outcomes delivered.
#[derive(Default)]
struct Seen {
    taken: AtomicU64,
    sunk: Mutex<Vec<Outcome<u64>>>,
    dead: Mutex<Vec<gearshift::Failure>>,
}

fn start(source: Source, seen: &Arc<Seen>) -> (Pipeline<u64>, Option<async_channel::Sender<u64>>) {
    let s = Arc::clone(seen);
    let count = move |_: &u64| {
        s.taken.fetch_add(1, Ordering::SeqCst);
    };
    match source {
        Source::Iter(n) => (Pipeline::from_iter((0..n).inspect(count)), None),
        Source::Unsized(n) => {
            let mut next = 0;
            let items = futures::stream::poll_fn(move |_| {
                let item = (next < n).then(|| {
                    next += 1;
                    count(&next);
                    next - 1
                });
                std::task::Poll::Ready(item)
            });
            (Pipeline::from_stream(items), None)
        }
        Source::Fallible(n, every) => {
            let items = (0..n).inspect(count).map(move |i| match i % every {
                0 => Err(std::io::Error::other("injected source error")),
                _ => Ok(i),
            });
            (
                Pipeline::from_try_stream(futures::stream::iter(items)),
                None,
            )
        }
        Source::Channel { n, close_late } => {
            let (tx, rx) = async_channel::bounded(n.max(1) as usize);
            // A late-closing channel gets its second half after the handle
            // calls, so the run is still going while they land.
            let first = if close_late { n / 2 } else { n };
            (0..first).for_each(|i| send(&tx, seen, i));
            (Pipeline::from_channel(rx), Some(tx))
        }
    }
}

/// Sends an item into a channel source; counts it as taken if it went in
/// (a cancel closes the channel).
fn send(tx: &async_channel::Sender<u64>, seen: &Seen, i: u64) {
    if tx.try_send(i).is_ok() {
        seen.taken.fetch_add(1, Ordering::SeqCst);
    }
}

/// Ends a channel source: sends the second half of a late-closing one,
/// then closes it. Without a handle, before the run; with one, after the
/// handle calls.
fn close(case: &Case, tx: Option<&async_channel::Sender<u64>>, seen: &Seen) {
    let Some(tx) = tx else { return };
    if let Source::Channel {
        n,
        close_late: true,
    } = case.source
    {
        (n / 2..n).for_each(|i| send(tx, seen, i));
    }
    tx.close();
}

fn build(
    case: &Case,
    seen: &Arc<Seen>,
) -> Result<(Built, Option<async_channel::Sender<u64>>), Fail> {
    let (mut p, tx) = start(case.source, seen);
    // One API budget for every IO stage of the case, with the budget's
    // fields among the case's settings.
    let mut api = Api::new(API);
    for op in &case.build {
        match op {
            BuildOp::Set(Field::ApiPermits(Some(n))) => api = api.max_in_flight(*n),
            BuildOp::Set(Field::RateLimit(Some(r))) => api = api.rate_limit(*r),
            _ => {}
        }
    }
    for op in &case.build {
        let call = format!("{}: {op:?}", op.label());
        p = match op.clone() {
            BuildOp::Set(f) => guard(&call, true, || p.configure(move |c| f.apply(c)))?,
            BuildOp::Config(preset) => {
                let c = preset.map_or_else(gearshift::Config::default, gearshift::Preset::config);
                guard(&call, true, || p.config(c))?
            }
            BuildOp::Preset(preset) => guard(&call, true, || p.preset(preset))?,
            BuildOp::TimeOfDay(offset, switches) => {
                match guard(&call, true, || Schedule::time_of_day(offset, switches))? {
                    Ok(s) => guard(&call, true, || p.schedule(s))?,
                    Err(_) => p, // a typed refusal
                }
            }
            BuildOp::After(switches) => {
                guard(&call, true, || p.schedule(Schedule::after(switches)))?
            }
            BuildOp::Stage(stage) => guard(&call, true, || stage.add_to(p, &api))?,
            BuildOp::Named(name) => guard(&call, true, || p.named(name))?,
        };
    }
    if case.dead_letter {
        let s = Arc::clone(seen);
        p = guard("dead_letter(..)", true, || {
            p.dead_letter(move |f| s.dead.lock().unwrap().push(f))
        })?;
    }
    if !case.sink {
        return Ok((Built::Caller(p), tx));
    }
    let s = Arc::clone(seen);
    let p = guard("sink(..)", true, || {
        p.sink(move |o| s.sunk.lock().unwrap().push(o))
    })?;
    Ok((Built::Sink(p), tx))
}

/// The pipeline with its outputs: its outcomes go back to the caller, or to
/// a sink (a type of its own, with no stream to hand back).
enum Built {
    Caller(Pipeline<u64>),
    Sink(Pipeline<u64, ToSink>),
}

impl Built {
    fn spawn(self) -> Result<PipelineHandle, BuildError> {
        match self {
            Built::Caller(p) => p.spawn(),
            Built::Sink(p) => p.spawn(),
        }
    }

    async fn run(self) -> Result<Report, BuildError> {
        match self {
            Built::Caller(p) => p.run().await,
            Built::Sink(p) => p.run().await,
        }
    }

    fn run_blocking(self) -> Result<Report, BuildError> {
        match self {
            Built::Caller(p) => p.run_blocking(),
            Built::Sink(p) => p.run_blocking(),
        }
    }

    /// For `collect` and `spawn_stream`, which `Case::mode` never gives a
    /// pipeline with a sink.
    fn into_caller(self) -> Pipeline<u64> {
        match self {
            Built::Caller(p) => p,
            Built::Sink(_) => unreachable!("a pipeline with a sink has no stream"),
        }
    }
}

/// A refused pipeline: the error is typed and names what it refused.
fn refused(case: &Case, seen: &Seen, e: BuildError) -> Result<Pass, Fail> {
    let text = e.to_string();
    if let BuildError::Config(c) = &e
        && !text.contains(c.field)
    {
        return fail("a config error does not name its field", text);
    }
    let taken = seen.taken.load(Ordering::SeqCst);
    if !matches!(case.source, Source::Channel { .. }) && taken > 0 {
        return fail(
            "a refused pipeline took items",
            format!("{taken} taken: {text}"),
        );
    }
    Ok(Pass::Refused)
}

pub fn case_thread(case: Case) -> Result<Pass, Fail> {
    let seen = Arc::new(Seen::default());
    let (p, tx) = build(&case, &seen)?;
    let mode = case.mode();
    if mode == Mode::RunBlockingOutside {
        close(&case, tx.as_ref(), &seen);
        return match guard("run_blocking()", false, || p.run_blocking())? {
            Ok(report) => check(&case, &seen, report, None, false),
            Err(e) => refused(&case, &seen, e),
        };
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(drive(&case, mode, p, tx, &seen));
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn drive(
    case: &Case,
    mode: Mode,
    p: Built,
    tx: Option<async_channel::Sender<u64>>,
    seen: &Arc<Seen>,
) -> Result<Pass, Fail> {
    if !matches!(mode, Mode::Spawn | Mode::SpawnStream) {
        close(case, tx.as_ref(), seen);
    }
    let spawned = match mode {
        Mode::Run => {
            return match guard_async("run()", RUN_BOUND, p.run()).await? {
                Ok(report) => check(case, seen, report, None, false),
                Err(e) => refused(case, seen, e),
            };
        }
        Mode::Collect => {
            return match guard_async("collect()", RUN_BOUND, p.into_caller().collect()).await? {
                Ok((outs, report)) => check(case, seen, report, Some(outs), false),
                Err(e) => refused(case, seen, e),
            };
        }
        Mode::RunBlockingInside => {
            return match guard("run_blocking() inside a runtime", false, || {
                p.run_blocking()
            })? {
                Ok(report) => check(case, seen, report, None, false),
                Err(e) => refused(case, seen, e),
            };
        }
        Mode::RunBlockingOutside => unreachable!("run on the case's thread"),
        Mode::Spawn => guard("spawn()", true, || p.spawn())?.map(|h| (h, None)),
        Mode::SpawnStream => guard("spawn_stream()", true, || p.into_caller().spawn_stream())?
            .map(|(h, o)| (h, Some(tokio::spawn(o.collect::<Vec<_>>())))),
    };
    let (h, outs) = match spawned {
        Ok(x) => x,
        Err(e) => return refused(case, seen, e),
    };
    let mut stopped = false;
    for op in &case.handle {
        stopped |= call(&h, op, seen).await?;
    }
    close(case, tx.as_ref(), seen);
    let report = match tokio::time::timeout(PATIENCE, h.clone().join()).await {
        Ok(r) => r,
        Err(_) => {
            guard("abort()", true, || h.abort())?;
            stopped = true;
            let snap = format!("{:?}", h.snapshot());
            guard_async("join() after abort()", ABORT_BOUND, h.clone().join())
                .await
                .map_err(|f| Fail {
                    detail: format!("{}; {snap}", f.detail),
                    ..f
                })?
        }
    };
    let outs = match outs {
        Some(task) => {
            match guard_async("the outcome stream after join()", ABORT_BOUND, task).await? {
                Ok(outs) => Some(outs),
                Err(e) => return fail("the outcome stream's task failed", e.to_string()),
            }
        }
        None => None,
    };
    check(case, seen, report, outs, stopped)
}

/// The name of the case's API budget.
const API: &str = "surface";

/// A change of the case's API budget, if the pipeline has an IO stage
/// drawing on it (else there is nothing to change).
fn on_api(
    h: &PipelineHandle,
    change: impl FnOnce(&gearshift::ApiHandle) -> Result<(), gearshift::ConfigError>,
) -> Result<(), gearshift::ConfigError> {
    h.api(API).map_or(Ok(()), |api| change(&api))
}

/// One handle call; returns whether it stops the run.
async fn call(h: &PipelineHandle, op: &HandleOp, seen: &Seen) -> Result<bool, Fail> {
    let name = format!("handle.{}: {op:?}", op.label());
    let changed = match op.clone() {
        HandleOp::AgentsPerCore(k) => guard(&name, true, || h.set_agents_per_core(k))?,
        HandleOp::Agents(n) => guard(&name, true, || h.set_agents(n))?,
        HandleOp::ApiPermits(n) => {
            guard(&name, true, || on_api(h, |a| a.set_max_in_flight(Some(n))))?
        }
        HandleOp::Workers(n) => guard(&name, true, || h.set_workers(n))?,
        HandleOp::ItemsPerBatch(n) => guard(&name, true, || h.set_items_per_batch(n))?,
        HandleOp::BatchWait(d) => guard(&name, true, || h.set_batch_wait(d))?,
        HandleOp::MaxInFlight(n) => guard(&name, true, || h.set_max_in_flight(n))?,
        HandleOp::RateLimit(r) => guard(&name, true, || on_api(h, |a| a.set_rate_limit(r)))?,
        HandleOp::Apply(p) => guard(&name, true, || h.apply(p))?,
        HandleOp::Cancel | HandleOp::Abort => {
            guard(&name, true, || {
                if matches!(op, HandleOp::Cancel) {
                    h.cancel()
                } else {
                    h.abort()
                }
            })?;
            return Ok(true);
        }
        HandleOp::Snapshot => {
            let r = guard(&name, true, || h.snapshot())?;
            let taken = seen.taken.load(Ordering::SeqCst);
            if r.outcomes() > taken {
                return fail(
                    "a snapshot counts more outcomes than items taken",
                    format!("{r:?}"),
                );
            }
            return Ok(false);
        }
        HandleOp::WaitMs(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(false);
        }
    };
    if let Err(e) = changed
        && !e.to_string().contains(e.field)
    {
        return fail("a config error does not name its field", e.to_string());
    }
    if let Err(e) = h.config().validate() {
        return fail(
            "the live config no longer validates",
            format!("after {name}: {e}"),
        );
    }
    Ok(false)
}

/// Every item taken has exactly one outcome, and outputs agree with the report.
fn check(
    case: &Case,
    seen: &Seen,
    report: Report,
    outs: Option<Vec<Outcome<u64>>>,
    stopped: bool,
) -> Result<Pass, Fail> {
    let taken = seen.taken.load(Ordering::SeqCst);
    let counts = format!(
        "taken {taken} of {}, ok {} failed {} cancelled {}",
        case.source.len(),
        report.ok,
        report.failed,
        report.cancelled
    );
    if !report.finished {
        return fail("join() returned an unfinished report", counts);
    }
    if report.outcomes() != taken {
        return fail("items taken and outcomes differ", counts);
    }
    let stops = stopped || case.cancels_on_error();
    if taken != case.source.len() && (case.source.drained_on_stop() || !stops) {
        return fail("the source was not read to its end", counts);
    }
    let ordered = matches!(case.mirror().order, Order::Ordered { .. }) && !stops;
    let delivered = report.ok + report.cancelled + if case.dead_letter { 0 } else { report.failed };
    let sunk = std::mem::take(&mut *seen.sunk.lock().unwrap());
    for (what, outs) in [("stream", outs), ("sink", case.sink.then_some(sunk))] {
        let Some(outs) = outs else { continue };
        let mut ids = HashSet::new();
        for o in &outs {
            if !ids.insert(o.id()) || o.id() >= taken {
                return fail(
                    format!("the {what} delivered a duplicate or unknown id"),
                    format!("{}; {counts}", o.id()),
                );
            }
            if let Outcome::Failed(f) = o {
                unmarked_panic(f)?;
            }
        }
        if outs.len() as u64 != delivered {
            return fail(
                format!("the {what} missed outcomes"),
                format!("{} delivered; {counts}", outs.len()),
            );
        }
        if ordered && !outs.windows(2).all(|w| w[0].id() < w[1].id()) {
            return fail(format!("the {what} broke input order"), counts);
        }
    }
    if case.dead_letter {
        let dead = seen.dead.lock().unwrap();
        dead.iter().try_for_each(unmarked_panic)?;
        if dead.len() as u64 != report.failed {
            return fail(
                "the dead-letter sink missed failures",
                format!("{} delivered; {counts}", dead.len()),
            );
        }
    }
    Ok(Pass::Ran)
}

/// A failure of kind panic that no stage function threw: the library's.
fn unmarked_panic(f: &gearshift::Failure) -> Result<(), Fail> {
    if f.kind() == gearshift::ErrorKind::Panic && !f.error.to_string().contains(MARKER) {
        return fail("a panic of the library failed an item", f.to_string());
    }
    Ok(())
}
