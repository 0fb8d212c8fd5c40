//! The file's layout as serde structs, and their conversion to and from
//! gearshift's own types ([`Config`], [`CustomPreset`], [`ApiSettings`],
//! [`StageSettings`]), checked by the same `validate` the builders use.
//!
//! Every field is optional: a file says only what it changes. The structs
//! refuse unknown keys (`deny_unknown_fields`), so a typo is an error, not
//! a setting silently left at its default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{ConfigFileErrorKind, Problem};
use super::values::{AgentsValue, HumanDuration, MaybeDuration, OnErrorValue, OrderValue};
use crate::config::{Config, RetryPolicy};
use crate::control::{ApiSettings, StageSettings};
use crate::error::ConfigError;
use crate::preset::{CustomPreset, Preset};

/// The whole file: the pipeline's [`Config`] at the top level, then
/// `[retry]`, `[presets.<name>]`, `[apis.<name>]` and `[stages.<name>]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSchema {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) preset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cores: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agents: Option<AgentsValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items_per_batch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_wait: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_timeout: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_deadline: Option<MaybeDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_capacity: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<OrderValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_error: Option<OnErrorValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drain_timeout: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats_interval: Option<MaybeDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<RetrySchema>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    presets: BTreeMap<String, PresetSchema>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    apis: BTreeMap<String, ApiSchema>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    stages: BTreeMap<String, StageSchema>,
}

/// `[retry]`, `[apis.<name>.retry]`, `[stages.<name>.retry]`: changes to
/// the pipeline's policy (for the top level, to the default one).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RetrySchema {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_backoff: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_backoff: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jitter: Option<bool>,
}

/// `[presets.<name>]`: a [`CustomPreset`].
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PresetSchema {
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agents: Option<AgentsValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items_per_batch: Option<usize>,
}

/// `[apis.<name>]`: an API budget's [`ApiSettings`].
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ApiSchema {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_pause: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_deadline: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<RetrySchema>,
}

/// `[stages.<name>]`: one stage's [`StageSettings`].
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct StageSchema {
    #[serde(skip_serializing_if = "Option::is_none")]
    agents: Option<AgentsValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items_per_batch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_wait: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_timeout: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_deadline: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_capacity: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<RetrySchema>,
}

/// What a file holds, as gearshift's types, each checked.
pub(super) struct Parts {
    pub(super) config: Config,
    pub(super) presets: BTreeMap<String, CustomPreset>,
    pub(super) apis: BTreeMap<String, ApiSettings>,
    pub(super) stages: BTreeMap<String, StageSettings>,
}

impl FileSchema {
    /// Converts and checks every section: presets first (the top level may
    /// name one), then the pipeline's config, then the APIs and stages
    /// (whose retry policies start from the pipeline's).
    pub(super) fn into_parts(self) -> Result<Parts, Problem> {
        let presets = self
            .presets
            .iter()
            .map(|(name, p)| Ok((name.clone(), p.to_preset(name)?)))
            .collect::<Result<BTreeMap<_, _>, Problem>>()?;
        let config = self.config(&presets)?;
        let apis = self
            .apis
            .iter()
            .map(|(name, a)| Ok((name.clone(), a.to_settings(name, &config.retry)?)))
            .collect::<Result<_, Problem>>()?;
        let stages = self
            .stages
            .iter()
            .map(|(name, s)| Ok((name.clone(), s.to_settings(name, &config)?)))
            .collect::<Result<_, Problem>>()?;
        Ok(Parts {
            config,
            presets,
            apis,
            stages,
        })
    }

