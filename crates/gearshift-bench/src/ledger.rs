//! The [`Ledger`] every system reports to, kept outside the system under
//! test: one slot per item id, so a lost or repeated item is found, not
//! assumed away; and the [`RunResult`] it turns into.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gearshift::ErrorKind;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;

/// Outcomes per item id, item latencies and completion times of one run.
#[derive(Debug)]
pub struct Ledger {
    start: Instant,
    items: u64,
    outcomes: Vec<AtomicU32>,
    started: Vec<AtomicU64>,
    unexpected: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    inner: Mutex<Inner>,
    phase: Option<Arc<PhaseSwitch>>,
    progress: Option<ProgressBar>,
}

#[derive(Debug)]
struct Inner {
    latency_us: Histogram<u64>,
    done_at: Vec<f32>,
    failures: BTreeMap<String, u64>,
    events: Vec<(f64, String)>,
    problems: Vec<String>,
}

/// A workload change that fires once, when a given number of items have
/// finished: the morning_evening scenario switches the mock API's config and
/// the CPU cost there, and the live-switch system applies a preset.
pub struct PhaseSwitch {
    at: u64,
    fired: std::sync::atomic::AtomicBool,
    action: Box<dyn Fn() + Send + Sync>,
    tx: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for PhaseSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhaseSwitch")
            .field("at", &self.at)
            .field("fired", &self.fired)
            .finish_non_exhaustive()
    }
}

impl PhaseSwitch {
    /// Runs `action` once, when the `at`-th item has finished.
    pub fn new(at: u64, action: impl Fn() + Send + Sync + 'static) -> Self {
        PhaseSwitch {
            at,
            fired: Default::default(),
            action: Box::new(action),
            tx: tokio::sync::watch::channel(false).0,
        }
    }

    /// Resolves when the switch has fired (for a system that reacts to it).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Whether it has fired.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    fn fire(&self) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            (self.action)();
            self.tx.send_replace(true);
        }
    }
}

/// What one system did in one scenario.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The system's name, e.g. `tokio+rayon`.
    pub system: String,
    /// Items in flight it allowed (agents or C).
    pub concurrency: usize,
    /// Items given to it.
    pub items: u64,
    /// Items that ended Ok.
    pub ok: u64,
    /// Items that ended Failed (or Cancelled).
    pub failed: u64,
    /// From the start to the last outcome.
    pub elapsed: Duration,
    /// Per-item latency in microseconds, from first fetch to outcome.
    pub latency_us: Histogram<u64>,
    /// Throughput over time: (seconds since start, items/s in the bucket).
    pub timeline: Vec<(f64, f64)>,
    /// Failures by kind.
    pub failures: BTreeMap<String, u64>,
    /// Marked moments, e.g. the phase change: (seconds since start, label).
    pub events: Vec<(f64, String)>,
    /// Set if an item was lost, repeated or unexpected: the result is void.
    pub accounting_error: Option<String>,
    /// The most calls each API had in flight, by the server's own count
    /// (filled in by the scenario runner; empty otherwise).
    pub peak_in_flight: BTreeMap<String, usize>,
    /// The share of the machine's CPU time other processes took during
    /// the run (filled in by the scenario runner; `None` where it cannot
    /// be read): see [`crate::cpu_share`].
    pub others_cpu: Option<f64>,
}

impl RunResult {
    /// Items per second over the whole run.
    pub fn items_per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Median item latency, ms.
    pub fn p50_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.5) as f64 / 1e3
    }

    /// 99th percentile item latency, ms.
    pub fn p99_ms(&self) -> f64 {
        self.latency_us.value_at_quantile(0.99) as f64 / 1e3
    }
}

