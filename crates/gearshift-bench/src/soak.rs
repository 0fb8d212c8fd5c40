//! `gearshift-bench soak`: a long run under faults and constant resizing,
//! checking that every item taken ends as exactly one outcome and that
//! memory stays flat.
//!
//! Items `0..max_items` stream (lazily) through a gearshift pipeline against
//! the mock API with the fault mix of the fault suite's first test (20% 500s,
//! 5% stalls past the timeout, 2% resets, 1% truncated bodies; 3 attempts),
//! while agents, workers and batch size change every second and the preset
//! every 10 s. When `minutes` pass the pipeline is cancelled: items already
//! taken drain or end Cancelled. The ledger is two bitmaps over the ids (seen,
//! seen twice), allocated up front so it does not grow.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gearshift::http::HttpFetcher;
use gearshift::{Agents, Config, Outcome, Pipeline, Preset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::mock_api::{FaultRates, MockApi, MockConfig};
use crate::work::Work;

/// How to soak.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Wall time before the run is stopped.
    pub duration: Duration,
    /// Most items to feed.
    pub max_items: u64,
    /// Seed of the faults and of the random resizes.
    pub seed: u64,
    /// Cores the pipeline plans for.
    pub cores: usize,
    /// Run the mock API as a child process of this binary (`mock-api`), so
    /// that the RSS measured is the pipeline's alone: the mock keeps a
    /// counter per item id, which grows with the run. `None` embeds it.
    pub mock_process: Option<std::path::PathBuf>,
}

/// The mock API in a process of its own; killed on drop.
struct ChildApi {
    child: std::process::Child,
    base: String,
}

impl ChildApi {
    fn start(exe: &std::path::Path, seed: u64, faults: &FaultRates) -> anyhow::Result<ChildApi> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let arg = |x: f64| x.to_string();
        let child = std::process::Command::new(exe)
            .args([
                "mock-api",
                "--port",
                &port.to_string(),
                "--base-ms",
                "2",
                "--capacity",
                "0",
            ])
            .args([
                "--seed",
                &seed.to_string(),
                "--fault-5xx",
                &arg(faults.server_error),
            ])
            .args([
                "--fault-stall",
                &arg(faults.stall),
                "--fault-reset",
                &arg(faults.reset),
            ])
            .args(["--fault-truncated", &arg(faults.truncated)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut api = ChildApi {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = api.child.try_wait()? {
                anyhow::bail!("the mock API process exited early: {status}");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the mock API process did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(api)
    }
}

impl Drop for ChildApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a soak measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Wall time.
    pub elapsed: Duration,
    /// Items that got an outcome (the ids `0..outcomes` are expected).
    pub outcomes: u64,
    /// Outcomes by kind: `ok`, `cancelled`, and failure kinds.
    pub by_kind: BTreeMap<String, u64>,
    /// Ids below the highest id seen that have no outcome.
    pub lost: u64,
    /// Ids with more than one outcome.
    pub duplicated: u64,
    /// Outcomes the pipeline's own report counts.
    pub reported: u64,
    /// Resizes and preset switches applied.
    pub changes: u64,
    /// Peak RSS per minute (the last one partial), KiB.
    pub rss_peak_per_minute_kib: Vec<u64>,
}

impl SoakReport {
    /// Ok items per second.
    pub fn ok_per_s(&self) -> f64 {
        self.by_kind.get("ok").copied().unwrap_or(0) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The last minute's RSS peak over the first minute's.
    pub fn rss_growth(&self) -> Option<f64> {
        let first = *self.rss_peak_per_minute_kib.first()?;
        let last = *self.rss_peak_per_minute_kib.last()?;
        (first > 0).then(|| last as f64 / first as f64)
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "soak: {:.1} s, {} outcomes, {:.1} ok items/s, {} changes",
            self.elapsed.as_secs_f64(),
            self.outcomes,
            self.ok_per_s(),
            self.changes
        )?;
        writeln!(f, "outcomes by kind: {:?}", self.by_kind)?;
        writeln!(
            f,
            "lost: {}  duplicated: {}  pipeline reported: {}",
            self.lost, self.duplicated, self.reported
        )?;
        write!(
            f,
            "peak RSS per minute (KiB): {:?}",
            self.rss_peak_per_minute_kib
        )?;
        if let Some(g) = self.rss_growth() {
            write!(f, "  last/first: {g:.3}")?;
        }
        writeln!(f)
    }
}

/// Runs a soak.
///
/// # Errors
///
/// If the mock API, the fetcher or the pipeline cannot start.
pub async fn soak(opts: &SoakOptions) -> anyhow::Result<SoakReport> {
    let timeout = Duration::from_millis(250);
    let mut mock = MockConfig::with_latency(Duration::from_millis(2), None);
    mock.seed = opts.seed;
    mock.stall_for = timeout * 2;
    mock.faults = FaultRates {
        server_error: 0.20,
        stall: 0.05,
        reset: 0.02,
        truncated: 0.01,
        ..FaultRates::default()
    };
    let (_embedded, _child, base) = match &opts.mock_process {
        Some(exe) => {
            let child = ChildApi::start(exe, opts.seed, &mock.faults)?;
            let base = child.base.clone();
            (None, Some(child), base)
        }
        None => {
            let api = MockApi::start(mock)?;
            let base = api.base_url();
            (Some(api), None, base)
        }
    };
    let fetcher = HttpFetcher::builder().timeout(timeout).build()?;
    let work = Work::millis(0.05);
    let config = Config {
        agents: Agents::Total(16),
        api_timeout: timeout,
        stats_interval: None,
        drain_timeout: Duration::from_secs(2),
        max_workers: Some(opts.cores),
        ..Config::default().with_cores(opts.cores)
    };
    let (handle, mut outcomes) = Pipeline::from_iter(0..opts.max_items)
        .config(config)
        .io(move |id: u64| {
            let (fetcher, url) = (fetcher.clone(), format!("{base}/item/{id}"));
            async move { fetcher.get(&url).await }
        })
        .cpu(move |body| work.run(&body))
        .spawn_stream()?;

    let start = Instant::now();
    let control = {
        let (handle, seed, cores, duration) =
            (handle.clone(), opts.seed, opts.cores, opts.duration);
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut rss = Vec::<u64>::new();
            let mut changes = 0u64;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut second = 0u64;
            while start.elapsed() < duration && !handle.is_finished() {
                tick.tick().await;
                second += 1;
                let minute = (start.elapsed().as_secs() / 60) as usize;
                if rss.len() <= minute {
                    rss.resize(minute + 1, 0);
                }
                rss[minute] = rss[minute].max(rss_kib().unwrap_or(0));
                let applied = if second % 10 == 0 {
                    let p = Preset::ALL[(second / 10) as usize % Preset::ALL.len()];
                    handle.apply(p)
                } else {
                    handle
                        .set_agents(rng.random_range(1..=64))
                        .and_then(|_| handle.set_workers(rng.random_range(1..=cores)))
                        .and_then(|_| handle.set_items_per_batch(rng.random_range(1..=100)))
                };
                match applied {
                    Ok(()) => changes += 1,
                    Err(e) => tracing::warn!(error = %e, "soak: change refused"),
                }
            }
            handle.cancel();
            (rss, changes)
        })
    };

