//! The cluster-wide budget against a real nats-server: several members in
//! one test process, each with its own client and process id.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gearshift::http::HttpFetcher;
use gearshift::tuner::{Decision, Tuner, Window};
use gearshift::{Config, Pipeline};
use gearshift_bench::mock_api::{MockApi, MockConfig};
use gearshift_nats::LocalServer;
use gearshift_nats::budget::{ClusterBudget, ClusterConfig, ClusterTuner, Status};
use tokio::task::JoinHandle;

const RENEWAL: Duration = Duration::from_millis(100);
const LEASE: Duration = Duration::from_secs(1);

/// A control law that never moves the limit: the share tests see the
/// division alone.
struct Hold;

impl Tuner for Hold {
    fn name(&self) -> &str {
        "hold"
    }
    fn decide(&mut self, _: &Window) -> Decision {
        Decision::hold("test")
    }
}

/// Halves the limit on any throttled call and records every window it is
/// given.
struct HalveOnThrottle {
    seen: Arc<Mutex<Vec<Window>>>,
}

impl Tuner for HalveOnThrottle {
    fn name(&self) -> &str {
        "halve-on-throttle"
    }
    fn window(&self) -> Duration {
        Duration::from_millis(500)
    }
    fn decide(&mut self, w: &Window) -> Decision {
        self.seen.lock().unwrap().push(w.clone());
        if w.throttled == 0 {
            return Decision::hold("no throttle");
        }
        Decision {
            api_permits: Some((w.api_permits / 2).max(1)),
            ..Decision::hold("throttled")
        }
    }
}

fn config(id: &str, limit: usize) -> ClusterConfig {
    ClusterConfig {
        process_id: id.into(),
        renewal: RENEWAL,
        lease: LEASE,
        initial_limit: limit,
        ..ClusterConfig::default()
    }
    .tuner(|| Hold)
}

async fn join(server: &LocalServer, cfg: ClusterConfig) -> ClusterBudget {
    let client = async_nats::connect(server.url()).await.expect("connect");
    ClusterBudget::connect(client, "search", cfg)
        .await
        .expect("join the budget")
}

