//! `GEARSHIFT_*` variables over a config file: a variable wins, a bad one
//! names itself, and `load` reads the process's own.
#![cfg(feature = "config-file")]

use std::time::Duration;

use gearshift::config_file::{ConfigFile, ConfigFileError, ConfigFileErrorKind};
use gearshift::{Agents, Preset};

const NO_ENV: [(&str, &str); 0] = [];

fn parse(text: &str) -> Result<ConfigFile, ConfigFileError> {
    ConfigFile::parse("test.toml", text, NO_ENV)
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
