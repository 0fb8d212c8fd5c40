//! One row of `gearshift-bench cluster`: a throwaway nats-server, the mock
//! API in this process, the queue filled with `items` ids, N worker
//! processes, a SIGKILL of one of them (restarted 1.5 s later) and
//! optionally of nats-server, then the figures read back from NATS and the
//! mock's own counters.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use gearshift_nats::{LocalServer, WorkQueue};

use super::Row;
use super::measure::{self, item_key};
use super::worker::{queue_config, unix_ms};
use crate::mock_api::{MockApi, MockConfig};

/// The share of outcomes recorded when a worker is killed.
const KILL_AT: f64 = 0.35;
/// The share of outcomes recorded when nats-server is killed.
const BROKER_KILL_AT: f64 = 0.6;
/// How long a killed worker stays dead.
const WORKER_DOWN: Duration = Duration::from_millis(1_500);
/// How long a killed nats-server stays dead.
const BROKER_DOWN: Duration = Duration::from_secs(1);
/// How long workers get to finish after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// One row's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker processes.
    pub processes: usize,
    /// Items to publish.
    pub items: u64,
    /// Kill worker 0 with SIGKILL at 35 % and restart it.
    pub kill: bool,
    /// The mock API's capacity K (and the cluster budget's limit).
    pub capacity: usize,
    /// The mock API's no-load latency.
    pub base: Duration,
    /// The queue's ack_wait.
    pub ack_wait: Duration,
    /// Kill nats-server with SIGKILL at 60 % and restart it on its store.
    pub broker_restart: bool,
    /// Give up after this long.
    pub deadline: Duration,
    /// The `gearshift-bench` binary the workers run.
    pub worker_exe: PathBuf,
}

