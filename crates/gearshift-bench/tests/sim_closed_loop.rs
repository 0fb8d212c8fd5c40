//! The closed-loop simulator: deterministic, every family reachable, the
//! oracle really the best fixed setting, and today's tuners' distribution
//! on training seeds (printed, not asserted).

use std::collections::HashSet;

use std::time::Duration;

use gearshift::tuner::{Decision, SeedRule, Tuner, Window, default_for};
use gearshift_bench::sim::{
    Family, Fixed, HELD_OUT_START, MAX_LIMIT, Scenario, Shape, SimConfig, Summary, TRAINING,
    fixed_run, oracle, phase_goodput, quantile, score, simulate, simulate_with,
};

#[test]
fn the_same_seed_gives_the_same_scenario_and_trajectory() {
    for seed in [0, 7, 42, 9_999, HELD_OUT_START] {
        let a = Scenario::generate(seed);
        assert_eq!(a, Scenario::generate(seed));
        let cfg = SimConfig::for_scenario(&a);
        let r1 = simulate_with(&a, &default_for, &cfg);
        let r2 = simulate_with(&a, &default_for, &cfg);
        assert!(!r1.steps.is_empty());
        assert_eq!(r1, r2, "seed {seed}");
    }
    assert_ne!(Scenario::generate(1), Scenario::generate(2));
}

#[test]
fn every_family_is_generated_from_some_training_seed() {
    let seen: HashSet<Family> = TRAINING
        .take(200)
        .map(|seed| Scenario::generate(seed).family)
        .collect();
    for f in Family::ALL {
        assert!(seen.contains(&f), "no seed of 0..200 drew {f:?}");
    }
    assert_eq!(
        TRAINING.end, HELD_OUT_START,
        "the two seed ranges touch, never overlap"
    );
}

/// Drifting and stepping APIs take every latency shape: on a retrograde
/// one, a limit left past the knee when the API changes costs goodput.
#[test]
fn drifting_and_stepping_apis_take_every_shape() {
    for family in [Family::Drift, Family::Step] {
        let shapes: Vec<Shape> = TRAINING
            .take(500)
            .map(Scenario::generate)
            .filter(|s| s.family == family)
            .map(|s| s.shape)
            .collect();
        assert!(shapes.contains(&Shape::Flat), "{family:?}");
        assert!(shapes.contains(&Shape::Queueing), "{family:?}");
        assert!(
            shapes.iter().any(|s| matches!(s, Shape::Retrograde(_))),
            "{family:?}"
        );
    }
}

#[test]
fn generated_parameters_are_within_the_documented_ranges() {
    for seed in TRAINING.take(300) {
        let s = Scenario::generate(seed);
        assert!((0.2..=1.5).contains(&s.sigma), "{s:?}");
        assert!((0.0..=5.0).contains(&s.cpu_ms), "{s:?}");
        assert!((1..=8).contains(&s.cores), "{s:?}");
        for p in &s.phases {
            for c in [p.capacity.0, p.capacity.1] {
                assert!((4.0..=512.0).contains(&c), "{s:?}");
            }
        }
    }
}

#[test]
fn the_oracle_is_at_least_as_good_as_every_setting_it_swept() {
    for seed in [3, 11, 25, 60, 77, 123] {
        let s = Scenario::generate(seed);
        let o = oracle(&s);
        assert_eq!(o.limits.len(), s.phases.len());
        for (n, g) in &o.swept {
            for (ph, (got, best)) in g.iter().zip(&o.goodput).enumerate() {
                // Within 1e-9 counts as a tie, which goes to fewer calls.
                assert!(
                    *got <= best * (1.0 + 1e-9),
                    "seed {seed} phase {ph}: {n:?} gives {got} > {best}"
                );
            }
        }
    }
}

#[test]
fn the_oracle_s_own_setting_scores_one() {
    for seed in TRAINING.take(40) {
        let s = Scenario::generate(seed);
        let o = oracle(&s);
        for (ph, n) in o.limits.iter().enumerate() {
            let run = fixed_run(&s, n);
            let sc = score(&s, &run, &o);
            let f = sc.phases[ph].fraction;
            assert!(
                (f - 1.0).abs() < 1e-9,
                "seed {seed} phase {ph}: {f} {s:?} {o:?}"
            );
            assert!(sc.phases[ph].runaway.iter().all(|&r| r == 0.0));
            assert_eq!(sc.phases[ph].settling, Some(0.0), "seed {seed} phase {ph}");
            assert!((phase_goodput(&s, &run)[ph] - o.goodput[ph]).abs() < 1e-9);
        }
    }
}

#[test]
fn a_hard_limit_s_oracle_is_the_limit_and_exceeding_it_costs_pauses() {
    let seed = (TRAINING.start..TRAINING.end)
        .find(|&s| {
            let s = Scenario::generate(s);
            s.family == Family::HardLimit && s.cpu_ms == 0.0
        })
        .unwrap();
    let s = Scenario::generate(seed);
    let o = oracle(&s);
    let c = s.phases[0].capacity.0 as usize;
    assert!(o.limits[0][0].abs_diff(c) <= 1, "{o:?} vs limit {c}");
    let over = SimConfig::starting_at(&s, &[2 * c]);
    let sc = score(&s, &simulate(&s, &mut [&mut Fixed(2 * c)], &over), &o);
    assert!(sc.paused > 1.0, "{sc:?}");
    assert!(sc.fraction < 0.9, "{sc:?}");
    let ignoring = SimConfig {
        honor_retry_after: false,
        ..over
    };
    let sc = score(&s, &simulate(&s, &mut [&mut Fixed(2 * c)], &ignoring), &o);
    assert!(sc.in_retry_after > 0.0, "{sc:?}");
}

