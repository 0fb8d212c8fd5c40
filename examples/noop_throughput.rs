//! No-op throughput of gearshift's hot path: items per second through a
//! pipeline whose stages do nothing, and the peak memory it took.
//!
//! `cargo run --release --example noop_throughput -- [ITEMS] [BATCH] [STAGES]`
//! with STAGES one of `io-cpu` (default), `io`, `cpu`.

use std::time::Instant;

use gearshift::{Agents, Config, Pipeline, StageError, StageKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        // A closed stderr (`| head`) must not make every event panic.
        .log_internal_errors(false)
        .init();
    let mut args = std::env::args().skip(1);
    let items: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let batch: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let stages = args.next().unwrap_or_else(|| "io-cpu".into());
    let config = Config {
        agents: Agents::PerCore(1.0),
        items_per_batch: batch,
        channel_capacity: 1024,
        stats_interval: None,
        ..Config::default()
    };
    let source = Pipeline::from_iter(0..items).config(config);
    let started = Instant::now();
    let report = match stages.as_str() {
        "io" => {
            source
                .io(|x| async move { Ok::<_, StageError>(x) })
                .run()
                .await?
        }
        "cpu" => source.cpu(|x| x).run().await?,
        _ => {
            source
                .io(|x| async move { Ok::<_, StageError>(x) })
                .cpu(|x| x)
                .run()
                .await?
        }
    };
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.ok == items, "expected {items} ok, got {}", report.ok);
    println!(
        "stages={stages} items={items} batch={batch}: {:.0} items/s, {:.3} s, peak RSS {} KiB",
        items as f64 / secs,
        secs,
        peak_rss_kib().unwrap_or(0)
    );
    for stage in report.stages.iter().filter(|s| s.kind == StageKind::Cpu) {
        println!(
            "  {}: {} batches, {:.1} items per batch",
            stage.name,
            stage.attempts,
            stage.items_in as f64 / stage.attempts.max(1) as f64
        );
    }
    Ok(())
}

/// Peak resident memory of this process (Linux), from /proc/self/status.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
