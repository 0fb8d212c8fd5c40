//! API budgets: stages that name the same [`Api`] share its limit on calls
//! in flight (counted by a real HTTP server on 127.0.0.1) under resizes of
//! the budget and of each stage, and the precedence rule between a budget's
//! controller, manual changes and presets.

mod common;
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use gearshift::tuner::{Decision, Tuner, Window};
use gearshift::{Agents, Api, Config, Pipeline, PipelineHandle, Preset, Schedule, StageError};
use rand::{Rng, SeedableRng};
use support::{TestServer, check_ledger, fetch};

/// Waits until `cond` holds, failing after `within`.
async fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stages_sharing_one_budget_never_pass_its_limit_under_resizes() {
    let server = TestServer::start(Duration::from_millis(3)).await;
    let client = reqwest::Client::new();
    let (c1, c2) = (client.clone(), client);
    let (u1, u2) = (server.addr, server.addr);
    let shared = Api::new("shared").max_in_flight(6);
    let n = 1500u64;
    let (handle, outcomes) = Pipeline::from_iter(0..n)
        .io(move |id: u64| {
            let (client, url) = (c1.clone(), format!("http://{u1}/item/{id}"));
            async move { fetch(&client, url).await }
        })
        .named("fetch")
        .api(&shared)
        .agents(Agents::Total(8))
        .cpu(|body: String| body.trim_start_matches("item-").parse::<u64>().unwrap())
        .io(move |id: u64| {
            let (client, url) = (c2.clone(), format!("http://{u2}/item/{id}"));
            async move { fetch(&client, url).await }
        })
        .named("enrich")
        .api(&shared)
        .agents(Agents::Total(8))
        .config(Config::default().with_cores(2))
        .spawn_stream()
        .unwrap();
    // 16 agents on two stages, one budget of at most 6: resized at random
    // between 1 and 6, with each stage's agents between 1 and 12.
    let control = handle.clone();
    let resizer = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let api = control.api("shared").unwrap();
        for _ in 0..300 {
            match rng.random_range(0..3) {
                0 => api
                    .set_max_in_flight(Some(rng.random_range(1..=6)))
                    .unwrap(),
                1 => control
                    .stage("fetch")
                    .unwrap()
                    .set_agents(rng.random_range(1..=12))
                    .unwrap(),
                _ => control
                    .stage("enrich")
                    .unwrap()
                    .set_agents(rng.random_range(1..=12))
                    .unwrap(),
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        api.set_max_in_flight(Some(6)).unwrap();
    });
    let outcomes: Vec<_> = futures::StreamExt::collect(outcomes).await;
    resizer.await.unwrap();
    let report = handle.join().await;
    let (ok, _, _) = check_ledger(n, &outcomes, &report);
    assert_eq!(ok, n);
    let peak = server.state.max_in_flight.load(Ordering::Relaxed);
    assert!(
        peak <= 6,
        "two stages drew {peak} calls at once from a budget of at most 6"
    );
    assert!(
        peak >= 4,
        "16 agents should fill a budget of 6: peak {peak}"
    );
    assert_eq!(server.state.requests.load(Ordering::Relaxed) as u64, 2 * n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shrunk_budget_holds_its_new_limit_once_calls_in_flight_return() {
    let server = TestServer::start(Duration::from_millis(3)).await;
    let client = reqwest::Client::new();
    let base = server.addr;
    let api = Api::new("items").max_in_flight(12);
    let handle = Pipeline::from_iter(0..u64::MAX)
        .io(move |id: u64| {
            let (client, url) = (client.clone(), format!("http://{base}/item/{id}"));
            async move { fetch(&client, url).await }
        })
        .api(&api)
        .agents(Agents::Total(16))
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "the budget is full", || {
        server.state.in_flight.load(Ordering::Relaxed) >= 10
    })
    .await;
    api.handle().set_max_in_flight(Some(3)).unwrap();
    // Calls in flight finish (the budget's permits in use fall to 3, and
    // the server has answered them); then the server never sees more than 3.
    wait_until(Duration::from_secs(10), "the calls beyond 3 return", || {
        handle.snapshot().stages[0].permits_in_use <= 3
            && server.state.in_flight.load(Ordering::Relaxed) <= 3
    })
    .await;
    server.state.max_in_flight.store(0, Ordering::Relaxed);
    let before = server.state.requests.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(10), "200 more calls", || {
        server.state.requests.load(Ordering::Relaxed) >= before + 200
    })
    .await;
    let peak = server.state.max_in_flight.load(Ordering::Relaxed);
    assert!(peak <= 3, "peak {peak} after shrinking the budget to 3");
    handle.abort();
    handle.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelines_in_one_process_share_one_budget() {
    let server = TestServer::start(Duration::from_millis(3)).await;
    let shared = Api::new("shared").max_in_flight(5);
    let run = |offset: u64| {
        let client = reqwest::Client::new();
        let base = server.addr;
        Pipeline::from_iter(offset..offset + 400)
            .io(move |id: u64| {
                let (client, url) = (client.clone(), format!("http://{base}/item/{id}"));
                async move { fetch(&client, url).await }
            })
            .api(&shared)
            .agents(Agents::Total(8))
            .run()
    };
    let (a, b) = tokio::join!(run(0), run(1000));
    assert_eq!((a.unwrap().ok, b.unwrap().ok), (400, 400));
    let peak = server.state.max_in_flight.load(Ordering::Relaxed);
    assert!(
        peak <= 5,
        "16 agents in two pipelines drew {peak} calls from a budget of 5"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_seen_by_one_stage_pauses_every_stage_on_the_budget() {
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;
    let throttled_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let second_calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (mark, calls) = (Arc::clone(&throttled_at), Arc::clone(&second_calls));
    let shared = Api::new("host");
    let report = Pipeline::from_iter(0..200u64)
        .io(move |id: u64| {
            let mark = Arc::clone(&mark);
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let mut at = mark.lock().unwrap();
                if id == 50 && at.is_none() {
                    *at = Some(Instant::now());
                    return Err(StageError::rate_limited(Some(Duration::from_secs(1))));
                }
                Ok(id)
            }
        })
        .api(&shared)
        .agents(Agents::Total(4))
        .io(move |id: u64| {
            calls.lock().unwrap().push(Instant::now());
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, StageError>(id)
            }
        })
        .api(&shared)
        .agents(Agents::Total(4))
        .run()
        .await
        .unwrap();
    assert_eq!(report.ok, 200);
    let at = throttled_at.lock().unwrap().expect("the 429 was answered");
    let inside: Vec<_> = second_calls
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t > at && **t < at + Duration::from_secs(1))
        .map(|t| *t - at)
        .collect();
    assert!(
        inside.is_empty(),
        "the other stage called the API inside the pause: {inside:?}"
    );
}

