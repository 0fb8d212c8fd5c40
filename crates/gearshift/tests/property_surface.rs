//! The whole public surface under extreme values (issue 20, "harden the
//! whole surface"): random sequences of builder calls, an output and handle
//! calls carrying 0, 1, MAX, NaN, infinities, subnormals and durations of
//! years. Every case must end in success or a typed error, never a panic or
//! a hang, with every item taken from the source accounted for.
//!
//! `PROPTEST_CASES` sets the cases (256 by default), `PROPTEST_RNG_SEED` the
//! seed (random by default, printed on failure). Every case runs: failures
//! are grouped by cause, each cause shrunk within `SURFACE_SHRINK_SECS`
//! (30 by default), so one run lists every distinct failure.
//! The run stops early if a case leaves threads behind (later cases would
//! run beside them) or after `SURFACE_BUDGET_SECS` (120 by default; a run
//! where every case passes takes about 10 s). `SURFACE_VERBOSE=1` prints every case and its result; `SURFACE_CASE=i`
//! runs only case `i` of the seed.

mod surface;

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use gearshift::{BuildError, Order, Outcome, Pipeline, PipelineHandle, Report, Schedule};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};
use surface::{BuildOp, Case, HandleOp, MARKER, Mode, Source};

/// Cases per run by default: about 10 s in debug on 2 cores once every
/// case passes.
const CASES: u32 = 256;
/// No case may take longer, whatever its values.
const CASE_DEADLINE: Duration = Duration::from_secs(20);
/// A run without a handle must end within this.
const RUN_BOUND: Duration = Duration::from_secs(15);
/// How long a run with a handle may go on before it is aborted.
const PATIENCE: Duration = Duration::from_secs(1);
/// An abort must end the run within this.
const ABORT_BOUND: Duration = Duration::from_secs(10);
/// A builder or handle call must return within this.
const CALL_BOUND: Duration = Duration::from_secs(5);

/// How a case passed: it ran, or was refused with a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Ran,
    Refused,
}

/// Why a case failed: `what` groups failures, `detail` explains one.
#[derive(Debug)]
struct Fail {
    what: String,
    detail: String,
    /// The case left threads running: later cases would run beside them,
    /// so the run stops here.
    stops: bool,
}

fn fail<T>(what: impl Into<String>, detail: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        what: what.into(),
        detail: detail.into(),
        stops: false,
    })
}

/// Panics other than the injected ones, as "message at file:line".
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = panic_text(info.payload());
            if msg.contains(MARKER) {
                return;
            }
            let at = info.location().map(|l| {
                // std's and dependencies' paths, without the machine's prefix.
                let file = l.file();
                let short = ["/library/", "/registry/src/"]
                    .iter()
                    .find_map(|k| file.find(k).map(|i| &file[i + k.len()..]))
                    .unwrap_or(file);
                format!("{short}:{}", l.line())
            });
            if let Ok(mut p) = PANICS.lock() {
                p.push(format!("{msg:?} at {}", at.unwrap_or_default()));
            }
            previous(info);
        }));
    });
}

fn take_panics() -> Vec<String> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()))
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(not a string)".into())
}

/// Runs a call; a panic, or a call that blocks past `CALL_BOUND` when
/// `bounded`, fails the case.
fn guard<R>(call: &str, bounded: bool, f: impl FnOnce() -> R) -> Result<R, Fail> {
    let started = Instant::now();
    let r = std::panic::catch_unwind(AssertUnwindSafe(f)).or_else(|p| {
        let msg = panic_text(&*p);
        fail(format!("panic: {}", head(&msg)), format!("{call}: {msg}"))
    })?;
    let took = started.elapsed();
    if bounded && took > CALL_BOUND {
        return fail(
            format!("{} blocked", label(call)),
            format!("{call} returned after {took:?}"),
        );
    }
    Ok(r)
}

