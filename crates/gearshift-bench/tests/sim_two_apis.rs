//! The two-API family of the simulator: drawn from a stream of its own,
//! one tuner per API, an oracle pair no swept pair beats, and only the
//! bottleneck API's setting mattering.

use std::time::Duration;

use gearshift::tuner::{Decision, Tuner, Window};
use gearshift_bench::sim::{
    Failure, Family, Fixed, Scenario, SecondApi, Shape, SimConfig, TRAINING, fixed_goodput, oracle,
    simulate,
};

/// Training seeds of the two-API family whose CPU stage costs nothing.
fn two_api_seeds(n: usize) -> Vec<u64> {
    TRAINING
        .filter(|&seed| {
            let s = Scenario::generate(seed);
            s.family == Family::TwoApis && s.cpu_ms == 0.0
        })
        .take(n)
        .collect()
}

#[test]
fn about_one_seed_in_ten_draws_two_apis_and_only_those_have_a_second() {
    let scenarios: Vec<Scenario> = TRAINING.take(1000).map(Scenario::generate).collect();
    let two = scenarios
        .iter()
        .filter(|s| s.family == Family::TwoApis)
        .count();
    assert!((60..=140).contains(&two), "{two} of 1000");
    for s in &scenarios {
        assert_eq!(s.second.is_some(), s.family == Family::TwoApis, "{s:?}");
        assert_eq!(s.apis(), if s.second.is_some() { 2 } else { 1 });
        if let Some(a) = &s.second {
            assert_eq!(s.phases.len(), 1, "{s:?}");
            assert!((4.0..=512.0).contains(&a.capacity), "{s:?}");
            assert!((0.005..=0.5).contains(&a.base), "{s:?}");
            assert!((0.2..=1.5).contains(&a.sigma), "{s:?}");
        }
    }
}

#[test]
fn a_two_api_run_is_deterministic_and_reports_both_limits() {
    let seed = two_api_seeds(1)[0];
    let s = Scenario::generate(seed);
    assert_eq!(s, Scenario::generate(seed));
    let cfg = SimConfig::starting_at(&s, &[3, 5]);
    let run = |cfg| simulate(&s, &mut [&mut Fixed(3), &mut Fixed(5)], cfg);
    let (a, b) = (run(&cfg), run(&cfg));
    assert_eq!(a, b);
    assert!(a.steps.iter().all(|st| st.limits == vec![3, 5]), "{a:?}");
}

#[test]
fn the_oracle_pair_is_at_least_as_good_as_every_swept_pair() {
    for seed in two_api_seeds(4) {
        let s = Scenario::generate(seed);
        let o = oracle(&s);
        assert_eq!(o.limits.len(), 1);
        assert_eq!(o.limits[0].len(), 2);
        let best = o.goodput[0];
        assert!(best > 0.0, "seed {seed}: {o:?}");
        assert!(o.swept.len() > 50, "seed {seed}: {} swept", o.swept.len());
        for (n, g) in &o.swept {
            assert!(
                g[0] <= best * (1.0 + 1e-9),
                "seed {seed}: {n:?} gives {} > {best}",
                g[0]
            );
        }
        let again = fixed_goodput(&s, &o.limits[0]);
        assert!((again[0] - best).abs() <= 1e-9 * best);
    }
}

/// API `i` of a two-API scenario on its own, with no CPU cost.
fn alone(s: &Scenario, i: usize) -> Scenario {
    let mut one = Scenario {
        cpu_ms: 0.0,
        second: None,
        ..s.clone()
    };
    if let (Some(a), 1) = (&s.second, i) {
        (one.shape, one.failure, one.sigma, one.timeout) = (a.shape, a.failure, a.sigma, a.timeout);
        one.phases[0].base = (a.base, a.base);
        one.phases[0].capacity = (a.capacity, a.capacity);
    }
    one
}