/// A controller that always asks for `n` calls in flight and `n` agents.
struct Wants(usize);

impl Tuner for Wants {
    fn name(&self) -> &str {
        "wants"
    }
    fn window(&self) -> Duration {
        Duration::from_millis(100)
    }
    fn decide(&mut self, _: &Window) -> Decision {
        Decision {
            agents: Some(self.0),
            api_permits: Some(self.0),
            workers: None,
            reason: "test".into(),
        }
    }
}

/// A pipeline that never ends (a channel nobody closes) whose IO stage
/// draws on `api`.
fn endless(keep: &mut Vec<gearshift::async_channel::Sender<u64>>, api: &Api) -> Pipeline<u64> {
    let (tx, rx) = gearshift::async_channel::bounded(1);
    keep.push(tx);
    Pipeline::from_channel(rx)
        .io(|x| async move { Ok::<_, StageError>(x) })
        .named("fetch")
        .api(api)
        .configure(|c| *c = c.clone().with_cores(2))
}

fn agents_of(handle: &PipelineHandle) -> usize {
    handle.snapshot().stages[0].concurrency_target
}

#[tokio::test(start_paused = true)]
async fn a_manual_change_to_a_budget_holds_its_controller_until_resumed() {
    let captured = common::Captured::default();
    let _log = captured.set_default();
    let mut keep = Vec::new();
    let api = Api::new("search").max_in_flight(9).tuner(Wants(5));
    let handle = endless(&mut keep, &api).spawn().unwrap();
    let search = handle.api("search").unwrap();
    // The controller acts: 5 calls in flight, 5 agents.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(search.settings().max_in_flight, Some(5));
    assert_eq!(agents_of(&handle), 5);

    // By hand: the controller holds off, many windows long.
    search.set_max_in_flight(Some(2)).unwrap();
    assert!(search.controller_held());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(search.settings().max_in_flight, Some(2));
    assert!(
        captured
            .text()
            .contains("manual change overrides the controller: held until resume_controller()"),
        "{}",
        captured.text()
    );

    // A stage's own agents, by hand, hold it off too, and win over its choice.
    search.resume_controller();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(search.settings().max_in_flight, Some(5));
    handle.stage("fetch").unwrap().set_agents(3).unwrap();
    assert!(search.controller_held());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(agents_of(&handle), 3);
    handle.abort();
    handle.join().await;
}

