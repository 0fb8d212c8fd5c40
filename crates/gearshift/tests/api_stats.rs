//! Each API budget keeps its own stats (issue 21): every stage of every
//! pipeline drawing on a budget records into it, so its attempts are the sum
//! of those stages', its 429s, timeouts and errors by kind are what the
//! stage functions did, and its peak in flight never exceeds its limit. A
//! report has one row per budget, printed as the API table.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gearshift::stats::ApiReport;
use gearshift::{Agents, Api, Config, ErrorKind, Pipeline, Report, RetryPolicy, StageError};

const CALL: Duration = Duration::from_millis(5);
const RETRY_AFTER: Duration = Duration::from_millis(50);
const TIMEOUT: Duration = Duration::from_millis(100);

/// What the stage functions did, as they saw it.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    ok: AtomicU64,
    errors: Mutex<BTreeMap<ErrorKind, u64>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    /// Items that had their first call, per stage.
    seen: [Mutex<HashSet<u64>>; 2],
}

impl Tally {
    /// Starts a call of stage `stage` on `x`: whether it is the item's first.
    fn start(self: &Arc<Self>, stage: usize, x: u64) -> (bool, InFlight) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        let first = self.seen[stage].lock().unwrap().insert(x);
        (first, InFlight(Arc::clone(self)))
    }

    fn error(&self, kind: ErrorKind) {
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn fail(&self, kind: ErrorKind) -> Result<u64, StageError> {
        self.error(kind);
        Err(match kind {
            ErrorKind::RateLimited => StageError::rate_limited(Some(RETRY_AFTER)),
            k => StageError::msg(k, "planned"),
        })
    }

    fn ok(&self, x: u64) -> Result<u64, StageError> {
        self.ok.fetch_add(1, Ordering::Relaxed);
        Ok(x)
    }

    fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors.lock().unwrap().get(&kind).copied().unwrap_or(0)
    }
}

/// A call in flight, counted out when it ends however it ends (a timeout
/// drops it).
struct InFlight(Arc<Tally>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// First calls: 429 with a `Retry-After` for x % 10 == 0, a server error
/// for x % 10 == 3, a panic (not retried: the item fails) for x % 37 == 5.
async fn fetch(tally: Arc<Tally>, x: u64) -> Result<u64, StageError> {
    let (first, _call) = tally.start(0, x);
    tokio::time::sleep(CALL).await;
    match x {
        _ if !first => tally.ok(x),
        x if x % 10 == 0 => tally.fail(ErrorKind::RateLimited),
        x if x % 10 == 3 => tally.fail(ErrorKind::Server),
        x if x % 37 == 5 => {
            tally.error(ErrorKind::Panic);
            panic!("planned panic on {x}");
        }
        x => tally.ok(x),
    }
}

/// First calls: a call that outlasts the timeout for x % 10 == 1, a reset
/// for x % 10 == 7, a rejection (not retried) for x % 50 == 9.
async fn enrich(tally: Arc<Tally>, x: u64) -> Result<u64, StageError> {
    let (first, _call) = tally.start(1, x);
    if first && x % 10 == 1 {
        tally.error(ErrorKind::Timeout);
        tokio::time::sleep(TIMEOUT * 10).await;
    }
    tokio::time::sleep(CALL).await;
    match x {
        _ if !first => tally.ok(x),
        x if x % 10 == 7 => tally.fail(ErrorKind::Reset),
        x if x % 50 == 9 => tally.fail(ErrorKind::Rejected),
        x => tally.ok(x),
    }
}

fn api_row<'a>(report: &'a Report, name: &str) -> &'a ApiReport {
    report
        .apis
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no row for api {name}: {report}"))
}

/// What a live report may show at any moment: agents add their calls in
/// batches, but never an answer before its call, and never a peak above
/// the limit.
fn check_live(a: &ApiReport, limit: usize) {
    assert!(a.calls_ok + a.errors() <= a.attempts, "{a:?}");
    assert!(a.peak_in_flight <= limit, "{a:?}");
    assert!(a.in_flight <= limit, "{a:?}");
}