#[test]
fn only_the_bottleneck_api_s_setting_matters_the_other_blocks_or_waits() {
    let mut checked = 0;
    for seed in two_api_seeds(12) {
        let s = Scenario::generate(seed);
        let best_alone: Vec<f64> = (0..2).map(|i| oracle(&alone(&s, i)).goodput[0]).collect();
        // Only seeds with a clear bottleneck.
        let Some(b) = (0..2).find(|&i| best_alone[i] < 0.8 * best_alone[1 - i]) else {
            continue;
        };
        let other = 1 - b;
        let o = oracle(&s);
        let (best, g) = (o.limits[0].clone(), o.goodput[0]);
        assert!(
            g <= best_alone[b] * (1.0 + 1e-6),
            "seed {seed}: {g} {best_alone:?}"
        );
        let with = |i: usize, n: usize| {
            let mut x = best.clone();
            x[i] = n.max(1);
            x
        };
        // Above what it needs, the other API's setting changes nothing: its
        // spare calls block on the next stage or wait for the one before.
        for k in [2, 4] {
            let x = with(other, best[other] * k);
            let got = fixed_goodput(&s, &x)[0];
            assert!(
                got >= g * (1.0 - 1e-6),
                "seed {seed}: {x:?} gives {got} < {g}"
            );
            let (base, cap) = s.phases[0].at(0.0);
            let r = s.flow(base, cap, &x, s.cores).apis[other];
            assert!(r.blocked + r.idle > 0.4, "seed {seed}: {x:?} {r:?}");
        }
        // The bottleneck's setting does: a quarter of its capacity, a
        // quarter or so of the goodput, whatever the other's setting.
        let cap = if b == 0 {
            s.phases[0].capacity.0
        } else {
            s.second.as_ref().map_or(0.0, |a| a.capacity)
        };
        let mut x = with(other, best[other] * 4);
        x[b] = (cap / 4.0).ceil() as usize;
        let got = fixed_goodput(&s, &x)[0];
        assert!(got < 0.5 * g, "seed {seed}: {x:?} gives {got} of {g}");
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} seeds had a clear bottleneck");
}

/// A retrograde second API past its capacity takes fewer calls per second
/// than it would at its capacity; the first API blocks down to that, and
/// the second, its channel full, runs every call of its limit: none of its
/// agents waits for input, though fewer calls would take as much.
#[test]
fn a_retrograde_api_fed_all_it_takes_runs_every_call() {
    let mut s = Scenario::generate(two_api_seeds(1)[0]);
    s.cpu_ms = 0.0;
    (s.shape, s.failure) = (Shape::Flat, Failure::None);
    s.phases[0].capacity = (500.0, 500.0);
    s.second = Some(SecondApi {
        shape: Shape::Retrograde(1.0),
        failure: Failure::None,
        sigma: 0.5,
        timeout: 10.0,
        base: 0.05,
        capacity: 5.0,
    });
    let (base, cap) = s.phases[0].at(0.0);
    let flow = s.flow(base, cap, &[100, 20], s.cores);
    let (up, down) = (flow.apis[0], flow.apis[1]);
    assert!(up.blocked > 0.5, "{up:?}");
    assert!(down.idle < 1e-3, "{down:?}");
    assert!((down.in_flight - 20.0).abs() < 1e-3, "{down:?}");
    // At 20 calls (4x capacity) it takes 5 / 0.05 / (1 + 3) = 25/s.
    assert!((flow.good - 25.0).abs() < 0.5, "{flow:?}");
}

/// Counts its windows and keeps what it saw last.
struct Recorder {
    decisions: usize,
    last: Window,
    every: Duration,
}

impl Tuner for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn window(&self) -> Duration {
        self.every
    }

    fn decide(&mut self, w: &Window) -> Decision {
        self.decisions += 1;
        self.last = w.clone();
        Decision::hold("recording")
    }
}

#[test]
fn each_api_s_tuner_gets_windows_of_its_own_length_and_its_own_setting() {
    let s = Scenario::generate(two_api_seeds(1)[0]);
    let rec = |ms| Recorder {
        decisions: 0,
        last: Window::default(),
        every: Duration::from_millis(ms),
    };
    let (mut a, mut b) = (rec(500), rec(2000));
    let run = simulate(
        &s,
        &mut [&mut a, &mut b],
        &SimConfig::starting_at(&s, &[7, 9]),
    );
    assert_eq!(a.decisions, (s.secs() / 0.5).round() as usize);
    assert_eq!(b.decisions, (s.secs() / 2.0).round() as usize);
    assert_eq!((a.last.api_permits, b.last.api_permits), (7, 9));
    assert!((b.last.elapsed.as_secs_f64() - 2.0).abs() < 1e-6);
    assert!(run.steps.len() >= a.decisions);
}
