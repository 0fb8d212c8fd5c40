//! Starting a [`Pipeline`]: checks the settings, resolves each IO stage's
//! API budget, starts the stages from the last to the first, then the
//! collector and the controller.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::Semaphore;

use super::collector::{Collector, Outputs};
use super::item::ended_channel;
use super::link::{self, BatchReceiver, Outlet, batch_channel};
use super::{Ctx, Outcomes, Pipeline, StagePlan, ToCaller};
use crate::config::Order;
use crate::control::PipelineHandle;
use crate::control::budget::{Budget, Runs};
use crate::control::controller::Controller;
use crate::control::settings::Live;
use crate::control::shared::Shared;
use crate::error::BuildError;
use crate::outcome::{Failure, Outcome};
use crate::stats::counters::StageKind;
use crate::stats::report::Report;

/// Settings, and starting: for every pipeline, whatever its outputs.
impl<T: Send + 'static, O> Pipeline<T, O> {
    /// Starts the pipeline on the current tokio runtime. Outcomes go to the
    /// sink if one was set, else they are counted and dropped.
    ///
    /// Dropping every handle does not stop the pipeline: it runs to the end
    /// (use [`PipelineHandle::cancel`] to stop it).
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a bad configuration (of the pipeline, a stage or an
    /// API budget), a per-stage setting given where it does not apply, no
    /// runtime, or no rayon pool.
    pub fn spawn(self) -> Result<PipelineHandle, BuildError> {
        self.start(None)
    }

    /// Runs the pipeline to the end and returns its report.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn).
    pub async fn run(self) -> Result<Report, BuildError> {
        Ok(self.spawn()?.join().await)
    }

    /// Runs the pipeline to the end on a runtime of its own, for code that
    /// is not async.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn); [`BuildError::InsideRuntime`] when
    /// called inside a tokio runtime, from a task or one of its blocking
    /// threads (await [`run`](Self::run) there instead), and
    /// [`BuildError::Pool`] if the runtime cannot start.
    pub fn run_blocking(self) -> Result<Report, BuildError> {
        // Starting a runtime inside another panics in tokio: refuse first.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(BuildError::InsideRuntime);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.config.cores.clamp(1, 64))
            .thread_name("gearshift-io")
            .enable_all()
            .build()
            .map_err(|e| BuildError::Pool(format!("could not start a tokio runtime: {e}")))?;
        rt.block_on(self.run())
    }

    /// Starts every stage; outcomes go to the sink if one was set, else to
    /// `outcomes` if given, else they are counted and dropped.
    fn start(
        self,
        outcomes: Option<link::Sender<Outcome<T>>>,
    ) -> Result<PipelineHandle, BuildError> {
        if let Some(misuse) = self.misuse {
            return Err(misuse);
        }
        let live = Live::new(
            self.config.clone(),
            self.stages.iter().map(|s| s.settings.clone()).collect(),
        );
        let names: Vec<Arc<str>> = self
            .stages
            .iter()
            .map(|s| Arc::from(s.name.as_str()))
            .collect();
        if let Some(dup) = names
            .iter()
            .enumerate()
            .find(|(i, n)| names[..*i].contains(n))
        {
            return Err(BuildError::DuplicateName(dup.1.to_string()));
        }
        live.validate(&names, self.config.pool_threads())?;
        let budgets = budgets(&self.stages)?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        for budget in budgets.iter().flatten() {
            budget.activate()?;
        }
        let shared = Shared::new(live.clone(), names.clone(), budgets, rt);
        settle_controllers(&shared, self.schedule.is_some());
        let (ended_tx, ended_rx) = ended_channel();
        let window = match self.config.order {
            Order::Ordered { window } => Some(Arc::new(Semaphore::new(window))),
            Order::Unordered => None,
        };
        let mut ctx = Ctx {
            shared: Arc::clone(&shared),
            live,
            ended: ended_tx,
            pool: None,
            window: window.clone(),
        };
        let capacity = self.config.channel_capacity;
        let (tx, main): (_, BatchReceiver<T>) = batch_channel(capacity);
        (self.build)(&mut ctx, Outlet::Batches(tx))?;
        let Ctx { pool, .. } = ctx; // drops the last spare ended-items sender
        let mut outputs = Outputs {
            outcomes,
            dead_letter: None,
            threads: Vec::new(),
        };
        if let Some(sink) = self.sink {
            let (tx, rx) = link::bounded::<Outcome<T>>(capacity);
            outputs.outcomes = Some(tx);
            outputs
                .threads
                .push(spawn_sink("gearshift-sink", rx, sink)?);
        }
        if let Some(dead) = self.dead_letter {
            let (tx, rx) = link::bounded::<Failure>(capacity);
            outputs.dead_letter = Some(tx);
            outputs
                .threads
                .push(spawn_sink("gearshift-dead-letter", rx, dead)?);
        }
        let collector = Collector {
            shared: Arc::clone(&shared),
            main,
            ended: ended_rx,
            outputs,
            window,
            on_error: self.config.on_error,
            pool,
        };
        tokio::spawn(collector.run());
        let tuned = shared.budgets().iter().any(|b| b.tuner().is_some());
        shared.set_automatic(self.schedule.is_some(), tuned);
        let controller = Controller {
            shared: Arc::clone(&shared),
            schedule: self.schedule,
        };
        tokio::spawn(controller.run());
        #[cfg(feature = "metrics")]
        crate::export::spawn(Arc::clone(&shared));
        tracing::info!(
            stages = ?names,
            apis = ?shared.budgets().iter().map(|b| b.name.to_string()).collect::<Vec<_>>(),
            agents = self.config.total_agents(),
            workers = self.config.workers,
            items_per_batch = self.config.items_per_batch,
            "pipeline started"
        );
        Ok(PipelineHandle::new(shared))
    }
}

