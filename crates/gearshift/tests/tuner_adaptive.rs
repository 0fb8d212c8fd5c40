//! The adaptive tuner's decisions, on synthetic windows and in a closed
//! loop with a small model of an API and a CPU stage (no timing involved).

use std::time::Duration;

use gearshift::tuner::{Adaptive, Mode, Tuner, Window};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

/// An API of `capacity` with no-load latency `base` (the mock API's model
/// without jitter), feeding a CPU stage that finishes `cpu_rate` items/s.
#[derive(Clone)]
struct Model {
    base: f64,
    capacity: f64,
    retrograde: f64,
    cpu_rate: f64,
    queue: usize,
    throttle_above: Option<usize>,
}

impl Model {
    fn latency(&self, n: usize) -> f64 {
        let excess = (n as f64 - self.capacity).max(0.0);
        (self.base + excess * self.base / self.capacity) * (1.0 + self.retrograde * excess)
    }

    fn io_rate(&self, n: usize) -> f64 {
        n as f64 / self.latency(n)
    }

    /// The window the pipeline would measure at concurrency `n`, with
    /// multiplicative noise on latency and rate.
    fn window(&self, n: usize, rng: &mut impl Rng, noise: f64) -> Window {
        let elapsed = 0.5;
        let io = self.io_rate(n);
        let rate = io.min(self.cpu_rate);
        let cpu_bound = io > self.cpu_rate;
        let jitter = |rng: &mut dyn rand::RngCore| 1.0 + noise * (rng.random::<f64>() * 2.0 - 1.0);
        let p50 = self.latency(n) * jitter(rng);
        let throttled = self.throttle_above.is_some_and(|h| n > h);
        Window {
            elapsed: Duration::from_secs_f64(elapsed),
            cores: 2,
            agents: n,
            api_permits: n,
            workers: 2,
            max_workers: 4,
            io_completions: (rate * elapsed * jitter(rng)) as u64,
            latency_p50: Some(Duration::from_secs_f64(p50)),
            latency_p90: Some(Duration::from_secs_f64(p50 * 1.3)),
            latency_min: Some(Duration::from_secs_f64(self.base * 0.97)),
            mean_in_flight: n as f64,
            peak_in_flight: n,
            cpu_items: (rate * elapsed) as u64,
            queue_min: if cpu_bound { self.queue } else { 0 },
            queue_capacity: self.queue,
            agents_blocked: if cpu_bound {
                1.0 - self.cpu_rate / io
            } else {
                0.0
            },
            agents_idle: 0.0,
            workers_idle: if cpu_bound {
                0.0
            } else {
                1.0 - rate / self.cpu_rate
            },
            throttled: if throttled { 5 } else { 0 },
            timeouts: 0,
            errors: 0,
            retry_after: throttled.then(|| Duration::from_secs(1)),
        }
    }
}

/// Runs the loop for `windows` windows and returns the concurrency chosen
/// after each.
fn run(
    tuner: &mut Adaptive,
    model: &Model,
    start: usize,
    windows: usize,
    noise: f64,
    seed: u64,
) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut n = start;
    let mut trace = Vec::new();
    for _ in 0..windows {
        let d = tuner.decide(&model.window(n, &mut rng, noise));
        assert!(!d.reason.is_empty(), "every decision says why");
        if let Some(a) = d.agents {
            assert_eq!(d.api_permits, Some(a), "one permit per agent");
            n = a;
        }
        trace.push(n);
    }
    trace
}

fn cv(xs: &[usize]) -> f64 {
    let mean = xs.iter().sum::<usize>() as f64 / xs.len() as f64;
    let var = xs.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / xs.len() as f64;
    var.sqrt() / mean
}

fn io_bound(capacity: f64, retrograde: f64) -> Model {
    Model {
        base: 0.020,
        capacity,
        retrograde,
        cpu_rate: 1e9,
        queue: 256,
        throttle_above: None,
    }
}

