//! The default controller: a budget whose concurrency nothing fixes runs
//! `tuner::default_for(cores)`, starting from 2 agents per core; a preset, a
//! schedule, fixed agents or a fixed limit turn it off for that budget, and
//! a user's tuner is kept. These tests check which controller runs and when
//! it is held, never what it decides (the control law is not theirs).

mod common;
mod support;

use std::time::Duration;

use common::Captured;
use gearshift::stats::ApiReport;
use gearshift::tuner::{self, Decision, Tuner, Window};
use gearshift::{Agents, Api, Config, Pipeline, PipelineHandle, Preset, Schedule, StageError};
use support::wait_until;

const CORES: usize = 2;

/// A user's tuner that never changes anything.
struct Mine;

impl Tuner for Mine {
    fn name(&self) -> &str {
        "mine"
    }

    fn decide(&mut self, _: &Window) -> Decision {
        Decision::hold("mine holds")
    }
}

/// A pipeline fed from a channel kept open in `keep`, so it runs until
/// aborted: one IO stage named `fetch`.
fn idle(keep: &mut Vec<async_channel::Sender<u64>>) -> Pipeline<u64> {
    let (tx, rx) = async_channel::bounded(1);
    keep.push(tx);
    Pipeline::from_channel(rx)
        .configure(|c| *c = c.clone().with_cores(CORES))
        .io(|x| async move { Ok::<_, StageError>(x) })
        .named("fetch")
}

fn api(handle: &PipelineHandle, name: &str) -> ApiReport {
    handle.api(name).unwrap().snapshot()
}

fn default_name() -> String {
    tuner::default_for(CORES).name().to_owned()
}

async fn stop(handle: PipelineHandle) {
    handle.abort();
    handle.join().await;
}

#[test]
fn agents_left_unset_start_from_the_rule_of_thumb() {
    let config = Config::default().with_cores(3);
    assert_eq!(config.agents, Agents::Auto);
    assert_eq!(config.total_agents(), 6);
    assert!(config.validate().is_ok());
    assert_eq!(Preset::Mixed.config().agents, Agents::PerCore(2.0));
}

