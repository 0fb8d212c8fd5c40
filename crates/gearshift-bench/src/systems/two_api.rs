//! The systems of the two-API scenario: fetch `GET /item/{id}` from one
//! API, run the CPU work on the body, upload the digest (`POST
//! /upload/{id}`) to a second API of another capacity.
//!
//! Each system holds one concurrency limit per API where its design allows:
//! the `buffer_unordered(C)` baselines hold a tokio semaphore per API around
//! its calls, gearshift holds one per API through [`gearshift_two_api`].

mod gear;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use gearshift::{BuildError, ErrorKind, StageError};
use tokio::sync::Semaphore;

pub use self::gear::gearshift_two_api;

use super::baselines::Compute;
use super::{RunCtx, System};
use crate::client::{fetch, upload};
use crate::ledger::Ledger;
use crate::scenario::{Phase, UploadApi};

/// The most calls in flight a system lets each API have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Calls in flight to the fetch API.
    pub fetch: usize,
    /// Calls in flight to the upload API.
    pub upload: usize,
}

/// How a gearshift row of the two-API scenario sets its concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GearPlan {
    /// Each API at its own limit: [`gearshift_two_api`].
    PerApi(ApiLimits),
    /// One `Config` for both IO stages, as gearshift had before budgets:
    /// `n` agents and `n` API permits in each.
    OneConfig(usize),
    /// Nothing set: a budget per API, each under the default controller,
    /// whose stages start at the seed's 2 agents per core.
    NothingSet,
}

/// A system of the two-API scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum TwoApiSystem {
    /// One item at a time: fetch, CPU work inline, upload.
    Sequential,
    /// `buffer_unordered(c)` over fetch -> CPU -> upload, each call under its
    /// API's semaphore (`limits`).
    Unordered {
        /// Where the CPU work runs.
        compute: Compute,
        /// Items in flight.
        c: usize,
        /// One semaphore per API.
        limits: ApiLimits,
    },
    /// A gearshift pipeline: fetch (IO) -> process (CPU) -> upload (IO).
    Gearshift {
        /// Its concurrency per API.
        plan: GearPlan,
        /// Cores it plans for (workers).
        cores: usize,
    },
}

impl TwoApiSystem {
    /// The name in the report.
    pub fn name(&self) -> String {
        match self {
            TwoApiSystem::Sequential => "sequential".into(),
            TwoApiSystem::Unordered { compute, c, limits } => format!(
                "{} (C={c}, permits {}/{})",
                compute.label(),
                limits.fetch,
                limits.upload
            ),
            TwoApiSystem::Gearshift {
                plan: GearPlan::PerApi(l),
                ..
            } => format!("gearshift (limit per API {}/{})", l.fetch, l.upload),
            TwoApiSystem::Gearshift {
                plan: GearPlan::OneConfig(n),
                ..
            } => format!("gearshift (one config: {n} agents/stage)"),
            TwoApiSystem::Gearshift {
                plan: GearPlan::NothingSet,
                ..
            } => super::NOTHING_SET.into(),
        }
    }

    /// The C column: items in flight for the baselines; API calls in flight,
    /// both APIs together, for gearshift.
    pub fn concurrency(&self) -> usize {
        match self {
            TwoApiSystem::Sequential => 1,
            TwoApiSystem::Unordered { c, .. } => *c,
            TwoApiSystem::Gearshift {
                plan: GearPlan::PerApi(l),
                ..
            } => l.fetch + l.upload,
            TwoApiSystem::Gearshift {
                plan: GearPlan::OneConfig(n),
                ..
            } => 2 * n,
            // Where the controller starts: each stage's Auto agents.
            TwoApiSystem::Gearshift {
                plan: GearPlan::NothingSet,
                cores,
            } => 2 * gearshift::Agents::Auto.total(*cores),
        }
    }

    /// Runs it over `ctx.items` against `ctx.upload_url`; without an upload
    /// API the ledger gets a problem (the row is void).
    ///
    /// # Errors
    ///
    /// Only if gearshift refuses to build the pipeline.
    pub async fn run(&self, ctx: &RunCtx, ledger: &Arc<Ledger>) -> Result<(), BuildError> {
        let Some(up) = ctx.upload_url.clone() else {
            ledger.problem("a two-API system needs an upload API (RunCtx::upload_url)");
            return Ok(());
        };
        match self {
            TwoApiSystem::Sequential => {
                for id in 0..ctx.items {
                    ledger.start_item(id);
                    let r = match fetch(&ctx.client, &ctx.url(id), ctx.timeout).await {
                        Ok(body) => send(ctx, &up, id, (ctx.work)(&body)).await,
                        Err(e) => Err(e),
                    };
                    ledger.record(id, r.map_err(|e| e.kind()));
                }
                Ok(())
            }
            TwoApiSystem::Unordered { compute, c, limits } => {
                unordered(ctx, ledger, &up, *compute, *c, *limits).await;
                Ok(())
            }
            TwoApiSystem::Gearshift { plan, cores } => {
                gear::run(ctx, ledger, &up, *plan, *cores).await
            }
        }
    }
}

