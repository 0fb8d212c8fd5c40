//! Settings from a TOML file and `GEARSHIFT_*` variables: every key lands
//! where the builders would put it, the settings in effect round-trip
//! through `to_toml`, each bad value is a typed error naming the file (or
//! variable) and the key, a variable wins over the file, unknown keys are
//! refused, and a custom preset works by name, at load and live.
#![cfg(feature = "config-file")]

use std::path::Path;
use std::time::Duration;

use gearshift::config_file::{ConfigFile, ConfigFileError, ConfigFileErrorKind};
use gearshift::{Agents, BuildError, OnError, Order, Pipeline, Preset, StageError};

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

/// What a refused file must say: its path, the key, and the kind.
fn refused(text: &str) -> ConfigFileError {
    let err = match parse(text) {
        Ok(f) => panic!("accepted {text:?}: {f:?}"),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(message.starts_with("test.toml"), "{message}");
    assert!(message.contains(err.key()), "{message}");
    err
}

#[test]
fn each_bad_value_is_a_typed_error_naming_file_and_key() {
    // Values the builders refuse: their own ConfigError, at the file's key.
    let invalid = [
        ("cores = 0", "cores", "cores"),
        ("api_timeout = \"0s\"", "api_timeout", "api_timeout"),
        (
            "drain_timeout = \"10000h\"",
            "drain_timeout",
            "drain_timeout",
        ),
        ("agents = { per_core = -1 }", "agents", "agents_per_core"),
        ("agents = 0", "agents", "agents"),
        ("order = { window = 0 }", "order.window", "order.window"),
        ("workers = 4\nmax_workers = 2", "max_workers", "max_workers"),
        (
            "[retry]\nmax_attempts = 0",
            "retry.max_attempts",
            "retry.max_attempts",
        ),
        (
            "[apis.search]\nrate_limit = -5.0",
            "apis.search.rate_limit",
            "rate_limit",
        ),
        ("[apis.search]\nburst = 0", "apis.search.burst", "burst"),
        (
            "[apis.search.retry]\nmax_backoff = \"1ms\"",
            "apis.search.retry.max_backoff",
            "retry.max_backoff",
        ),
        (
            "[stages.fetch]\nitems_per_batch = 0",
            "stages.fetch.items_per_batch",
            "items_per_batch",
        ),
        (
            "[stages.parse]\nworkers = 100000",
            "stages.parse.workers",
            "workers",
        ),
        (
            "[presets.night]\nitems_per_batch = 0",
            "presets.night.items_per_batch",
            "items_per_batch",
        ),
    ];
    for (text, key, field) in invalid {
        let err = refused(text);
        assert_eq!(err.key(), key, "{text}: {err}");
        let inner = err
            .config_error()
            .unwrap_or_else(|| panic!("{text}: {err}"));
        assert_eq!(inner.field, field, "{text}: {err}");
        assert!(err.to_string().contains(&inner.to_string()), "{err}");
    }
    // Values of the wrong form.
    let bad = [
        ("api_timeout = 30", "api_timeout", "needs a unit"),
        (
            "api_timeout = \"30 parsecs\"",
            "api_timeout",
            "not a duration",
        ),
        ("batch_wait = \"-5ms\"", "batch_wait", "negative"),
        ("item_deadline = true", "item_deadline", "duration"),
        ("agents = 2.5", "agents", "per_core = 2.5"),
        ("agents = \"many\"", "agents", "auto"),
        ("order = \"ordered\"", "order", "window"),
        ("on_error = \"explode\"", "on_error", "explode"),
        ("cores = -1", "cores", "-1"),
        ("preset = \"nigth\"", "preset", "nigth"),
        (
            "[presets.morning]\nworkers = 1",
            "presets.morning",
            "built-in",
        ),
        ("[presets.x]\nbase = \"dusk\"", "presets.x.base", "dusk"),
        (
            "[apis.search]\nmax_pause = 5",
            "apis.search.max_pause",
            "needs a unit",
        ),
    ];
    for (text, key, says) in bad {
        let err = refused(text);
        assert_eq!(err.key(), key, "{text}: {err}");
        assert!(
            matches!(err.kind(), ConfigFileErrorKind::BadValue(_)),
            "{text}: {err:?}"
        );
        assert!(err.to_string().contains(says), "{text}: {err}");
    }
    // Not TOML at all: the line is in the message.
    let err = refused("cores = \n");
    assert!(
        matches!(err.kind(), ConfigFileErrorKind::Syntax(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 1"), "{err}");
    // No file.
    let err = ConfigFile::load_with_env("/nonexistent/gearshift.toml", NO_ENV).unwrap_err();
    assert!(
        matches!(err.kind(), ConfigFileErrorKind::Read(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("/nonexistent/gearshift.toml"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let typos = [
        ("agnets = 4", "agnets"),
        ("[retry]\nmax_attempt = 4", "retry.max_attempt"),
        ("[apis.search]\nrate_limt = 5.0", "apis.search.rate_limt"),
        ("[stages.fetch]\nagent = 4", "stages.fetch.agent"),
        (
            "[presets.night]\nbase = \"evening\"\nagent = 2",
            "presets.night.agent",
        ),
        ("agents = { per_cor = 2 }", "agents.per_cor"),
        ("[pipeline]\ncores = 2", "pipeline"),
    ];
    for (text, key) in typos {
        let err = refused(text);
        assert!(
            matches!(err.kind(), ConfigFileErrorKind::UnknownKey(_)),
            "{text}: {err:?}"
        );
        assert_eq!(err.key(), key, "{text}: {err}");
    }
    // The message lists the keys there are.
    let err = refused("[apis.search]\nrate_limt = 5.0");
    assert!(err.to_string().contains("rate_limit"), "{err}");
    // A variable that names no key is a typo too, and says so.
    let err = ConfigFile::parse("test.toml", "", [("GEARSHIFT_CORSE", "8")]).unwrap_err();
    assert!(
        matches!(err.kind(), ConfigFileErrorKind::UnknownKey(_)),
        "{err:?}"
    );
    assert_eq!(err.env_var(), Some("GEARSHIFT_CORSE"));
    assert!(
        err.to_string()
            .starts_with("GEARSHIFT_CORSE (over test.toml): corse"),
        "{err}"
    );
}

#[test]
fn a_variable_wins_over_the_file() {
    let text = r#"
        cores = 2
        api_timeout = "30s"
        [apis.search]
        rate_limit = 10.0
        [stages.my-stage]
        agents = 4
    "#;
    let env = [
        ("GEARSHIFT_CORES", "3"),
        ("GEARSHIFT_API_TIMEOUT", "5s"),
        ("GEARSHIFT_RETRY__MAX_ATTEMPTS", "7"),
        ("GEARSHIFT_APIS__SEARCH__RATE_LIMIT", "50"),
        ("GEARSHIFT_APIS__STORE__MAX_IN_FLIGHT", "4"),
        ("GEARSHIFT_STAGES__MY_STAGE__AGENTS", "{ per_core = 1.5 }"),
        ("GEARSHIFT_PRESET", "cpu-heavy"),
        ("OTHER_CORES", "99"),
    ];
    let file = ConfigFile::parse("test.toml", text, env).unwrap();
    let c = file.config();
    assert_eq!(c.cores, 3);
    assert_eq!(c.api_timeout, Duration::from_secs(5));
    assert_eq!(c.retry.max_attempts, 7);
    assert_eq!(c.items_per_batch, Preset::CpuHeavy.items_per_batch());
    assert_eq!(file.api("search").settings().rate_limit, Some(50.0));
    assert_eq!(file.api("store").settings().max_in_flight, Some(4));
    assert_eq!(file.stage("my-stage").agents, Some(Agents::PerCore(1.5)));
    // Without the variables, the file's values.
    let plain = parse(text).unwrap();
    assert_eq!(plain.config().cores, 2);
    assert_eq!(plain.api("search").settings().rate_limit, Some(10.0));

    // A bad value from a variable names the variable, the file and the key.
    let err =
        ConfigFile::parse("test.toml", text, [("GEARSHIFT_RETRY__MAX_ATTEMPTS", "0")]).unwrap_err();
    assert_eq!(err.env_var(), Some("GEARSHIFT_RETRY__MAX_ATTEMPTS"));
    assert_eq!(err.key(), "retry.max_attempts");
    assert!(err.config_error().is_some(), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("GEARSHIFT_RETRY__MAX_ATTEMPTS (over test.toml): retry.max_attempts: "),
        "{message}"
    );
    let err =
        ConfigFile::parse("test.toml", text, [("GEARSHIFT_API_TIMEOUT", "soon")]).unwrap_err();
    assert_eq!(err.env_var(), Some("GEARSHIFT_API_TIMEOUT"));
    assert!(
        matches!(err.kind(), ConfigFileErrorKind::BadValue(_)),
        "{err:?}"
    );
    // A variable inside a key that holds a value.
    let err = ConfigFile::parse("test.toml", text, [("GEARSHIFT_CORES__X", "1")]).unwrap_err();
    assert_eq!(err.key(), "cores");
}

#[tokio::test]
async fn a_custom_preset_works_by_name() {
    let text = r#"
        preset = "night"
        cores = 2
        [presets.night]
        base = "cpu-heavy"
        agents = { per_core = 5 }
        workers = 1
        [presets.rush]
        agents = 12
        items_per_batch = 3
    "#;
    let file = parse(text).unwrap();
    // At load, by name: the base's knobs, then the preset's own.
    let c = file.config();
    assert_eq!(c.agents, Agents::PerCore(5.0));
    assert_eq!(c.workers, 1);
    assert_eq!(c.items_per_batch, Preset::CpuHeavy.items_per_batch());
    // From a variable, by name.
    let env = [("GEARSHIFT_PRESET", "rush")];
    let rushed = ConfigFile::parse("test.toml", text, env).unwrap().config();
    assert_eq!(
        (rushed.agents, rushed.items_per_batch),
        (Agents::Total(12), 3)
    );
    // A name the file does not define lists the ones it does.
    let err = parse(&text.replace("preset = \"night\"", "preset = \"nite\"")).unwrap_err();
    assert!(err.to_string().contains("night, rush"), "{err}");

    // Live, by name, on a running pipeline.
    let (tx, rx) = gearshift::async_channel::bounded::<u64>(4);
    let handle = Pipeline::from_channel(rx)
        .config(file.config())
        .io(|x| async move { Ok::<_, StageError>(x) })
        .cpu(|x| x + 1)
        .spawn()
        .unwrap();
    let rush = file.preset("rush").unwrap();
    handle.apply_custom(rush).unwrap();
    let live = handle.config();
    assert_eq!((live.agents, live.items_per_batch), (Agents::Total(12), 3));
    assert_eq!(live.workers, 1, "rush leaves the workers as they were");
    tx.send(1).await.unwrap();
    drop(tx);
    let report = handle.join().await;
    assert_eq!(report.ok, 1);
}

#[tokio::test]
async fn a_file_sets_the_stages_and_budgets_of_a_pipeline() {
    let text = r#"
        cores = 2
        [apis.search]
        max_in_flight = 3
        [stages.fetch]
        agents = 3
        [stages.parse]
        items_per_batch = 4
        [stages.spare]
        workers = 1
    "#;
    let file = parse(text).unwrap();
    let search = file.api("search");
    // One budget per name: a second call is the same budget.
    file.api("search")
        .handle()
        .set_max_in_flight(Some(2))
        .unwrap();
    assert_eq!(search.settings().max_in_flight, Some(2));

    let handle = Pipeline::from_iter(0..50u64)
        .config(file.config())
        .io(|x| async move { Ok::<_, StageError>(x) })
        .named("fetch")
        .api(&search)
        .stage_settings(file.stage("fetch"))
        .cpu(|x| x * 2)
        .named("parse")
        .stage_settings(file.stage("parse"))
        .spawn()
        .unwrap();
    assert_eq!(
        handle.stage("fetch").unwrap().settings().agents,
        Some(Agents::Total(3))
    );
    assert_eq!(
        handle.stage("parse").unwrap().settings().items_per_batch,
        Some(4)
    );
    assert_eq!(handle.join().await.ok, 50);
    assert_eq!(file.unused(), ["stages.spare"]);

    // A stage's settings on a stage of the other kind are refused at spawn.
    let err = Pipeline::from_iter(0..1u64)
        .io(|x| async move { Ok::<_, StageError>(x) })
        .stage_settings(file.stage("spare"))
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::StageSetting {
                setting: "workers",
                ..
            }
        ),
        "{err}"
    );
}

/// `load` reads the process's `GEARSHIFT_*` variables. The variables of a
/// test process are shared by every test in it, so the test runs itself
/// again as a child with the variables set, and the child does the check.
#[test]
fn load_reads_the_process_environment() {
    const CHILD: &str = "CONFIG_FILE_TEST_PATH";
    if let Some(path) = std::env::var_os(CHILD) {
        let file = ConfigFile::load(path).unwrap();
        assert_eq!(file.config().cores, 3);
        assert_eq!(file.config().api_timeout, Duration::from_secs(5));
        return;
    }
    let dir = std::env::temp_dir().join(format!("gearshift-config-{}", std::process::id()));
    let path = dir.join("gearshift.toml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&path, "cores = 2\napi_timeout = \"30s\"\n").unwrap();
    let run = |vars: &[(&str, &str)]| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "load_reads_the_process_environment"])
            .env(CHILD, &path)
            .envs(vars.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[("GEARSHIFT_CORES", "3"), ("GEARSHIFT_API_TIMEOUT", "5s")]);
    let output = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{output}");
    assert!(
        output.contains("1 passed"),
        "the child ran no test: {output}"
    );
    // Without the variables, the child reads the file's values and fails.
    let out = run(&[]);
    assert!(!out.status.success());
    std::fs::remove_dir_all(&dir).ok();
}
