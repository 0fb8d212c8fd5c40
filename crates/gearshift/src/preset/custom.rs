//! [`CustomPreset`]: a named set of ratio knobs of your own, for a workload
//! the built-in presets do not fit (defined in code or in a config file).

use std::fmt;

use super::Preset;
use crate::config::{Agents, Config, MAX_CAPACITY, MAX_WORKERS, check_count, expected};
use crate::error::ConfigError;

/// A preset of your own: a name and the ratio knobs it sets (agents,
/// workers, items per batch), each optional, on top of a built-in preset
/// (`base`) or of the configuration as it is. Like a [`Preset`], it leaves
/// the other settings (timeouts, retries, capacities) alone.
///
/// Apply it before the run with [`Pipeline::configure`](crate::Pipeline::configure)
/// and [`apply_to`](Self::apply_to), or live with
/// [`PipelineHandle::apply_custom`](crate::PipelineHandle::apply_custom). A
/// config file defines them under `[presets.<name>]`
/// ([`ConfigFile::preset`](crate::config_file::ConfigFile::preset)).
///
/// # Examples
///
/// ```
/// use gearshift::{Agents, Config, CustomPreset, Preset};
///
/// // Night: the API is idle, so call it hard; big batches.
/// let night = CustomPreset {
///     base: Some(Preset::Evening),
///     agents: Some(Agents::PerCore(4.0)),
///     items_per_batch: Some(100),
///     ..CustomPreset::new("night")
/// };
/// let config = night.config();
/// assert_eq!(config.agents, Agents::PerCore(4.0));
/// assert_eq!(config.items_per_batch, 100);
/// assert_eq!(config.workers, Preset::Evening.config().workers);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CustomPreset {
    /// The preset's name, in logs and in a config file.
    pub name: String,
    /// A built-in preset applied first. By default, none: the knobs below
    /// change the configuration as it is.
    pub base: Option<Preset>,
    /// Agents of each IO stage. By default, the base's (or unchanged).
    pub agents: Option<Agents>,
    /// CPU workers. By default, the base's (or unchanged).
    pub workers: Option<usize>,
    /// Items per CPU batch. By default, the base's (or unchanged).
    pub items_per_batch: Option<usize>,
}

impl CustomPreset {
    /// A preset named `name` that changes nothing yet.
    pub fn new(name: impl Into<String>) -> Self {
        CustomPreset {
            name: name.into(),
            base: None,
            agents: None,
            workers: None,
            items_per_batch: None,
        }
    }

    /// Sets the ratio knobs of `config`: the base preset's, then this
    /// preset's own.
    pub fn apply_to(&self, config: &mut Config) {
        if let Some(base) = self.base {
            base.apply_to(config);
        }
        if let Some(agents) = self.agents {
            config.agents = agents;
        }
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        if let Some(items) = self.items_per_batch {
            config.items_per_batch = items;
        }
    }

    /// `Config::default()` with this preset applied.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        self.apply_to(&mut config);
        config
    }

    /// Checks the knobs it sets; the error names the preset and the field.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a value [`Config::validate`] would refuse.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = || -> Result<(), ConfigError> {
            if let Some(agents) = self.agents {
                agents.validate()?;
            }
            if let Some(w) = self.workers {
                check_count!("workers", w, MAX_WORKERS)?;
            }
            if let Some(n) = self.items_per_batch {
                check_count!("items_per_batch", n, MAX_CAPACITY)?;
            }
            Ok(())
        };
        check().map_err(|e| e.within(format!("preset {}", self.name)))
    }
}

impl fmt::Display for CustomPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