/// Plays a pipeline's part: every 50 ms hands the tuner a window and
/// applies its decision to the local limit.
struct Feed {
    permits: Arc<AtomicUsize>,
    throttle: Arc<AtomicU64>,
    /// Every window with more permits than this sees 3 throttled calls, as
    /// from an API refusing what passes its limit.
    refuse_above: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Feed {
    /// `in_flight`: `None` uses every call it holds (wants more); `Some(x)`
    /// keeps `x` calls in flight with agents half idle.
    fn start(tuner: ClusterTuner, in_flight: Option<f64>) -> Feed {
        Feed::every(Duration::from_millis(50), tuner, in_flight)
    }

    /// A window every `period`.
    fn every(period: Duration, mut tuner: ClusterTuner, in_flight: Option<f64>) -> Feed {
        // As `ClusterBudget::api()` does, start at the floor.
        let permits = Arc::new(AtomicUsize::new(1));
        let throttle = Arc::new(AtomicU64::new(0));
        let refuse_above = Arc::new(AtomicUsize::new(usize::MAX));
        let (p, t, r) = (
            Arc::clone(&permits),
            Arc::clone(&throttle),
            Arc::clone(&refuse_above),
        );
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let now = p.load(Ordering::SeqCst);
                let refused = if now > r.load(Ordering::SeqCst) { 3 } else { 0 };
                let w = window(now, in_flight, t.swap(0, Ordering::SeqCst) + refused);
                if let Some(next) = tuner.decide(&w).api_permits {
                    p.store(next, Ordering::SeqCst);
                }
            }
        });
        Feed {
            permits,
            throttle,
            refuse_above,
            task,
        }
    }

    fn permits(&self) -> usize {
        self.permits.load(Ordering::SeqCst)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn window(permits: usize, in_flight: Option<f64>, throttled: u64) -> Window {
    let busy = in_flight.is_none();
    let mean = in_flight.unwrap_or(permits as f64);
    Window {
        elapsed: Duration::from_millis(50),
        cores: 2,
        agents: permits,
        api_permits: permits,
        workers: 2,
        max_workers: 2,
        io_completions: (mean * 5.0) as u64,
        latency_p50: Some(Duration::from_millis(10)),
        latency_p90: Some(Duration::from_millis(12)),
        latency_min: Some(Duration::from_millis(8)),
        latency_mean: Some(Duration::from_millis(10)),
        mean_in_flight: mean,
        peak_in_flight: if busy { permits } else { mean.ceil() as usize },
        agents_idle: if busy { 0.0 } else { 0.5 },
        throttled,
        ..Window::default()
    }
}

/// Polls `f` every 10 ms until it holds; how long that took, or `None`
/// past the deadline.
async fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() <= limit {
        if f() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn shares(members: &[&ClusterBudget]) -> Vec<usize> {
    members.iter().map(|m| m.status().share).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_are_fair_by_demand_and_within_the_limit() {
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let a = join(&server, config("a", 20)).await;
    let b = join(&server, config("b", 20)).await;
    let c = join(&server, config("c", 20)).await;
    let _fa = Feed::start(a.tuner(), None);
    let _fb = Feed::start(b.tuner(), None);
    // c keeps 2.4 calls in flight: it asks for ceil(2.4 x 1.25) = 3.
    let _fc = Feed::start(c.tuner(), Some(2.4));
    let all = [&a, &b, &c];
    let fair = within(Duration::from_secs(10), || {
        let s = shares(&all);
        s[2] == 3 && s[0] + s[1] == 17 && s[0].abs_diff(s[1]) <= 1
    })
    .await;
    assert!(
        fair.is_some(),
        "shares never became fair: {:?}",
        shares(&all)
    );
    // And they stay within the limit while the members renew.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let s = shares(&all);
        assert!(s.iter().sum::<usize>() <= 20, "over the limit: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses: Vec<Status> = all.iter().map(|m| m.status()).collect();
    assert!(statuses.iter().all(|s| s.limit == Some(20)), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| s.leader).count(),
        1,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_gets_its_share_without_the_cluster_passing_its_limit() {
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let a = join(&server, config("a", 20)).await;
    let b = join(&server, config("b", 20)).await;
    // The incumbents take a new share only every 300 ms (pipelines with
    // long windows): a newcomer granted its share at once would hold it
    // before they have shrunk.
    let slow = Duration::from_millis(300);
    let _fa = Feed::every(slow, a.tuner(), None);
    let _fb = Feed::every(slow, b.tuner(), None);
    let settled = within(Duration::from_secs(10), || {
        _fa.permits() == 10 && _fb.permits() == 10
    })
    .await;
    assert!(settled.is_some(), "{:?}", shares(&[&a, &b]));

    let c = join(&server, config("c", 20)).await;
    let fc = Feed::start(c.tuner(), None);
    // The calls the three budgets allow, as applied, at every poll.
    let mut most = 0;
    let took = within(Duration::from_secs(5), || {
        most = most.max(_fa.permits() + _fb.permits() + fc.permits());
        fc.permits() >= 6
    })
    .await;
    let took = took.expect("the new member never got a share");
    println!("new member's share after {took:?}, most held {most}");
    // The others shrink first (a grant, a read, a window, a put), then it
    // grows: a few renewals, with slack for a loaded machine.
    assert!(
        took <= slow + RENEWAL * 4 + Duration::from_millis(300),
        "{took:?}"
    );
    // Never more than the limit, but for the newcomer's floor.
    assert!(most <= 21, "the budgets held {most} calls at once");
    let all = [&a, &b, &c];
    let fair = within(Duration::from_secs(5), || {
        let s = shares(&all);
        s.iter().sum::<usize>() == 20 && s.iter().all(|&x| x == 6 || x == 7)
    })
    .await;
    assert!(fair.is_some(), "{:?}", shares(&all));
}

/// Three members of a cluster starting at 40 calls, whose law halves on
/// a throttle and keeps every window it saw, each fed by a [`Feed`].
async fn three_halving_members(
    server: &LocalServer,
) -> (Vec<ClusterBudget>, Vec<Feed>, Arc<Mutex<Vec<Window>>>) {
    let seen = Arc::new(Mutex::new(Vec::<Window>::new()));
    let mut members = Vec::new();
    let mut feeds = Vec::new();
    for id in ["a", "b", "c"] {
        let s = Arc::clone(&seen);
        let cfg = config(id, 40).tuner(move || HalveOnThrottle {
            seen: Arc::clone(&s),
        });
        let m = join(server, cfg).await;
        feeds.push(Feed::start(m.tuner(), None));
        members.push(m);
    }
    (members, feeds, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_is_measured_once_every_member_holds_it() {
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let (members, feeds, seen) = three_halving_members(&server).await;
    let warm = within(Duration::from_secs(10), || {
        members
            .iter()
            .all(|m| m.status().steps >= 2 && m.status().share >= 13)
    })
    .await;
    assert!(
        warm.is_some(),
        "{:?}",
        members.iter().map(|m| m.status()).collect::<Vec<_>>()
    );
    // The API refuses calls while the cluster holds more than 21: every
    // member is refused until it holds its share of a halved limit, which
    // takes it a few renewals after the leader's step.
    for f in &feeds {
        f.refuse_above.store(7, Ordering::SeqCst);
    }
    let halved = within(Duration::from_secs(5), || {
        members.iter().all(|m| m.status().limit == Some(20))
    })
    .await;
    assert!(
        halved.is_some(),
        "{:?}",
        members.iter().map(|m| m.status()).collect::<Vec<_>>()
    );
    let at = members[0].status().steps;
    let settled = within(Duration::from_secs(5), || {
        members.iter().all(|m| m.status().steps >= at + 3)
    })
    .await;
    assert!(settled.is_some());
    let limits: Vec<_> = members.iter().map(|m| m.status().limit).collect();
    assert!(
        limits.iter().all(|&l| l == Some(20)),
        "refusals from before the members held the new limit cut again: {limits:?}"
    );
    let throttled = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.throttled > 0)
        .count();
    assert_eq!(throttled, 1, "windows with refusals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_leader_hands_over_at_once() {
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let a = join(&server, config("a", 20)).await;
    let b = join(&server, config("b", 20)).await;
    let _fa = Feed::start(a.tuner(), None);
    let _fb = Feed::start(b.tuner(), None);
    let settled = within(Duration::from_secs(10), || shares(&[&a, &b]) == [10, 10]).await;
    assert!(settled.is_some(), "{:?}", shares(&[&a, &b]));
    let (leaving, staying) = if a.status().leader { (a, b) } else { (b, a) };
    leaving.leave().await;
    // Well within a lease: the records are deleted, not left to expire.
    let took = within(LEASE, || {
        let s = staying.status();
        s.leader && s.share == 20
    })
    .await;
    println!("handed over after {took:?}");
    assert!(took.is_some(), "{:?}", staying.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_the_server_falls_to_the_floor_and_recovers() {
    let Some(mut server) = LocalServer::for_test() else {
        return;
    };
    let a = join(&server, config("a", 20)).await;
    let b = join(&server, config("b", 20)).await;
    let fa = Feed::start(a.tuner(), None);
    let _fb = Feed::start(b.tuner(), None);
    let settled = within(Duration::from_secs(10), || fa.permits() == 10).await;
    assert!(settled.is_some(), "{:?}", shares(&[&a, &b]));

    server.kill();
    let took = within(LEASE * 2, || fa.permits() == 1 && a.status().share == 1).await;
    let took = took.expect("a member without the server kept its share");
    println!("floor after {took:?}");
    assert!(took <= LEASE + Duration::from_millis(300), "{took:?}");
    assert_eq!(a.status().limit, None);

    // The broker comes back on the same store: the shares come back.
    server.restart().expect("restart nats-server");
    let back = within(Duration::from_secs(20), || {
        fa.permits() == 10 && shares(&[&a, &b]) == [10, 10]
    })
    .await;
    println!("shares back after restart in {back:?}");
    assert!(back.is_some(), "{:?}", shares(&[&a, &b]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_within_a_lease() {
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let mut members = Vec::new();
    let mut feeds = Vec::new();
    for id in ["a", "b", "c"] {
        let m = join(&server, config(id, 21)).await;
        feeds.push(Feed::start(m.tuner(), None));
        members.push(m);
    }
    let settled = within(Duration::from_secs(10), || {
        members.iter().all(|m| m.status().share == 7)
            && members.iter().filter(|m| m.status().leader).count() == 1
    })
    .await;
    assert!(
        settled.is_some(),
        "{:?}",
        members.iter().map(|m| m.status()).collect::<Vec<_>>()
    );
    let leader = members.iter().position(|m| m.status().leader).unwrap();
    let old_term = members[leader].status().term.unwrap();
    // Dropping stops the task with no goodbye, as a crash would.
    drop(members.remove(leader));
    drop(feeds.remove(leader));

    let took = within(LEASE * 3, || {
        members.iter().filter(|m| m.status().leader).count() == 1
            && members
                .iter()
                .all(|m| m.status().term.is_some_and(|t| t > old_term))
    })
    .await;
    let took = took.expect("no member took over");
    println!("takeover after {took:?}");
    assert!(took <= LEASE + Duration::from_millis(700), "{took:?}");
    // The dead member's share goes to the living once its record is a
    // lease old.
    let split = within(Duration::from_secs(5), || {
        members.iter().map(|m| m.status().share).sum::<usize>() == 21
            && members.iter().all(|m| m.status().share >= 10)
    })
    .await;
    assert!(
        split.is_some(),
        "{:?}",
        members.iter().map(|m| m.status()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_seen_by_every_member_is_one_decrease() {
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let (members, feeds, seen) = three_halving_members(&server).await;
    let steps = |ms: &[ClusterBudget]| ms.iter().map(|m| m.status().steps).max().unwrap_or(0);
    let warm = within(Duration::from_secs(10), || {
        steps(&members) >= 2 && members.iter().all(|m| m.status().share >= 13)
    })
    .await;
    assert!(
        warm.is_some(),
        "{:?}",
        members.iter().map(|m| m.status()).collect::<Vec<_>>()
    );
    // Right after a step, every member sees one throttled call.
    let before = steps(&members);
    assert!(
        within(Duration::from_secs(5), || steps(&members) > before)
            .await
            .is_some()
    );
    for f in &feeds {
        f.throttle.store(5, Ordering::SeqCst);
    }
    let after = steps(&members);
    assert!(
        within(Duration::from_secs(5), || steps(&members) >= after + 2)
            .await
            .is_some()
    );
    let limits: Vec<_> = members.iter().map(|m| m.status().limit).collect();
    assert!(
        limits.iter().all(|&l| l == Some(20)),
        "one halving expected, got {limits:?}"
    );
    let seen = seen.lock().unwrap();
    let throttled: Vec<u64> = seen
        .iter()
        .map(|w| w.throttled)
        .filter(|&t| t > 0)
        .collect();
    assert_eq!(
        throttled,
        [15],
        "the three members' throttles in one window"
    );
    // A merged window speaks for every member: three of 2 cores each.
    assert_eq!(seen.last().unwrap().cores, 6);
}

/// Calls in flight from every pipeline of the test, as the API is offered
/// them (the mock's own counter leaves out the calls it refuses).
#[derive(Default)]
struct Offered {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Offered {
    async fn call(
        &self,
        f: &HttpFetcher,
        url: &str,
    ) -> Result<bytes::Bytes, gearshift::StageError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        let r = f.get(url).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelines_share_a_hard_limited_api() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    // 16 calls at 20 ms, 429 past 16: 800 calls/s at most.
    const CAPACITY: usize = 16;
    let mut mock = MockConfig::with_latency(Duration::from_millis(20), Some(CAPACITY));
    mock.latency.hard_limit = Some(CAPACITY);
    let api = MockApi::start_with_threads(mock, 2).expect("mock api");
    let offered = Arc::new(Offered::default());
    let mut runs = Vec::new();
    for id in ["p1", "p2"] {
        let cfg = ClusterConfig {
            process_id: id.into(),
            initial_limit: 4,
            ..ClusterConfig::default()
        };
        let cluster = join(&server, cfg).await;
        let budget = cluster.api();
        let fetcher = HttpFetcher::builder().build().expect("fetcher");
        let (base, offered) = (api.base_url(), Arc::clone(&offered));
        let handle = Pipeline::from_iter(0..u64::MAX)
            .io(move |id| {
                let (f, o, url) = (
                    fetcher.clone(),
                    Arc::clone(&offered),
                    format!("{base}/item/{id}"),
                );
                async move { o.call(&f, &url).await }
            })
            .api(&budget)
            .cpu(|body: bytes::Bytes| body.len())
            .config(Config::default().with_cores(2))
            .spawn()
            .expect("pipeline");
        runs.push((cluster, handle));
    }
    // The cluster probes past the limit once, is refused, and settles.
    let refused = within(Duration::from_secs(20), || api.stats().status(429) > 0).await;
    assert!(
        refused.is_some(),
        "the cluster never reached the API's limit"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    offered
        .peak
        .store(offered.now.load(Ordering::SeqCst), Ordering::SeqCst);
    let before = api.stats();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = api.stats();
    let peak = offered.peak.load(Ordering::SeqCst);
    let served = after.status(200).saturating_sub(before.status(200));
    let rate = served as f64 / start.elapsed().as_secs_f64();
    let limits: Vec<Status> = runs.iter().map(|(c, _)| c.status()).collect();
    // Each pipeline's budget runs the cluster's tuner and holds its share.
    let follows = within(Duration::from_secs(2), || {
        runs.iter().all(|(c, h)| {
            let api = &h.snapshot().apis[0];
            api.tuner.as_deref() == Some("cluster") && api.max_in_flight == Some(c.status().share)
        })
    })
    .await;
    println!(
        "settled: peak offered {peak} (capacity {CAPACITY}), {rate:.0} calls/s ({:.2} of 800), \
         429s {} in the window, statuses {limits:?}",
        rate / 800.0,
        after.status(429).saturating_sub(before.status(429)),
    );
    if std::env::var_os("DEBUG_E2E").is_some() {
        for (_, h) in &runs {
            for d in h.snapshot().decisions.iter().rev().take(40).rev() {
                println!(
                    "{:?} {} permits {} {}",
                    d.at, d.api, d.api_permits, d.reason
                );
            }
        }
    }
    for (_, h) in &runs {
        h.abort();
    }
    for (_, h) in runs {
        let report = h.join().await;
        assert!(report.ok > 0);
    }
    assert!(
        follows.is_some(),
        "the local limits do not follow the grant"
    );
    assert!(
        peak as f64 <= CAPACITY as f64 * 1.1,
        "two processes offered {peak} calls at once to an API of capacity {CAPACITY}"
    );
}