    /// The file that says every setting of `parts` (the preset, if any,
    /// already applied to the config).
    pub(super) fn from_parts(parts: &Parts) -> FileSchema {
        let c = &parts.config;
        FileSchema {
            preset: None,
            cores: Some(c.cores),
            agents: Some(AgentsValue(c.agents)),
            workers: Some(c.workers),
            max_workers: c.max_workers,
            items_per_batch: Some(c.items_per_batch),
            batch_wait: Some(HumanDuration(c.batch_wait)),
            api_timeout: Some(HumanDuration(c.api_timeout)),
            item_deadline: Some(MaybeDuration(c.item_deadline)),
            channel_capacity: Some(c.channel_capacity),
            max_in_flight: c.max_in_flight,
            order: Some(OrderValue(c.order)),
            on_error: Some(c.on_error.into()),
            drain_timeout: Some(HumanDuration(c.drain_timeout)),
            stats_interval: Some(MaybeDuration(c.stats_interval)),
            retry: Some(RetrySchema::from_policy(&c.retry)),
            presets: (parts.presets.iter())
                .map(|(n, p)| (n.clone(), PresetSchema::from_preset(p)))
                .collect(),
            apis: (parts.apis.iter())
                .map(|(n, a)| (n.clone(), ApiSchema::from_settings(a)))
                .collect(),
            stages: (parts.stages.iter())
                .map(|(n, s)| (n.clone(), StageSchema::from_settings(s)))
                .collect(),
        }
    }

    /// `Config::default()`, then `cores` (with one worker per core), then
    /// the preset the file names, then every other top-level key.
    fn config(&self, presets: &BTreeMap<String, CustomPreset>) -> Result<Config, Problem> {
        let mut c = Config::default();
        if let Some(cores) = self.cores {
            c = c.with_cores(cores);
        }
        if let Some(name) = &self.preset {
            match (presets.get(name), name.parse::<Preset>()) {
                (Some(custom), _) => custom.apply_to(&mut c),
                (None, Ok(builtin)) => builtin.apply_to(&mut c),
                (None, Err(e)) => {
                    let mine: Vec<&str> = presets.keys().map(String::as_str).collect();
                    let also = if mine.is_empty() {
                        String::new()
                    } else {
                        format!(", or one of this file's: {}", mine.join(", "))
                    };
                    return Err(Problem::bad_value("preset", format!("{e}{also}")));
                }
            }
        }
        set(&mut c.agents, self.agents.map(|a| a.0));
        set(&mut c.workers, self.workers);
        if self.max_workers.is_some() {
            c.max_workers = self.max_workers;
        }
        set(&mut c.items_per_batch, self.items_per_batch);
        set(&mut c.batch_wait, self.batch_wait.map(|d| d.0));
        set(&mut c.api_timeout, self.api_timeout.map(|d| d.0));
        set(&mut c.item_deadline, self.item_deadline.map(|d| d.0));
        set(&mut c.channel_capacity, self.channel_capacity);
        if self.max_in_flight.is_some() {
            c.max_in_flight = self.max_in_flight;
        }
        set(&mut c.order, self.order.map(|o| o.0));
        set(&mut c.on_error, self.on_error.map(Into::into));
        set(&mut c.drain_timeout, self.drain_timeout.map(|d| d.0));
        set(&mut c.stats_interval, self.stats_interval.map(|d| d.0));
        if let Some(r) = &self.retry {
            c.retry = r.apply(c.retry);
        }
        c.validate().map_err(|e| Problem::invalid("", e))?;
        Ok(c)
    }
}

impl RetrySchema {
    fn apply(&self, mut policy: RetryPolicy) -> RetryPolicy {
        set(&mut policy.max_attempts, self.max_attempts);
        set(
            &mut policy.initial_backoff,
            self.initial_backoff.map(|d| d.0),
        );
        set(&mut policy.max_backoff, self.max_backoff.map(|d| d.0));
        set(&mut policy.jitter, self.jitter);
        policy
    }

    fn from_policy(p: &RetryPolicy) -> Self {
        RetrySchema {
            max_attempts: Some(p.max_attempts),
            initial_backoff: Some(HumanDuration(p.initial_backoff)),
            max_backoff: Some(HumanDuration(p.max_backoff)),
            jitter: Some(p.jitter),
        }
    }
}

