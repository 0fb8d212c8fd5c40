//! Configuration checks, preset values, and the seed's adjust rule.

use std::time::Duration;

use gearshift::tuner::{SeedRule, Tuner, Window};
use gearshift::{
    Agents, BuildError, Config, Order, Pipeline, Preset, RetryPolicy, duration_from_secs,
};
use proptest::prelude::*;

fn refused(change: impl FnOnce(&mut Config)) -> String {
    let mut c = Config::default();
    change(&mut c);
    c.validate().unwrap_err().to_string()
}

#[test]
fn every_bad_value_names_its_field_and_value() {
    // The bound quoted is `MAX_AGENTS` (its value is tested in config.rs).
    let msg = refused(|c| c.agents = Agents::PerCore(0.0));
    assert!(
        msg.starts_with("agents_per_core must be a finite number > 0 and <= ")
            && msg.ends_with(", got 0.0"),
        "{msg}"
    );
    assert!(refused(|c| c.agents = Agents::PerCore(-2.0)).contains("got -2.0"));
    assert!(refused(|c| c.agents = Agents::PerCore(f64::NAN)).contains("got NaN"));
    assert!(refused(|c| c.agents = Agents::PerCore(f64::INFINITY)).contains("got inf"));
    assert!(refused(|c| c.agents = Agents::Total(0)).starts_with("agents "));
    assert!(refused(|c| c.agents = Agents::Total(usize::MAX)).starts_with("agents "));
    assert!(refused(|c| c.cores = 0).starts_with("cores "));
    assert!(refused(|c| c.workers = 0).starts_with("workers "));
    assert!(refused(|c| c.max_workers = Some(0)).starts_with("max_workers "));
    assert!(
        refused(|c| {
            c.workers = 4;
            c.max_workers = Some(2)
        })
        .starts_with("max_workers ")
    );
    assert!(refused(|c| c.items_per_batch = 0).starts_with("items_per_batch "));
    assert!(refused(|c| c.api_timeout = Duration::ZERO).starts_with("api_timeout "));
    assert!(refused(|c| c.api_timeout = Duration::MAX).starts_with("api_timeout "));
    assert!(refused(|c| c.api_permits = Some(0)).starts_with("api_permits "));
    assert!(refused(|c| c.rate_limit = Some(0.0)).starts_with("rate_limit "));
    assert!(refused(|c| c.rate_limit = Some(f64::NAN)).starts_with("rate_limit "));
    assert!(refused(|c| c.item_deadline = Some(Duration::ZERO)).starts_with("item_deadline "));
    assert!(refused(|c| c.channel_capacity = 0).starts_with("channel_capacity "));
    assert!(refused(|c| c.retry = RetryPolicy::attempts(0)).starts_with("retry.max_attempts "));
    assert!(
        refused(|c| c.retry =
            RetryPolicy::attempts(2).with_backoff(Duration::from_secs(2), Duration::from_secs(1)))
        .starts_with("retry.max_backoff ")
    );
    assert!(refused(|c| c.order = Order::Ordered { window: 0 }).starts_with("order.window "));
    assert!(refused(|c| c.stats_interval = Some(Duration::ZERO)).starts_with("stats_interval "));
    assert!(duration_from_secs("api_timeout", f64::NAN).is_err());
    assert!(duration_from_secs("api_timeout", -1.0).is_err());
    assert_eq!(
        duration_from_secs("api_timeout", 1.5).unwrap(),
        Duration::from_millis(1500)
    );
}

#[tokio::test]
async fn spawn_refuses_a_bad_config_with_a_typed_error() {
    let e = Pipeline::from_iter(0..3u64)
        .cpu(|x| x)
        .configure(|c| c.items_per_batch = 0)
        .spawn()
        .unwrap_err();
    assert!(
        matches!(e, BuildError::Config(ref c) if c.field == "items_per_batch"),
        "{e}"
    );
}

