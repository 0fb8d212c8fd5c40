//! Every scenario at a tiny size, every system: each item has exactly one
//! outcome (ok + failed == items, none lost, none repeated).

use std::sync::Arc;
use std::time::Duration;

use gearshift::ErrorKind;
use gearshift::http::HttpFetcher;
use gearshift_bench::ledger::Ledger;
use gearshift_bench::mock_api::{FaultRates, MockApi, MockConfig};
use gearshift_bench::scenario::{self, RunOptions, Scenario};
use gearshift_bench::systems::{self, RunCtx, System};
use gearshift_bench::work::Work;

fn tiny() -> RunOptions {
    RunOptions {
        items: Some(12),
        cores: 2,
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_accounts_for_every_item_in_every_system() {
    for s in Scenario::all() {
        let (systems, reference) = s.systems(2);
        let result = scenario::run(&s, &tiny()).await.unwrap();
        assert_eq!(result.rows.len(), systems.len(), "{}", s.name);
        assert!(result.rows.iter().any(|r| r.system == reference));
        assert!(result.limit_per_s.is_finite() && result.limit_per_s > 0.0);
        for row in &result.rows {
            assert_eq!(row.accounting_error, None, "{} / {}", s.name, row.system);
            assert_eq!(
                row.ok + row.failed,
                row.items,
                "{} / {}",
                s.name,
                row.system
            );
            assert_eq!(
                row.failed, 0,
                "{} / {}: no faults injected",
                s.name, row.system
            );
            assert_eq!(row.latency_us.len(), row.items);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_switch_fires_at_the_phase_change() {
    let s = Scenario::by_name("morning_evening").unwrap();
    let result = scenario::run(&s, &tiny()).await.unwrap();
    let live = &result.rows[0];
    let labels: Vec<&str> = live.events.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        labels,
        ["phase change", "switch to evening"],
        "{:?}",
        live.events
    );
    assert!(live.events[0].0 <= live.events[1].0);
    // Staying put: a phase change, no switch.
    let stay = &result.rows[1];
    assert_eq!(stay.events.len(), 1);
}

#[test]
fn limits_follow_the_formula() {
    let by = |n| Scenario::by_name(n).unwrap().limit_per_s(2);
    assert!((by("io_bound") - 800.0).abs() < 1e-6); // 16 / 20 ms
    assert!((by("cpu_bound") - 500.0).abs() < 1e-6); // 2 cores / 4 ms
    assert!((by("mixed") - 800.0).abs() < 1e-6); // min(32 / 40 ms, 2 / 1.5 ms)
    assert!((by("seed_example") - 800.0).abs() < 1e-6); // 8 agents / 10 ms
    // Harmonic mean of 640 and 400.
    assert!((by("morning_evening") - 2.0 / (1.0 / 640.0 + 1.0 / 400.0)).abs() < 1e-6);
    assert!((by("two_apis") - 400.0).abs() < 1e-6); // min(16 / 40 ms, 4 / 10 ms, 2 / 1 ms)
    assert!(Scenario::by_name("nope").is_none());
}

#[test]
fn rows_are_sized_to_run_equally_long_at_their_own_limit() {
    let mixed = Scenario::by_name("mixed").unwrap();
    let (systems, _) = mixed.systems(2);
    let items = |name: &str| {
        let system = systems
            .iter()
            .find(|s| s.name().contains(name))
            .unwrap_or_else(|| panic!("no system named {name}"));
        (
            mixed.items_for(system, None, 2),
            mixed.items_for(system, Some(12), 2),
        )
    };
    // 1.4 s at min(C, 32) / 40 ms; sequential at 1 / 41.5 ms.
    assert_eq!(items("agents = capacity"), (1120, 12));
    assert_eq!(items("tokio+rayon (C=8)"), (280, 12));
    assert_eq!(items("seed rule"), (140, 12));
    assert_eq!(
        items("default controller"),
        (1120, 12),
        "the controller: the limit"
    );
    assert_eq!(items("sequential"), (34, 12));
    // cpu_bound: every concurrency runs at the cores' 500/s.
    let cpu = Scenario::by_name("cpu_bound").unwrap();
    let (systems, _) = cpu.systems(2);
    assert!(
        systems
            .iter()
            .filter(|s| s.concurrency() >= 4)
            .all(|s| cpu.items_for(s, None, 2) == 700)
    );
    // seed_example: a fixed count, the sequential baseline at most 200.
    let seed = Scenario::by_name("seed_example").unwrap();
    let (systems, _) = seed.systems(2);
    assert_eq!(seed.items_for(&systems[0], None, 2), 200);
    assert_eq!(seed.items_for(&systems[1], None, 2), 1000);
    assert_eq!(seed.items_for(&systems[0], Some(12), 2), 12);
}

/// Under faults, failures are outcomes too, and the kinds match the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_failed_outcomes_not_losses() {
    let mut config = MockConfig::with_latency(Duration::from_millis(2), None);
    config.faults = FaultRates {
        server_error: 0.2,
        reset: 0.1,
        ..FaultRates::default()
    };
    let api = MockApi::start(config).unwrap();
    let ctx = RunCtx::new(
        HttpFetcher::builder().build().unwrap(),
        api.base_url(),
        200,
        Arc::new(|b: &[u8]| Work::from_rounds(1).run(b)),
        Duration::from_secs(5),
    );
    let mut config = gearshift::Config::default().with_cores(2);
    config.retry = gearshift::RetryPolicy::never();
    let gear = System::Gearshift {
        label: "gearshift".into(),
        config: Box::new(config),
        switch_to: None,
        tuned: false,
    };
    for system in [System::Sequential, System::Rayon { c: 8 }, gear] {
        api.reset_stats();
        let row = systems::run(&system, &ctx).await.unwrap();
        assert_eq!(row.accounting_error, None, "{}", row.system);
        assert_eq!(row.ok + row.failed, 200);
        let stats = api.stats();
        assert_eq!(
            row.failures.get("server_5xx").copied().unwrap_or(0),
            stats.status(500)
        );
        assert_eq!(
            row.failures.get("reset").copied().unwrap_or(0),
            stats.faults["reset"]
        );
        assert!(row.failed > 20, "{}: {}", row.system, row.failed);
    }
}

#[test]
fn the_ledger_catches_lost_and_repeated_items() {
    let ledger = Ledger::new(4, None, None);
    ledger.record(0, Ok(()));
    ledger.record(1, Ok(()));
    ledger.record(1, Err(ErrorKind::Server));
    ledger.record(9, Ok(()));
    let r = ledger.finish("x", 1);
    let e = r.accounting_error.expect("caught");
    assert!(e.contains("2 lost, 1 repeated, 1 unexpected"), "{e}");
    let ledger = Ledger::new(2, None, None);
    ledger.record(0, Ok(()));
    ledger.record(1, Err(ErrorKind::Timeout));
    let r = ledger.finish("y", 1);
    assert_eq!(r.accounting_error, None);
    assert_eq!((r.ok, r.failed), (1, 1));
}

#[test]
fn calibrated_work_is_proportional() {
    let cal = gearshift_bench::work::calibration();
    assert!(cal.rounds_per_ms > 0.0 && cal.rounds_per_ms.is_finite());
    assert_eq!(Work::millis(0.0).rounds(), 0);
    let one = Work::millis(1.0).rounds();
    let four = Work::millis(4.0).rounds();
    assert!(one >= 1);
    assert!((four as i64 - 4 * one as i64).abs() <= 2, "{one} {four}");
    assert_eq!(Work::millis(f64::NAN).rounds(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_loses_and_repeats_nothing() {
    let report = gearshift_bench::soak::soak(&gearshift_bench::soak::SoakOptions {
        duration: Duration::from_secs(3),
        max_items: 1_000_000,
        seed: 3,
        cores: 2,
        mock_process: Some(env!("CARGO_BIN_EXE_gearshift-bench").into()),
    })
    .await
    .unwrap();
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(report.duplicated, 0, "{report}");
    assert_eq!(report.reported, report.outcomes, "{report}");
    assert!(report.changes >= 2, "{report}");
    assert!(
        report.by_kind.get("ok").copied().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(
        report.by_kind.get("server_5xx").copied().unwrap_or(0) > 0,
        "{report}"
    );
}
