//! `gearshift-bench cluster`: the proof, on one machine, that a job shared
//! by N worker processes over NATS loses no item, records none twice and
//! keeps the API within its limit, while a worker is killed with SIGKILL
//! (and, with `--broker-restart`, nats-server too).
//!
//! | file | job |
//! |------|-----|
//! | [`parent`] | one run: nats-server, the mock API, the queue, the workers, the kills |
//! | [`worker`] | the hidden `cluster-worker` subcommand: one worker process's pipeline |
//! | [`measure`] | lost, duplicated and redelivered, read back from NATS after the run |
//! | [`table`] | the printed table |
//!
//! Hand-written orchestration: it is a benchmark of this crate's own
//! pieces (`LocalServer`, `WorkQueue`, `ClusterBudget`, the mock API), a
//! few hundred lines of process handling; no crate would save any.

pub mod measure;
pub mod parent;
pub mod table;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

pub use parent::{Options, run_row};
pub use worker::WorkerArgs;

/// `gearshift-bench cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Worker processes; a comma-separated list runs one row each
    /// (`--processes 1,2,4`).
    #[arg(long, value_delimiter = ',', default_value = "2")]
    pub processes: Vec<usize>,
    /// Items per row.
    #[arg(long, default_value_t = 5_000)]
    pub items: u64,
    /// Workers killed with SIGKILL mid-run (at 35 % of the outcomes) and
    /// restarted 1.5 s later: 0 or 1.
    #[arg(long, default_value_t = 1)]
    pub kill: u8,
    /// The mock API's capacity K: calls it serves at once at its base
    /// latency; past it calls queue (latency grows), so its limit is
    /// K / base items/s.
    #[arg(long, default_value_t = 32)]
    pub capacity: usize,
    /// The mock API's no-load latency, ms.
    #[arg(long, default_value_t = 20)]
    pub base_ms: u64,
    /// The queue's ack_wait, ms: how long a dead worker's items wait.
    #[arg(long, default_value_t = 3_000)]
    pub ack_wait_ms: u64,
    /// Also kill nats-server with SIGKILL at 60 % of the outcomes and
    /// restart it on the same store 1 s later.
    #[arg(long)]
    pub broker_restart: bool,
    /// Give up on a row after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub deadline_s: u64,
    /// Write the rows as a JSON array to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One run's figures (the `--json` rows).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Worker processes.
    pub processes: usize,
    /// Items published.
    pub items: u64,
    /// Items with an outcome in the outcome bucket.
    pub recorded: u64,
    /// Items without an outcome: `items - recorded`.
    pub lost: u64,
    /// Outcome writes beyond one per item (see [`measure`]).
    pub duplicated: u64,
    /// Items whose outcome was recorded on a later delivery than the first.
    pub redelivered: u64,
    /// Outcomes recorded as `failed`.
    pub failed: u64,
    /// Calls the mock API received (at least once per item).
    pub api_calls: u64,
    /// 429s the mock API sent.
    pub api_429: u64,
    /// The mock API's capacity K.
    pub api_capacity: usize,
    /// Most calls in flight at the mock API at once, by its own counter.
    pub api_peak_in_flight: usize,
    /// Items per second, from the workers' start to the last outcome.
    pub items_per_s: f64,
    /// The API's limit, K / base latency, items per second.
    pub limit_per_s: f64,
    /// `items_per_s / limit_per_s`.
    pub fraction_of_limit: f64,
    /// Workers killed with SIGKILL.
    pub killed: u8,
    /// Seconds from the kill until the last item the dead worker held was
    /// taken again by another worker (`None` without a kill).
    pub redelivery_s: Option<f64>,
    /// The queue's ack_wait, seconds.
    pub ack_wait_s: f64,
    /// Whether nats-server was killed and restarted mid-run.
    pub broker_restarted: bool,
    /// Seconds from the workers' start to the last outcome (or the deadline).
    pub elapsed_s: f64,
    /// Whether the row gave up at its deadline.
    pub timed_out: bool,
}

/// Runs `gearshift-bench cluster`: one row per process count, the table,
/// and the JSON file if asked for.
///
/// # Errors
///
/// A missing `nats-server`, a row that cannot start, or an unwritable file.
pub async fn run(args: ClusterArgs) -> anyhow::Result<String> {
    anyhow::ensure!(args.kill <= 1, "--kill must be 0 or 1, got {}", args.kill);
    anyhow::ensure!(
        (1..=10_000_000).contains(&args.items),
        "--items must be 1 to 10000000"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.capacity),
        "--capacity must be 1 to 10000"
    );
    anyhow::ensure!(
        (1..=60_000).contains(&args.base_ms),
        "--base-ms must be 1 to 60000"
    );
    anyhow::ensure!(
        (300..=600_000).contains(&args.ack_wait_ms),
        "--ack-wait-ms must be 300 to 600000"
    );
    anyhow::ensure!(
        args.processes.iter().all(|n| (1..=64).contains(n)),
        "--processes must be 1 to 64 each"
    );
    let worker_exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for &processes in &args.processes {
        let options = Options {
            processes,
            items: args.items,
            kill: args.kill == 1,
            capacity: args.capacity,
            base: Duration::from_millis(args.base_ms),
            ack_wait: Duration::from_millis(args.ack_wait_ms),
            broker_restart: args.broker_restart,
            deadline: Duration::from_secs(args.deadline_s.min(86_400)),
            worker_exe: worker_exe.clone(),
        };
        rows.push(run_row(&options).await?);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(table::render(&rows))
}
