//! The edges of the public surface (issue 20): every output combination the
//! builder accepts runs to the end, concurrent handle changes all hold,
//! `run_blocking` inside a runtime is a typed error, the types and limits a
//! user must name are exported, and one source of ratio changes never
//! silently undoes another.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use gearshift::{
    Agents, Api, BuildError, Config, Decision, ErrorKind, MAX_AGENTS, MAX_CAPACITY, MAX_DURATION,
    Outcome, Pipeline, PipelineHandle, Preset, Schedule, ScheduleError, StageError, ToCaller,
    ToSink, Tuner, Window, async_channel,
};

use common::Captured;

const N: u64 = 20;

/// Fails every fifth item, so that failures take the dead-letter path.
fn stages(items: u64) -> Pipeline<u64> {
    Pipeline::from_iter(0..items)
        .io(|x| async move { Ok::<_, StageError>(x) })
        .try_cpu(|x: u64| {
            if x % 5 == 0 {
                Err(StageError::msg(ErrorKind::BadPayload, "bad"))
            } else {
                Ok(x)
            }
        })
        .configure(|c| *c = c.clone().with_cores(2))
}

fn counter() -> (Arc<AtomicU64>, Arc<AtomicU64>) {
    let c = Arc::new(AtomicU64::new(0));
    (Arc::clone(&c), c)
}

// ---- Defect 3: output combinations ---------------------------------------
// `.sink(..).collect()`, `.sink(..).spawn_stream()` and `.sink(..).cpu(..)`
// no longer compile (see the `compile_fail` examples on `Pipeline::sink`);
// everything that does compile runs to the end with every item accounted for.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_combination_accounts_for_every_item() {
    let (outcomes, report) = stages(N).collect().await.unwrap();
    assert_eq!((outcomes.len() as u64, report.outcomes()), (N, N));

    let (handle, stream) = stages(N).spawn_stream().unwrap();
    assert_eq!(stream.count().await as u64, N);
    assert_eq!(handle.join().await.outcomes(), N);

    assert_eq!(stages(N).spawn().unwrap().join().await.outcomes(), N);
    assert_eq!(stages(N).run().await.unwrap().outcomes(), N);

    let (seen, s) = counter();
    let report = stages(N)
        .sink(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .run()
        .await
        .unwrap();
    assert_eq!((seen.load(Ordering::SeqCst), report.outcomes()), (N, N));

    let (seen, s) = counter();
    let report = stages(N)
        .sink(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .spawn()
        .unwrap()
        .join()
        .await;
    assert_eq!((seen.load(Ordering::SeqCst), report.outcomes()), (N, N));

    // Settings after the sink still apply; failures go to the dead letter.
    let ((oks, o), (dead, d)) = (counter(), counter());
    let sunk: Pipeline<u64, ToSink> = stages(N).sink(move |outcome: Outcome<u64>| {
        assert!(outcome.is_ok(), "failures go to the dead letter");
        o.fetch_add(1, Ordering::SeqCst);
    });
    let report = sunk
        .dead_letter(move |_| {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .preset(Preset::Evening)
        .named("last")
        .configure(|c| c.max_in_flight = Some(4))
        .run()
        .await
        .unwrap();
    assert_eq!(oks.load(Ordering::SeqCst), N - N / 5);
    assert_eq!(dead.load(Ordering::SeqCst), N / 5);
    assert_eq!(report.outcomes(), N);

    let (dead, d) = counter();
    let open: Pipeline<u64, ToCaller> = stages(N).dead_letter(move |_| {
        d.fetch_add(1, Ordering::SeqCst);
    });
    let (outcomes, report) = open.collect().await.unwrap();
    assert_eq!(outcomes.len() as u64 + dead.load(Ordering::SeqCst), N);
    assert_eq!(report.outcomes(), N);
}

#[test]
fn a_sink_runs_with_run_blocking() {
    let (seen, s) = counter();
    let report = stages(N)
        .sink(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .run_blocking()
        .unwrap();
    assert_eq!((seen.load(Ordering::SeqCst), report.outcomes()), (N, N));
}

// ---- Defect 4: concurrent changes ------------------------------------------

/// Each thread owns one field and writes it `ROUNDS` times; before each
/// write it reads the field back, which must still hold its last write.
#[test]
fn concurrent_changes_to_different_fields_all_hold() {
    const ROUNDS: usize = 20_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _in_rt = rt.enter();
    let (tx, rx) = async_channel::bounded::<u64>(1);
    let handle = Pipeline::from_channel(rx)
        .cpu(|x| x)
        .configure(|c| {
            *c = c.clone().with_cores(2);
            c.max_workers = Some(4);
            c.max_in_flight = Some(8);
        })
        .spawn()
        .unwrap();

    type Set = fn(&PipelineHandle, usize);
    type Get = fn(&Config) -> usize;
    let fields: [(&str, Set, Get); 6] = [
        (
            "items_per_batch",
            |h, v| h.set_items_per_batch(v).unwrap(),
            |c| c.items_per_batch,
        ),
        (
            "workers",
            |h, v| h.set_workers(v % 4 + 1).unwrap(),
            |c| c.workers - 1,
        ),
        (
            "batch_wait",
            |h, v| h.set_batch_wait(Duration::from_micros(v as u64)).unwrap(),
            |c| c.batch_wait.as_micros() as usize,
        ),
        (
            "api_timeout",
            |h, v| h.set_api_timeout(Duration::from_micros(v as u64)).unwrap(),
            |c| c.api_timeout.as_micros() as usize,
        ),
        (
            "drain_timeout",
            |h, v| {
                h.set_drain_timeout(Duration::from_micros(v as u64))
                    .unwrap()
            },
            |c| c.drain_timeout.as_micros() as usize,
        ),
        (
            "max_in_flight",
            |h, v| h.set_max_in_flight(v).unwrap(),
            |c| c.max_in_flight.unwrap_or(0),
        ),
    ];
    // What each field reads back as after writing `v`.
    let read_as = |name: &str, v: usize| if name == "workers" { v % 4 } else { v };
    std::thread::scope(|scope| {
        for (name, set, get) in fields {
            let handle = handle.clone();
            scope.spawn(move || {
                let mut undone = 0;
                for v in 1..=ROUNDS {
                    if v > 1 && get(&handle.config()) != read_as(name, v - 1) {
                        undone += 1;
                    }
                    set(&handle, v);
                }
                assert_eq!(undone, 0, "{name}: writes undone by other threads");
                assert_eq!(get(&handle.config()), read_as(name, ROUNDS), "{name}");
            });
        }
    });
    let config = handle.config();
    for (name, _, get) in fields {
        assert_eq!(get(&config), read_as(name, ROUNDS), "{name} after join");
    }
    drop(tx);
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), handle.join())
            .await
            .expect("the run ends once its channel is closed");
    });
}

