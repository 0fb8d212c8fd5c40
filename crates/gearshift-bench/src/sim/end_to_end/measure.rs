//! One pipeline run over a fitted scenario's phases: the mock API stepped
//! through the phases, the limit set by a tuner or fixed per phase, the Ok
//! items counted per phase.

use std::time::{Duration, Instant};

use futures::StreamExt;
use gearshift::http::HttpFetcher;
use gearshift::tuner::{Decision, Tuner, Window};
use gearshift::{Agents, Api, Config, Outcome, Pipeline, PipelineHandle};

use super::super::run::SimConfig;
use super::super::scenario::Scenario;
use super::{EndToEndOptions, Measured, mock_config, secs};
use crate::mock_api::MockApi;
use crate::work::Work;

/// The budget's name in the pipeline.
const API: &str = "mock-api";
/// How often the run looks at the clock to switch phases and sample the limit.
const TICK: Duration = Duration::from_millis(50);
/// The limit is sampled every this many ticks (a snapshot reads every stat).
const SAMPLE_EVERY: u32 = 4;

/// What sets the limit during a run.
pub(super) enum Control {
    /// A tuner on the budget.
    Tuner(Capped),
    /// A fixed limit per phase.
    Fixed(Vec<usize>),
}

/// A boxed tuner whose limits are capped at `max`.
pub(super) struct Capped {
    pub(super) inner: Box<dyn Tuner>,
    pub(super) max: usize,
}

impl Tuner for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn window(&self) -> Duration {
        self.inner.window()
    }

    fn decide(&mut self, w: &Window) -> Decision {
        let mut d = self.inner.decide(w);
        d.agents = d.agents.map(|n| n.clamp(1, self.max));
        d.api_permits = d.api_permits.map(|n| n.clamp(1, self.max));
        d
    }
}

/// Runs one pipeline over the phases of `s` and counts its Ok items per phase.
pub(super) async fn measure(
    s: &Scenario,
    control: Control,
    opts: &EndToEndOptions,
) -> anyhow::Result<Measured> {
    let phases = s.phases.len();
    let (phase, step) = (opts.phase.max(TICK), opts.drift_step.max(TICK));
    let steps_per_phase = phase.as_secs_f64() / step.as_secs_f64();
    // The conditions of step `k` of phase `p`: those at its middle.
    let conditions = |p: usize, k: usize| {
        let mid = ((k as f64 + 0.5) / steps_per_phase).min(1.0);
        let (b, c) = s.phases[p].at(mid);
        mock_config(s, b, c)
    };
    let api = MockApi::start(conditions(0, 0))?;
    let timeout = secs(s.timeout, 0.001, 3600.0);
    let fetcher = HttpFetcher::builder().timeout(timeout).build()?;
    let work = if s.cpu_ms > 0.0 {
        Work::millis(s.cpu_ms)
    } else {
        Work::from_rounds(0)
    };
    let (budget, limits, start) = match control {
        Control::Fixed(limits) => {
            let limits: Vec<usize> = limits
                .iter()
                .map(|&n| n.clamp(1, opts.max_limit.max(1)))
                .collect();
            let first = limits.first().copied().unwrap_or(1);
            (Api::new(API).max_in_flight(first), limits, first)
        }
        Control::Tuner(t) => (
            Api::new(API).tuner(t),
            Vec::new(),
            SimConfig::for_scenario(s).start[0],
        ),
    };
    let config = Config {
        agents: Agents::Total(start.clamp(1, opts.max_limit.max(1))),
        api_timeout: timeout,
        stats_interval: None,
        drain_timeout: Duration::from_millis(200),
        ..Config::default().with_cores(s.cores)
    };
    let base = api.base_url();
    let (handle, mut outcomes) = Pipeline::from_iter(0u64..)
        .config(config)
        .io(move |id: u64| {
            let (fetcher, url) = (fetcher.clone(), format!("{base}/item/{id}"));
            async move { fetcher.get(&url).await }
        })
        .api(&budget)
        .cpu(move |body| work.run(&body))
        .spawn_stream()?;
    let started = Instant::now();
    let mut m = Measured {
        goodput: vec![0.0; phases],
        ..Measured::default()
    };
    let mut tick = tokio::time::interval(TICK);
    let (mut at, mut stopped, mut ticks) = ((0usize, 0usize), false, 0u32);
    loop {
        tokio::select! {
            o = outcomes.next() => match o {
                Some(Outcome::Ok { .. }) => {
                    m.ok += 1;
                    let p = (started.elapsed().as_secs_f64() / phase.as_secs_f64()) as usize;
                    if !stopped && p < phases {
                        m.goodput[p] += 1.0;
                    }
                }
                Some(Outcome::Failed(_)) => m.failed += 1,
                Some(Outcome::Cancelled { .. }) => m.cancelled += 1,
                None => break,
            },
            _ = tick.tick(), if !stopped => {
                let t = started.elapsed().as_secs_f64();
                let p = (t / phase.as_secs_f64()) as usize;
                if p >= phases {
                    stopped = true;
                    handle.cancel();
                    continue;
                }
                let k = ((t - p as f64 * phase.as_secs_f64()) / step.as_secs_f64()) as usize;
                if (p, k) != at {
                    api.set_config(conditions(p, k))?;
                    if let Some(&n) = limits.get(p).filter(|_| p != at.0) {
                        handle.set_agents(n)?;
                        handle.api(API)?.set_max_in_flight(Some(n))?;
                    }
                    at = (p, k);
                }
                ticks += 1;
                if ticks % SAMPLE_EVERY == 1 {
                    sample_limit(&handle, t, &mut m.limit);
                }
            }
        }
    }
    let report = handle.join().await;
    m.taken = report.taken;
    for g in &mut m.goodput {
        *g /= phase.as_secs_f64();
    }
    Ok(m)
}

/// Records the limit at `t` if it changed.
fn sample_limit(handle: &PipelineHandle, t: f64, limit: &mut Vec<(f64, usize)>) {
    let Some(io) = handle.snapshot().stages.into_iter().next() else {
        return;
    };
    let now = io.concurrency_target.min(io.permits);
    if limit.last().is_none_or(|&(_, l)| l != now) {
        limit.push((t, now));
    }
}