    let slots = opts.max_items as usize;
    let mut seen = vec![0u64; slots.div_ceil(64)];
    let mut twice = vec![0u64; slots.div_ceil(64)];
    // Touch the ledger's pages now, so its memory is in the first minute's
    // RSS rather than growing with the ids.
    for w in seen.iter_mut().chain(twice.iter_mut()).step_by(512) {
        *w = std::hint::black_box(0);
    }
    let mut by_kind = BTreeMap::<String, u64>::new();
    let (mut count, mut highest) = (0u64, None::<u64>);
    while let Some(outcome) = outcomes.next().await {
        let id = outcome.id();
        let kind = match &outcome {
            Outcome::Ok { .. } => "ok".to_owned(),
            Outcome::Cancelled { .. } => "cancelled".to_owned(),
            Outcome::Failed(f) => f.kind().as_str().to_owned(),
        };
        *by_kind.entry(kind).or_insert(0) += 1;
        count += 1;
        highest = highest.max(Some(id));
        let (w, b) = ((id / 64) as usize, 1u64 << (id % 64));
        if w < seen.len() {
            if seen[w] & b != 0 {
                twice[w] |= b;
            }
            seen[w] |= b;
        }
    }
    let report = handle.join().await;
    let (rss, changes) = control.await?;
    let distinct: u64 = seen.iter().map(|w| u64::from(w.count_ones())).sum();
    let expected = highest.map_or(0, |h| h + 1);
    Ok(SoakReport {
        elapsed: start.elapsed(),
        outcomes: count,
        by_kind,
        lost: expected.saturating_sub(distinct),
        duplicated: twice.iter().map(|w| u64::from(w.count_ones())).sum(),
        reported: report.outcomes(),
        changes,
        rss_peak_per_minute_kib: rss,
    })
}

/// This process's resident set size, from `/proc/self/status` (Linux only).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