impl Ledger {
    /// A ledger for items `0..items`, started now.
    pub fn new(items: u64, phase: Option<Arc<PhaseSwitch>>, progress: Option<ProgressBar>) -> Self {
        Ledger {
            start: Instant::now(),
            items,
            outcomes: (0..items).map(|_| AtomicU32::new(0)).collect(),
            started: (0..items).map(|_| AtomicU64::new(0)).collect(),
            unexpected: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("valid histogram bounds"),
                done_at: Vec::with_capacity(items as usize),
                failures: BTreeMap::new(),
                events: Vec::new(),
                problems: Vec::new(),
            }),
            phase,
            progress,
        }
    }

    /// Seconds since the ledger started.
    pub fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Item `id` starts its first fetch now (later calls are ignored).
    pub fn start_item(&self, id: u64) {
        if let Some(slot) = self.started.get(id as usize) {
            let ns = self.start.elapsed().as_nanos() as u64 + 1;
            let _ = slot.compare_exchange(0, ns, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Records item `id`'s outcome: `Ok(())` or the kind of its failure.
    pub fn record(&self, id: u64, outcome: Result<(), ErrorKind>) {
        let Some(slot) = self.outcomes.get(id as usize) else {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        slot.fetch_add(1, Ordering::Relaxed);
        let now_ns = self.start.elapsed().as_nanos() as u64;
        let started = self.started[id as usize].load(Ordering::Relaxed);
        let latency_us = if started == 0 {
            1
        } else {
            (now_ns.saturating_sub(started) / 1000).max(1)
        };
        {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.latency_us.saturating_record(latency_us);
            inner.done_at.push((now_ns as f64 / 1e9) as f32);
            if let Err(kind) = outcome {
                *inner.failures.entry(kind.as_str().to_owned()).or_insert(0) += 1;
            }
        }
        match outcome {
            Ok(()) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
        let done = self.done();
        if let Some(p) = &self.progress {
            p.inc(1);
        }
        if let Some(phase) = &self.phase
            && done >= phase.at
            && !phase.fired()
        {
            self.mark("phase change");
            phase.fire();
        }
    }

    /// Marks a moment on the run's timeline.
    pub fn mark(&self, label: impl Into<String>) {
        let t = self.now_s();
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events
            .push((t, label.into()));
    }

    /// Records an accounting problem found by a system's own check (e.g. an
    /// item computed twice): it voids the result.
    pub fn problem(&self, what: impl Into<String>) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .problems
            .push(what.into());
    }

    /// Items with an outcome so far.
    pub fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// Checks that every item has exactly one outcome and builds the result.
    pub fn finish(&self, system: impl Into<String>, concurrency: usize) -> RunResult {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (mut lost, mut repeated) = (0u64, 0u64);
        for slot in &self.outcomes {
            match slot.load(Ordering::Relaxed) {
                0 => lost += 1,
                1 => {}
                _ => repeated += 1,
            }
        }
        let unexpected = self.unexpected.load(Ordering::Relaxed);
        let ok = self.ok.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let mut problems = inner.problems.clone();
        if lost + repeated + unexpected > 0 || ok + failed != self.items {
            problems.push(format!(
                "{lost} lost, {repeated} repeated, {unexpected} unexpected; ok {ok} + failed {failed} of {} items",
                self.items
            ));
        }
        let accounting_error = (!problems.is_empty()).then(|| problems.join("; "));
        let last = inner.done_at.iter().copied().fold(0.0f32, f32::max) as f64;
        let elapsed = Duration::from_secs_f64(last.max(1e-6));
        RunResult {
            system: system.into(),
            concurrency,
            items: self.items,
            ok,
            failed,
            elapsed,
            latency_us: inner.latency_us.clone(),
            timeline: timeline(&inner.done_at, last),
            failures: inner.failures.clone(),
            events: inner.events.clone(),
            accounting_error,
            peak_in_flight: BTreeMap::new(),
            others_cpu: None,
        }
    }
}

/// Completions per second in about 40 buckets (at least 50 ms each).
fn timeline(done_at: &[f32], last: f64) -> Vec<(f64, f64)> {
    let bucket = (last / 40.0).max(0.05);
    let n = (last / bucket).ceil().max(1.0) as usize;
    let mut counts = vec![0u64; n];
    for &t in done_at {
        let i = ((t as f64 / bucket) as usize).min(n - 1);
        counts[i] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| ((i as f64 + 0.5) * bucket, c as f64 / bucket))
        .collect()
}
