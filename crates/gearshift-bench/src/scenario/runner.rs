//! Running a scenario: its mock API (two for two_apis), then each system in
//! turn on them, with the counters reset between systems.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use gearshift::http::HttpFetcher;

use super::{Phase, RunOptions, Scenario, ScenarioResult};
use crate::cpu_share::CpuSample;
use crate::ledger::PhaseSwitch;
use crate::mock_api::{MockApi, MockApiError, MockConfig};
use crate::report::{progress_bar, rounded};
use crate::systems::{self, RunCtx, System, WorkFn};
use crate::work::Work;

/// Runs every system of `scenario` (those `opts.systems` selects) on one
/// embedded mock API.
///
/// # Errors
///
/// If the mock API cannot start, gearshift refuses a configuration, or
/// `opts.systems` matches none of the scenario's systems.
pub async fn run(scenario: &Scenario, opts: &RunOptions) -> anyhow::Result<ScenarioResult> {
    let (systems, reference) = selected_systems(scenario, opts)?;
    run_systems(scenario, &systems, reference, opts).await
}

/// The systems of `scenario` that `opts.systems` selects, and the
/// scenario's reference.
///
/// # Errors
///
/// If `opts.systems` matches none of them.
pub fn selected_systems(
    scenario: &Scenario,
    opts: &RunOptions,
) -> anyhow::Result<(Vec<System>, String)> {
    let (all, reference) = scenario.systems(opts.cores);
    let wanted = |s: &System| {
        let name = s.name().to_lowercase();
        opts.systems.is_empty()
            || opts
                .systems
                .iter()
                .any(|w| name.contains(&w.to_lowercase()))
    };
    let systems: Vec<System> = all.iter().filter(|s| wanted(s)).cloned().collect();
    if systems.is_empty() {
        let names: Vec<String> = all.iter().map(System::name).collect();
        anyhow::bail!(
            "no system of scenario {} matches {:?}; its systems: {}",
            scenario.name,
            opts.systems,
            names.join(", ")
        );
    }
    Ok((systems, reference))
}

/// Runs the given systems on `scenario`.
///
/// # Errors
///
/// As for [`run`].
pub async fn run_systems(
    scenario: &Scenario,
    systems: &[System],
    reference: String,
    opts: &RunOptions,
) -> anyhow::Result<ScenarioResult> {
    let mock_config = |phase: &Phase| {
        let mut c = MockConfig::with_latency(phase.base, phase.capacity);
        c.seed = opts.seed;
        c
    };
    let api = Arc::new(
        MockApi::start(mock_config(&scenario.phases[0]))
            .map_err(|e: MockApiError| anyhow::anyhow!("scenario {}: {e}", scenario.name))?,
    );
    // The upload API's jitter is drawn with another seed than the fetch's.
    let upload_api = match &scenario.upload {
        Some(up) => {
            let mut c = MockConfig::with_latency(up.base, up.capacity);
            c.seed = opts.seed.wrapping_add(1);
            Some(
                MockApi::start(c)
                    .map_err(|e| anyhow::anyhow!("scenario {}: upload api: {e}", scenario.name))?,
            )
        }
        None => None,
    };
    let works: Arc<Vec<Work>> = Arc::new(
        scenario
            .phases
            .iter()
            .map(|p| Work::millis(p.cpu_ms))
            .collect(),
    );
    let fetcher = HttpFetcher::builder().timeout(opts.timeout).build()?;
    let mut rows = Vec::new();
    for system in systems {
        let n = scenario.items_for(system, opts.items, opts.cores);
        api.reset_stats();
        api.set_config(mock_config(&scenario.phases[0]))?;
        if let Some(up) = &upload_api {
            up.reset_stats();
        }
        let phase_now = Arc::new(AtomicUsize::new(0));
        let phase = scenario.phases.get(1).map(|second| {
            let (api, now, second) = (
                Arc::clone(&api),
                Arc::clone(&phase_now),
                mock_config(second),
            );
            Arc::new(PhaseSwitch::new(n / 2, move || {
                if let Err(e) = api.set_config(second.clone()) {
                    tracing::error!(error = %e, "phase change refused");
                }
                now.store(1, Ordering::SeqCst);
            }))
        });
        let work: WorkFn = {
            let (works, now) = (Arc::clone(&works), Arc::clone(&phase_now));
            Arc::new(move |body: &[u8]| works[now.load(Ordering::Relaxed)].run(body))
        };
        let label = format!("{} / {}", scenario.name, system.name());
        let bar = match &opts.overall {
            Some(o) => o.row_bar(n, &label),
            None => progress_bar(n, &label, opts.progress),
        };
        let ctx = RunCtx {
            phase,
            upload_url: upload_api.as_ref().map(MockApi::base_url),
            progress: Some(bar),
            ..RunCtx::new(fetcher.clone(), api.base_url(), n, work, opts.timeout)
        };
        let (cpu_before, started) = (CpuSample::now(), Instant::now());
        let mut row = systems::run(system, &ctx).await?;
        let wall = started.elapsed().as_secs_f64();
        row.others_cpu = match (cpu_before, CpuSample::now()) {
            (Some(a), Some(b)) => b.others_since(&a),
            _ => None,
        };
        if let Some(p) = &ctx.progress {
            p.finish_and_clear();
        }
        let peak = api.stats().max_in_flight;
        row.peak_in_flight = match &upload_api {
            Some(up) => vec![("fetch", peak), ("upload", up.stats().max_in_flight)],
            None => vec![("api", peak)],
        }
        .into_iter()
        .map(|(name, p)| (name.to_owned(), p))
        .collect();
        let overall = opts.overall.as_ref().map(|o| {
            let estimate = scenario.row_seconds(system, n, opts.cores);
            (o, o.finish_row(estimate, wall))
        });
        // With the bars on screen the line would repeat them: debug then.
        macro_rules! row_done {
            ($level:ident) => {
                tracing::$level!(
                    scenario = scenario.name,
                    system = %row.system,
                    items_per_s = rounded(row.items_per_s(), 1),
                    ok = row.ok,
                    failed = row.failed,
                    peak_in_flight = ?row.peak_in_flight,
                    others_cpu = row.others_cpu.map(|x| rounded(x, 3)),
                    progress = overall.as_ref().map(|(_, line)| line.as_str()),
                    "system done"
                )
            };
        }
        match &overall {
            Some((o, _)) if o.visible() => o.suspend(|| row_done!(debug)),
            _ => row_done!(info),
        }
        if let Some(e) = &row.accounting_error {
            tracing::error!(scenario = scenario.name, system = %row.system, error = %e, "accounting error");
        }
        rows.push(row);
    }
    Ok(ScenarioResult {
        scenario: scenario.name.into(),
        limit_per_s: scenario.limit_per_s(opts.cores),
        reference,
        rows,
        apis: scenario.apis(),
    })
}