/// The gist of a panic message, to group failures by cause: its first
/// clause, without numbers.
fn head(msg: &str) -> String {
    msg.trim_start_matches('"')
        .chars()
        .take_while(|c| !matches!(c, ':' | '.' | '(' | '"'))
        .take(100)
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// A call's group: what comes before ": " (the values, after it, differ
/// from case to case).
fn label(call: &str) -> &str {
    call.split(": ").next().unwrap_or(call)
}

/// Awaits a future within `bound`; a panic or a hang fails the case.
async fn guard_async<R>(
    call: &str,
    bound: Duration,
    f: impl Future<Output = R>,
) -> Result<R, Fail> {
    match tokio::time::timeout(bound, AssertUnwindSafe(f).catch_unwind()).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(p)) => {
            let msg = panic_text(&*p);
            fail(format!("panic: {}", head(&msg)), format!("{call}: {msg}"))
        }
        Err(_) => fail(
            format!("{call} hung"),
            format!("no result within {bound:?}"),
        ),
    }
}

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

fn build(
    case: &Case,
    seen: &Arc<Seen>,
) -> Result<(Pipeline<u64>, Option<async_channel::Sender<u64>>), Fail> {
    let (mut p, tx) = start(case.source, seen);
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
            BuildOp::Stage(stage) => guard(&call, true, || stage.add_to(p))?,
            BuildOp::Named(name) => guard(&call, true, || p.named(name))?,
        };
    }
    if case.sink {
        let s = Arc::clone(seen);
        p = guard("sink(..)", true, || {
            p.sink(move |o| s.sunk.lock().unwrap().push(o))
        })?;
    }
    if case.dead_letter {
        let s = Arc::clone(seen);
        p = guard("dead_letter(..)", true, || {
            p.dead_letter(move |f| s.dead.lock().unwrap().push(f))
        })?;
    }
    Ok((p, tx))
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

