//! Sim scenarios end to end: each family maps onto a mock API config that
//! does what the family says, fitting keeps a run on a small machine, and a
//! short run accounts for every item on both pipelines.

use std::time::Duration;

use futures::StreamExt;
use gearshift::ErrorKind;
use gearshift::tuner::{SeedRule, Tuner};
use gearshift_bench::client::{fetch, http_client};
use gearshift_bench::mock_api::{MockApi, Overload};
use gearshift_bench::sim::end_to_end::{fit, mock_config, run};
use gearshift_bench::sim::{EndToEndOptions, Failure, Family, Scenario, Shape, TRAINING};

/// The first training scenario of `family`.
fn first_of(family: Family) -> Scenario {
    TRAINING
        .map(Scenario::generate)
        .find(|s| s.family == family)
        .expect("a training seed of every family")
}

/// The first training scenario of `family` with no CPU work (a run then
/// needs no calibration of the CPU work model, slow in a debug build).
fn first_without_cpu(family: Family) -> Scenario {
    TRAINING
        .map(Scenario::generate)
        .find(|s| s.family == family && s.cpu_ms == 0.0)
        .expect("a training seed of the family without CPU work")
}

#[test]
fn each_family_maps_onto_the_mock_api() {
    for family in Family::ALL {
        let s = first_of(family);
        let (b, c) = s.phases[0].at(0.0);
        let m = mock_config(&s, b, c);
        assert!(m.validate().is_ok(), "{family:?}: {m:?}");
        let cap = c.round() as usize;
        assert_eq!(m.latency.capacity, Some(cap));
        assert_eq!(m.latency.lognormal_sigma, Some(s.sigma));
        assert_eq!(m.seed, s.seed);
        match s.shape {
            Shape::Retrograde(r) => assert_eq!(m.latency.retrograde, r / cap as f64),
            Shape::Flat | Shape::Queueing => assert_eq!(m.latency.retrograde, 0.0),
        }
        match s.failure {
            Failure::None => {
                assert_eq!(m.overload, Overload::Queue);
                assert_eq!(m.latency.hard_limit, None);
            }
            Failure::Drops => {
                assert_eq!(m.overload, Overload::Drop);
                assert!(
                    m.stall_for.as_secs_f64() > s.timeout,
                    "the client gives up first"
                );
            }
            Failure::Errors { floor, slope } => {
                assert_eq!(m.overload, Overload::Errors { floor, slope })
            }
            Failure::HardLimit { retry_after } => {
                assert_eq!(m.latency.hard_limit, Some(cap));
                assert_eq!(m.retry_after.as_secs_f64(), retry_after);
            }
        }
    }
    // Out-of-range values are clamped into a config that validates.
    let s = first_of(Family::Retrograde);
    for (b, c) in [(f64::NAN, 4.0), (0.01, f64::NAN), (-1.0, -5.0), (1e9, 1e12)] {
        assert!(mock_config(&s, b, c).validate().is_ok(), "({b}, {c})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drops_scenario_drops_calls_above_capacity() {
    let s = first_of(Family::Drops);
    let api = MockApi::start(mock_config(&s, 0.01, 2.0)).unwrap();
    let client = http_client().unwrap();
    let timeout = Duration::from_millis(200);
    let kinds: Vec<Option<ErrorKind>> = futures::stream::iter(0..48u64)
        .map(|id| {
            let (client, url) = (client.clone(), api.item_url(id));
            async move { fetch(&client, &url, timeout).await.err().map(|e| e.kind()) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let timeouts = kinds
        .iter()
        .filter(|k| **k == Some(ErrorKind::Timeout))
        .count();
    assert!(timeouts > 0 && timeouts < 48, "{kinds:?}");
    assert_eq!(api.stats().dropped, timeouts as u64);
}

#[test]
fn fitting_keeps_every_scenario_within_the_caps() {
    let opts = EndToEndOptions::default();
    for seed in 0..300 {
        let s = Scenario::generate(seed);
        let f = fit(&s, &opts);
        assert_eq!((f.family, f.phases.len()), (s.family, s.phases.len()));
        assert!((1..=opts.max_cores).contains(&f.cores), "{seed}: {f:?}");
        assert!(f.timeout.is_finite() && f.timeout > 0.0, "{seed}: {f:?}");
        for p in &f.phases {
            assert_eq!(p.secs, opts.phase.as_secs_f64());
            for (b, c) in [(p.base.0, p.capacity.0), (p.base.1, p.capacity.1)] {
                assert!(
                    (1.0..=opts.max_capacity as f64).contains(&c),
                    "{seed}: {f:?}"
                );
                assert!(b >= opts.min_base.as_secs_f64(), "{seed}: {f:?}");
                assert!(c / b <= opts.max_rate * 1.0001, "{seed}: {f:?}");
            }
        }
        if f.cpu_ms > 0.0 {
            assert!(f.cores as f64 / f.cpu_ms * 1e3 <= opts.max_rate * 1.0001);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_accounts_for_every_item_and_gives_finite_fractions() {
    let opts = EndToEndOptions {
        phase: Duration::from_millis(600),
        drift_step: Duration::from_millis(300),
        ..EndToEndOptions::default()
    };
    let make = |_cores: usize| -> Box<dyn Tuner> { Box::new(SeedRule::default()) };
    for family in [Family::Drops, Family::Drift] {
        let seed = first_without_cpu(family).seed;
        let r = run(seed, &make, &opts).await.unwrap();
        let phases = r.scenario.phases.len();
        assert_eq!((r.seed, r.family), (seed, family));
        assert_eq!(r.tuner, "seed-rule");
        for m in [&r.tuned, &r.oracle] {
            assert_eq!(
                m.outcomes(),
                m.taken,
                "every item taken has one outcome: {m:?}"
            );
            assert!(m.ok > 0, "{family:?}: {m:?}");
            assert_eq!(m.goodput.len(), phases);
            assert!(m.goodput.iter().all(|g| g.is_finite() && *g >= 0.0));
            assert!(!m.limit.is_empty());
        }
        assert_eq!(r.oracle_limits.len(), phases);
        assert_eq!(r.fractions.len(), phases);
        assert!(
            r.fractions
                .iter()
                .chain([&r.fraction])
                .all(|f| f.is_finite() && *f >= 0.0),
            "{r:?}"
        );
        // The reference ran at the oracle's limit: its first phase's limit.
        assert_eq!(r.oracle.limit[0].1, r.oracle_limits[0].min(opts.max_limit));
        println!(
            "seed {seed} {family:?}: fraction {:.2} {:?}, oracle limits {:?}, goodput {:?} vs {:?} (sim {:?})",
            r.fraction,
            r.fractions,
            r.oracle_limits,
            r.tuned.goodput,
            r.oracle.goodput,
            r.sim_goodput
        );
    }
}