#[test]
fn grows_fast_then_settles_at_the_apis_capacity() {
    let model = io_bound(32.0, 0.0);
    let mut tuner = Adaptive::new(4);
    let trace = run(&mut tuner, &model, 4, 80, 0.02, 1);
    assert_eq!(
        &trace[..3],
        &[8, 16, 32],
        "startup doubles while throughput grows"
    );
    let steady = &trace[30..];
    let mean = steady.iter().sum::<usize>() as f64 / steady.len() as f64;
    assert!(
        (29.0..=40.0).contains(&mean),
        "settles near capacity 32, mean {mean}: {trace:?}"
    );
    assert!(
        cv(steady) < 0.10,
        "no oscillation: cv {:.3} {trace:?}",
        cv(steady)
    );
    // Throughput within 10% of the best possible.
    let rate = model.io_rate(*trace.last().unwrap());
    assert!(rate >= 0.9 * model.io_rate(32), "{rate}");
}

#[test]
fn backs_off_from_the_knee_when_past_capacity_hurts() {
    // Retrograde: past 20 in flight, throughput falls. Start far past it.
    let model = io_bound(20.0, 0.02);
    let mut tuner = Adaptive::new(100);
    let trace = run(&mut tuner, &model, 100, 80, 0.02, 2);
    let end = &trace[50..];
    let mean = end.iter().sum::<usize>() as f64 / end.len() as f64;
    assert!(
        (16.0..=26.0).contains(&mean),
        "backs off to about 20, mean {mean}: {trace:?}"
    );
    assert!(
        cv(end) < 0.10,
        "no oscillation: cv {:.3} {trace:?}",
        cv(end)
    );
    assert!(model.io_rate(*trace.last().unwrap()) >= 0.9 * model.io_rate(20));
}