#[test]
fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
    let e = Pipeline::from_iter(0..3u64).cpu(|x| x).spawn().unwrap_err();
    assert!(matches!(e, BuildError::NoRuntime));
    // And the blocking form brings its own runtime.
    let report = Pipeline::from_iter(0..3u64)
        .cpu(|x| x)
        .run_blocking()
        .unwrap();
    assert_eq!(report.ok, 3);
}

proptest! {
    /// Any config at all: validation answers, never panics; and whatever it
    /// accepts, derived values are sane.
    #[test]
    fn validation_never_panics(
        per_core in prop_oneof![any::<f64>(), -10.0..100.0f64],
        total in any::<usize>(),
        use_total in any::<bool>(),
        cores in any::<usize>(),
        workers in any::<usize>(),
        batch in any::<usize>(),
        timeout_ns in any::<u64>(),
        permits in proptest::option::of(any::<usize>()),
        rate in proptest::option::of(any::<f64>()),
        capacity in any::<usize>(),
        attempts in any::<u32>(),
    ) {
        let c = Config {
            agents: if use_total { Agents::Total(total) } else { Agents::PerCore(per_core) },
            cores,
            workers,
            items_per_batch: batch,
            api_timeout: Duration::from_nanos(timeout_ns),
            api_permits: permits,
            rate_limit: rate,
            channel_capacity: capacity,
            retry: RetryPolicy::attempts(attempts),
            ..Config::default()
        };
        if c.validate().is_ok() {
            prop_assert!(c.total_agents() >= 1);
            prop_assert!(c.total_api_permits() >= 1);
            prop_assert!(c.pool_threads() >= c.workers);
        }
    }
}

#[test]
fn presets_have_the_seeds_values() {
    let on = |p: Preset| {
        let mut c = Config::default().with_cores(4);
        p.apply_to(&mut c);
        (
            c.total_agents(),
            c.total_api_permits(),
            c.items_per_batch,
            c.workers,
        )
    };
    // Morning leaves a quarter of the cores to the async runtime.
    assert_eq!(on(Preset::Morning), (12, 24, 10, 3));
    assert_eq!(Preset::Morning.workers(2), 1);
    assert_eq!(Preset::Morning.workers(64), 48);
    assert_eq!(on(Preset::Evening), (4, 8, 50, 4));
    assert_eq!(on(Preset::ApiHeavy), (8, 16, 10, 4));
    assert_eq!(on(Preset::CpuHeavy), (4, 8, 50, 4));
    assert_eq!(on(Preset::Mixed), (8, 16, 20, 4));
    for p in Preset::ALL {
        assert!(p.config().validate().is_ok());
        assert_eq!(p.as_str().parse::<Preset>().unwrap(), p);
    }
    assert_eq!("API_HEAVY".parse::<Preset>().unwrap(), Preset::ApiHeavy);
    assert!(
        "noon"
            .parse::<Preset>()
            .unwrap_err()
            .to_string()
            .contains("noon")
    );
    // A preset keeps the user's other settings.
    let mut c = Config {
        api_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    Preset::Evening.apply_to(&mut c);
    assert_eq!(c.api_timeout, Duration::from_secs(3));
}

#[test]
fn default_config_is_the_seeds_starting_point() {
    let c = Config::default().with_cores(4);
    assert_eq!(c.total_agents(), 8, "2 agents per core");
    assert_eq!(c.total_api_permits(), 16, "the API semaphore is 2 x agents");
    assert_eq!(c.items_per_batch, 10);
    assert_eq!(c.api_timeout, Duration::from_secs(30));
    assert_eq!(c.retry.max_attempts, 3);
    assert_eq!(Agents::PerCore(0.5).total(2), 1);
    assert_eq!(
        Agents::PerCore(16.0).total(2),
        32,
        "far beyond the rule of thumb when the API can take it"
    );
}

fn window(cores: usize, agents: usize, p50_ms: Option<u64>) -> Window {
    Window {
        cores,
        agents,
        latency_p50: p50_ms.map(Duration::from_millis),
        ..Window::default()
    }
}

#[test]
fn the_seed_rule_decides_as_the_design_note_says() {
    let rule = SeedRule::default();
    assert_eq!(rule.adjust(2, Duration::from_millis(1500)), 3);
    assert_eq!(
        rule.adjust(4, Duration::from_millis(1500)),
        4,
        "capped at 4"
    );
    assert_eq!(rule.adjust(2, Duration::from_millis(50)), 1);
    assert_eq!(rule.adjust(1, Duration::from_millis(50)), 1, "floored at 1");
    assert_eq!(
        rule.adjust(3, Duration::from_millis(500)),
        3,
        "holds in between"
    );
    assert_eq!(
        rule.adjust(3, Duration::from_secs(1)),
        3,
        "1 s exactly is not > 1 s"
    );

    let mut rule = SeedRule::default();
    let d = rule.decide(&window(4, 8, Some(2000)));
    assert_eq!((d.agents, d.api_permits), (Some(12), Some(24)));
    assert!(d.reason.contains("2 -> 3"), "{}", d.reason);
    assert!(!rule.decide(&window(4, 8, Some(300))).changes_anything());
    assert!(
        !rule.decide(&window(4, 8, None)).changes_anything(),
        "no data, no change"
    );
    let custom = SeedRule {
        slow: Duration::from_millis(200),
        ..SeedRule::default()
    };
    assert_eq!(
        custom.adjust(2, Duration::from_millis(300)),
        3,
        "thresholds are configurable"
    );
}

fn weird_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-1.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(1e300),
        Just(f64::MIN_POSITIVE),
        0.01..64.0f64,
    ]
}

