//! Backpressure: with a sink slower than the source, the items alive in
//! memory never exceed what the channels, batches and agents can hold.
//! Items are counted exactly: each payload counts itself on creation and
//! on drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gearshift::{Agents, Config, Pipeline, StageError};

mod support;

/// A payload that counts how many of its kind are alive.
struct Tracked {
    live: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Tracked {
    fn new(live: &Arc<AtomicUsize>, peak: &Arc<AtomicUsize>) -> Self {
        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        Tracked {
            live: Arc::clone(live),
            peak: Arc::clone(peak),
        }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(&self.live, &self.peak)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_bounds_the_items_held_in_memory() {
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let n = 3000u64;
    let (l, p) = (Arc::clone(&live), Arc::clone(&peak));
    // The source makes payloads lazily, as it is pulled.
    let source = (0..n).map(move |_| Tracked::new(&l, &p));
    let config = Config {
        agents: Agents::Total(6),
        channel_capacity: 16,
        items_per_batch: 8,
        workers: 2,
        retry: gearshift::RetryPolicy::never(),
        ..Config::default().with_cores(2)
    };
    let sunk = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&sunk);
    let report = Pipeline::from_iter(source)
        .io(|t: Tracked| async move { Ok::<_, StageError>(t) })
        .cpu(|t: Tracked| t)
        .sink(move |outcome| {
            std::thread::sleep(Duration::from_micros(200));
            drop(outcome);
            s.fetch_add(1, Ordering::SeqCst);
        })
        .config(config.clone())
        .run()
        .await
        .unwrap();
    assert_eq!(report.ok, n);
    assert_eq!(sunk.load(Ordering::SeqCst) as u64, n);
    assert_eq!(live.load(Ordering::SeqCst), 0, "every payload was dropped");
    // Where an item can be: the source's channel, from an IO call up to the
    // collector, the sink's channel, the sink's hands, and the one the
    // source just made.
    let cap = config.channel_capacity;
    let bound = cap + support::held_from_io_to_collector(&config) + cap + 1 + 1;
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= bound, "peak {peak} payloads alive, bound {bound}");
    assert!(
        peak > 2 * cap,
        "the slow sink should have filled the channels (peak {peak})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_bounds_the_items_between_source_and_outcome() {
    use std::sync::atomic::AtomicU64;
    let window = 3;
    let (started, finished, peak) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (s, f, p) = (
        Arc::clone(&started),
        Arc::clone(&finished),
        Arc::clone(&peak),
    );
    let f2 = Arc::clone(&finished);
    let config = Config {
        // Far more agents than the window: only the window can hold them back.
        agents: Agents::Total(16),
        max_in_flight: Some(window),
        ..Config::default().with_cores(2)
    };
    let (handle, outcomes) = Pipeline::from_iter(0..200u64)
        .io(move |i: u64| {
            // Started but not finished: at most the items the window admits.
            let now = s.fetch_add(1, Ordering::SeqCst) + 1 - f.load(Ordering::SeqCst);
            p.fetch_max(now, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, StageError>(i)
            }
        })
        .cpu(move |i: u64| {
            f2.fetch_add(1, Ordering::SeqCst);
            i
        })
        .config(config)
        .spawn_stream()
        .unwrap();
    assert!(
        handle.set_max_in_flight(0).is_err(),
        "a zero window is refused"
    );
    let done: Vec<_> = futures::StreamExt::collect(outcomes).await;
    assert_eq!(done.len(), 200);
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= window as u64,
        "{peak} items in flight, window {window}"
    );
    assert_eq!(peak, window as u64, "the window was used in full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_changes_live_only_if_set_at_spawn() {
    let (tx, rx) = async_channel::unbounded::<u64>();
    let (handle, _outcomes) = Pipeline::from_channel(rx)
        .cpu(|i: u64| i)
        .config(Config::default().with_cores(2))
        .spawn_stream()
        .unwrap();
    let err = handle.set_max_in_flight(8).unwrap_err();
    assert!(err.to_string().contains("max_in_flight"), "{err}");
    drop(tx);
    handle.join().await;
}