#[test]
fn pauses_and_decreases_on_429_then_regrows_slowly() {
    let mut tuner = Adaptive::new(40);
    let model = io_bound(1000.0, 0.0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    tuner.decide(&model.window(40, &mut rng, 0.0));
    let mut w = model.window(80, &mut rng, 0.0);
    w.throttled = 12;
    w.retry_after = Some(Duration::from_secs(2));
    let d = tuner.decide(&w);
    assert_eq!(tuner.mode(), Mode::Throttled);
    assert_eq!(d.agents, Some(56), "x0.7 from 80");
    assert!(d.reason.contains("throttled"), "{}", d.reason);
    // Cool down, then grow by one at a time, never past the ceiling.
    let mut n = 56;
    let mut seen = vec![];
    for _ in 0..40 {
        if let Some(a) = tuner.decide(&model.window(n, &mut rng, 0.0)).agents {
            assert!(
                a <= n + 1 || tuner.mode() != Mode::Throttled,
                "regrowth is slow: {n} -> {a}"
            );
            n = a;
        }
        seen.push(n);
    }
    assert_eq!(&seen[..3], &[56, 56, 56], "holds while cooling down");
    assert!(
        seen.iter()
            .all(|&c| c <= 79 || tuner.mode() != Mode::Throttled),
        "{seen:?}"
    );
}

#[test]
fn cpu_bound_shrinks_to_littles_law_and_gives_cores_to_workers() {
    // Phase B of the tuner benchmark: the API could serve 1000/s, the CPU
    // stage only 200/s.
    let model = Model {
        base: 0.200,
        capacity: 200.0,
        retrograde: 0.0,
        cpu_rate: 200.0,
        queue: 256,
        throttle_above: None,
    };
    let mut tuner = Adaptive::new(128);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut n = 128;
    let mut workers_raised = false;
    for i in 0..20 {
        let d = tuner.decide(&model.window(n, &mut rng, 0.0));
        if let Some(a) = d.agents {
            assert!(
                i < 1 || tuner.mode() != Mode::CpuBound || a <= n,
                "never grows when CPU-bound"
            );
            n = a;
        }
        workers_raised |= d.workers == Some(4);
    }
    assert_eq!(tuner.mode(), Mode::CpuBound);
    // Little's law: 200/s x 0.2 s x 1.5 = 60.
    assert_eq!(n, 60, "sized to keep the CPU fed");
    assert!(
        workers_raised,
        "idle-free CPU stage gets the pool's threads"
    );
}

#[test]
fn refuses_to_grow_when_agents_are_idle_or_blocked() {
    let model = io_bound(1000.0, 0.0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut tuner = Adaptive::new(8);
    let mut w = model.window(8, &mut rng, 0.0);
    w.agents_idle = 0.6;
    for _ in 0..5 {
        assert_eq!(tuner.decide(&w).agents, None, "the source is the limit");
    }
    let mut tuner = Adaptive::new(8);
    let mut w = model.window(8, &mut rng, 0.0);
    w.queue_min = 250;
    w.agents_blocked = 0.5;
    w.cpu_items = 50;
    for _ in 0..5 {
        let d = tuner.decide(&w);
        assert!(
            d.agents.is_none_or(|a| a <= 8),
            "full channel: no growth, got {d:?}"
        );
    }
}

#[test]
fn heavy_tailed_latency_does_not_make_it_drift_down() {
    let model = io_bound(32.0, 0.0);
    let mut tuner = Adaptive::new(32);
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut n = 32;
    let mut trace = vec![];
    for _ in 0..100 {
        let mut w = model.window(n, &mut rng, 0.03);
        // A lognormal tail moves p90, barely the median.
        let z: f64 = rng.random::<f64>() * 2.0 - 1.0;
        w.latency_p90 = w.latency_p50.map(|p| p.mul_f64((1.5 * z).exp() * 3.0));
        if let Some(a) = tuner.decide(&w).agents {
            n = a;
        }
        trace.push(n);
    }
    let tail = &trace[50..];
    assert!(tail.iter().all(|&c| c >= 28), "drifted down: {trace:?}");
}

#[test]
fn thin_windows_are_pooled_before_judging() {
    let mut tuner = Adaptive::new(4);
    let w = Window {
        elapsed: Duration::from_millis(100),
        agents: 4,
        io_completions: 3,
        latency_p50: Some(Duration::from_millis(20)),
        ..Window::default()
    };
    let d = tuner.decide(&w);
    assert!(
        !d.changes_anything() && d.reason.contains("waiting"),
        "{d:?}"
    );
    let d = tuner.decide(&Window {
        io_completions: 9,
        ..w.clone()
    });
    assert_eq!(d.agents, Some(8), "12 completions pooled are enough: {d:?}");
}

#[test]
fn a_step_from_api_bound_to_cpu_bound_and_back_settles() {
    let a = io_bound(20.0, 0.02);
    let b = Model {
        base: 0.200,
        capacity: 200.0,
        retrograde: 0.0,
        cpu_rate: 200.0,
        queue: 256,
        throttle_above: None,
    };
    let mut tuner = Adaptive::new(4);
    let first = run(&mut tuner, &a, 4, 40, 0.02, 7);
    let n = *first.last().unwrap();
    let second = run(&mut tuner, &b, n, 30, 0.02, 8);
    let n = *second.last().unwrap();
    assert!(
        b.io_rate(n).min(b.cpu_rate) >= 0.9 * b.cpu_rate,
        "phase B fed at {n}: {second:?}"
    );
    let third = run(&mut tuner, &a, n, 80, 0.02, 9);
    let n = *third.last().unwrap();
    assert!(
        a.io_rate(n) >= 0.9 * a.io_rate(20),
        "back in phase A at {n}: {third:?}"
    );
}

proptest! {
    #[test]
    fn any_window_gives_a_bounded_decision(
        elapsed_ms in 0u64..10_000,
        agents in 0usize..10_000,
        completions in any::<u64>(),
        p50_us in proptest::option::of(0u64..100_000_000),
        min_us in proptest::option::of(0u64..100_000_000),
        queue_min in 0usize..1000,
        queue_capacity in 0usize..1000,
        blocked in 0.0..=1.0f64,
        idle in 0.0..=1.0f64,
        throttled in 0u64..3,
        cpu_items in any::<u64>(),
    ) {
        let mut tuner = Adaptive::new(8).with_bounds(2, 500);
        for _ in 0..3 {
            let d = tuner.decide(&Window {
                elapsed: Duration::from_millis(elapsed_ms),
                agents,
                io_completions: completions,
                latency_p50: p50_us.map(Duration::from_micros),
                latency_min: min_us.map(Duration::from_micros),
                queue_min,
                queue_capacity,
                agents_blocked: blocked,
                agents_idle: idle,
                throttled,
                cpu_items,
                max_workers: 4,
                workers: 2,
                ..Window::default()
            });
            prop_assert!(!d.reason.is_empty());
            if let Some(a) = d.agents {
                prop_assert!((2..=500).contains(&a), "{a}");
            }
        }
    }
}
