//! The scenarios of `gearshift-bench run`: a workload (the mock API's
//! latency and capacity, CPU per item, possibly in two phases), the systems
//! compared on it, and its theoretical limit.
//!
//! | name            | base latency     | capacity  | CPU per item    | size (per system) | what it shows |
//! |-----------------|------------------|-----------|-----------------|-------------------|---------------|
//! | io_bound        | 20 ms            | 16        | 0.05 ms         | 1.4 s at its limit | concurrency is everything |
//! | cpu_bound       | 1 ms             | 64        | 4 ms            | 1.4 s at its limit | cores are everything |
//! | mixed           | 40 ms            | 32        | 1.5 ms          | 1.4 s at its limit | both matter; the ratio matters |
//! | seed_example    | 10 ms            | unlimited | 0               | 1000 items        | the design note's example, 8 agents |
//! | morning_evening | 100 ms, then 5 ms| 64        | 0.5, then 5 ms  | 300 items         | a live preset switch halfway |
//! | two_apis        | fetch 40 ms, upload 10 ms | fetch 16, upload 4 | 1 ms | 1.4 s at its limit | one limit per API |
//!
//! "At its limit": a system runs as many items as it would process in that
//! time at the limit for its own concurrency (`min(C, capacity) / base`,
//! capped by the cores; the tuner and sequential rows: the scenario's limit
//! and `1 / (base + CPU)`). Every row then runs about as long and loses the
//! same share of its run to the ramp-up and the tail; with one item count
//! for all, a row of high concurrency runs shortest and loses the most.
//!
//! two_apis fetches from one mock API and uploads each item's digest to a
//! second one ([`UploadApi`]); its systems are in
//! [`systems::two_api`].
//!
//! Over 400 lines on purpose: it is the catalogue of every scenario (mock
//! config, limit, systems), read as one table to compare them; split by
//! scenario, the comparison would be scattered over files.

mod runner;

use std::time::Duration;

use gearshift::{Agents, Config, Preset};

pub use self::runner::{run, run_systems, selected_systems};
use crate::ledger::RunResult;
use crate::systems::{self, System};

/// One phase of a workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    /// The mock API's no-load latency.
    pub base: Duration,
    /// Calls it serves at once without slowing down; `None` is unlimited.
    pub capacity: Option<usize>,
    /// CPU per item, ms.
    pub cpu_ms: f64,
}

impl Phase {
    /// `min(capacity / base, cores / cpu)`, items/s; infinite when neither
    /// side limits.
    pub fn limit_per_s(&self, cores: usize) -> f64 {
        let api = match self.capacity {
            Some(c) => c as f64 / self.base.as_secs_f64(),
            None => f64::INFINITY,
        };
        let cpu = if self.cpu_ms > 0.0 {
            cores as f64 / (self.cpu_ms / 1e3)
        } else {
            f64::INFINITY
        };
        api.min(cpu)
    }
}

/// The second API of a two-API scenario: each item's CPU result is
/// uploaded to it (`POST /upload/{id}`) after the work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UploadApi {
    /// Its no-load latency.
    pub base: Duration,
    /// Calls it serves at once without slowing down; `None` is unlimited.
    pub capacity: Option<usize>,
}

impl UploadApi {
    /// `capacity / base`, items/s; infinite when unlimited.
    pub fn limit_per_s(&self) -> f64 {
        match self.capacity {
            Some(c) => c as f64 / self.base.as_secs_f64(),
            None => f64::INFINITY,
        }
    }
}

/// A named workload and its default size.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it shows.
    pub shows: &'static str,
    /// One phase, or two (the second starts when half the items are done).
    pub phases: Vec<Phase>,
    /// How many items each system runs at default size.
    pub size: Size,
    /// A fixed agent count the scenario is about (seed_example: 8).
    pub fixed_agents: Option<usize>,
    /// A second API the CPU results are uploaded to (two_apis).
    pub upload: Option<UploadApi>,
}

