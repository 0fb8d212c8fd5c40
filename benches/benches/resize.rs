//! Time from `set_agents_per_core` to the new agents running: the handle's
//! change is observed when all of the new agents are inside a call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gearshift::{Agents, Config, Pipeline, StageError};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("resize");
    group.sample_size(20);
    group.bench_function("set_agents_per_core_1_to_8_on_2_cores", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let in_call = Arc::new(AtomicUsize::new(0));
                    let seen = Arc::clone(&in_call);
                    let handle = Pipeline::from_iter(0..u64::MAX)
                        .io(move |id| {
                            let seen = Arc::clone(&seen);
                            async move {
                                seen.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                Ok::<_, StageError>(id)
                            }
                        })
                        .config(Config {
                            agents: Agents::PerCore(1.0),
                            stats_interval: None,
                            ..Config::default().with_cores(2)
                        })
                        .spawn()
                        .unwrap();
                    while in_call.load(Ordering::SeqCst) < 2 {
                        tokio::task::yield_now().await;
                    }
                    let start = Instant::now();
                    handle.set_agents_per_core(8.0).unwrap();
                    while in_call.load(Ordering::SeqCst) < 16 {
                        tokio::task::yield_now().await;
                    }
                    total += start.elapsed();
                    handle.abort();
                    handle.join().await;
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
