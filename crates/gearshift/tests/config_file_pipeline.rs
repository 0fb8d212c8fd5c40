//! A config file driving a pipeline: a custom preset by name (at load,
//! from a variable, live), and the stages and budgets it sets.
#![cfg(feature = "config-file")]

use gearshift::config_file::{ConfigFile, ConfigFileError};
use gearshift::{Agents, BuildError, Pipeline, Preset, StageError};

const NO_ENV: [(&str, &str); 0] = [];

fn parse(text: &str) -> Result<ConfigFile, ConfigFileError> {
    ConfigFile::parse("test.toml", text, NO_ENV)
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
