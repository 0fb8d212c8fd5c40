//! A config file's keys: every key lands where the builders would put it,
//! the settings in effect round-trip through `to_toml`, and the sample
//! file in `examples/` loads.
#![cfg(feature = "config-file")]

use std::path::Path;
use std::time::Duration;

use gearshift::config_file::{ConfigFile, ConfigFileError};
use gearshift::{Agents, OnError, Order, Preset};

const NO_ENV: [(&str, &str); 0] = [];

/// A file that sets every key to a value that is not its default.
const FULL: &str = r#"
preset = "night"
cores = 6
agents = 40
workers = 5
max_workers = 8
items_per_batch = 12
batch_wait = "3ms"
api_timeout = "7s"
item_deadline = "1m 30s"
channel_capacity = 300
max_in_flight = 900
order = { window = 128 }
on_error = "cancel"
drain_timeout = "2s"
stats_interval = "off"

[retry]
max_attempts = 6
initial_backoff = "20ms"
max_backoff = "3s"
jitter = false

[presets.night]
base = "evening"
agents = { per_core = 3.5 }
workers = 4
items_per_batch = 70

[apis.search]
max_in_flight = 64
rate_limit = 250.5
burst = 8
max_pause = "90s"
timeout = "4s"
item_deadline = "45s"

[apis.search.retry]
max_attempts = 2

[apis.store]
burst = 2

[stages.fetch]
agents = { per_core = 2 }
items_per_batch = 5
api_timeout = "1500ms"
item_deadline = "20s"
channel_capacity = 100

[stages.fetch.retry]
initial_backoff = "10ms"

[stages.parse]
workers = 3
batch_wait = "1ms"
"#;

fn parse(text: &str) -> Result<ConfigFile, ConfigFileError> {
    ConfigFile::parse("test.toml", text, NO_ENV)
}

#[test]
fn a_full_file_sets_every_key() {
    let file = parse(FULL).unwrap();
    let c = file.config();
    assert_eq!(c.cores, 6);
    assert_eq!(c.agents, Agents::Total(40)); // the key wins over the preset
    assert_eq!(c.workers, 5);
    assert_eq!(c.max_workers, Some(8));
    assert_eq!(c.items_per_batch, 12);
    assert_eq!(c.batch_wait, Duration::from_millis(3));
    assert_eq!(c.api_timeout, Duration::from_secs(7));
    assert_eq!(c.item_deadline, Some(Duration::from_secs(90)));
    assert_eq!(c.channel_capacity, 300);
    assert_eq!(c.max_in_flight, Some(900));
    assert_eq!(c.order, Order::Ordered { window: 128 });
    assert_eq!(c.on_error, OnError::Cancel);
    assert_eq!(c.drain_timeout, Duration::from_secs(2));
    assert_eq!(c.stats_interval, None);
    assert_eq!(c.retry.max_attempts, 6);
    assert_eq!(c.retry.initial_backoff, Duration::from_millis(20));
    assert_eq!(c.retry.max_backoff, Duration::from_secs(3));
    assert!(!c.retry.jitter);

    let night = file.preset("night").unwrap();
    assert_eq!(night.base, Some(Preset::Evening));
    assert_eq!(night.agents, Some(Agents::PerCore(3.5)));
    assert_eq!((night.workers, night.items_per_batch), (Some(4), Some(70)));

    let search = file.api("search").settings();
    assert_eq!(search.max_in_flight, Some(64));
    assert_eq!(search.rate_limit, Some(250.5));
    assert_eq!(search.burst, 8);
    assert_eq!(search.max_pause, Duration::from_secs(90));
    assert_eq!(search.timeout, Some(Duration::from_secs(4)));
    assert_eq!(search.item_deadline, Some(Duration::from_secs(45)));
    let retry = search.retry.unwrap();
    // An API's [retry] changes the pipeline's policy, key by key.
    assert_eq!((retry.max_attempts, retry.jitter), (2, false));
    assert_eq!(retry.max_backoff, Duration::from_secs(3));

    let store = file.api("store").settings();
    assert_eq!(
        (store.burst, store.max_in_flight, store.retry.is_none()),
        (2, None, true)
    );

    let fetch = file.stage("fetch");
    assert_eq!(fetch.agents, Some(Agents::PerCore(2.0)));
    assert_eq!(fetch.items_per_batch, Some(5));
    assert_eq!(fetch.api_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(fetch.item_deadline, Some(Duration::from_secs(20)));
    assert_eq!(fetch.channel_capacity, Some(100));
    let retry = fetch.retry.unwrap();
    assert_eq!(retry.initial_backoff, Duration::from_millis(10));
    assert_eq!(retry.max_attempts, 6);
    let parse_stage = file.stage("parse");
    assert_eq!(parse_stage.workers, Some(3));
    assert_eq!(parse_stage.batch_wait, Some(Duration::from_millis(1)));
    assert!(file.unused().is_empty(), "{:?}", file.unused());
}

/// The settings in effect, written with `to_toml` and read back, are the
/// same settings (durations written as a person would: "1m 30s").
#[test]
fn the_settings_in_effect_round_trip_through_toml() {
    let file = parse(FULL).unwrap();
    let text = file.to_toml();
    assert!(text.contains("item_deadline = \"1m 30s\""), "{text}");
    assert!(text.contains("stats_interval = \"off\""), "{text}");
    let again = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        format!("{:?}", again.config()),
        format!("{:?}", file.config())
    );
    assert_eq!(again.preset("night"), file.preset("night"));
    for api in ["search", "store"] {
        let (a, b) = (again.api_settings(api), file.api_settings(api));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
    for stage in ["fetch", "parse"] {
        let (a, b) = (again.stage(stage), file.stage(stage));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
    assert_eq!(again.to_toml(), text);
}

#[test]
fn the_sample_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gearshift.toml");
    let file = ConfigFile::load_with_env(&path, NO_ENV).unwrap();
    // `preset = "night"`, the sample's own preset.
    assert_eq!(file.config().agents, Agents::PerCore(3.0));
    assert_eq!(file.stage("fetch").agents, Some(Agents::Total(16)));
    assert_eq!(file.api("items").settings().max_in_flight, Some(32));
}