/// How many items each system of a scenario runs at default size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    /// The same count for every system.
    Items {
        /// Items per system.
        items: u64,
        /// At most this many for the sequential baseline (slow by design).
        sequential: u64,
    },
    /// What each system would process in this many seconds at the limit for
    /// its own concurrency (see the module docs).
    Seconds(f64),
}

/// Seconds per system in the scenarios sized by time: as long as 12 rows
/// allow in a scenario's 20 s.
pub const ROW_SECONDS: f64 = 1.4;

/// Seconds a row takes beyond its items at their rate (ramp-up and tail,
/// resetting the mock API, starting a pipeline): a first guess for the
/// progress line, which corrects it as rows finish.
pub const ROW_OVERHEAD_S: f64 = 0.3;

/// The fewest items a row runs.
const MIN_ROW_ITEMS: f64 = 20.0;

/// How to run scenarios.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Items per system instead of each scenario's default.
    pub items: Option<u64>,
    /// The mock API's seed.
    pub seed: u64,
    /// Cores the systems plan for.
    pub cores: usize,
    /// Show progress bars.
    pub progress: bool,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Run only the systems whose name contains one of these (any case);
    /// empty runs every system.
    pub systems: Vec<String>,
    /// The whole run's progress line, if the caller keeps one; each row
    /// reports to it, and each system's bar is drawn under it.
    pub overall: Option<std::sync::Arc<crate::report::Overall>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            items: None,
            seed: 1,
            cores: num_cpus::get().max(1),
            progress: false,
            timeout: Duration::from_secs(30),
            systems: Vec::new(),
            overall: None,
        }
    }
}

/// The rows of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// The scenario's name.
    pub scenario: String,
    /// Its theoretical limit, items/s.
    pub limit_per_s: f64,
    /// The system the others are compared with.
    pub reference: String,
    /// One row per system.
    pub rows: Vec<RunResult>,
    /// The APIs the systems called, with their capacities (`None` is
    /// unlimited): `api`, or `fetch` and `upload` (two_apis). Each row's
    /// `peak_in_flight` has one entry per API.
    pub apis: Vec<(String, Option<usize>)>,
}

impl Scenario {
    /// Every scenario, in run order.
    pub fn all() -> Vec<Scenario> {
        let ms = Duration::from_millis;
        let one = |base, capacity, cpu_ms| {
            vec![Phase {
                base,
                capacity,
                cpu_ms,
            }]
        };
        vec![
            Scenario {
                name: "io_bound",
                shows: "concurrency is everything",
                phases: one(ms(20), Some(16), 0.05),
                size: Size::Seconds(ROW_SECONDS),
                fixed_agents: None,
                upload: None,
            },
            Scenario {
                name: "cpu_bound",
                shows: "cores are everything; the async side must not starve them",
                phases: one(ms(1), Some(64), 4.0),
                size: Size::Seconds(ROW_SECONDS),
                fixed_agents: None,
                upload: None,
            },
            Scenario {
                name: "mixed",
                shows: "both matter; the ratio matters",
                phases: one(ms(40), Some(32), 1.5),
                size: Size::Seconds(ROW_SECONDS),
                fixed_agents: None,
                upload: None,
            },
            Scenario {
                name: "seed_example",
                shows: "the design note's example: sequential ~N x L, 8 agents ~N x L / 8",
                phases: one(ms(10), None, 0.0),
                size: Size::Items {
                    items: 1000,
                    sequential: 200,
                },
                fixed_agents: Some(8),
                upload: None,
            },
            Scenario {
                name: "morning_evening",
                shows: "the workload shifts halfway; a live preset switch against staying put",
                phases: vec![
                    Phase {
                        base: ms(100),
                        capacity: Some(64),
                        cpu_ms: 0.5,
                    },
                    Phase {
                        base: ms(5),
                        capacity: Some(64),
                        cpu_ms: 5.0,
                    },
                ],
                size: Size::Items {
                    items: 300,
                    sequential: 0,
                },
                fixed_agents: None,
                upload: None,
            },
            Scenario {
                name: "two_apis",
                shows: "fetch from one API, upload to another: each needs its own limit",
                phases: one(ms(40), Some(16), 1.0),
                size: Size::Seconds(ROW_SECONDS),
                fixed_agents: None,
                // 4 / 10 ms = 400/s, as the fetch API's 16 / 40 ms: both bind.
                upload: Some(UploadApi {
                    base: ms(10),
                    capacity: Some(4),
                }),
            },
        ]
    }