impl PresetSchema {
    fn to_preset(&self, name: &str) -> Result<CustomPreset, Problem> {
        let prefix = format!("presets.{name}.");
        if name.parse::<Preset>().is_ok() {
            return Err(Problem::bad_value(
                format!("presets.{name}"),
                format!("{name:?} is a built-in preset's name: give yours a name of its own"),
            ));
        }
        let base = match &self.base {
            None => None,
            Some(b) => Some(
                b.parse::<Preset>()
                    .map_err(|e| Problem::bad_value(format!("{prefix}base"), e.to_string()))?,
            ),
        };
        let preset = CustomPreset {
            name: name.to_owned(),
            base,
            agents: self.agents.map(|a| a.0),
            workers: self.workers,
            items_per_batch: self.items_per_batch,
        };
        preset
            .validate()
            .map_err(|e| Problem::invalid(&prefix, e))?;
        Ok(preset)
    }

    fn from_preset(p: &CustomPreset) -> Self {
        PresetSchema {
            base: p.base.map(|b| b.as_str().to_owned()),
            agents: p.agents.map(AgentsValue),
            workers: p.workers,
            items_per_batch: p.items_per_batch,
        }
    }
}

impl ApiSchema {
    fn to_settings(&self, name: &str, retry: &RetryPolicy) -> Result<ApiSettings, Problem> {
        let mut s = ApiSettings {
            max_in_flight: self.max_in_flight,
            rate_limit: self.rate_limit,
            ..ApiSettings::default()
        };
        set(&mut s.burst, self.burst);
        set(&mut s.max_pause, self.max_pause.map(|d| d.0));
        s.timeout = self.timeout.map(|d| d.0);
        s.item_deadline = self.item_deadline.map(|d| d.0);
        s.retry = self.retry.as_ref().map(|r| r.apply(retry.clone()));
        s.validate(name)
            .map_err(|e| Problem::invalid(&format!("apis.{name}."), e))?;
        Ok(s)
    }

    fn from_settings(s: &ApiSettings) -> Self {
        ApiSchema {
            max_in_flight: s.max_in_flight,
            rate_limit: s.rate_limit,
            burst: Some(s.burst),
            max_pause: Some(HumanDuration(s.max_pause)),
            timeout: s.timeout.map(HumanDuration),
            item_deadline: s.item_deadline.map(HumanDuration),
            retry: s.retry.as_ref().map(RetrySchema::from_policy),
        }
    }
}

impl StageSchema {
    fn to_settings(&self, name: &str, config: &Config) -> Result<StageSettings, Problem> {
        let s = StageSettings {
            agents: self.agents.map(|a| a.0),
            workers: self.workers,
            items_per_batch: self.items_per_batch,
            batch_wait: self.batch_wait.map(|d| d.0),
            retry: self.retry.as_ref().map(|r| r.apply(config.retry.clone())),
            api_timeout: self.api_timeout.map(|d| d.0),
            item_deadline: self.item_deadline.map(|d| d.0),
            channel_capacity: self.channel_capacity,
        };
        s.validate(name, config.pool_threads())
            .map_err(|e| Problem::invalid(&format!("stages.{name}."), e))?;
        Ok(s)
    }

    fn from_settings(s: &StageSettings) -> Self {
        StageSchema {
            agents: s.agents.map(AgentsValue),
            workers: s.workers,
            items_per_batch: s.items_per_batch,
            batch_wait: s.batch_wait.map(HumanDuration),
            api_timeout: s.api_timeout.map(HumanDuration),
            item_deadline: s.item_deadline.map(HumanDuration),
            channel_capacity: s.channel_capacity,
            retry: s.retry.as_ref().map(RetrySchema::from_policy),
        }
    }
}

/// Overwrites `field` when the file gives a value.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// The key a refused field is written under: `prefix` (`"apis.search."`)
/// and the field, as the file spells it.
pub(super) fn key_of(prefix: &str, e: &ConfigError) -> String {
    let field = match e.field {
        "agents_per_core" => "agents",
        f => f,
    };
    format!("{prefix}{field}")
}

impl Problem {
    fn invalid(prefix: &str, e: ConfigError) -> Problem {
        Problem::new(key_of(prefix, &e), ConfigFileErrorKind::Invalid(e))
    }
}
