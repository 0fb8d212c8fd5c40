//! Model-based test: random sequences of submit, resize, preset switch,
//! injected fault, cancel and shutdown over random pipelines (1-4 stages,
//! random capacities and batch sizes), with pipeline-wide and per-stage
//! resizes, and the IO stages on one shared API budget or each on its own. The invariants are checked after
//! every step, and the ledger at the end.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gearshift::{
    Api, Config, ErrorKind, Outcome, Pipeline, PipelineHandle, Preset, Report, RetryPolicy,
    StageError,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Submit(u64),
    Agents(usize),
    Workers(usize),
    Batch(usize),
    Preset(usize),
    /// One stage's agents (IO) or workers (CPU).
    StageConcurrency(usize, usize),
    /// One stage's batch size.
    StageBatch(usize, usize),
    /// One stage back to the defaults.
    StageDefaults(usize),
    /// The limit on calls in flight of the first IO stage's budget.
    ApiLimit(Option<usize>),
    /// Percent of calls that fail from now on.
    Fault(u64),
    Cancel,
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..200).prop_map(Op::Submit),
        1 => (1usize..32).prop_map(Op::Agents),
        1 => (1usize..=4).prop_map(Op::Workers),
        1 => (1usize..40).prop_map(Op::Batch),
        1 => (0usize..5).prop_map(Op::Preset),
        1 => (0usize..4, 1usize..32).prop_map(|(s, n)| Op::StageConcurrency(s, n)),
        1 => (0usize..4, 1usize..40).prop_map(|(s, n)| Op::StageBatch(s, n)),
        1 => (0usize..4).prop_map(Op::StageDefaults),
        1 => proptest::option::of(1usize..16).prop_map(Op::ApiLimit),
        1 => (0u64..60).prop_map(Op::Fault),
        1 => Just(Op::Cancel),
        1 => Just(Op::Shutdown),
    ]
}

fn hash(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x.wrapping_mul(0xFF51_AFD7_ED55_8CCD) % 100
}

/// Invariants that hold at every step of a run.
fn check_step(r: &Report, submitted: u64) {
    assert!(
        r.outcomes() <= submitted,
        "{} outcomes for {submitted} items",
        r.outcomes()
    );
    for s in &r.stages {
        assert!(
            s.items_out + s.failed + s.cancelled <= s.items_in,
            "stage {} passed on more than it took: {s:?}",
            s.name
        );
    }
}

/// A per-stage change through the handle, on stage `i` (wrapped to the
/// stages there are).
fn stage_op(handle: &PipelineHandle, io_stages: &[bool], i: usize, op: &Op) {
    let i = i % io_stages.len();
    let prefix = if io_stages[i] { "io" } else { "cpu" };
    let stage = handle.stage(&format!("{prefix}-{i}")).unwrap();
    match *op {
        Op::StageConcurrency(_, n) if io_stages[i] => stage.set_agents(n).unwrap(),
        Op::StageConcurrency(_, n) => stage.set_workers(n % 4 + 1).unwrap(),
        Op::StageBatch(_, n) => stage.set_items_per_batch(n).unwrap(),
        _ => stage.follow_defaults(),
    }
}

fn run(io_stages: Vec<bool>, shared_api: bool, capacity: usize, batch: usize, ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let fault = Arc::new(AtomicU64::new(0));
        let (tx, rx) = async_channel::bounded::<u64>(10_000);
        let config = Config {
            channel_capacity: capacity,
            items_per_batch: batch,
            max_workers: Some(4),
            retry: RetryPolicy::attempts(2)
                .with_backoff(Duration::from_micros(50), Duration::from_micros(200)),
            drain_timeout: Duration::from_millis(30),
            stats_interval: None,
            ..Config::default().with_cores(2)
        };
        let mut p = Pipeline::from_channel(rx).config(config);
        let shared = Api::new("shared");
        for (i, io) in io_stages.iter().enumerate() {
            let f = Arc::clone(&fault);
            let salt = i as u64;
            p = if *io {
                let p = p.io(move |x: u64| {
                    let fail = hash(x, salt) < f.load(Ordering::Relaxed);
                    async move {
                        tokio::task::yield_now().await;
                        if fail {
                            Err(StageError::msg(ErrorKind::Server, "injected"))
                        } else {
                            Ok(x)
                        }
                    }
                });
                if shared_api { p.api(&shared) } else { p }
            } else {
                p.try_cpu(move |x: u64| {
                    if hash(x, salt + 100) < f.load(Ordering::Relaxed) / 4 {
                        panic!("injected panic");
                    }
                    Ok::<_, StageError>(x)
                })
            };
        }
        let (handle, outcomes) = p.spawn_stream().unwrap();
        let collector = tokio::spawn(futures::StreamExt::collect::<Vec<Outcome<u64>>>(outcomes));
        let mut submitted = 0u64;
        let mut cancelled = false;
        for op in ops {
            match op {
                Op::Submit(n) => {
                    for _ in 0..n {
                        if tx.try_send(submitted).is_ok() {
                            submitted += 1;
                        }
                    }
                }
                Op::Agents(n) => handle.set_agents(n).unwrap(),
                Op::Workers(n) => handle.set_workers(n).unwrap(),
                Op::Batch(n) => handle.set_items_per_batch(n).unwrap(),
                Op::Preset(i) => handle.apply(Preset::ALL[i]).unwrap(),
                Op::StageConcurrency(i, _) | Op::StageBatch(i, _) | Op::StageDefaults(i) => {
                    stage_op(&handle, &io_stages, i, &op)
                }
                Op::ApiLimit(n) => {
                    if let Some(i) = io_stages.iter().position(|io| *io) {
                        let name = if shared_api {
                            "shared".to_owned()
                        } else {
                            format!("io-{i}")
                        };
                        handle.api(&name).unwrap().set_max_in_flight(n).unwrap();
                    }
                }
                Op::Fault(p) => fault.store(p, Ordering::Relaxed),
                Op::Cancel => {
                    handle.cancel();
                    cancelled = true;
                }
                Op::Shutdown => {
                    tx.close();
                }
            }
            tokio::time::sleep(Duration::from_micros(300)).await;
            check_step(&handle.snapshot(), submitted);
        }
        tx.close();
        let outcomes = tokio::time::timeout(Duration::from_secs(20), collector)
            .await
            .expect("the run ends once the source is closed")
            .unwrap();
        let report = handle.join().await;
        let (_, _, n_cancelled) = support::check_ledger(submitted, &outcomes, &report);
        if !cancelled {
            assert_eq!(n_cancelled, 0, "nothing is cancelled without a cancel");
        }
        for o in &outcomes {
            if let Outcome::Failed(f) = o {
                assert!(
                    matches!(f.kind(), ErrorKind::Server | ErrorKind::Panic),
                    "{f}"
                );
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_random_operations(
        io_stages in proptest::collection::vec(any::<bool>(), 1..=4),
        shared_api in any::<bool>(),
        capacity in 1usize..64,
        batch in 1usize..32,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        // Only the injected panics are kept out of the output.
        support::quiet_panics_marked("injected panic");
        run(io_stages, shared_api, capacity, batch, ops);
    }
}
