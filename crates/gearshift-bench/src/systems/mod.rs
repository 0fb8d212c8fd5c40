//! The systems under test: the usual ways of writing "fetch, then compute"
//! ([`baselines`]) and gearshift ([`gearshift`](mod@self::gearshift)), all run
//! through [`run`] on the same client, server and work function; and their
//! versions for "fetch, compute, upload to a second API" ([`two_api`]).

pub mod baselines;
pub mod gearshift;
pub mod two_api;

use std::sync::Arc;
use std::time::Duration;

use ::gearshift::http::HttpFetcher;
use ::gearshift::{Config, Preset};
use indicatif::ProgressBar;

use self::two_api::TwoApiSystem;
use crate::ledger::{Ledger, PhaseSwitch, RunResult};

/// The CPU work applied to each payload; it returns a digest the caller keeps.
pub type WorkFn = Arc<dyn Fn(&[u8]) -> [u8; 32] + Send + Sync>;

/// Everything a system needs for one run.
#[derive(Clone)]
pub struct RunCtx {
    /// gearshift's HTTP fetcher; its pooled client is the one every system
    /// shares.
    pub fetcher: HttpFetcher,
    /// The fetcher's client (the same pool), for the baselines.
    pub client: reqwest::Client,
    /// The mock API's base URL, without a trailing slash.
    pub base_url: String,
    /// The base URL of the API results are uploaded to (two-API systems
    /// only), without a trailing slash.
    pub upload_url: Option<String>,
    /// Items `0..items` to process.
    pub items: u64,
    /// CPU work per item.
    pub work: WorkFn,
    /// Per-call timeout.
    pub timeout: Duration,
    /// A workload change mid-run, if the scenario has one.
    pub phase: Option<Arc<PhaseSwitch>>,
    /// A progress bar to advance per item (hidden when not a terminal).
    pub progress: Option<ProgressBar>,
}

impl std::fmt::Debug for RunCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCtx")
            .field("base_url", &self.base_url)
            .field("upload_url", &self.upload_url)
            .field("items", &self.items)
            .field("timeout", &self.timeout)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl RunCtx {
    /// A context without a phase change or progress bar; the baselines use
    /// the fetcher's own pooled client.
    pub fn new(
        fetcher: HttpFetcher,
        base_url: String,
        items: u64,
        work: WorkFn,
        timeout: Duration,
    ) -> Self {
        RunCtx {
            client: fetcher.client().clone(),
            fetcher,
            base_url,
            upload_url: None,
            items,
            work,
            timeout,
            phase: None,
            progress: None,
        }
    }

    /// The URL of item `id`.
    pub fn url(&self, id: u64) -> String {
        format!("{}/item/{id}", self.base_url)
    }

    /// A fresh ledger for this run.
    pub fn ledger(&self) -> Arc<Ledger> {
        Arc::new(Ledger::new(
            self.items,
            self.phase.clone(),
            self.progress.clone(),
        ))
    }
}

/// The label of a gearshift row with nothing set: its budgets run the
/// default controller.
pub const NOTHING_SET: &str = "gearshift, nothing set (default controller)";

/// One system under test.
#[derive(Debug, Clone)]
pub enum System {
    /// One request at a time, CPU work inline.
    Sequential,
    /// tokio + `buffer_unordered(c)`, CPU work inline in the async task.
    TokioInline {
        /// Items in flight.
        c: usize,
    },
    /// tokio + `buffer_unordered(c)`, CPU work in `spawn_blocking`.
    SpawnBlocking {
        /// Items in flight.
        c: usize,
    },
    /// tokio + `buffer_unordered(c)`, CPU work on rayon, result back over a
    /// oneshot channel.
    Rayon {
        /// Items in flight.
        c: usize,
    },
    /// A gearshift pipeline.
    Gearshift {
        /// The label in the report, e.g. `gearshift (agents = capacity)`.
        label: String,
        /// Its configuration.
        config: Box<Config>,
        /// A preset applied live when the scenario's phase changes.
        switch_to: Option<Preset>,
        /// Whether nothing fixes the concurrency, so the default controller
        /// runs (from 2 agents per core).
        tuned: bool,
    },
    /// A system of the two-API scenario (fetch, compute, upload).
    TwoApi(TwoApiSystem),
}

impl System {
    /// The name in the report.
    pub fn name(&self) -> String {
        match self {
            System::Sequential => "sequential".into(),
            System::TokioInline { c } => format!("tokio inline (C={c})"),
            System::SpawnBlocking { c } => format!("tokio+spawn_blocking (C={c})"),
            System::Rayon { c } => format!("tokio+rayon (C={c})"),
            System::Gearshift { label, .. } => label.clone(),
            System::TwoApi(s) => s.name(),
        }
    }

    /// Items in flight it allows.
    pub fn concurrency(&self) -> usize {
        match self {
            System::Sequential => 1,
            System::TokioInline { c } | System::SpawnBlocking { c } | System::Rayon { c } => *c,
            System::Gearshift { config, .. } => config.total_agents(),
            System::TwoApi(s) => s.concurrency(),
        }
    }

    /// Whether this is the sequential baseline (of one API or two).
    pub fn is_sequential(&self) -> bool {
        matches!(
            self,
            System::Sequential | System::TwoApi(TwoApiSystem::Sequential)
        )
    }

    /// Whether this is a gearshift pipeline.
    pub fn is_gearshift(&self) -> bool {
        matches!(
            self,
            System::Gearshift { .. } | System::TwoApi(TwoApiSystem::Gearshift { .. })
        )
    }
}

/// Runs `system` over `ctx.items` items and checks every item has exactly
/// one outcome (a mismatch is reported in `RunResult::accounting_error`).
///
/// # Errors
///
/// Only if gearshift refuses to build the pipeline.
pub async fn run(system: &System, ctx: &RunCtx) -> Result<RunResult, ::gearshift::BuildError> {
    let ledger = ctx.ledger();
    match system {
        System::Sequential => baselines::sequential(ctx, &ledger).await,
        System::TokioInline { c } => baselines::tokio_inline(ctx, &ledger, *c).await,
        System::SpawnBlocking { c } => baselines::spawn_blocking(ctx, &ledger, *c).await,
        System::Rayon { c } => baselines::rayon(ctx, &ledger, *c).await,
        System::Gearshift {
            config,
            switch_to,
            tuned,
            ..
        } => gearshift::run(ctx, &ledger, (**config).clone(), *switch_to, *tuned).await?,
        System::TwoApi(s) => s.run(ctx, &ledger).await?,
    }
    Ok(ledger.finish(system.name(), system.concurrency()))
}