#[tokio::test(start_paused = true)]
async fn two_stages_sharing_a_budget_add_up_in_its_stats() {
    let limit = 4;
    let items = 300u64;
    let shared = Api::new("shared")
        .max_in_flight(limit)
        .timeout(TIMEOUT)
        .retry(RetryPolicy::attempts(3));
    let tally = Arc::new(Tally::default());
    let (t1, t2) = (Arc::clone(&tally), Arc::clone(&tally));
    let handle = Pipeline::from_iter(0..items)
        .io(move |x: u64| fetch(Arc::clone(&t1), x))
        .named("fetch")
        .api(&shared)
        .agents(Agents::Total(6))
        .io(move |x: u64| enrich(Arc::clone(&t2), x))
        .named("enrich")
        .api(&shared)
        .agents(Agents::Total(6))
        .config(Config {
            stats_interval: None,
            ..Config::default()
        })
        .spawn()
        .unwrap();

    // Live: the pipeline's snapshot and the budget's own agree on the
    // invariants while calls flow.
    let budget = shared.handle();
    let watch = async {
        while !handle.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            check_live(api_row(&handle.snapshot(), "shared"), limit);
            check_live(&budget.snapshot(), limit);
        }
    };
    tokio::time::timeout(Duration::from_secs(600), watch)
        .await
        .expect("the run ends");
    let report = handle.join().await;

    assert_eq!(report.apis.len(), 1, "one budget: {report}");
    let a = api_row(&report, "shared");
    let stage_attempts: u64 = report.stages.iter().map(|s| s.attempts).sum();
    assert_eq!(a.attempts, stage_attempts, "{report}");
    assert_eq!(a.attempts, tally.calls.load(Ordering::Relaxed), "{report}");
    assert_eq!(a.calls_ok, tally.ok.load(Ordering::Relaxed), "{report}");
    assert_eq!(a.latency.count, a.calls_ok, "one latency per call answered");
    assert_eq!(a.errors_by_kind, *tally.errors.lock().unwrap(), "{report}");
    assert_eq!(a.throttled, tally.errors_of(ErrorKind::RateLimited));
    assert_eq!(a.timeouts, tally.errors_of(ErrorKind::Timeout));
    assert_eq!(a.throttled, 30, "x % 10 == 0 of 300 items: {report}");
    // Items 5, 42, 79, 116, 227 and 264 fail at fetch (a panic); none ends in 1.
    assert_eq!(a.timeouts, 30, "x % 10 == 1 of 300 items: {report}");
    assert_eq!(a.calls_ok + a.errors(), a.attempts, "{report}");
    // The budget's gate held both stages together, and was used to the full.
    assert!(tally.peak.load(Ordering::Relaxed) <= limit);
    assert_eq!(a.peak_in_flight, limit, "{report}");
    assert_eq!(a.max_in_flight, Some(limit));
    assert_eq!((a.in_flight, a.pause_left), (0, None), "{report}");
    // 30 pauses of 50 ms, some overlapping: the wall time paused, not the sum.
    assert!(
        a.paused >= RETRY_AFTER && a.paused <= RETRY_AFTER * 30,
        "paused {:?}",
        a.paused
    );
    // The budget's own snapshot is the same figures.
    let own = budget.snapshot();
    assert_eq!(
        (own.attempts, own.calls_ok, &own.errors_by_kind, own.paused),
        (a.attempts, a.calls_ok, &a.errors_by_kind, a.paused)
    );
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_with_two_budgets_reports_and_prints_a_row_for_each() {
    let search = Api::new("search").max_in_flight(3);
    let store = Api::new("store");
    let report = Pipeline::from_iter(0..100u64)
        .io(|x: u64| async move {
            tokio::time::sleep(CALL).await;
            Ok::<_, StageError>(x)
        })
        .named("fetch")
        .api(&search)
        .agents(Agents::Total(8))
        .io(|x: u64| async move {
            tokio::time::sleep(CALL).await;
            if x % 4 == 0 {
                Err(StageError::msg(ErrorKind::Rejected, "no"))
            } else {
                Ok(x)
            }
        })
        .named("upload")
        .api(&store)
        .agents(Agents::Total(2))
        .config(Config {
            stats_interval: None,
            ..Config::default()
        })
        .run()
        .await
        .unwrap();
    let names: Vec<&str> = report.apis.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["search", "store"], "in stage order: {report}");
    let (s, u) = (api_row(&report, "search"), api_row(&report, "store"));
    assert_eq!((s.attempts, s.calls_ok, s.errors()), (100, 100, 0));
    assert_eq!((u.attempts, u.calls_ok), (100, 75), "{report}");
    assert_eq!(
        u.errors_by_kind,
        BTreeMap::from([(ErrorKind::Rejected, 25)])
    );
    assert!(s.peak_in_flight <= 3 && u.peak_in_flight <= 2, "{report}");
    assert_eq!((s.max_in_flight, u.max_in_flight), (Some(3), None));

    let text = report.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("api "))
        .unwrap_or_else(|| panic!("no API table: {text}"));
    for col in ["ok", "attempts", "throttled", "errors", "peak", "limit"] {
        assert!(lines[header].contains(col), "{text}");
    }
    let row = |name: &str| -> Vec<&str> {
        let line = lines[header + 1..]
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row: {text}"));
        line.split_whitespace().collect()
    };
    // api ok attempts throttled timeouts errors in-flight peak limit
    assert_eq!(&row("search")[1..3], ["100", "100"], "{text}");
    assert_eq!(row("search")[8], "3", "{text}");
    assert_eq!(&row("store")[1..3], ["75", "100"], "{text}");
    assert_eq!(row("store")[5], "25", "{text}");
    assert_eq!(row("store")[8], "-", "no limit: {text}");
}

/// A budget two pipelines share counts the calls of both: its own figures
/// are the sum, and each pipeline's report shows them.
#[tokio::test(start_paused = true)]
async fn a_budget_shared_by_two_pipelines_counts_both() {
    let api = Api::new("shared").max_in_flight(2);
    let run = |items: u64| {
        Pipeline::from_iter(0..items)
            .io(|x: u64| async move {
                tokio::time::sleep(CALL).await;
                Ok::<_, StageError>(x)
            })
            .api(&api)
            .agents(Agents::Total(4))
            .config(Config {
                stats_interval: None,
                ..Config::default()
            })
            .run()
    };
    let (a, b) = tokio::join!(run(40), run(60));
    let (a, b) = (a.unwrap(), b.unwrap());
    let own = api.handle().snapshot();
    assert_eq!((own.attempts, own.calls_ok), (100, 100), "{own:?}");
    assert!(own.peak_in_flight <= 2, "{own:?}");
    for (r, items) in [(&a, 40), (&b, 60)] {
        let row = api_row(r, "shared");
        assert!(
            row.attempts >= items && row.attempts <= 100,
            "each report shows the budget's figures, its own calls included: {r}"
        );
        assert_eq!(r.stages[0].attempts, items);
    }
}