fn case_thread(case: Case) -> Result<Pass, Fail> {
    let seen = Arc::new(Seen::default());
    let (p, tx) = build(&case, &seen)?;
    let mode = case.mode();
    if mode == Mode::RunBlockingOutside {
        // Not a late-closing channel (see `Case::mode`): it closes now.
        if let Some(tx) = &tx {
            tx.close();
        }
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
    p: Pipeline<u64>,
    tx: Option<async_channel::Sender<u64>>,
    seen: &Arc<Seen>,
) -> Result<Pass, Fail> {
    let late = matches!(
        case.source,
        Source::Channel {
            close_late: true,
            ..
        }
    );
    if let Some(tx) = tx.as_ref().filter(|_| !late) {
        tx.close();
    }
    let spawned = match mode {
        Mode::Run => {
            return match guard_async("run()", RUN_BOUND, p.run()).await? {
                Ok(report) => check(case, seen, report, None, false),
                Err(e) => refused(case, seen, e),
            };
        }
        Mode::Collect => {
            return match guard_async("collect()", RUN_BOUND, p.collect()).await? {
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
        Mode::SpawnStream => guard("spawn_stream()", true, || p.spawn_stream())?
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
    if let Some(tx) = &tx {
        if late {
            let n = case.source.len();
            (n / 2..n).for_each(|i| send(tx, seen, i));
        }
        tx.close();
    }
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

/// One handle call; returns whether it stops the run.
async fn call(h: &PipelineHandle, op: &HandleOp, seen: &Seen) -> Result<bool, Fail> {
    let name = format!("handle.{}: {op:?}", op.label());
    let changed = match op.clone() {
        HandleOp::AgentsPerCore(k) => guard(&name, true, || h.set_agents_per_core(k))?,
        HandleOp::Agents(n) => guard(&name, true, || h.set_agents(n))?,
        HandleOp::ApiPermits(n) => guard(&name, true, || h.set_api_permits(n))?,
        HandleOp::Workers(n) => guard(&name, true, || h.set_workers(n))?,
        HandleOp::ItemsPerBatch(n) => guard(&name, true, || h.set_items_per_batch(n))?,
        HandleOp::BatchWait(d) => guard(&name, true, || h.set_batch_wait(d))?,
        HandleOp::MaxInFlight(n) => guard(&name, true, || h.set_max_in_flight(n))?,
        HandleOp::RateLimit(r) => guard(&name, true, || h.set_rate_limit(r))?,
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
    // With a sink and a stream at once, where outcomes go is not defined.
    let both = case.sink && matches!(case.mode(), Mode::Collect | Mode::SpawnStream);
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
        if !both && outs.len() as u64 != delivered {
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

/// How long the threads of a finished case may take to end.
const THREADS_END: Duration = Duration::from_secs(30);

/// Threads of this process (Linux; 0 elsewhere, which disables the check).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// The names of this process's threads, sorted (Linux).
fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect();
    names.sort();
    names
}

/// A run of at most 40 items has no use for more memory than this.
const MEMORY_BOUND_KIB: u64 = 1 << 20;

/// The process's resident memory now and its peak since the last call,
/// in KiB (Linux; `None` elsewhere). Each call resets the peak.
fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let now = (field("VmRSS:")?, field("VmHWM:")?);
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    Some(now)
}

/// Runs a case on a thread of its own, so a call that never returns is
/// reported (and left behind) instead of hanging the test.
fn watch(case: &Case) -> Result<Pass, Fail> {
    take_panics();
    let before = memory();
    let threads_before = threads();
    let names_before = thread_names();
    let (tx, rx) = std::sync::mpsc::channel();
    let c = case.clone();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(case_thread(c));
    });
    let result = match rx.recv_timeout(CASE_DEADLINE) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            fail("the case hung", format!("no end within {CASE_DEADLINE:?}"))
        }
        Err(_) => fail("the case's thread panicked", "outside any guarded call"),
    };
    // Every thread a case starts (runtime, pool, sinks) ends with it.
    let extra = |now: Vec<String>| {
        let mut now = now;
        for n in &names_before {
            if let Some(i) = now.iter().position(|m| m == n) {
                now.remove(i);
            }
        }
        now
    };
    let at_end = extra(thread_names());
    let deadline = Instant::now() + THREADS_END;
    while threads() > threads_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = threads().saturating_sub(threads_before);
    let result = match result {
        Ok(_) if left > 0 => fail(
            "threads left running after the case",
            format!(
                "{left} threads after {THREADS_END:?}: {:?} (at the end of the case: {at_end:?})",
                extra(thread_names())
            ),
        ),
        r => r,
    }
    .map_err(|f| Fail {
        stops: left > 0,
        ..f
    });
    if thread.is_finished() {
        let _ = thread.join();
    }
    let panics = take_panics();
    if let (Some((rss, _)), Some((_, peak)), Ok(_)) = (before, memory(), &result)
        && peak.saturating_sub(rss) > MEMORY_BOUND_KIB
    {
        let held = (peak - rss) / 1024;
        return fail::<Pass>(
            "a small run held over 1 GiB",
            format!("{held} MiB for {} items", case.source.len()),
        );
    }
    match result {
        Ok(pass) if panics.is_empty() => Ok(pass),
        Ok(_) => fail(
            format!("panic in a library task: {}", head(&panics[0])),
            panics.join("; "),
        ),
        Err(mut f) if !panics.is_empty() => {
            // Failures after different panics have different causes.
            if !f.what.starts_with("panic") {
                f.what = format!("{}, after a panic: {}", f.what, head(&panics[0]));
            }
            f.detail = format!("{}; panics: {}", f.detail, panics.join("; "));
            Err(f)
        }
        Err(f) => Err(f),
    }
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_public_surface_never_panics_hangs_or_loses_an_item() {
    record_panics();
    let cases: u32 = env("PROPTEST_CASES").unwrap_or(CASES);
    let seed: u64 = env("PROPTEST_RNG_SEED").unwrap_or_else(rand::random);
    let shrink_until =
        Instant::now() + Duration::from_secs(env("SURFACE_SHRINK_SECS").unwrap_or(30));
    let mut runner = TestRunner::new(ProptestConfig {
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    });
    let strategy = surface::case();
    // (cause, cases that hit it, the smallest case found, its failure)
    let mut causes: Vec<(String, u32, Case, Fail)> = Vec::new();
    let verbose = std::env::var_os("SURFACE_VERBOSE").is_some();
    let mut passed = [0u32; 2];
    let only: Option<u32> = env("SURFACE_CASE");
    let mut stopped = None;
    let budget = Duration::from_secs(env("SURFACE_BUDGET_SECS").unwrap_or(120));
    let began = Instant::now();
    for i in 0..cases {
        if began.elapsed() > budget {
            // Only failing runs get here: hangs take seconds each.
            stopped = Some((i, "the time budget ran out"));
            break;
        }
        let mut tree = strategy.new_tree(&mut runner).unwrap();
        if only.is_some_and(|only| only != i) {
            passed[0] += 1;
            continue;
        }
        let started = Instant::now();
        let result = watch(&tree.current());
        if verbose {
            let took = started.elapsed();
            eprintln!(
                "case {i} ({took:.1?}): {:?}\n  => {result:?}",
                tree.current()
            );
        }
        let f = match result {
            Ok(pass) => {
                passed[pass as usize] += 1;
                continue;
            }
            Err(f) => f,
        };
        let known = causes.iter_mut().find(|c| c.0 == f.what);
        let stops = f.stops;
        match known {
            Some(c) => c.1 += 1,
            // A hang takes seconds per run: it is not shrunk.
            None if stops || f.what.contains("hung") || f.what.contains("blocked") => {
                causes.push((f.what.clone(), 1, tree.current(), f))
            }
            None => {
                let (case, f) = shrink(&mut tree, f, shrink_until);
                causes.push((f.what.clone(), 1, case, f));
            }
        }
        if stops || causes.last().is_some_and(|c| c.3.stops) {
            stopped = Some((i + 1, "a case left threads running"));
            break;
        }
    }
    let ran = stopped.map_or(cases, |(n, _)| n);
    println!(
        "{ran} cases (seed {seed}): {} ran, {} refused with a typed error, {} failed",
        passed[0],
        passed[1],
        ran - passed[0] - passed[1]
    );
    if !causes.is_empty() {
        let list: Vec<String> = causes
            .iter()
            .map(|(what, n, case, f)| {
                format!(
                    "- {what} ({n} cases): {}\n  smallest case: {case:?}",
                    f.detail
                )
            })
            .collect();
        let stop = match stopped {
            Some((n, why)) => format!("stopped after {n} cases: {why}; "),
            None => String::new(),
        };
        panic!(
            "{} causes of failure in {ran} cases ({stop}seed {seed}: rerun with PROPTEST_RNG_SEED={seed}):\n{}",
            causes.len(),
            list.join("\n")
        );
    }
}

/// Proptest's shrinking, within a time budget: simpler cases that fail for
/// the same cause replace the case.
fn shrink(tree: &mut impl ValueTree<Value = Case>, first: Fail, until: Instant) -> (Case, Fail) {
    let (mut case, mut f) = (tree.current(), first);
    let mut failing = true;
    while Instant::now() < until {
        let moved = if failing {
            tree.simplify()
        } else {
            tree.complicate()
        };
        if !moved {
            break;
        }
        match watch(&tree.current()) {
            Err(g) if g.stops => {
                // Later runs would run beside its threads: keep what we have.
                f.stops = true;
                break;
            }
            Err(g) if g.what == f.what => (case, f, failing) = (tree.current(), g, true),
            _ => failing = false,
        }
    }
    (case, f)
}
