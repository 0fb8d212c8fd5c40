//! Two mock APIs on 127.0.0.1 of different capacities (fetch 16 calls in
//! flight at 40 ms, upload 4 at 10 ms: 400 items/s each), fetch -> CPU ->
//! upload: each server's own in-flight counter must never pass its capacity
//! when the system holds one limit per API, and every item has exactly one
//! outcome, one fetch and one upload.

use std::sync::Arc;
use std::time::Duration;

use gearshift::http::HttpFetcher;
use gearshift_bench::ledger::RunResult;
use gearshift_bench::mock_api::{MockApi, MockConfig, MockStats};
use gearshift_bench::scenario::Scenario;
use gearshift_bench::systems::baselines::Compute;
use gearshift_bench::systems::two_api::{ApiLimits, GearPlan, TwoApiSystem};
use gearshift_bench::systems::{self, RunCtx, System};
use gearshift_bench::work::Work;

const FETCH_CAPACITY: usize = 16;
const UPLOAD_CAPACITY: usize = 4;
const FETCH_BASE: Duration = Duration::from_millis(40);
const UPLOAD_BASE: Duration = Duration::from_millis(10);
const ITEMS: u64 = 300;

/// What one two-API run measured: each server's stats (its own peak in
/// flight among them), the run's row and its limit.
struct TwoApiRun {
    fetch: MockStats,
    upload: MockStats,
    row: RunResult,
    /// `min(16 / 40 ms, 4 / 10 ms, 2 cores / 0.2 ms)` = 400 items/s.
    limit_per_s: f64,
}

impl TwoApiRun {
    fn fetch_peak(&self) -> usize {
        self.fetch.max_in_flight
    }

    fn upload_peak(&self) -> usize {
        self.upload.max_in_flight
    }

    fn items_per_s(&self) -> f64 {
        self.row.items_per_s()
    }

    /// Throughput over the limit. Both APIs run at 400 items/s at their
    /// capacity, so this is also each API's utilisation: the share of its
    /// `capacity / base` the run used.
    fn fraction_of_limit(&self) -> f64 {
        self.items_per_s() / self.limit_per_s
    }
}

/// Runs `items` items of fetch -> CPU (0.2 ms) -> upload through `system`
/// against two fresh mock APIs of capacities 16 and 4.
async fn run_two_apis(system: &System, items: u64) -> TwoApiRun {
    let fetch_api = MockApi::start(MockConfig::with_latency(FETCH_BASE, Some(FETCH_CAPACITY)))
        .expect("fetch api starts");
    let mut upload_config = MockConfig::with_latency(UPLOAD_BASE, Some(UPLOAD_CAPACITY));
    upload_config.seed = 2;
    let upload_api = MockApi::start(upload_config).expect("upload api starts");
    let work = Work::millis(0.2);
    let ctx = RunCtx {
        upload_url: Some(upload_api.base_url()),
        ..RunCtx::new(
            HttpFetcher::builder().build().unwrap(),
            fetch_api.base_url(),
            items,
            Arc::new(move |b: &[u8]| work.run(b)),
            Duration::from_secs(30),
        )
    };
    let row = systems::run(system, &ctx).await.expect("the system starts");
    let limit_per_s = (FETCH_CAPACITY as f64 / FETCH_BASE.as_secs_f64())
        .min(UPLOAD_CAPACITY as f64 / UPLOAD_BASE.as_secs_f64())
        .min(2.0 / 0.2e-3);
    TwoApiRun {
        fetch: fetch_api.stats_per_id(),
        upload: upload_api.stats_per_id(),
        row,
        limit_per_s,
    }
}

fn limits() -> ApiLimits {
    ApiLimits {
        fetch: FETCH_CAPACITY,
        upload: UPLOAD_CAPACITY,
    }
}