fn weird_usize() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(usize::MAX),
        Just(1usize << 40),
        1usize..64
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Runtime changes with absurd values: each is refused or applied, the
    /// configuration in force always validates, and the run still finishes.
    #[test]
    fn runtime_changes_never_panic_or_hang(
        per_core in weird_f64(),
        rate in weird_f64(),
        agents in weird_usize(),
        permits in weird_usize(),
        workers in weird_usize(),
        batch in weird_usize(),
        wait_secs in weird_f64(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let handle = Pipeline::from_iter(0..300u64)
                .io(|x| async move { Ok::<_, gearshift::StageError>(x) })
                .cpu(|x| x)
                .configure(|c| *c = c.clone().with_cores(2))
                .spawn()
                .unwrap();
            let expect_ok = |r: Result<(), gearshift::ConfigError>, valid: bool| {
                assert_eq!(r.is_ok(), valid, "{r:?}");
            };
            let sane = |n: usize| n > 0 && n <= 1 << 20;
            expect_ok(handle.set_agents_per_core(per_core), per_core.is_finite() && per_core > 0.0 && (per_core * 2.0).round() <= (1 << 16) as f64);
            expect_ok(handle.set_agents(agents), agents > 0 && agents <= 1 << 16);
            expect_ok(handle.set_api_permits(permits), sane(permits));
            expect_ok(handle.set_workers(workers), workers > 0 && workers <= 2);
            expect_ok(handle.set_items_per_batch(batch), batch > 0 && batch <= 1 << 24);
            expect_ok(handle.set_rate_limit(Some(rate)), (1e-6..=1e9).contains(&rate));
            handle.set_rate_limit(None).unwrap();
            if let Ok(wait) = duration_from_secs("batch_wait", wait_secs) {
                let _ = handle.set_batch_wait(wait.min(Duration::from_millis(5)));
            }
            prop_assert!(handle.config().validate().is_ok());
            let report = tokio::time::timeout(Duration::from_secs(20), handle.join()).await.expect("no hang");
            prop_assert_eq!(report.ok, 300);
            Ok(())
        })?;
    }
}
