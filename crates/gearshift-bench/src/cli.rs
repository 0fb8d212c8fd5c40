//! The command line: `run`, `sweep`, `mock-api`, `soak` and `tuner`.
//! `main.rs` only parses
//! the arguments, sets up tracing and a runtime, and prints what
//! [`execute`] returns.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod run;

use crate::mock_api::{FaultRates, LatencyModel, MockConfig};
use crate::scenario::{self, RunOptions, Scenario};
use crate::work;

/// gearshift's benchmarks: gearshift against the usual ways of writing
/// "fetch, then compute", on a real HTTP server on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "gearshift-bench", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios (all of them by default) and print the table.
    Run(RunArgs),
    /// Throughput against agents per core on one scenario.
    Sweep(SweepArgs),
    /// Run the mock API standalone until Ctrl-C.
    MockApi(MockApiArgs),
    /// A long run under faults and constant resizing (not in CI).
    Soak(SoakArgs),
    /// The default controller against the seed rule, presets and the best
    /// fixed setting over phase changes, scored against a per-phase oracle;
    /// with `--held-out`, on the simulator's held-out scenarios instead.
    Tuner(TunerArgs),
    /// N worker processes share a NATS work queue and the API's limit,
    /// one is killed mid-run: lost, duplicated, peak in flight, items/s.
    Cluster(crate::cluster::ClusterArgs),
    /// One worker of `cluster` (started by it).
    #[command(hide = true)]
    ClusterWorker(crate::cluster::WorkerArgs),
}

/// `gearshift-bench tuner`.
#[derive(Debug, Args)]
pub struct TunerArgs {
    /// Seconds per phase.
    #[arg(long, default_value_t = 6.0)]
    pub phase_s: f64,
    /// Seconds per oracle setting.
    #[arg(long, default_value_t = 1.5)]
    pub oracle_s: f64,
    /// Number of seeds; figures are medians. By default, 1 (with
    /// `--held-out`: scenarios, by default 300).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Write one JSON object per (phase, system) to this file (with
    /// `--held-out`: the whole report).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run the closed-loop simulator on held-out scenarios (seeds from
    /// 10,000) instead of the phase benchmark: the default controller, the
    /// seed rule, every preset and the best fixed setting, with the
    /// issue's targets as PASS/FAIL lines.
    #[arg(long)]
    pub held_out: bool,
    /// With `--held-out`: the training seeds (from 0) instead.
    #[arg(long, requires = "held_out")]
    pub training: bool,
    /// With `--held-out`: an SVG of the default controller's worst
    /// scenario (calls in flight and goodput, with the oracle's).
    #[arg(long, requires = "held_out")]
    pub svg: Option<PathBuf>,
    /// With `--held-out`: also run the first N single-API scenarios of the
    /// range end to end (a real pipeline against the mock API, beside the
    /// oracle's settings, phases of 10 s). By default, none.
    #[arg(long, value_name = "N", requires = "held_out")]
    pub end_to_end: Option<u64>,
    /// Run only these phases, in the run's order (repeatable or
    /// comma-separated: `--phase B,C,A'`), with the oracle sweeps they
    /// need; for quick iteration. By default every phase.
    #[arg(long = "phase", value_name = "NAME", value_delimiter = ',')]
    pub phases: Vec<String>,
    /// Run only the systems whose name contains this text, any case
    /// (repeatable), e.g. `--system default`; by default every one.
    #[arg(long = "system", value_name = "TEXT")]
    pub systems: Vec<String>,
}

/// `gearshift-bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Minutes to run (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Most items to feed.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_items: u64,
    /// Seed of the faults and of the random resizes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Options shared by `run` and `sweep`.