// ---- Defect 5: run_blocking inside a runtime -------------------------------

fn refuse_run_blocking() {
    let err = Pipeline::from_iter(0..3u64)
        .cpu(|x| x)
        .run_blocking()
        .unwrap_err();
    assert!(matches!(err, BuildError::InsideRuntime), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("run_blocking") && text.contains("run()"),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn run_blocking_in_a_current_thread_runtime_says_to_await_run() {
    refuse_run_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_blocking_in_a_multi_thread_runtime_says_to_await_run() {
    refuse_run_blocking();
    // The advice works.
    let report = Pipeline::from_iter(0..3u64).cpu(|x| x).run().await.unwrap();
    assert_eq!(report.ok, 3);
}

// ---- Defect 8: names a user must write -------------------------------------

/// Compiles only if every type here is exported.
fn schedule_or_error(offset: i32) -> Result<Schedule, ScheduleError> {
    Schedule::time_of_day(offset, [(6, Preset::Morning)])
}

fn channel_pipeline(rx: async_channel::Receiver<u64>) -> Pipeline<u64> {
    Pipeline::from_channel(rx).cpu(|x| x + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_types_and_limits_a_user_names_are_exported() {
    assert!(schedule_or_error(0).is_ok());
    let err: ScheduleError = schedule_or_error(10_000).unwrap_err();
    assert!(err.to_string().contains("utc_offset_minutes"), "{err}");

    let (tx, rx) = async_channel::bounded(4);
    let handle = channel_pipeline(rx).spawn().unwrap();
    for i in 0..10 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    assert_eq!(handle.join().await.ok, 10);

    // The limits quoted in error messages are the exported constants.
    let c = Config {
        agents: Agents::PerCore(MAX_AGENTS as f64 * 2.0),
        ..Config::default()
    };
    let e = c.validate().unwrap_err();
    assert!(e.to_string().contains(&MAX_AGENTS.to_string()), "{e}");
    let c = Config {
        items_per_batch: MAX_CAPACITY + 1,
        ..Config::default()
    };
    assert_eq!(c.validate().unwrap_err().field, "items_per_batch");
    let c = Config {
        api_timeout: MAX_DURATION + Duration::from_secs(1),
        ..Config::default()
    };
    assert_eq!(c.validate().unwrap_err().field, "api_timeout");
}

// ---- Defect 14: precedence -------------------------------------------------

/// Waits (in tokio time) until `cond` holds on the handle's configuration.
async fn wait_for_config(
    handle: &PipelineHandle,
    what: &str,
    cond: impl Fn(&Config) -> bool,
) -> Config {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = handle.config();
        if cond(&c) {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An idle pipeline with an IO stage: fed by a channel that never sends
/// until its sender, kept in `keep`, is dropped.
/// The agents the first stage runs now (its own setting, its controller's
/// choice, or the default).
fn stage_agents(handle: &PipelineHandle) -> usize {
    handle.snapshot().stages[0].concurrency_target
}

async fn wait_for_agents(handle: &PipelineHandle, what: &str, agents: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stage_agents(handle) != agents {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {} agents",
            stage_agents(handle)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn idle(keep: &mut Vec<async_channel::Sender<u64>>) -> Pipeline<u64> {
    let (tx, rx) = async_channel::bounded(1);
    keep.push(tx);
    Pipeline::from_channel(rx).io(|x| async move { Ok::<_, StageError>(x) })
}

#[tokio::test(flavor = "current_thread")]
async fn a_preset_survives_a_later_config_and_says_so() {
    let captured = Captured::default();
    let _log = captured.set_default();
    let base = Config::default().with_cores(4);
    let mut keep = Vec::new();
    let first = idle(&mut keep)
        .preset(Preset::Morning)
        .config(base.clone())
        .spawn()
        .unwrap();
    let second = idle(&mut keep)
        .config(base.clone())
        .preset(Preset::Morning)
        .spawn()
        .unwrap();
    let want = Preset::Morning.config();
    for handle in [&first, &second] {
        let c = handle.config();
        assert_eq!(c.agents, want.agents);
        assert_eq!(c.items_per_batch, want.items_per_batch);
        assert_eq!(c.workers, Preset::Morning.workers(4));
        assert_eq!(c.cores, 4, "the rest of the config holds");
    }
    let logs = captured.text();
    assert!(
        logs.contains("the preset given earlier overrides the ratio"),
        "{logs}"
    );

    // A configure(..) edit replaced by a later config(..) is said, too.
    let replaced = "config(..) replaces the whole configuration";
    assert!(!logs.contains(replaced), "{logs}");
    let _ = idle(&mut keep)
        .configure(|c| c.drain_timeout = Duration::from_secs(5))
        .config(base);
    let logs = captured.text();
    assert!(logs.contains(replaced), "{logs}");
    for h in [first, second] {
        h.abort();
        h.join().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_manual_change_holds_against_the_schedule_until_resumed() {
    let captured = Captured::default();
    let _log = captured.set_default();
    let mut keep = Vec::new();
    let handle = idle(&mut keep)
        .configure(|c| *c = c.clone().with_cores(2))
        .schedule(Schedule::after([
            (Duration::ZERO, Preset::Morning),
            (Duration::from_secs(1), Preset::Evening),
            (Duration::from_secs(2), Preset::ApiHeavy),
        ]))
        .spawn()
        .unwrap();
    wait_for_config(&handle, "the switch to evening", |c| {
        c.agents == Agents::PerCore(1.0)
    })
    .await;
    handle.set_agents(7).unwrap();
    // The switch to api-heavy at 2 s comes and goes: the manual change holds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(handle.config().agents, Agents::Total(7));
    let logs = captured.text();
    assert!(
        logs.contains("manual change overrides the schedule: paused until resume_automatic()"),
        "{logs}"
    );

    handle.resume_automatic();
    wait_for_config(&handle, "the scheduled preset again", |c| {
        c.agents == Agents::PerCore(2.0)
    })
    .await;
    let logs = captured.text();
    assert!(
        logs.contains("the schedule may change the ratio again"),
        "{logs}"
    );
    assert!(
        logs.contains("schedule overrides the ratio set by the manual change"),
        "{logs}"
    );
    handle.abort();
    handle.join().await;
}

/// Always asks for 5 agents.
struct Five;

impl Tuner for Five {
    fn name(&self) -> &str {
        "five"
    }
    fn window(&self) -> Duration {
        Duration::from_millis(100)
    }
    fn decide(&mut self, _: &Window) -> Decision {
        Decision {
            agents: Some(5),
            ..Decision::hold("test")
        }
    }
}

#[tokio::test(start_paused = true)]
async fn schedule_tuner_and_handle_override_each_other_out_loud() {
    let captured = Captured::default();
    let _log = captured.set_default();
    let mut keep = Vec::new();
    let handle = idle(&mut keep)
        .configure(|c| *c = c.clone().with_cores(2))
        .schedule(Schedule::after([
            (Duration::ZERO, Preset::Morning),
            (Duration::from_secs(1), Preset::Evening),
        ]))
        .api(&Api::new("idle").tuner(Five))
        .spawn()
        .unwrap();
    // The tuner adjusts after the schedule; the switch at 1 s replaces the
    // tuner's ratio, and the tuner adjusts again: the latest change wins.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    wait_for_config(&handle, "the switch", |c| {
        c.items_per_batch == Preset::Evening.items_per_batch()
    })
    .await;
    wait_for_agents(&handle, "the tuner after the switch", 5).await;
    let logs = captured.text();
    assert!(
        logs.contains("tuner overrides the ratio set by the schedule"),
        "{logs}"
    );
    assert!(
        logs.contains("schedule overrides the ratio set by the tuner"),
        "{logs}"
    );

    // A manual change pauses both: many tuner windows later, it holds.
    handle.set_agents(7).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(handle.config().agents, Agents::Total(7));
    assert_eq!(stage_agents(&handle), 7);
    assert!(
        captured.text().contains(
            "manual change overrides the schedule and the tuner: paused until resume_automatic()"
        ),
        "{}",
        captured.text()
    );

    handle.resume_automatic();
    wait_for_agents(&handle, "the tuner again", 5).await;
    handle.abort();
    handle.join().await;
}