    /// The scenario of this name.
    pub fn by_name(name: &str) -> Option<Scenario> {
        let norm = name.replace('-', "_");
        Self::all().into_iter().find(|s| s.name == norm)
    }

    /// The names of every scenario.
    pub fn names() -> Vec<&'static str> {
        Self::all().iter().map(|s| s.name).collect()
    }

    /// This scenario with rows of `t` seconds at their limit, if it is
    /// sized by time (a scenario sized by items is returned as it is).
    pub fn with_row_seconds(&self, t: f64) -> Scenario {
        let mut s = self.clone();
        if let Size::Seconds(_) = s.size {
            s.size = Size::Seconds(t);
        }
        s
    }

    /// Seconds a row of `items` items of `system` should take: the items
    /// over the rate its concurrency allows (at most the scenario's
    /// limit), plus [`ROW_OVERHEAD_S`]. An estimate for the progress line,
    /// not a measurement.
    pub fn row_seconds(&self, system: &System, items: u64, cores: usize) -> f64 {
        let rate = match (system, &self.upload) {
            (System::TwoApi(s), Some(up)) => s.rate_per_s(&self.phases[0], up, cores),
            _ => self.one_api_rate(system, cores),
        }
        .min(self.limit_per_s(cores));
        if rate.is_finite() && rate > 0.0 {
            items as f64 / rate + ROW_OVERHEAD_S
        } else {
            ROW_OVERHEAD_S
        }
    }

    /// Items `system` runs: `items` if given (the sequential baseline at
    /// most its own default), else the scenario's default size.
    pub fn items_for(&self, system: &System, items: Option<u64>, cores: usize) -> u64 {
        let sequential = system.is_sequential();
        let n = match self.size {
            Size::Items {
                items: default,
                sequential: most,
            } => {
                let n = items.unwrap_or(default);
                if sequential { most.min(n) } else { n }
            }
            Size::Seconds(t) => {
                let natural = self.seconds_items(t, system, cores);
                match items {
                    Some(n) if sequential => n.min(natural),
                    Some(n) => n,
                    None => natural,
                }
            }
        };
        n.max(1)
    }

    /// What `system` would process in `t` seconds at the limit for its
    /// concurrency.
    fn seconds_items(&self, t: f64, system: &System, cores: usize) -> u64 {
        let p = &self.phases[0];
        let rate = match (system, &self.upload) {
            (System::TwoApi(s), Some(up)) => s.rate_per_s(p, up, cores),
            _ => self.one_api_rate(system, cores),
        };
        (t * rate).ceil().max(MIN_ROW_ITEMS) as u64
    }

    /// The limit for `system`'s concurrency on the first phase's API.
    fn one_api_rate(&self, system: &System, cores: usize) -> f64 {
        let p = &self.phases[0];
        match system {
            System::Sequential => 1.0 / (p.base.as_secs_f64() + p.cpu_ms / 1e3),
            // The tuner sets its own concurrency: it is after the limit.
            System::Gearshift { tuned: true, .. } => p.limit_per_s(cores),
            s => {
                let c = s.concurrency();
                Phase {
                    capacity: Some(p.capacity.map_or(c, |cap| cap.min(c))),
                    ..*p
                }
                .limit_per_s(cores)
            }
        }
    }

    /// The theoretical limit, items/s: `min(capacity / base, cores / cpu)`;
    /// with a fixed agent count and no other limit, `agents / base`; with two
    /// phases of equal items, their harmonic mean; with an upload API, also
    /// at most its `capacity / base`: `min(capacity_fetch / base_fetch,
    /// capacity_upload / base_upload, cores / cpu)`.
    pub fn limit_per_s(&self, cores: usize) -> f64 {
        let limits: Vec<f64> = self
            .phases
            .iter()
            .map(|p| {
                let l = p.limit_per_s(cores);
                match (l.is_finite(), self.fixed_agents) {
                    (false, Some(a)) => a as f64 / p.base.as_secs_f64(),
                    _ => l,
                }
            })
            .collect();
        let phases = limits.len() as f64 / limits.iter().map(|l| 1.0 / l).sum::<f64>();
        self.upload
            .map_or(phases, |up| phases.min(up.limit_per_s()))
    }

    /// The APIs the systems call, with their capacities.
    pub fn apis(&self) -> Vec<(String, Option<usize>)> {
        let first = self.phases[0].capacity;
        match self.upload {
            Some(up) => vec![("fetch".into(), first), ("upload".into(), up.capacity)],
            None => vec![("api".into(), first)],
        }
    }

    /// The systems compared, the reference (gearshift) first among them.
    pub fn systems(&self, cores: usize) -> (Vec<System>, String) {
        // `window`: the most items in flight end to end (`max_in_flight`),
        // as `buffer_unordered(C)` has; without it the channel between the
        // stages lets the IO side run ahead of the CPU side.
        let gear = |label: String, agents: usize, window: Option<usize>| System::Gearshift {
            label,
            config: Box::new(Config {
                agents: Agents::Total(agents),
                max_in_flight: window,
                ..Config::default().with_cores(cores)
            }),
            switch_to: None,
            tuned: false,
        };
        let preset = |label: &str, p: Preset, switch_to: Option<Preset>| {
            let mut config = Config::default().with_cores(cores);
            p.apply_to(&mut config);
            System::Gearshift {
                label: label.into(),
                config: Box::new(config),
                switch_to,
                tuned: false,
            }
        };
        if let Some(up) = &self.upload {
            return systems::two_api::lineup(&self.phases[0], up, cores);
        }
        if self.phases.len() > 1 {
            let live = "gearshift morning -> evening (live switch)";
            let cap = self.phases[0].capacity.unwrap_or(64);
            let systems = vec![
                preset(live, Preset::Morning, Some(Preset::Evening)),
                preset("gearshift morning all the way", Preset::Morning, None),
                preset("gearshift evening all the way", Preset::Evening, None),
                gear(format!("gearshift (agents = capacity {cap})"), cap, None),
            ];
            return (systems, live.into());
        }
        let mut systems = vec![System::Sequential];
        if let Some(a) = self.fixed_agents {
            let label = format!("gearshift ({a} agents)");
            systems.push(gear(label.clone(), a, None));
            systems.extend(baselines(a));
            return (systems, label);
        }
        let cap = self.phases[0].capacity.unwrap_or(4 * cores);
        let four = 4 * cores;
        let reference = format!("gearshift (agents = capacity {cap})");
        systems.push(gear(reference.clone(), cap, None));
        systems.push(gear(same_as_baselines(cap), cap, Some(cap)));
        systems.push(preset(
            &format!("gearshift seed rule ({} agents)", 2 * cores),
            Preset::ApiHeavy,
            None,
        ));
        // Nothing set: the default controller starts from the seed's
        // 2 x cores and finds the rest.
        let tuned = Config::default().with_cores(cores);
        systems.push(System::Gearshift {
            label: systems::NOTHING_SET.into(),
            config: Box::new(tuned),
            switch_to: None,
            tuned: true,
        });
        if four != cap {
            systems.push(gear(same_as_baselines(four), four, Some(four)));
        }
        systems.extend(baselines(four));
        if four != cap {
            systems.extend(baselines(cap));
        }
        (systems, reference)
    }
}

/// The label of a gearshift row with as many items in flight as the
/// baselines at concurrency `c`.
fn same_as_baselines(c: usize) -> String {
    format!("gearshift ({c} agents, max {c} in flight)")
}

fn baselines(c: usize) -> [System; 3] {
    [
        System::TokioInline { c },
        System::SpawnBlocking { c },
        System::Rayon { c },
    ]
}
