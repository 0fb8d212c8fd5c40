//! The mock API's shared state: its live config, the in-flight gauge, the
//! Retry-After window and the counters behind `GET /stats`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::MockConfig;
use super::draw::Fault;

/// What the mock API has seen since it started (or since
/// [`MockApi::reset_stats`](super::MockApi::reset_stats)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MockStats {
    /// Calls received (`GET /item/{id}` and `POST /upload/{id}`).
    pub requests: u64,
    /// Responses sent, by HTTP status (a truncated body counts under 200).
    pub by_status: BTreeMap<u16, u64>,
    /// Requests in flight right now (stalled ones excluded).
    pub in_flight: usize,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// Requests held unanswered by [`Overload::Drop`](super::Overload::Drop) right now.
    #[serde(default)]
    pub held: usize,
    /// Requests [`Overload::Drop`](super::Overload::Drop) held unanswered.
    #[serde(default)]
    pub dropped: u64,
    /// 500s sent by [`Overload::Errors`](super::Overload::Errors).
    #[serde(default)]
    pub overload_errors: u64,
    /// Faults injected, by kind (`server_error`, `rate_limited`, `hard_limit`,
    /// `stall`, `reset`, `truncated`).
    pub faults: BTreeMap<String, u64>,
    /// Retry-After windows opened (a 429 sent while no window was open).
    pub retry_after_windows: u64,
    /// Requests that arrived inside a Retry-After window, after its grace.
    pub inside_retry_after: u64,
    /// Requests per item id, when asked for (`/stats?per_id=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_id: Option<BTreeMap<u64, u32>>,
}

impl MockStats {
    /// Responses with this status.
    pub fn status(&self, code: u16) -> u64 {
        self.by_status.get(&code).copied().unwrap_or(0)
    }

    /// Faults of this kind.
    pub fn fault(&self, fault: Fault) -> u64 {
        self.faults.get(fault.as_str()).copied().unwrap_or(0)
    }
}

/// State shared by every connection of one mock API.
#[derive(Debug)]
pub(crate) struct State {
    config: RwLock<Arc<MockConfig>>,
    in_flight: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: u64,
    by_status: BTreeMap<u16, u64>,
    max_in_flight: usize,
    faults: BTreeMap<Fault, u64>,
    dropped: u64,
    overload_errors: u64,
    attempts: HashMap<u64, u32>,
    window: Option<Window>,
    windows: u64,
    inside_retry_after: u64,
}

/// One open Retry-After window: from the first 429 that opened it to the
/// latest end any 429 announced.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Instant,
    ends: Instant,
}

/// What the handler needs to know about an arriving request.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub config: Arc<MockConfig>,
    pub attempt: u32,
    pub in_flight: usize,
    pub held: usize,
}

impl State {
    pub(crate) fn new(config: MockConfig) -> Self {
        State {
            config: RwLock::new(Arc::new(config)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            held: Arc::new(AtomicUsize::new(0)),
            counters: Mutex::new(Counters::default()),
        }
    }

    pub(crate) fn config(&self) -> Arc<MockConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn set_config(&self, config: MockConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// Records an arrival: its attempt number for this id, the requests
    /// already in flight, and whether it came inside a Retry-After window.
    pub(crate) fn arrive(&self, id: u64) -> Arrival {
        let config = self.config();
        let now = Instant::now();
        let mut c = self.lock();
        c.requests += 1;
        let slot = c.attempts.entry(id).or_insert(0);
        let attempt = *slot;
        *slot += 1;
        if let Some(w) = c.window
            && now < w.ends
            && now >= w.opened + config.retry_after_grace
        {
            c.inside_retry_after += 1;
        }
        Arrival {
            config,
            attempt,
            in_flight: self.in_flight.load(Ordering::SeqCst),
            held: self.held.load(Ordering::SeqCst),
        }
    }

    /// Counts a request as in flight until the guard drops (also when the
    /// connection goes away mid-request and the handler is dropped).
    pub(crate) fn enter(&self) -> Gauged {
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let mut c = self.lock();
        c.max_in_flight = c.max_in_flight.max(n);
        Gauged(Arc::clone(&self.in_flight))
    }

    /// Counts a request dropped by the overload behaviour, and as held
    /// until the guard drops.
    pub(crate) fn hold(&self) -> Gauged {
        self.held.fetch_add(1, Ordering::SeqCst);
        self.lock().dropped += 1;
        Gauged(Arc::clone(&self.held))
    }

    pub(crate) fn record_overload_error(&self) {
        self.lock().overload_errors += 1;
    }

    pub(crate) fn record_fault(&self, fault: Fault) {
        *self.lock().faults.entry(fault).or_insert(0) += 1;
    }

    pub(crate) fn record_status(&self, status: u16) {
        *self.lock().by_status.entry(status).or_insert(0) += 1;
    }

    /// A 429 with `Retry-After: retry_after` is being sent now: open a
    /// window, or extend the open one.
    pub(crate) fn open_window(&self, retry_after: Duration) {
        let now = Instant::now();
        let mut c = self.lock();
        let ends = now + retry_after;
        match &mut c.window {
            Some(w) if now < w.ends => w.ends = w.ends.max(ends),
            _ => {
                c.window = Some(Window { opened: now, ends });
                c.windows += 1;
            }
        }
    }

    pub(crate) fn stats(&self, per_id: bool) -> MockStats {
        let c = self.lock();
        MockStats {
            requests: c.requests,
            by_status: c.by_status.clone(),
            in_flight: self.in_flight.load(Ordering::SeqCst),
            max_in_flight: c.max_in_flight,
            held: self.held.load(Ordering::SeqCst),
            dropped: c.dropped,
            overload_errors: c.overload_errors,
            faults: c
                .faults
                .iter()
                .map(|(f, n)| (f.as_str().to_owned(), *n))
                .collect(),
            retry_after_windows: c.windows,
            inside_retry_after: c.inside_retry_after,
            per_id: per_id.then(|| c.attempts.iter().map(|(k, v)| (*k, *v)).collect()),
        }
    }

    /// Forgets every counter and attempt number (the in-flight and held
    /// gauges stay: they count requests that are still running).
    pub(crate) fn reset(&self) {
        *self.lock() = Counters::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Decrements its gauge (in flight, or held) on drop.
#[derive(Debug)]
pub(crate) struct Gauged(Arc<AtomicUsize>);

impl Drop for Gauged {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