#[test]
fn drops_above_capacity_make_more_calls_lose_goodput() {
    let seed = (TRAINING.start..TRAINING.end)
        .find(|&s| {
            let s = Scenario::generate(s);
            s.family == Family::Drops && s.cpu_ms == 0.0
        })
        .unwrap();
    let s = Scenario::generate(seed);
    let o = oracle(&s);
    let far = (o.limits[0][0] * 8).min(4096);
    let run = fixed_run(&s, &[far]);
    assert!(score(&s, &run, &o).fraction < 0.8);
    assert!(run.steps.iter().map(|st| st.failures).sum::<u64>() > 0);
}

/// On training seeds (the held-out ones are for `gearshift-bench tuner
/// --held-out`), the default controller beats the seed's rule and every
/// single fixed setting on the mean, and never calls inside `Retry-After`;
/// the distributions print with `--nocapture`.
#[test]
fn the_default_controller_beats_the_seed_rule_and_every_fixed_setting() {
    let seeds = TRAINING.start..TRAINING.start + 200;
    // Single fixed settings, from their own setting (the best of them is a
    // baseline the new tuner must beat on the held-out set).
    let fixed = [4usize, 8, 16, 32, 64, 128, 256];
    let mut by_fixed = vec![vec![]; fixed.len()];
    for seed in seeds.clone() {
        let s = Scenario::generate(seed);
        let o = oracle(&s);
        for (i, &n) in fixed.iter().enumerate() {
            let run = fixed_run(&s, &vec![n; s.apis()]);
            by_fixed[i].push(score(&s, &run, &o).fraction);
        }
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    for (n, f) in fixed.iter().zip(&by_fixed) {
        println!(
            "fixed {n:4}  mean {:.3} median {:.3} p5 {:.3}",
            mean(f),
            quantile(f, 0.5),
            quantile(f, 0.05)
        );
    }
    let seed_rule = Summary::run(seeds.clone(), |_| Box::new(SeedRule::default()));
    let default = Summary::run(seeds, default_for);
    for summary in [&seed_rule, &default] {
        print!("{}", summary.render());
        assert_eq!(summary.outcomes.len(), 200);
        assert!(
            summary
                .fractions(None)
                .iter()
                .all(|x| x.is_finite() && *x >= 0.0)
        );
    }
    let ours = mean(&default.fractions(None));
    assert!(ours > mean(&seed_rule.fractions(None)), "{ours}");
    for (n, f) in fixed.iter().zip(&by_fixed) {
        assert!(ours > mean(f), "fixed {n}: {} >= {ours}", mean(f));
    }
    assert!(default.outcomes.iter().all(|o| o.in_retry_after == 0.0));
}

/// A tuner that asks for absurd windows and settings, alternately.
struct Wild(u64);

impl Tuner for Wild {
    fn name(&self) -> &str {
        "wild"
    }

    fn window(&self) -> Duration {
        [Duration::ZERO, Duration::MAX, Duration::from_nanos(1)][(self.0 % 3) as usize]
    }

    fn decide(&mut self, _: &Window) -> Decision {
        self.0 += 1;
        let n = if self.0 % 2 == 0 { 0 } else { usize::MAX };
        Decision {
            agents: Some(n),
            api_permits: Some(n),
            workers: Some(n),
            reason: "wild".into(),
        }
    }
}

#[test]
fn absurd_windows_and_settings_are_clamped_and_the_run_ends() {
    for seed in TRAINING.take(40) {
        let s = Scenario::generate(seed);
        let run = simulate(
            &s,
            &mut [&mut Wild(0), &mut Wild(1)],
            &SimConfig::for_scenario(&s),
        );
        let covered: f64 = run.steps.iter().map(|st| st.secs).sum();
        assert!((covered - s.secs()).abs() < 1e-6, "seed {seed}: {covered}");
        assert!(
            run.steps.len() < 100_000,
            "seed {seed}: {}",
            run.steps.len()
        );
        for st in &run.steps {
            assert_eq!(st.limits.len(), s.apis());
            assert!(
                st.limits.iter().all(|n| (1..=MAX_LIMIT).contains(n)),
                "{st:?}"
            );
            assert!((1..=s.cores).contains(&st.workers), "{st:?}");
        }
    }
}

#[test]
fn each_step_phase_has_its_own_oracle_and_one_setting_fits_none_better() {
    let seed = (TRAINING.start..TRAINING.end)
        .find(|&s| {
            let s = Scenario::generate(s);
            s.family == Family::Step && s.cpu_ms == 0.0
        })
        .unwrap();
    let s = Scenario::generate(seed);
    let o = oracle(&s);
    assert_eq!(s.phases.len(), 3);
    for (ph, n) in o.limits.iter().enumerate() {
        let sc = score(&s, &fixed_run(&s, n), &o);
        assert!((sc.phases[ph].fraction - 1.0).abs() < 1e-9);
        assert!(sc.fraction <= 1.0 + 1e-9, "{sc:?}");
    }
}