#[tokio::test(start_paused = true)]
async fn a_budget_nothing_fixes_runs_the_default_controller() {
    let captured = Captured::default();
    let _log = captured.set_default();
    let search = Api::new("search");
    let mut keep = Vec::new();
    let handle = idle(&mut keep)
        .io(|x| async move { Ok::<_, StageError>(x) })
        .named("enrich")
        .api(&search)
        .spawn()
        .unwrap();
    // An implicit budget (named after its stage) and a named one alike.
    for name in ["fetch", "search"] {
        let r = api(&handle, name);
        assert_eq!(r.tuner, Some(default_name()), "{name}");
        assert!(r.default_tuner, "{name}");
        assert!(!handle.api(name).unwrap().controller_held(), "{name}");
    }
    let report = handle.snapshot();
    assert!(report.apis.iter().all(|a| a.default_tuner), "{report:?}");
    // Starting from 2 agents per core.
    wait_until(Duration::from_secs(1), "the agents start", || {
        handle.snapshot().stages[0].concurrency > 0
    })
    .await;
    assert_eq!(handle.config().total_agents(), 2 * CORES);
    let logs = captured.text();
    assert!(
        logs.contains("budgets under the default controller")
            && logs.contains(r#"default_controller=["fetch", "search"]"#),
        "{logs}"
    );
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn anything_that_fixes_the_concurrency_turns_it_off_and_says_why() {
    let captured = Captured::default();
    let _log = captured.set_default();
    let mut keep = Vec::new();
    // The control: the same pipeline with nothing set.
    let handle = idle(&mut keep).spawn().unwrap();
    assert!(handle.snapshot().apis[0].default_tuner);
    stop(handle).await;
    let cases: Vec<(&str, Pipeline<u64>, Option<&str>)> = vec![
        (
            "stage agents",
            idle(&mut keep).agents(Agents::Total(3)),
            Some("stage fetch sets its agents"),
        ),
        (
            "config agents",
            idle(&mut keep).configure(|c| c.agents = Agents::PerCore(2.0)),
            Some("the pipeline's agents are set"),
        ),
        (
            "preset",
            idle(&mut keep).preset(Preset::ApiHeavy),
            Some("the pipeline's agents are set"),
        ),
        (
            "config from a preset",
            idle(&mut keep).config(Preset::Mixed.config().with_cores(CORES)),
            None,
        ),
        (
            "schedule",
            idle(&mut keep).schedule(Schedule::after([(
                Duration::from_secs(60),
                Preset::Evening,
            )])),
            Some("a schedule sets the ratio"),
        ),
        (
            "api limit",
            idle(&mut keep).api(&Api::new("limited").max_in_flight(4)),
            Some("max_in_flight is set"),
        ),
    ];
    for (case, pipeline, why) in cases {
        let handle = pipeline.spawn().unwrap();
        let r = &handle.snapshot().apis[0];
        assert_eq!(
            (r.tuner.as_deref(), r.default_tuner),
            (None, false),
            "{case}"
        );
        if let Some(why) = why {
            assert!(captured.text().contains(why), "{case}: {}", captured.text());
        }
        stop(handle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_tuner_of_the_user_s_is_kept_whatever_else_is_set() {
    let mut keep = Vec::new();
    for fixed in [false, true] {
        let mut mine = Api::new("mine").tuner(Mine);
        if fixed {
            mine = mine.max_in_flight(4);
        }
        let handle = idle(&mut keep)
            .api(&mine)
            .io(|x| async move { Ok::<_, StageError>(x) })
            .named("store")
            .spawn()
            .unwrap();
        let r = api(&handle, "mine");
        assert_eq!(r.tuner.as_deref(), Some("mine"), "fixed: {fixed}");
        assert!(!r.default_tuner, "fixed: {fixed}");
        assert!(
            api(&handle, "store").default_tuner,
            "the other budget's own"
        );
        stop(handle).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_stage_left_on_auto_keeps_its_budget_automatic_under_a_preset() {
    let mut keep = Vec::new();
    let handle = idle(&mut keep)
        .agents(Agents::Auto)
        .io(|x| async move { Ok::<_, StageError>(x) })
        .named("store")
        .preset(Preset::Evening)
        .spawn()
        .unwrap();
    assert!(api(&handle, "fetch").default_tuner);
    assert_eq!(api(&handle, "store").tuner, None);
    // A live preset fixes the stages that follow the defaults, not `fetch`.
    handle.apply(Preset::Morning).unwrap();
    assert!(!handle.api("fetch").unwrap().controller_held());
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn one_stage_with_fixed_agents_fixes_a_budget_it_shares() {
    let shared = Api::new("shared");
    let mut keep = Vec::new();
    let handle = idle(&mut keep)
        .api(&shared)
        .io(|x| async move { Ok::<_, StageError>(x) })
        .named("enrich")
        .api(&shared)
        .agents(Agents::Total(2))
        .io(|x| async move { Ok::<_, StageError>(x) })
        .named("store")
        .spawn()
        .unwrap();
    assert_eq!(api(&handle, "shared").tuner, None);
    assert!(
        api(&handle, "store").default_tuner,
        "other budgets stay automatic"
    );
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_preset_applied_live_holds_every_default_controller() {
    let captured = Captured::default();
    let _log = captured.set_default();
    let mut keep = Vec::new();
    let handle = idle(&mut keep)
        .io(|x| async move { Ok::<_, StageError>(x) })
        .named("store")
        .spawn()
        .unwrap();
    handle.apply(Preset::Evening).unwrap();
    for name in ["fetch", "store"] {
        let api = handle.api(name).unwrap();
        assert!(api.controller_held(), "{name}");
        // Held, not removed: the report still names it.
        assert!(api.snapshot().default_tuner, "{name}");
    }
    assert!(
        captured
            .text()
            .contains("a fixed setting turns the default controller off"),
        "{}",
        captured.text()
    );
    // Resuming the pipeline's automatic sources does not undo the preset's
    // hold on the budgets; resuming the budget's controller does.
    handle.resume_automatic();
    assert!(handle.api("fetch").unwrap().controller_held());
    handle.api("fetch").unwrap().resume_controller();
    assert!(!handle.api("fetch").unwrap().controller_held());
    assert!(handle.api("store").unwrap().controller_held());
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn fixed_agents_set_live_hold_the_default_controller() {
    let mut keep = Vec::new();
    // Through the pipeline's defaults, then through one stage.
    let handle = idle(&mut keep).spawn().unwrap();
    handle.set_agents(3).unwrap();
    assert!(handle.api("fetch").unwrap().controller_held());
    stop(handle).await;

    let handle = idle(&mut keep).spawn().unwrap();
    handle.set_agents_per_core(1.5).unwrap();
    assert!(handle.api("fetch").unwrap().controller_held());
    stop(handle).await;

    let handle = idle(&mut keep).spawn().unwrap();
    handle.stage("fetch").unwrap().set_agents(3).unwrap();
    assert!(handle.api("fetch").unwrap().controller_held());
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_limit_set_live_holds_it_and_keeps_it_off_for_the_next_run() {
    let search = Api::new("search");
    let mut keep = Vec::new();
    let handle = idle(&mut keep).api(&search).spawn().unwrap();
    assert!(api(&handle, "search").default_tuner);
    search.handle().set_max_in_flight(Some(5)).unwrap();
    assert!(search.handle().controller_held());
    stop(handle).await;

    // The user's limit fixes the budget for a pipeline spawned later.
    let handle = idle(&mut keep).api(&search).spawn().unwrap();
    let r = api(&handle, "search");
    assert_eq!((r.tuner, r.max_in_flight), (None, Some(5)));
    stop(handle).await;

    // Lifting it makes the budget automatic again from the next spawn.
    search.handle().set_max_in_flight(None).unwrap();
    let handle = idle(&mut keep).api(&search).spawn().unwrap();
    assert!(api(&handle, "search").default_tuner);
    assert!(!search.handle().controller_held());
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_budget_reused_by_a_pipeline_that_fixes_it_loses_the_default_controller() {
    let search = Api::new("search");
    let mut keep = Vec::new();
    let handle = idle(&mut keep).api(&search).spawn().unwrap();
    assert!(api(&handle, "search").default_tuner);
    stop(handle).await;

    let handle = idle(&mut keep)
        .api(&search)
        .agents(Agents::Total(2))
        .spawn()
        .unwrap();
    let r = api(&handle, "search");
    assert_eq!(
        (r.tuner, r.default_tuner, r.max_in_flight),
        (None, false, None)
    );
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_hold_ends_with_the_pipeline_that_fixed_the_budget() {
    let search = Api::new("search");
    let mut keep = Vec::new();
    let handle = idle(&mut keep).api(&search).spawn().unwrap();
    handle.apply(Preset::Evening).unwrap();
    assert!(search.handle().controller_held());
    stop(handle).await;

    // The next pipeline fixes nothing: the default controller runs again.
    let handle = idle(&mut keep).api(&search).spawn().unwrap();
    assert!(api(&handle, "search").default_tuner);
    assert!(!search.handle().controller_held());
    stop(handle).await;
}