/// Every item: one outcome (Ok, no fault was injected), one fetch, one
/// upload, by the ledger and by each server's per-id count.
fn assert_exact_accounting(run: &TwoApiRun, items: u64) {
    let row = &run.row;
    assert_eq!(row.accounting_error, None, "{}", row.system);
    assert_eq!((row.ok, row.failed), (items, 0), "{}", row.system);
    for (api, stats) in [("fetch", &run.fetch), ("upload", &run.upload)] {
        assert_eq!(stats.requests, items, "{api}: {stats:?}");
        assert_eq!(stats.status(200), items, "{api}: {stats:?}");
        let per_id = stats.per_id.as_ref().expect("per-id counts");
        assert_eq!(per_id.len() as u64, items, "{api}: every id called");
        assert!(
            per_id.iter().all(|(&id, &n)| id < items && n == 1),
            "{api}: each id once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gearshift_keeps_each_api_under_its_own_limit() {
    let system = System::TwoApi(TwoApiSystem::Gearshift {
        plan: GearPlan::PerApi(limits()),
        cores: 2,
    });
    let run = run_two_apis(&system, ITEMS).await;
    assert_exact_accounting(&run, ITEMS);
    assert!(
        run.fetch_peak() <= FETCH_CAPACITY,
        "fetch peak {} > {FETCH_CAPACITY}",
        run.fetch_peak()
    );
    assert!(
        run.upload_peak() <= UPLOAD_CAPACITY,
        "upload peak {} > {UPLOAD_CAPACITY}",
        run.upload_peak()
    );
    // Each stage, with agents of its own, reaches at least 90% of its own
    // API's limit in calls in flight (counted by the server). Throughput,
    // a timing figure, is the benchmark's to report (`gearshift-bench run
    // --scenario two_apis`), not a test's on a shared machine: logged only.
    let reaches = |peak: usize, capacity: usize| peak * 10 >= capacity * 9;
    assert!(
        reaches(run.fetch_peak(), FETCH_CAPACITY),
        "fetch peak {} < 90% of {FETCH_CAPACITY}",
        run.fetch_peak()
    );
    assert!(
        reaches(run.upload_peak(), UPLOAD_CAPACITY),
        "upload peak {} < 90% of {UPLOAD_CAPACITY}",
        run.upload_peak()
    );
    eprintln!(
        "gearshift, limit per API: {:.0} items/s, {:.0}% of {:.0}; peaks fetch {}, upload {}",
        run.items_per_s(),
        100.0 * run.fraction_of_limit(),
        run.limit_per_s,
        run.fetch_peak(),
        run.upload_peak()
    );
}

/// The baselines hold a semaphore per API: with C = 32 items in flight,
/// more than both capacities together, the semaphores are what keeps each
/// server under its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baselines_keep_each_api_under_its_own_limit() {
    let system = System::TwoApi(TwoApiSystem::Unordered {
        compute: Compute::Rayon,
        c: 32,
        limits: limits(),
    });
    let run = run_two_apis(&system, ITEMS).await;
    assert_exact_accounting(&run, ITEMS);
    assert!(run.fetch_peak() <= FETCH_CAPACITY, "{}", run.fetch_peak());
    assert!(
        run.upload_peak() <= UPLOAD_CAPACITY,
        "{}",
        run.upload_peak()
    );
}

/// The peak check can fail: one config for both IO stages at the fetch
/// API's 16 agents sends the upload API more than its 4 calls at once, and
/// its server counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_config_for_both_stages_overloads_the_smaller_api() {
    let system = System::TwoApi(TwoApiSystem::Gearshift {
        plan: GearPlan::OneConfig(FETCH_CAPACITY),
        cores: 2,
    });
    let run = run_two_apis(&system, ITEMS).await;
    assert_exact_accounting(&run, ITEMS);
    assert!(
        run.upload_peak() > UPLOAD_CAPACITY,
        "upload peak {}",
        run.upload_peak()
    );
}

/// With nothing set each API's budget runs the default controller: the
/// fetch stage starts at the seed's 2 agents per core (4 on 2 cores) and
/// its controller takes it past that, which a fixed 4 could not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_set_grows_each_stage_from_the_seed_s_start() {
    let system = System::TwoApi(TwoApiSystem::Gearshift {
        plan: GearPlan::NothingSet,
        cores: 2,
    });
    assert_eq!(system.concurrency(), 8, "4 agents per stage to start");
    let run = run_two_apis(&system, ITEMS).await;
    assert_exact_accounting(&run, ITEMS);
    assert!(
        run.fetch_peak() > 4,
        "fetch peak {}: the controller never grew the stage",
        run.fetch_peak()
    );
    eprintln!(
        "gearshift, nothing set: {:.0} items/s, {:.0}% of {:.0}; peaks fetch {}, upload {}",
        run.items_per_s(),
        100.0 * run.fraction_of_limit(),
        run.limit_per_s,
        run.fetch_peak(),
        run.upload_peak()
    );
}

#[test]
fn the_scenario_s_limit_is_the_smallest_of_both_apis_and_the_cores() {
    let s = Scenario::by_name("two_apis").unwrap();
    let up = s.upload.expect("an upload api");
    assert_eq!(
        (s.phases[0].capacity, up.capacity),
        (Some(16), Some(4)),
        "fetch 16, upload 4"
    );
    // min(16 / 40 ms, 4 / 10 ms, 2 cores / 1 ms) = min(400, 400, 2000).
    assert!((s.limit_per_s(2) - 400.0).abs() < 1e-6);
    // On one core the CPU allows 1000/s: it still does not bind.
    assert!((s.limit_per_s(1) - 400.0).abs() < 1e-6);
    let (systems, reference) = s.systems(2);
    assert_eq!(reference, "gearshift (limit per API 16/4)");
    assert!(systems.iter().any(|x| x.name() == reference));
    // Every row runs about 1.4 s at the limit for its own concurrency.
    let items = |name: &str| {
        let x = systems
            .iter()
            .find(|x| x.name() == name)
            .unwrap_or_else(|| panic!("no system {name}"));
        s.items_for(x, None, 2)
    };
    assert_eq!(items(&reference), 560); // 400/s
    assert_eq!(items("gearshift (one config: 4 agents/stage)"), 140); // 4 / 40 ms
    // Nothing set: the controller may take each API to its capacity.
    assert_eq!(items("gearshift, nothing set (default controller)"), 560);
    // C = 20: 20 / (40 + 1 + 10 ms) = 392/s by Little's law.
    assert_eq!(items("tokio+rayon (C=20, permits 16/4)"), 550);
    assert_eq!(items("sequential"), 28); // 1 / 51 ms
}