/// The systems compared on two APIs (`fetch`, then `upload` after the CPU
/// work), and the reference among them: gearshift at each API's own limit.
///
/// Besides it: gearshift with one config for both IO stages at the smaller
/// and at the larger API's limit (safe but starved, or over the smaller
/// API's capacity), the sequential loop, and the three `buffer_unordered`
/// baselines with one semaphore per API at C = 4 x cores and at C = the sum
/// of the capacities (every call slot of both APIs busy at once).
pub fn lineup(fetch: &Phase, upload: &UploadApi, cores: usize) -> (Vec<System>, String) {
    let limits = ApiLimits {
        fetch: fetch.capacity.unwrap_or(4 * cores),
        upload: upload.capacity.unwrap_or(4 * cores),
    };
    let gear = |plan| System::TwoApi(TwoApiSystem::Gearshift { plan, cores });
    let reference = gear(GearPlan::PerApi(limits));
    let name = reference.name();
    let (small, large) = (
        limits.fetch.min(limits.upload),
        limits.fetch.max(limits.upload),
    );
    let mut systems = vec![
        System::TwoApi(TwoApiSystem::Sequential),
        reference,
        gear(GearPlan::OneConfig(small)),
    ];
    if large != small {
        systems.push(gear(GearPlan::OneConfig(large)));
    }
    systems.push(gear(GearPlan::NothingSet));
    let (four, both) = (4 * cores, limits.fetch + limits.upload);
    let cs = if four == both {
        vec![four]
    } else {
        vec![four, both]
    };
    for c in cs {
        for compute in [Compute::Inline, Compute::SpawnBlocking, Compute::Rayon] {
            systems.push(System::TwoApi(TwoApiSystem::Unordered {
                compute,
                c,
                limits,
            }));
        }
    }
    (systems, name)
}

impl TwoApiSystem {
    /// The limit for this system's concurrency, items/s: each API at
    /// `min(C, its limit, its capacity) / base`, the cores at `cores / cpu`,
    /// and for `buffer_unordered(C)` also `C / (fetch base + cpu + upload
    /// base)` (Little's law: an item holds its slot through all three).
    pub fn rate_per_s(&self, fetch: &Phase, upload: &UploadApi, cores: usize) -> f64 {
        let at = |c: usize, base: std::time::Duration, cap: Option<usize>| {
            cap.map_or(c, |cap| cap.min(c)) as f64 / base.as_secs_f64()
        };
        let cpu_s = fetch.cpu_ms / 1e3;
        let path = fetch.base.as_secs_f64() + cpu_s + upload.base.as_secs_f64();
        let cpu = if cpu_s > 0.0 {
            cores as f64 / cpu_s
        } else {
            f64::INFINITY
        };
        let both = |f: usize, u: usize| {
            at(f, fetch.base, fetch.capacity)
                .min(at(u, upload.base, upload.capacity))
                .min(cpu)
        };
        match self {
            TwoApiSystem::Sequential => 1.0 / path,
            TwoApiSystem::Unordered { c, limits, .. } => {
                both((*c).min(limits.fetch), (*c).min(limits.upload)).min(*c as f64 / path)
            }
            TwoApiSystem::Gearshift {
                plan: GearPlan::PerApi(l),
                ..
            } => both(l.fetch, l.upload),
            TwoApiSystem::Gearshift {
                plan: GearPlan::OneConfig(n),
                ..
            } => both(*n, *n),
            // The controller may take each API to its capacity.
            TwoApiSystem::Gearshift {
                plan: GearPlan::NothingSet,
                ..
            } => both(usize::MAX, usize::MAX),
        }
    }
}

/// POSTs item `id`'s digest and checks the answer (the length received).
async fn send(ctx: &RunCtx, base: &str, id: u64, digest: [u8; 32]) -> Result<(), StageError> {
    let url = format!("{base}/upload/{id}");
    let ack = upload(&ctx.client, &url, digest.to_vec(), ctx.timeout).await?;
    check_ack(&ack)
}

fn check_ack(ack: &[u8]) -> Result<(), StageError> {
    if ack == b"32" {
        Ok(())
    } else {
        let got = String::from_utf8_lossy(ack);
        Err(StageError::msg(
            ErrorKind::BadPayload,
            format!("upload answer must be 32 (bytes received), got {got:?}"),
        ))
    }
}

async fn unordered(
    ctx: &RunCtx,
    ledger: &Ledger,
    up: &str,
    compute: Compute,
    c: usize,
    limits: ApiLimits,
) {
    let fetch_gate = Semaphore::new(limits.fetch.max(1));
    let upload_gate = Semaphore::new(limits.upload.max(1));
    let (fetch_gate, upload_gate) = (&fetch_gate, &upload_gate);
    futures::stream::iter(0..ctx.items)
        .map(|id| async move {
            ledger.start_item(id);
            let r = async {
                let body = within(
                    Some(fetch_gate),
                    fetch(&ctx.client, &ctx.url(id), ctx.timeout),
                )
                .await?;
                let digest = compute.run(ctx.work.clone(), body).await?;
                within(Some(upload_gate), send(ctx, up, id, digest)).await
            }
            .await;
            ledger.record(id, r.map_err(|e| e.kind()));
        })
        .buffer_unordered(c.max(1))
        .collect::<()>()
        .await;
}

/// Runs `call` holding a permit of `gate` (if any).
async fn within<T>(
    gate: Option<&Semaphore>,
    call: impl Future<Output = Result<T, StageError>>,
) -> Result<T, StageError> {
    let _permit = match gate {
        Some(g) => Some(
            g.acquire()
                .await
                .map_err(|e| StageError::new(ErrorKind::Other, e))?,
        ),
        None => None,
    };
    call.await
}