/// Stages and outputs: for a pipeline whose outcomes are not yet a sink's.
impl<T: Send + 'static> Pipeline<T, ToCaller> {
    /// Starts the pipeline and returns its outcomes as a stream.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Pipeline::spawn).
    pub fn spawn_stream(self) -> Result<(PipelineHandle, Outcomes<T>), BuildError> {
        // The stream's capacity comes from the configuration: check it first.
        self.config.validate()?;
        let (tx, rx) = link::bounded(self.config.channel_capacity);
        let handle = self.start(Some(tx))?;
        Ok((handle, Outcomes::new(rx)))
    }

    /// Runs the pipeline to the end and returns every outcome and the report.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Pipeline::spawn).
    pub async fn collect(self) -> Result<(Vec<Outcome<T>>, Report), BuildError> {
        let (handle, outcomes) = self.spawn_stream()?;
        let outcomes = outcomes.collect().await;
        Ok((outcomes, handle.join().await))
    }
}

/// Each IO stage's budget: the API it names, or one of its own named after
/// it. Two different budgets may not share a name.
fn budgets(stages: &[StagePlan]) -> Result<Vec<Option<Arc<Budget>>>, BuildError> {
    let mut out: Vec<Option<Arc<Budget>>> = Vec::with_capacity(stages.len());
    for stage in stages {
        let budget = match (stage.kind, &stage.api) {
            (StageKind::Cpu, _) => None,
            (StageKind::Io, Some(api)) => Some(Arc::clone(&api.budget)),
            (StageKind::Io, None) => Some(Budget::new(stage.name.clone(), true)),
        };
        if let Some(b) = &budget
            && out
                .iter()
                .flatten()
                .any(|o| o.name == b.name && !Arc::ptr_eq(o, b))
        {
            return Err(BuildError::DuplicateName(b.name.to_string()));
        }
        out.push(budget);
    }
    Ok(out)
}

/// Gives the default controller to each budget whose concurrency nothing
/// fixes (no schedule of presets, no stage drawing on it with fixed agents,
/// no `max_in_flight`, no tuner of the user's), and says once which budgets
/// run it and why the others do not.
fn settle_controllers(shared: &Shared, scheduled: bool) {
    let live = shared.settings.borrow().clone();
    let mut default = Vec::new();
    let mut other = Vec::new();
    for budget in shared.budgets() {
        let draws = |b: &Option<Arc<Budget>>| b.as_ref().is_some_and(|b| Arc::ptr_eq(b, &budget));
        let fixed_by =
            (0..live.stages.len()).find(|&i| draws(&shared.stage_apis[i]) && !live.agents_auto(i));
        let name = &budget.name;
        let auto = fixed_by.is_none() && !scheduled;
        match budget.settle_default(auto, live.defaults.cores) {
            Runs::Default => default.push(name.to_string()),
            Runs::Own => other.push(format!("{name}: a tuner of its own")),
            Runs::Fixed => other.push(match fixed_by {
                Some(i) if live.stages[i].agents.is_some() => {
                    format!("{name}: stage {} sets its agents", shared.names[i])
                }
                Some(_) => {
                    format!("{name}: the pipeline's agents are set (Config::agents or a preset)")
                }
                None if scheduled => format!("{name}: a schedule sets the ratio"),
                None => format!("{name}: max_in_flight is set"),
            }),
        }
    }
    tracing::info!(
        default_controller = ?default,
        other = ?other,
        "budgets under the default controller, and why the others are not"
    );
}

fn spawn_sink<X: Send + 'static>(
    name: &str,
    rx: link::Receiver<X>,
    mut f: impl FnMut(X) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, BuildError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            while let Ok(x) = rx.recv_blocking() {
                f(x);
            }
        })
        .map_err(|e| BuildError::Pool(format!("could not start a sink thread: {e}")))
}
