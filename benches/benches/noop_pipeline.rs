//! Per-item overhead of a 2-stage no-op pipeline (IO no-op -> CPU no-op),
//! gearshift against a hand-written tokio -> crossbeam-channel -> threads
//! pipeline doing the same, at batch 1 and batch 100.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gearshift::{Agents, Config, Pipeline, StageError};

const ITEMS: u64 = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn gearshift_noop(rt: &tokio::runtime::Runtime, batch: usize) -> u64 {
    let config = Config {
        agents: Agents::PerCore(1.0),
        items_per_batch: batch,
        channel_capacity: 1024,
        stats_interval: None,
        ..Config::default()
    };
    let report = rt
        .block_on(
            Pipeline::from_iter(0..ITEMS)
                .io(|x| async move { Ok::<_, StageError>(x) })
                .cpu(|x| x)
                .config(config)
                .run(),
        )
        .unwrap();
    assert_eq!(report.ok, ITEMS);
    report.ok
}

/// The hand-written pipeline with what gearshift's IO stage gives: agents
/// (tokio tasks, as many as gearshift runs) pull ids from a shared bounded
/// queue, take a semaphore permit and call under a timeout, then send their
/// results in batches over a bounded crossbeam channel to one thread per
/// core, which send them on to a counting thread.
fn hand_written(rt: &tokio::runtime::Runtime, batch: usize) -> u64 {
    let cores = num_cores();
    let agents = cores;
    let (work_tx, work_rx) = crossbeam_channel::bounded::<Vec<u64>>(1024 / batch + 1);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Vec<u64>>(1024 / batch + 1);
    let (workers, counter) = spawn_threads(cores, work_rx, done_tx, done_rx);
    rt.block_on(async {
        let (id_tx, id_rx) = async_channel::bounded::<u64>(1024);
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(agents * 2));
        let source = tokio::spawn(async move {
            for id in 0..ITEMS {
                id_tx.send(id).await.unwrap();
            }
        });
        let tasks: Vec<_> = (0..agents)
            .map(|_| {
                let (rx, tx, permits) = (id_rx.clone(), work_tx.clone(), permits.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(batch);
                    while let Ok(id) = rx.recv().await {
                        let _permit = permits.acquire().await.unwrap();
                        let v = tokio::time::timeout(Duration::from_secs(30), async { id })
                            .await
                            .unwrap();
                        buf.push(v);
                        if buf.len() == batch || rx.is_empty() {
                            let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
                            tokio::task::block_in_place(|| tx.send(full).unwrap());
                        }
                    }
                    if !buf.is_empty() {
                        tokio::task::block_in_place(|| tx.send(buf).unwrap());
                    }
                })
            })
            .collect();
        source.await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    });
    join_threads(work_tx, workers, counter)
}

/// The barest hand-written pipeline: one tokio task per core produces
/// items from a range (no queue, no semaphore, no timeout) and sends
/// batches into a bounded crossbeam channel to one thread per core.
fn hand_written_bare(rt: &tokio::runtime::Runtime, batch: usize) -> u64 {
    let cores = num_cores();
    let (work_tx, work_rx) = crossbeam_channel::bounded::<Vec<u64>>(1024 / batch + 1);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Vec<u64>>(1024 / batch + 1);
    let (workers, counter) = spawn_threads(cores, work_rx, done_tx, done_rx);
    let per_task = ITEMS / cores as u64;
    rt.block_on(async {
        let tasks: Vec<_> = (0..cores as u64)
            .map(|t| {
                let tx = work_tx.clone();
                tokio::spawn(async move {
                    let start = t * per_task;
                    let end = if t + 1 == cores as u64 {
                        ITEMS
                    } else {
                        start + per_task
                    };
                    let mut buf = Vec::with_capacity(batch);
                    for id in start..end {
                        let v = async { id }.await;
                        buf.push(v);
                        if buf.len() == batch {
                            let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
                            // A blocking send from a task: what hand-written code does.
                            tokio::task::block_in_place(|| tx.send(full).unwrap());
                        }
                    }
                    if !buf.is_empty() {
                        tokio::task::block_in_place(|| tx.send(buf).unwrap());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    join_threads(work_tx, workers, counter)
}

/// The thread side of the hand-written pipelines: `cores` threads process
/// batches, one thread counts the results.
fn spawn_threads(
    cores: usize,
    work_rx: crossbeam_channel::Receiver<Vec<u64>>,
    done_tx: crossbeam_channel::Sender<Vec<u64>>,
    done_rx: crossbeam_channel::Receiver<Vec<u64>>,
) -> (
    Vec<std::thread::JoinHandle<()>>,
    std::thread::JoinHandle<u64>,
) {
    let workers = (0..cores)
        .map(|_| {
            let (rx, tx) = (work_rx.clone(), done_tx.clone());
            std::thread::spawn(move || {
                for b in rx {
                    let out: Vec<u64> = b.into_iter().map(std::hint::black_box).collect();
                    tx.send(out).unwrap();
                }
            })
        })
        .collect();
    let counter =
        std::thread::spawn(move || done_rx.into_iter().map(|b| b.len() as u64).sum::<u64>());
    (workers, counter)
}

/// Closes the work channel, waits for the threads, and checks the count.
fn join_threads(
    work_tx: crossbeam_channel::Sender<Vec<u64>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    counter: std::thread::JoinHandle<u64>,
) -> u64 {
    drop(work_tx);
    for w in workers {
        w.join().unwrap();
    }
    let n = counter.join().unwrap();
    assert_eq!(n, ITEMS);
    n
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("noop_2stage");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for batch in [1usize, 100] {
        group.bench_with_input(BenchmarkId::new("gearshift", batch), &batch, |b, &batch| {
            b.iter(|| gearshift_noop(&rt, batch))
        });
        group.bench_with_input(
            BenchmarkId::new("hand_written", batch),
            &batch,
            |b, &batch| b.iter(|| hand_written(&rt, batch)),
        );
        group.bench_with_input(
            BenchmarkId::new("hand_written_bare", batch),
            &batch,
            |b, &batch| b.iter(|| hand_written_bare(&rt, batch)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
