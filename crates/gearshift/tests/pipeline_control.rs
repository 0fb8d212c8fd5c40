//! Runtime control: resizes, presets, schedules and tuners while items flow,
//! with no item lost or repeated.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gearshift::tuner::{Decision, Tuner, Window};
use gearshift::{Agents, Api, Config, Pipeline, Preset, Schedule, StageError};
use rand::{Rng, SeedableRng};
use support::{check_ledger, wait_until};

/// How long a test waits for a change to show: far beyond what it takes,
/// so a loaded machine makes a test slower, never wrong.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_resizes_lose_and_repeat_nothing() {
    let n = 20_000u64;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let (handle, outcomes) = Pipeline::from_iter(0..n)
        .io(move |id| {
            c.fetch_add(1, Ordering::Relaxed);
            async move {
                if id % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                Ok::<_, StageError>(id)
            }
        })
        .cpu(|id| id * 2)
        .io(|x| async move { Ok::<_, StageError>(x + 1) })
        .config(Config {
            channel_capacity: 16,
            max_workers: Some(4),
            ..Config::default().with_cores(2)
        })
        .spawn_stream()
        .unwrap();
    let control = handle.clone();
    let resizer = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for i in 0..1000 {
            let r = match rng.random_range(0..6) {
                0 => control.set_agents_per_core(rng.random_range(0.5..8.0)),
                1 => control.set_agents(rng.random_range(1..40)),
                2 => control.set_workers(rng.random_range(1..=4)),
                3 => control.set_items_per_batch(rng.random_range(1..64)),
                4 => control
                    .api("io-0")
                    .unwrap()
                    .set_max_in_flight(Some(rng.random_range(1..50))),
                _ => control.apply(Preset::ALL[i % Preset::ALL.len()]),
            };
            r.expect("every resize here is valid");
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    });
    let outcomes: Vec<_> = futures::StreamExt::collect(outcomes).await;
    resizer.await.unwrap();
    let report = handle.join().await;
    let (ok, _, _) = check_ledger(n, &outcomes, &report);
    assert_eq!(ok, n);
    assert_eq!(
        calls.load(Ordering::Relaxed) as u64,
        n,
        "each item was fetched once"
    );
    for o in outcomes {
        let id = o.id();
        assert_eq!(o.ok(), Some(id * 2 + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_agents_starts_new_agents_at_once_and_shrinking_retires_them() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (Arc::clone(&in_flight), Arc::clone(&peak));
    let handle = Pipeline::from_iter(0..4000u64)
        .io(move |id| {
            let (f, p) = (Arc::clone(&f), Arc::clone(&p));
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, StageError>(id)
            }
        })
        .config(Config {
            agents: Agents::Total(2),
            ..Config::default().with_cores(2)
        })
        .spawn()
        .unwrap();
    wait_until(PATIENCE, "the first items are done", || {
        handle.snapshot().ok >= 10
    })
    .await;
    assert!(peak.load(Ordering::SeqCst) <= 2);
    handle.set_agents(24).unwrap();
    wait_until(
        PATIENCE,
        "24 agents run and more than 12 calls overlap",
        || handle.snapshot().stages[0].concurrency == 24 && peak.load(Ordering::SeqCst) > 12,
    )
    .await;
    let snap = handle.snapshot();
    assert_eq!(snap.stages[0].concurrency, 24, "new agents run at once");
    assert!(
        peak.load(Ordering::SeqCst) > 12,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    handle.set_agents(3).unwrap();
    // The snapshot that showed the shrink done, checked field by field below.
    let mut shrunk = None;
    wait_until(PATIENCE, "21 surplus agents have retired", || {
        let snap = handle.snapshot();
        let s = &snap.stages[0];
        let done = s.concurrency == 3 && s.agents_retired == 21 && s.agents.len() == 3;
        shrunk = Some(snap);
        done
    })
    .await;
    let snap = shrunk.unwrap();
    assert_eq!(
        snap.stages[0].concurrency, 3,
        "surplus agents retire after their call"
    );
    assert_eq!(snap.stages[0].agents_retired, 21);
    assert_eq!(
        snap.stages[0].agents.len(),
        3,
        "only live agents are listed"
    );
    assert!(in_flight.load(Ordering::SeqCst) <= 3);
    handle.abort();
    let report = handle.join().await;
    assert_eq!(report.outcomes(), 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_changes_are_validated() {
    let handle = Pipeline::from_iter(0..10u64)
        .cpu(|x| x)
        .configure(|c| c.max_workers = Some(2))
        .spawn()
        .unwrap();
    assert!(
        handle
            .set_agents_per_core(f64::NAN)
            .unwrap_err()
            .to_string()
            .contains("agents_per_core")
    );
    assert!(handle.set_agents_per_core(-1.0).is_err());
    assert!(handle.set_agents(0).is_err());
    assert!(handle.set_items_per_batch(0).is_err());
    let missing = handle.api("io-0").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "no api named \"io-0\" (the pipeline has: )"
    );
    assert!(handle.stage("cpu-0").is_ok());
    let api = Api::new("search").handle();
    assert!(api.set_max_in_flight(Some(0)).is_err());
    assert!(api.set_rate_limit(Some(f64::INFINITY)).is_err());
    let e = handle.set_workers(3).unwrap_err();
    assert!(e.field.ends_with("workers"), "{e}");
    assert!(handle.set_workers(0).is_err());
    handle.set_workers(1).unwrap();
    assert_eq!(handle.config().workers, 1);
    handle.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_switch_live() {
    let handle = Pipeline::from_iter(0..u64::MAX)
        .io(|id| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, StageError>(id)
        })
        .cpu(|x| x)
        .configure(|c| *c = c.clone().with_cores(4))
        .preset(Preset::Morning)
        .spawn()
        .unwrap();
    wait_until(PATIENCE, "Morning's 12 agents run", || {
        handle.snapshot().stages[0].concurrency == 12
    })
    .await;
    assert_eq!(handle.config().workers, 3);
    handle.apply(Preset::Evening).unwrap();
    wait_until(PATIENCE, "Evening's 4 agents run", || {
        handle.snapshot().stages[0].concurrency == 4
    })
    .await;
    assert_eq!(handle.config().items_per_batch, 50);
    assert_eq!(
        handle.config().workers,
        4,
        "Evening gives every core to workers"
    );
    // Items still flow after the switch (the presets can take a loaded
    // machine less time than a first batch: wait for one).
    let before = handle.snapshot().ok;
    wait_until(PATIENCE, "items end Ok under Evening", || {
        handle.snapshot().ok > before
    })
    .await;
    handle.abort();
    let report = handle.join().await;
    assert!(report.ok > before);
}

// On tokio's paused clock (the schedule reads tokio's time): the sleeps
// below are the schedule's own times, exact however loaded the machine.
#[tokio::test(start_paused = true)]
async fn a_schedule_switches_presets_by_elapsed_time() {
    let handle = Pipeline::from_iter(0..u64::MAX)
        .io(|id| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, StageError>(id)
        })
        .configure(|c| *c = c.clone().with_cores(2))
        .schedule(Schedule::after([
            (Duration::ZERO, Preset::Morning),
            (Duration::from_millis(300), Preset::Evening),
        ]))
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(handle.config().agents, Agents::PerCore(3.0));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(handle.config().agents, Agents::PerCore(1.0));
    handle.abort();
    handle.join().await;
}

/// A tuner that records what it saw and always asks for 5 agents.
struct Fixed(Arc<std::sync::Mutex<Vec<Window>>>);

impl Tuner for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }
    fn window(&self) -> Duration {
        Duration::from_millis(50)
    }
    fn decide(&mut self, w: &Window) -> Decision {
        self.0.lock().unwrap().push(w.clone());
        Decision {
            agents: Some(5),
            api_permits: Some(5),
            workers: None,
            reason: "test".into(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuner_decisions_are_applied_and_recorded() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handle = Pipeline::from_iter(0..u64::MAX)
        .io(|id| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<_, StageError>(id)
        })
        .api(&Api::new("api").tuner(Fixed(Arc::clone(&seen))))
        .cpu(|x| x)
        .configure(|c| *c = c.clone().with_cores(2))
        .spawn()
        .unwrap();
    let measured = |w: &Window| w.io_completions > 0 && w.cpu_items > 0;
    let mut applied = None;
    wait_until(
        PATIENCE,
        "the tuner's decision is applied after a measured window",
        || {
            let snap = handle.snapshot();
            let s = &snap.stages[0];
            let done = s.concurrency == 5
                && s.permits == 5
                && !snap.decisions.is_empty()
                && seen.lock().unwrap().iter().any(measured);
            applied = Some(snap);
            done
        },
    )
    .await;
    let snap = applied.unwrap();
    assert_eq!(snap.stages[0].concurrency, 5);
    assert_eq!(snap.stages[0].permits, 5);
    assert!(!snap.decisions.is_empty());
    assert_eq!(snap.decisions[0].reason, "test");
    handle.abort();
    handle.join().await;
    let seen = seen.lock().unwrap();
    // A window cut short by the abort may be empty: check one that was not.
    let window = seen.iter().rev().find(|w| measured(w)).unwrap();
    assert!(
        window.io_completions > 0,
        "windows carry measurements: {window:?}"
    );
    assert!(window.latency_p50.unwrap() >= Duration::from_millis(2));
    assert!(window.cpu_items > 0);
}