#[tokio::test(start_paused = true)]
async fn a_stages_own_setting_wins_over_presets_and_a_preset_over_the_controller() {
    let captured = common::Captured::default();
    let _log = captured.set_default();
    let mut keep = Vec::new();
    // Stage "fetch" follows the defaults; stage "own" has agents of its own.
    let (tx, rx) = gearshift::async_channel::bounded(1);
    keep.push(tx);
    let handle = Pipeline::from_channel(rx)
        .io(|x: u64| async move { Ok::<_, StageError>(x) })
        .named("fetch")
        .api(&Api::new("search").tuner(Wants(7)))
        .io(|x: u64| async move { Ok::<_, StageError>(x) })
        .named("own")
        .agents(Agents::Total(3))
        .configure(|c| *c = c.clone().with_cores(2))
        .schedule(Schedule::after([
            (Duration::ZERO, Preset::Morning),
            (Duration::from_secs(1), Preset::Evening),
        ]))
        .spawn()
        .unwrap();
    let agents = |i: usize| handle.snapshot().stages[i].concurrency_target;
    // The controller's choice wins over the schedule's first preset.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((agents(0), agents(1)), (7, 3));
    // The switch at 1 s replaces the controller's choice (the latest change
    // wins, and says so); the stage's own setting stays.
    tokio::time::sleep(Duration::from_millis(560)).await;
    let evening = Preset::Evening.agents_per_core() as usize * 2;
    assert_eq!(agents(1), 3, "a stage's own setting wins over a preset");
    assert!(
        agents(0) == evening || agents(0) == 7,
        "the preset, or the controller again after it: {}",
        agents(0)
    );
    assert!(
        captured
            .text()
            .contains("preset replaces the ratio the controllers chose"),
        "{}",
        captured.text()
    );
    handle.abort();
    handle.join().await;
}

#[tokio::test(start_paused = true)]
async fn a_tuner_given_live_is_held_off_by_a_manual_change_too() {
    let mut keep = Vec::new();
    let api = Api::new("search");
    let handle = endless(&mut keep, &api).spawn().unwrap();
    handle.api("search").unwrap().tune(Wants(5));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(agents_of(&handle), 5, "the tuner given live acts");
    handle.set_agents(2).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(agents_of(&handle), 2, "a manual change holds it off");
    handle.resume_automatic();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(agents_of(&handle), 5);
    handle.abort();
    handle.join().await;
}