/// Runs one row.
///
/// # Errors
///
/// `nats-server` missing from PATH, the mock API or a worker that cannot
/// start, the queue that cannot be opened or read.
pub async fn run_row(o: &Options) -> anyhow::Result<Row> {
    let mut server = LocalServer::start().map_err(|e| match e {
        gearshift_nats::Error::Io { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            anyhow::anyhow!(
                "nats-server is not on PATH: the cluster benchmark needs it (Debian: apt-get install nats-server)"
            )
        }
        e => anyhow::Error::new(e).context("start nats-server"),
    })?;
    // No hard limit: calls past K queue at the mock (their latency grows)
    // and every one is counted in flight, so the peak is what the workers
    // offered, not what the mock let through.
    let api = MockApi::start_with_threads(MockConfig::with_latency(o.base, Some(o.capacity)), 2)?;
    let name = format!("cluster-{}", unix_ms());
    let js = jetstream::new(async_nats::connect(server.url()).await?);
    let config = queue_config(&name, o.ack_wait, o.capacity);
    let bucket = config.outcome_bucket();
    let queue = WorkQueue::open(js.clone(), config).await?;
    let published = queue
        .producer()
        .publish_all((0..o.items).map(|i| (item_key(i), i.to_string().into())))
        .await?;
    anyhow::ensure!(
        published == o.items,
        "published {published} of {} items",
        o.items
    );

    let (nats_url, api_url) = (server.url(), api.base_url());
    let spawn = |id: u32| spawn_worker(o, &nats_url, &api_url, &name, id);
    let mut workers = (0..o.processes)
        .map(|id| spawn(id as u32))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut killed_ms = None;
    let mut restart_at = None;
    let mut broker_killed_ms = None;
    let mut last_progress = Instant::now();
    let mut recorded = 0;
    let timed_out = loop {
        if let Ok((keys, _)) = measure::bucket_writes(&js, &bucket).await {
            recorded = keys;
        }
        if recorded >= o.items {
            break false;
        }
        if started.elapsed() > o.deadline {
            break true;
        }
        let done = recorded as f64 / o.items as f64;
        if o.kill && killed_ms.is_none() && done >= KILL_AT {
            workers[0].kill().context("kill worker 0")?;
            workers[0].wait().context("reap worker 0")?;
            killed_ms = Some(unix_ms());
            restart_at = Some(Instant::now() + WORKER_DOWN);
            tracing::info!(recorded, "worker 0 killed with SIGKILL");
        }
        if restart_at.is_some_and(|at| Instant::now() >= at) {
            restart_at = None;
            workers[0] = spawn(0)?;
            tracing::info!(recorded, "worker 0 restarted");
        }
        if o.broker_restart && broker_killed_ms.is_none() && done >= BROKER_KILL_AT {
            server.kill();
            broker_killed_ms = Some(unix_ms());
            tracing::info!(recorded, "nats-server killed with SIGKILL");
            tokio::time::sleep(BROKER_DOWN).await;
            server
                .restart()
                .context("restart nats-server on its store")?;
            tracing::info!("nats-server restarted on its store");
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            tracing::info!(
                "{} workers: {recorded}/{} recorded after {:.1} s",
                o.processes,
                o.items,
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed().as_secs_f64();
    // All at once: each takes up to a fetch expiry to stop.
    for w in &workers {
        terminate(w);
    }
    for w in &mut workers {
        let report = stop_worker(w).await;
        tracing::debug!(report, "worker stopped");
    }
    let stats = api.stats();
    let outcomes = measure::outcomes(&queue, o.items).await?;
    let (keys, writes) = measure::bucket_writes(&js, &bucket).await?;
    let limit_per_s = o.capacity as f64 / o.base.as_secs_f64();
    let items_per_s = outcomes.recorded as f64 / elapsed;
    let redelivery_s = killed_ms.and_then(|k| {
        measure::redelivery_s(&outcomes.taken, k, broker_killed_ms.unwrap_or(u64::MAX))
    });
    Ok(Row {
        processes: o.processes,
        items: o.items,
        recorded: outcomes.recorded,
        lost: o.items - outcomes.recorded,
        duplicated: writes.saturating_sub(keys),
        redelivered: outcomes.redelivered,
        failed: outcomes.failed,
        api_calls: stats.requests,
        api_429: stats.status(429),
        api_capacity: o.capacity,
        api_peak_in_flight: stats.max_in_flight,
        items_per_s,
        limit_per_s,
        fraction_of_limit: items_per_s / limit_per_s,
        killed: u8::from(killed_ms.is_some()),
        redelivery_s,
        ack_wait_s: o.ack_wait.as_secs_f64(),
        broker_restarted: broker_killed_ms.is_some(),
        elapsed_s: elapsed,
        timed_out,
    })
}

/// Starts `gearshift-bench cluster-worker` for worker `id`; its log goes
/// to this stderr (warnings only unless `RUST_LOG` says otherwise), its
/// report to a pipe.
fn spawn_worker(o: &Options, nats: &str, api: &str, queue: &str, id: u32) -> anyhow::Result<Child> {
    let mut cmd = Command::new(&o.worker_exe);
    cmd.arg("cluster-worker")
        .args(["--nats", nats, "--api", api, "--queue", queue])
        .args(["--id", &id.to_string()])
        .args(["--capacity", &o.capacity.to_string()])
        .args(["--ack-wait-ms", &o.ack_wait.as_millis().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    cmd.spawn()
        .with_context(|| format!("start worker {id} ({})", o.worker_exe.display()))
}

/// Sends SIGTERM (through `kill`: std has no signal but SIGKILL).
fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// Up to [`STOP_GRACE`] after SIGTERM for it to finish its held items and
/// exit (SIGKILL after); its report line, if it printed one.
async fn stop_worker(child: &mut Child) -> String {
    let until = Instant::now() + STOP_GRACE;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if matches!(child.try_wait(), Ok(None)) {
        tracing::warn!(
            pid = child.id(),
            "worker did not stop after SIGTERM; killed"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    out.trim().to_owned()
}