#[derive(Debug, Args)]
pub struct Common {
    /// Items per system instead of each scenario's default.
    #[arg(long)]
    pub items: Option<u64>,
    /// Write the JSON rows to this file instead of `<out>/run.json`
    /// (`sweep`: `<out>/sweep_<scenario>.json`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The directory the JSON and SVG files go to (created if missing).
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Seconds each row of a scenario sized by time runs at its limit
    /// (io_bound, cpu_bound, mixed, two_apis; the sweep's points).
    #[arg(long, default_value_t = scenario::ROW_SECONDS)]
    pub row_seconds: f64,
    /// Seed of the mock API's jitter and faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Cores the systems plan for (by default, this machine's).
    #[arg(long)]
    pub cores: Option<usize>,
}

/// Where `run` and `sweep` write their files by default (git-ignored).
pub const DEFAULT_OUT: &str = "bench-out";

/// `gearshift-bench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run every row this many times; the table shows the median and the
    /// slowest and fastest run.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// A scenario to run (repeatable); by default every one.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Run only the systems whose name contains this text, in any case
    /// (repeatable), e.g. `--system default --system capacity`; by default
    /// every one.
    #[arg(long = "system", value_name = "TEXT")]
    pub systems: Vec<String>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `gearshift-bench sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The scenario to sweep.
    #[arg(long, default_value = "mixed")]
    pub scenario: String,
    /// The agents-per-core values. By default, from a sixteenth of the
    /// API's capacity to one and a half times it (mixed on 2 cores: 1 to
    /// 24).
    #[arg(long, value_delimiter = ',')]
    pub agents_per_core: Vec<f64>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `gearshift-bench mock-api`.
#[derive(Debug, Args)]
pub struct MockApiArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// No-load latency, ms.
    #[arg(long, default_value_t = 20.0)]
    pub base_ms: f64,
    /// Calls served at once without slowing down (0: unlimited).
    #[arg(long, default_value_t = 16)]
    pub capacity: usize,
    /// Jitter weight j in J = 1 - j + j * Exp(1).
    #[arg(long, default_value_t = 0.2)]
    pub jitter: f64,
    /// Lognormal (heavy-tailed) jitter with this sigma instead.
    #[arg(long)]
    pub lognormal_sigma: Option<f64>,
    /// Retrograde factor k: latency *= 1 + k * max(0, n - capacity).
    #[arg(long, default_value_t = 0.0)]
    pub retrograde: f64,
    /// Beyond this many calls in flight, answer 429 with Retry-After.
    #[arg(long)]
    pub hard_limit: Option<usize>,
    /// Bytes per /item body.
    #[arg(long, default_value_t = 4096)]
    pub payload_bytes: usize,
    /// Seed of jitter and faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Rate of 500 answers.
    #[arg(long, default_value_t = 0.0)]
    pub fault_5xx: f64,
    /// Rate of 429 answers with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub fault_429: f64,
    /// Rate of requests never answered.
    #[arg(long, default_value_t = 0.0)]
    pub fault_stall: f64,
    /// Rate of connections closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub fault_reset: f64,
    /// Rate of truncated bodies.
    #[arg(long, default_value_t = 0.0)]
    pub fault_truncated: f64,
    /// Retry-After sent with 429s, whole seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after_s: u64,
}

impl MockApiArgs {
    /// The mock API config these arguments describe.
    ///
    /// # Errors
    ///
    /// A bad latency value, or a refused config.
    pub fn config(&self) -> anyhow::Result<MockConfig> {
        let base = gearshift::duration_from_secs("base_ms", self.base_ms / 1e3)?;
        let config = MockConfig {
            latency: LatencyModel {
                base,
                capacity: (self.capacity > 0).then_some(self.capacity),
                jitter: self.jitter,
                lognormal_sigma: self.lognormal_sigma,
                retrograde: self.retrograde,
                hard_limit: self.hard_limit,
            },
            faults: FaultRates {
                server_error: self.fault_5xx,
                rate_limited: self.fault_429,
                stall: self.fault_stall,
                reset: self.fault_reset,
                truncated: self.fault_truncated,
            },
            seed: self.seed,
            payload_bytes: self.payload_bytes,
            retry_after: Duration::from_secs(self.retry_after_s),
            ..MockConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// Runs a command; returns the text to print on stdout.
///
/// # Errors
///
/// Unknown scenario names, bad values, a mock API that cannot start, files
/// that cannot be written.
pub async fn execute(cli: Cli) -> anyhow::Result<String> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Sweep(args) => run::run_sweep(args).await,
        Command::MockApi(args) => mock_api(args).await,
        Command::Soak(args) => run_soak(args).await,
        Command::Tuner(args) => run_tuner(args).await,
        Command::Cluster(args) => crate::cluster::run(args).await,
        Command::ClusterWorker(args) => crate::cluster::worker::run(args).await,
    }
}

fn options(common: &Common) -> anyhow::Result<RunOptions> {
    let cores = common.cores.unwrap_or_else(|| num_cpus::get().max(1));
    if cores == 0 || cores > 4096 {
        anyhow::bail!("cores must be between 1 and 4096, got {cores}");
    }
    if common.items == Some(0) {
        anyhow::bail!("items must be > 0, got 0");
    }
    // Calibrated (and logged) before any row, not inside the first one.
    let _ = work::calibration();
    Ok(RunOptions {
        items: common.items,
        seed: common.seed,
        cores,
        progress: std::io::stdout().is_terminal(),
        ..RunOptions::default()
    })
}

fn scenario_named(name: &str) -> anyhow::Result<Scenario> {
    Scenario::by_name(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown scenario {name:?}: expected one of {}",
            Scenario::names().join(", ")
        )
    })
}

async fn mock_api(args: MockApiArgs) -> anyhow::Result<String> {
    let config = args.config()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| anyhow::anyhow!("could not bind 127.0.0.1:{}: {e}", args.port))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        "mock api listening: GET /item/{{id}}, GET /stats[?per_id=true]; Ctrl-C stops it"
    );
    crate::mock_api::serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(String::new())
}

async fn run_soak(args: SoakArgs) -> anyhow::Result<String> {
    let duration = gearshift::duration_from_secs("minutes", args.minutes * 60.0)?;
    if args.max_items == 0 || args.max_items > 1_000_000_000 {
        anyhow::bail!(
            "max_items must be between 1 and 1000000000, got {}",
            args.max_items
        );
    }
    let report = crate::soak::soak(&crate::soak::SoakOptions {
        duration,
        max_items: args.max_items,
        seed: args.seed,
        cores: num_cpus::get().max(1),
        mock_process: Some(std::env::current_exe()?),
    })
    .await?;
    Ok(report.to_string())
}

async fn run_tuner(args: TunerArgs) -> anyhow::Result<String> {
    if args.held_out {
        return crate::held_out::command(args).await;
    }
    let seeds = args.seeds.unwrap_or(1);
    let phase = gearshift::duration_from_secs("phase_s", args.phase_s)?;
    let oracle = gearshift::duration_from_secs("oracle_s", args.oracle_s)?;
    if phase < std::time::Duration::from_secs(1) || oracle < std::time::Duration::from_millis(200) {
        anyhow::bail!(
            "phase_s must be >= 1 and oracle_s >= 0.2, got {} and {}",
            args.phase_s,
            args.oracle_s
        );
    }
    if seeds == 0 || seeds > 100 {
        anyhow::bail!("seeds must be between 1 and 100, got {seeds}");
    }
    let _ = work::calibration();
    let opts = crate::tuner_bench::TunerOptions {
        phase,
        oracle,
        seeds: (1..=seeds).collect(),
        phases: args.phases,
        systems: args.systems,
        ..Default::default()
    };
    let rows = crate::tuner_bench::tuner_bench(&opts).await?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)
            .map_err(|e| anyhow::anyhow!("could not write {}: {e}", path.display()))?;
    }
    Ok(crate::tuner_bench::tuner_table(&rows))
}
