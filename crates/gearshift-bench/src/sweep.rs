//! `gearshift-bench sweep`: throughput against agents per core on one
//! scenario, for gearshift and for tokio + rayon at the same concurrency,
//! beside gearshift with nothing set (its default controller).

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
    /// gearshift with nothing set (the default controller), items/s.
    pub default_controller: Option<f64>,
}

/// The agents-per-core values a sweep of `scenario` runs by default: from
/// a sixteenth of the API's capacity to one and a half times it, so the
/// knee where more agents stop helping is in the middle of the plot.
/// Without a capacity, 0.5 to 8.
pub fn default_agents_per_core(scenario: &Scenario, cores: usize) -> Vec<f64> {
    let Some(cap) = scenario.phases[0].capacity else {
        return vec![0.5, 1.0, 2.0, 4.0, 8.0];
    };
    let mut values: Vec<f64> = [1.0 / 16.0, 0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
        .iter()
        .map(|m| {
            // Whole agents: a value whose agents round to the same count
            // as another's would run the same setting twice.
            let agents = (m * cap as f64).round().max(1.0);
            agents / cores.max(1) as f64
        })
        .collect();
    values.dedup();
    values
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
    let default_label = crate::systems::NOTHING_SET;
    let mut list: Vec<System> = systems.iter().map(|(_, s)| s.clone()).collect();
    list.push(System::Gearshift {
        label: default_label.into(),
        config: Box::new(Config::default().with_cores(opts.cores)),
        switch_to: None,
        tuned: true,
    });
    let result = scenario::run_systems(scenario, &list, default_label.into(), opts).await?;
    let default_controller = result
        .rows
        .iter()
        .find(|r| r.system == default_label)
        .map(|r| r.items_per_s());
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
        default_controller,
    })
}
