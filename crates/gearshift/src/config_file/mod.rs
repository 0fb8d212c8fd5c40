//! Settings from a TOML file, with `GEARSHIFT_*` environment variables over
//! it (feature `config-file`, on by default).
//!
//! A file holds what the builders set in code: the pipeline's [`Config`]
//! at the top level, `[retry]`, your own presets (`[presets.<name>]`), the
//! API budgets (`[apis.<name>]`) and per-stage settings (`[stages.<name>]`).
//! Durations are written as humans write them (`"250ms"`, `"30s"`,
//! `"1h 30m"`), every value goes through the builders' own checks, and an
//! error names the file (or the variable) and the key. Unknown keys are
//! refused, so a typo never leaves a setting at its default unnoticed.
//!
//! ```toml
//! preset = "night"          # a built-in preset or one of the file's own
//! api_timeout = "10s"
//!
//! [presets.night]           # a custom preset: a base and the knobs it changes
//! base = "evening"
//! agents = { per_core = 4 }
//!
//! [apis.search]             # an API budget
//! max_in_flight = 64
//! rate_limit = 200.0
//!
//! [stages.parse]            # one stage's own settings
//! workers = 2
//! ```
//!
//! Every key, with its default, is in `examples/gearshift.toml`; the
//! variables are described in [`ConfigFile::load`].
//!
//! The parsing is the `toml` crate's, the reading serde's, the key paths
//! in errors `serde_path_to_error`'s and the durations `jiff`'s. Written
//! here: the layout (which key sets which field) and the merge of the
//! variables into the TOML table. `figment` and `config` merge variables
//! too, but each brings its own value model and error type; a hundred
//! lines keep every error a [`ConfigFileError`] that names the key and the
//! variable.
//!
//! # Examples
//!
//! ```
//! use gearshift::config_file::ConfigFile;
//! use gearshift::{Pipeline, StageError};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let text = r#"
//!     items_per_batch = 20
//!     [apis.search]
//!     max_in_flight = 8
//!     timeout = "2s"
//!     [stages.fetch]
//!     agents = 8
//! "#;
//! let file = ConfigFile::parse("inline.toml", text, [("GEARSHIFT_ITEMS_PER_BATCH", "25")])?;
//! assert_eq!(file.config().items_per_batch, 25); // the variable wins
//! let report = Pipeline::from_iter(0..100u64)
//!     .config(file.config())
//!     .io(|id| async move { Ok::<_, StageError>(id) })
//!     .named("fetch").api(&file.api("search")).stage_settings(file.stage("fetch"))
//!     .cpu(|x| x * 2)
//!     .run()
//!     .await?;
//! assert_eq!(report.ok, 100);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::Config;
use crate::control::{Api, ApiSettings, StageSettings};
use crate::preset::CustomPreset;

mod env;
mod error;
mod schema;
mod values;

pub use env::ENV_PREFIX;
pub use error::{ConfigFileError, ConfigFileErrorKind};

use error::Problem;
use schema::{FileSchema, Parts};

/// A loaded and checked config file: the pipeline's [`Config`], the custom
/// presets, the API budgets and the per-stage settings it defines.
///
/// Each [`api`](Self::api) is built once: every stage (and every pipeline)
/// that takes `file.api("search")` shares one budget, as clones of an
/// [`Api`] do.
pub struct ConfigFile {
    path: PathBuf,
    parts: Parts,
    apis: Mutex<BTreeMap<String, Api>>,
    asked: Mutex<BTreeSet<String>>,
}

