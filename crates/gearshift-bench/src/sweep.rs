//! `gearshift-bench sweep`: throughput against agents per core on one
//! scenario, for gearshift and for tokio + rayon at the same concurrency.

use gearshift::{Agents, Config};

use crate::scenario::{self, RunOptions, Scenario, ScenarioResult};
use crate::systems::System;

/// What a sweep measured.
#[derive(Debug, Clone)]
pub struct SweepResult {
    /// The rows, as a scenario result (for the table and JSON).
    pub result: ScenarioResult,
    /// (series name, [(agents per core, items/s)]) for the plot.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Runs `scenario` once per value of `agents_per_core`, with gearshift at
/// `round(k x cores)` agents (and as many API permits) and tokio + rayon at
/// the same C.
///
/// # Errors
///
/// A bad agents-per-core value, or as for [`scenario::run`].
pub async fn sweep(
    scenario: &Scenario,
    agents_per_core: &[f64],
    opts: &RunOptions,
) -> anyhow::Result<SweepResult> {
    let mut systems = Vec::new();
    for &k in agents_per_core {
        if !(k.is_finite() && k > 0.0 && k <= 1024.0) {
            anyhow::bail!("agents_per_core must be a finite number > 0 and <= 1024, got {k}");
        }
        let agents = Agents::PerCore(k).total(opts.cores);
        systems.push((
            k,
            System::Gearshift {
                label: format!("gearshift {k} agents/core ({agents})"),
                config: Box::new(Config {
                    agents: Agents::PerCore(k),
                    ..Config::default().with_cores(opts.cores)
                }),
                switch_to: None,
                tuned: false,
            },
        ));
        systems.push((k, System::Rayon { c: agents }));
    }
    let list: Vec<System> = systems.iter().map(|(_, s)| s.clone()).collect();
    let result = scenario::run_systems(scenario, &list, String::new(), opts).await?;
    let mut gear = Vec::new();
    let mut rayon = Vec::new();
    for ((k, system), row) in systems.iter().zip(&result.rows) {
        let point = (*k, row.items_per_s());
        if system.is_gearshift() {
            gear.push(point);
        } else {
            rayon.push(point);
        }
    }
    Ok(SweepResult {
        result,
        series: vec![
            ("gearshift".into(), gear),
            ("tokio+rayon, same C".into(), rayon),
        ],
    })
}
