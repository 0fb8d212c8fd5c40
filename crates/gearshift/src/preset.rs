//! Named [`Preset`]s: the seed's quick decision guide as `Config` values.
//!
//! | workload                               | preset                | agents per core | workers         | batch |
//! |----------------------------------------|-----------------------|-----------------|-----------------|-------|
//! | mostly waiting on an API, light CPU    | `ApiHeavy`            | 2               | all cores       | 10    |
//! | API-heavy peak ("morning")             | `Morning`             | 3               | 3/4 of the cores| 10    |
//! | mostly computing, the API is quick     | `CpuHeavy`            | 1               | all cores       | 50    |
//! | CPU-heavy period ("evening")           | `Evening`             | 1               | all cores       | 50    |
//! | both, unknown ratio: start here, tune  | `Mixed`               | 2               | all cores       | 20    |
//!
//! Morning runs the most calls at once of any preset, and the async runtime
//! does real work for each (HTTP, TLS, decoding): it leaves a quarter of the
//! cores (at least one on 2 or more) to the runtime instead of giving them
//! to CPU workers. That is the trade a live switch to Evening undoes when
//! the computing grows.
//!
//! When the API can take many more calls at once than 4 per core, no preset
//! fits: set [`Agents::PerCore`] (or [`Agents::Total`]) to its capacity, or
//! let a [`Tuner`](crate::Tuner) find it (with no preset and nothing else
//! fixed, the default controller does).
//!
//! When none of them fits, a [`CustomPreset`] names knobs of your own (in
//! code, or under `[presets.<name>]` in a config file).
//!
//! A preset fixes the agents: a budget runs the default controller only
//! while nothing fixes its concurrency, so a preset at build time turns it
//! off, and one applied live holds it.

use std::fmt;
use std::str::FromStr;

use crate::config::{Agents, Config};

mod custom;

pub use custom::CustomPreset;

/// A named starting point for the IO/CPU ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// API-heavy peak: 3 agents per core, workers on 3/4 of the cores,
    /// batches of 10. For the hours when most of each item's time is spent
    /// waiting on the remote.
    Morning,
    /// CPU-heavy period: 1 agent per core, batches of 50. For the hours when
    /// the remote is quick and each item costs real CPU.
    Evening,
    /// Waiting dominates: 2 agents per core, batches of 10 (the seed's default).
    ApiHeavy,
    /// Computing dominates: 1 agent per core, batches of 50.
    CpuHeavy,
    /// Both matter and the ratio is unknown: start at 2 agents per core with
    /// batches of 20, then adjust (by hand or with a tuner).
    Mixed,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 5] = [
        Preset::Morning,
        Preset::Evening,
        Preset::ApiHeavy,
        Preset::CpuHeavy,
        Preset::Mixed,
    ];

    /// Agents per core this preset runs.
    pub fn agents_per_core(self) -> f64 {
        match self {
            Preset::Morning => 3.0,
            Preset::ApiHeavy | Preset::Mixed => 2.0,
            Preset::Evening | Preset::CpuHeavy => 1.0,
        }
    }

    /// CPU workers this preset runs on `cores` cores.
    pub fn workers(self, cores: usize) -> usize {
        match self {
            Preset::Morning => (cores - cores / 4).min(cores.saturating_sub(1)).max(1),
            _ => cores.max(1),
        }
    }

    /// Items per CPU batch this preset uses.
    pub fn items_per_batch(self) -> usize {
        match self {
            Preset::Morning | Preset::ApiHeavy => 10,
            Preset::Mixed => 20,
            Preset::Evening | Preset::CpuHeavy => 50,
        }
    }

    /// Sets the ratio knobs of `config` (agents, API permits, workers, batch
    /// size) and leaves the rest (timeouts, retries, capacities) alone.
    pub fn apply_to(self, config: &mut Config) {
        config.agents = Agents::PerCore(self.agents_per_core());
        config.workers = self.workers(config.cores).min(config.pool_threads());
        config.items_per_batch = self.items_per_batch();
    }

    /// `Config::default()` with this preset applied.
    pub fn config(self) -> Config {
        let mut config = Config::default();
        self.apply_to(&mut config);
        config
    }

    /// The preset's name, in kebab case.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Morning => "morning",
            Preset::Evening => "evening",
            Preset::ApiHeavy => "api-heavy",
            Preset::CpuHeavy => "cpu-heavy",
            Preset::Mixed => "mixed",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name was not one of the presets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset {0:?}: expected morning, evening, api-heavy, cpu-heavy or mixed")]
pub struct UnknownPreset(pub String);

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.to_ascii_lowercase().replace('_', "-");
        Preset::ALL
            .into_iter()
            .find(|p| p.as_str() == norm)
            .ok_or_else(|| UnknownPreset(s.to_owned()))
    }
}

impl From<Preset> for Config {
    fn from(p: Preset) -> Config {
        p.config()
    }
}
