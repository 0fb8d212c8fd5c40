//! A config file refused: each bad value is a typed error naming the file
//! (or the variable) and the key, and unknown keys are refused.
#![cfg(feature = "config-file")]

use gearshift::config_file::{ConfigFile, ConfigFileError, ConfigFileErrorKind};

const NO_ENV: [(&str, &str); 0] = [];

fn parse(text: &str) -> Result<ConfigFile, ConfigFileError> {
    ConfigFile::parse("test.toml", text, NO_ENV)
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