impl ConfigFile {
    /// Reads the TOML file at `path`, with every `GEARSHIFT_*` environment
    /// variable of the process over it.
    ///
    /// A variable names a key in upper case, `__` between table levels:
    /// `GEARSHIFT_CORES=8`, `GEARSHIFT_API_TIMEOUT=5s`,
    /// `GEARSHIFT_PRESET=night`, `GEARSHIFT_RETRY__MAX_ATTEMPTS=5`,
    /// `GEARSHIFT_APIS__SEARCH__RATE_LIMIT=50`,
    /// `GEARSHIFT_STAGES__FETCH__AGENTS={ per_core = 4 }`. The value is read
    /// as a TOML value, else as a string; a variable wins over the file,
    /// and one that names no key is refused like a typo in the file.
    ///
    /// # Errors
    ///
    /// A [`ConfigFileError`] naming the file (or variable) and the key: the
    /// file cannot be read or is not TOML, a key is unknown, a value has
    /// the wrong form, or the builders' checks refuse it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        let vars = std::env::vars_os().filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            // A non-UTF-8 value of ours becomes a string the checks refuse.
            let v = v
                .into_string()
                .unwrap_or_else(|v| v.to_string_lossy().into());
            Some((k, v))
        });
        Self::load_with_env(path, vars)
    }

    /// [`load`](Self::load) with the variables given (only the
    /// `GEARSHIFT_*` ones are read), not the process's: for tests, and for
    /// a program that keeps its environment apart.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn load_with_env<K, V>(
        path: impl AsRef<Path>,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigFileError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let problem = Problem::new("", ConfigFileErrorKind::Read(e));
            ConfigFileError::new(path, None, problem)
        })?;
        Self::parse(path, &text, vars)
    }

    /// Reads `text` as a config file, with the `GEARSHIFT_*` variables of
    /// `vars` over it; `path` only names it in errors.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn parse<K, V>(
        path: impl AsRef<Path>,
        text: &str,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigFileError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let path = path.as_ref();
        let fail = |env_var, problem| ConfigFileError::new(path, env_var, problem);
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            let problem = Problem::new("", ConfigFileErrorKind::Syntax(e));
            fail(None, problem)
        })?;
        let vars = vars.into_iter().map(|(k, v)| (k.into(), v.into()));
        let from_env = env::merge(&mut table, vars).map_err(|(var, p)| fail(Some(var), p))?;
        let schema: FileSchema = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().message().to_owned();
                let kind = if message.starts_with("unknown field") {
                    ConfigFileErrorKind::UnknownKey(message)
                } else {
                    ConfigFileErrorKind::BadValue(message)
                };
                (key, kind)
            })
            .map_err(|(key, kind)| {
                let var = origin(&from_env, &key);
                fail(var, Problem::new(key, kind))
            })?;
        let parts = schema.into_parts().map_err(|p| {
            let var = origin(&from_env, &p.key);
            fail(var, p)
        })?;
        Ok(ConfigFile {
            path: path.to_owned(),
            parts,
            apis: Mutex::new(BTreeMap::new()),
            asked: Mutex::new(BTreeSet::new()),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pipeline's settings: `Config::default()`, then the file's
    /// `cores`, its `preset`, and its other top-level keys. For
    /// [`Pipeline::config`](crate::Pipeline::config).
    pub fn config(&self) -> Config {
        self.parts.config.clone()
    }

    /// The custom preset the file defines as `[presets.<name>]`, for
    /// [`PipelineHandle::apply_custom`](crate::PipelineHandle::apply_custom)
    /// or [`CustomPreset::apply_to`].
    pub fn preset(&self, name: &str) -> Option<&CustomPreset> {
        self.parts.presets.get(name)
    }

    /// Every custom preset of the file, by name.
    pub fn presets(&self) -> impl Iterator<Item = &CustomPreset> {
        self.parts.presets.values()
    }

    /// The API budget `name` with the file's `[apis.<name>]` settings (the
    /// defaults if it has none), built on the first call: later calls
    /// return the same budget. A `max_in_flight` in the file fixes the
    /// limit, as [`Api::max_in_flight`] does.
    pub fn api(&self, name: &str) -> Api {
        self.note_asked("apis", name);
        let mut apis = self.apis.lock().unwrap_or_else(|e| e.into_inner());
        apis.entry(name.to_owned())
            .or_insert_with(|| build_api(name, self.parts.apis.get(name)))
            .clone()
    }

    /// The file's `[apis.<name>]` settings, checked.
    pub fn api_settings(&self, name: &str) -> Option<&ApiSettings> {
        self.parts.apis.get(name)
    }

    /// The file's `[stages.<name>]` settings (all unset if it has none),
    /// for [`Pipeline::stage_settings`](crate::Pipeline::stage_settings).
    pub fn stage(&self, name: &str) -> StageSettings {
        self.note_asked("stages", name);
        self.parts.stages.get(name).cloned().unwrap_or_default()
    }

    /// The `[apis.*]` and `[stages.*]` tables no call to
    /// [`api`](Self::api) or [`stage`](Self::stage) has asked for yet, as
    /// dotted keys: after building a pipeline, a name here is one the code
    /// does not use (a typo in the file, or in the code).
    pub fn unused(&self) -> Vec<String> {
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        let apis = self.parts.apis.keys().map(|n| format!("apis.{n}"));
        let stages = self.parts.stages.keys().map(|n| format!("stages.{n}"));
        apis.chain(stages).filter(|k| !asked.contains(k)).collect()
    }

    /// The settings in effect, as a TOML file that says every one of them
    /// (the preset applied, the variables merged): loading it gives the
    /// same settings.
    pub fn to_toml(&self) -> String {
        let schema = FileSchema::from_parts(&self.parts);
        // Every value has a TOML form (no NaN survives the checks, maps
        // have string keys): an error here is a bug in the layout.
        let mut text = toml::to_string(&schema)
            .unwrap_or_else(|e| format!("# cannot write the settings: {e}"));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }

    fn note_asked(&self, table: &str, name: &str) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked.insert(format!("{table}.{name}"));
    }
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("config", &self.parts.config)
            .field("presets", &self.parts.presets)
            .field("apis", &self.parts.apis)
            .field("stages", &self.parts.stages)
            .finish()
    }
}

/// The variable that set `key` (or a table holding it), if one did.
fn origin(from_env: &[env::EnvKey], key: &str) -> Option<String> {
    from_env
        .iter()
        .rev()
        .find(|e| key == e.key || key.starts_with(&format!("{}.", e.key)))
        .map(|e| e.var.clone())
}

/// An [`Api`] with `settings` (checked at load).
fn build_api(name: &str, settings: Option<&ApiSettings>) -> Api {
    let mut api = Api::new(name);
    let Some(s) = settings else { return api };
    if let Some(n) = s.max_in_flight {
        api = api.max_in_flight(n);
    }
    if let Some(r) = s.rate_limit {
        api = api.rate_limit(r);
    }
    api = api.burst(s.burst).max_pause(s.max_pause);
    if let Some(r) = &s.retry {
        api = api.retry(r.clone());
    }
    if let Some(t) = s.timeout {
        api = api.timeout(t);
    }
    if let Some(d) = s.item_deadline {
        api = api.item_deadline(d);
    }
    api
}
