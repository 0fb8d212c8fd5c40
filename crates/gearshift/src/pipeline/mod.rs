//! [`Pipeline`]: compose a source and any number of IO and CPU stages, then
//! spawn them as one run with bounded memory.

mod collector;
mod controller;
mod cpu_stage;
mod io_stage;
pub(crate) mod item;
mod link;
mod outcomes;
pub(crate) mod shared;
mod source;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use futures::StreamExt;
use futures::stream::Stream;
use tokio::sync::Semaphore;

use self::collector::{Collector, Outputs};
use self::controller::Controller;
use self::cpu_stage::CpuCore;
use self::io_stage::{Batched, IoCore, Single, Unit};
use self::item::{Ended, EndedTx};
use self::link::{BatchReceiver, Outlet, batch_channel};
use self::shared::Shared;
use self::source::{Source, SourceTask};
use crate::config::{Config, Order};
use crate::control::gate::Gate;
use crate::control::pause::Pause;
use crate::control::rate::RateLimit;
use crate::control::roster::Roster;
use crate::control::{PipelineHandle, Schedule};
use crate::error::{BuildError, StageError};
use crate::outcome::{Failure, Outcome};
use crate::preset::Preset;
use crate::stats::counters::{Capacity, QueueLen, StageKind, StageStats};
use crate::stats::report::Report;
use crate::tuner::Tuner;

pub use outcomes::Outcomes;

/// What is needed to start the stages, built at `spawn`.
struct Ctx {
    shared: Arc<Shared>,
    config: Config,
    ended: EndedTx,
    pool: Option<Arc<rayon::ThreadPool>>,
    window: Option<Arc<Semaphore>>,
    names: Vec<Arc<str>>,
}

impl Ctx {
    fn pool(&mut self) -> Result<Arc<rayon::ThreadPool>, BuildError> {
        if let Some(pool) = &self.pool {
            return Ok(Arc::clone(pool));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.config.pool_threads())
            .thread_name(|i| format!("gearshift-worker-{i}"))
            .build()
            .map_err(|e| BuildError::Pool(e.to_string()))?;
        Ok(Arc::clone(self.pool.insert(Arc::new(pool))))
    }

    fn register(&self, stats: &Arc<StageStats>) {
        self.shared
            .stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(stats));
    }
}

/// Starts the stages built so far, sending their results to the outlet the
/// next stage (or the collector) made for its input.
type Build<T> = Box<dyn FnOnce(&mut Ctx, Outlet<T>) -> Result<(), BuildError> + Send>;

/// A pipeline under construction: a source, then stages, then `spawn`.
///
/// # Examples
///
/// ```
/// use gearshift::{Pipeline, Preset, StageError};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (outcomes, report) = Pipeline::from_iter(0..100u64)
///     .io(|id| async move { Ok::<_, StageError>(id * 2) }) // an API call, usually
///     .cpu(|x| x + 1)                                      // CPU work on rayon
///     .preset(Preset::Mixed)
///     .collect()
///     .await?;
/// assert_eq!(report.ok, 100);
/// assert_eq!(outcomes.len(), 100);
/// # Ok(()) }
/// ```
pub struct Pipeline<T> {
    config: Config,
    build: Build<T>,
    names: Vec<String>,
    tuner: Option<Box<dyn Tuner>>,
    schedule: Option<Schedule>,
    sink: Option<Box<dyn FnMut(Outcome<T>) + Send>>,
    dead_letter: Option<Box<dyn FnMut(Failure) + Send>>,
}

impl<T> std::fmt::Debug for Pipeline<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .field("stages", &self.names)
            .field("tuner", &self.tuner.as_ref().map(|t| t.name().to_owned()))
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Pipeline<T> {
    /// A pipeline over the items of an iterator. The iterator is pulled on a
    /// tokio task, so it should not block; wrap a blocking one in a channel.
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::from_source(Source::Stream(futures::stream::iter(items).map(Ok).boxed()))
    }

    /// A pipeline over the items of a stream.
    pub fn from_stream<S>(items: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Self::from_source(Source::Stream(items.map(Ok).boxed()))
    }

    /// A pipeline over a fallible stream: each `Err` item becomes a
    /// `Failed` outcome of stage `"source"`, and the stream is polled on.
    pub fn from_try_stream<S, E>(items: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        E: Into<StageError>,
    {
        Self::from_source(Source::Stream(items.map(|r| r.map_err(Into::into)).boxed()))
    }

    /// A pipeline over the items sent into a channel, until it is closed.
    /// On cancel the channel is closed and the items still in it are
    /// recorded as cancelled.
    pub fn from_channel(rx: async_channel::Receiver<T>) -> Self {
        Self::from_source(Source::Channel(rx))
    }

    fn from_source(source: Source<T>) -> Self {
        Pipeline {
            config: Config::default(),
            build: Box::new(move |ctx: &mut Ctx, tx| {
                let task = SourceTask {
                    source,
                    tx,
                    batch: ctx.config.items_per_batch,
                    ended: ctx.ended.clone(),
                    stop: ctx.shared.shutdown.stop.clone(),
                    window: ctx.window.clone(),
                    in_flight: ctx.shared.in_flight.clone(),
                };
                tokio::spawn(tracing::Instrument::instrument(
                    task.run(),
                    tracing::info_span!("source"),
                ));
                Ok(())
            }),
            names: Vec::new(),
            tuner: None,
            schedule: None,
            sink: None,
            dead_letter: None,
        }
    }

    /// Replaces the whole configuration. By default, `Config::default()`.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Changes the configuration in place.
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Applies a preset's ratio knobs (agents, batch size, workers) to the
    /// configuration; the other settings stay.
    pub fn preset(mut self, preset: Preset) -> Self {
        preset.apply_to(&mut self.config);
        self
    }

    /// Names the last stage added (in stats, logs and failures). By default,
    /// stages are named `io-N` and `cpu-N` by position.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        if let Some(last) = self.names.last_mut() {
            *last = name.into();
        }
        self
    }

    /// Lets a tuner change the ratio while items flow. By default, none.
    pub fn tuner(mut self, tuner: impl Tuner) -> Self {
        self.tuner = Some(Box::new(tuner));
        self
    }

    /// Switches presets on a schedule. By default, none.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// Sends every outcome to `sink`, called on a thread of its own (so a
    /// slow sink pushes back on the pipeline without blocking the runtime).
    /// Set it after the last stage.
    pub fn sink(mut self, sink: impl FnMut(Outcome<T>) + Send + 'static) -> Self {
        self.sink = Some(Box::new(sink));
        self
    }

    /// Routes failed outcomes to their own sink instead of the outputs.
    pub fn dead_letter(mut self, sink: impl FnMut(Failure) + Send + 'static) -> Self {
        self.dead_letter = Some(Box::new(sink));
        self
    }

    /// Adds an IO stage: agents (tokio tasks) call `f` once per item, under
    /// the API semaphore, with `api_timeout` per attempt and the retry
    /// policy. `T: Clone` because a retry needs the item again; the last
    /// attempt takes it by value (so without retries it is never cloned).
    pub fn io<U, F, Fut, E>(self, f: F) -> Pipeline<U>
    where
        T: Clone,
        U: Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<StageError> + Send + 'static,
    {
        self.io_unit(Single(f))
    }

    /// Adds an IO stage whose calls each take a batch of up to `max_batch`
    /// items (whatever is queued when an agent starts a call) and return one
    /// output per item, in order. A batch succeeds, fails or is retried as a
    /// whole.
    pub fn io_batch<U, F, Fut, E>(self, max_batch: usize, f: F) -> Pipeline<U>
    where
        T: Clone + Sync,
        U: Send + 'static,
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<U>, E>> + Send + 'static,
        E: Into<StageError> + Send + 'static,
    {
        self.io_unit(Batched {
            f,
            max: max_batch.max(1),
        })
    }

    fn io_unit<U, W>(self, unit: W) -> Pipeline<U>
    where
        T: Clone,
        U: Send + 'static,
        W: Unit<T, U>,
    {
        let index = self.names.len();
        self.then(format!("io-{index}"), move |ctx, upstream, output| {
            let (tx, input) = link::bounded(ctx.config.channel_capacity);
            upstream(ctx, Outlet::Items(tx))?;
            let c = &ctx.config;
            let name = Arc::clone(&ctx.names[index]);
            let roster = Arc::new(Roster::new(c.total_agents()));
            let permits = Gate::new(c.total_api_permits());
            let queue = input.watcher();
            let stats = Arc::new(StageStats::new(
                Arc::clone(&name),
                StageKind::Io,
                Capacity::Io {
                    roster: Arc::clone(&roster),
                    permits: Arc::clone(&permits),
                },
                QueueLen(Box::new(move || queue.len())),
                c.channel_capacity,
                c.cores,
            ));
            ctx.register(&stats);
            let core = Arc::new(IoCore {
                name: Arc::clone(&name),
                input,
                output,
                out_batch: AtomicUsize::new(c.items_per_batch),
                ended: ctx.ended.clone(),
                stats,
                roster,
                permits,
                pause: Pause::new(),
                rate: RateLimit::new(c.rate_limit),
                shrink: tokio::sync::Notify::new(),
                abort: ctx.shared.shutdown.abort.clone(),
                retry: c.retry.clone(),
                api_timeout: c.api_timeout,
                item_deadline: c.item_deadline,
                first: index == 0,
            });
            let span = tracing::info_span!("stage", stage = %name, kind = "io");
            let supervisor =
                io_stage::supervise(core, Arc::new(unit), ctx.shared.config.subscribe());
            tokio::spawn(tracing::Instrument::instrument(supervisor, span));
            Ok(())
        })
    }

    /// Adds a CPU stage: `f` runs on the rayon pool, batch by batch. A panic
    /// in `f` becomes a `Failed` outcome and the pipeline keeps running.
    pub fn cpu<U, F>(self, f: F) -> Pipeline<U>
    where
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.try_cpu(move |x| Ok::<_, StageError>(f(x)))
    }

    /// Adds a CPU stage whose function may fail; an `Err` becomes a `Failed`
    /// outcome (CPU work is not retried).
    pub fn try_cpu<U, F, E>(self, f: F) -> Pipeline<U>
    where
        U: Send + 'static,
        F: Fn(T) -> Result<U, E> + Send + Sync + 'static,
        E: Into<StageError>,
    {
        let index = self.names.len();
        self.then(format!("cpu-{index}"), move |ctx, upstream, output| {
            let (tx, input) = batch_channel(ctx.config.channel_capacity);
            upstream(ctx, Outlet::Batches(tx))?;
            let pool = ctx.pool()?;
            let c = &ctx.config;
            let output = Arc::new(output);
            let name = Arc::clone(&ctx.names[index]);
            let slots = Gate::new(c.workers * cpu_stage::BATCHES_PER_WORKER);
            let workers = Arc::new(AtomicUsize::new(c.workers));
            let queue = input.watcher();
            let stats = Arc::new(StageStats::new(
                Arc::clone(&name),
                StageKind::Cpu,
                Capacity::Cpu {
                    slots: Arc::clone(&slots),
                    workers: Arc::clone(&workers),
                },
                QueueLen(Box::new(move || queue.len())),
                c.channel_capacity,
                c.cores,
            ));
            ctx.register(&stats);
            let results =
                cpu_stage::spawn_forwarder(&name, Arc::clone(&output), Arc::clone(&stats))
                    .map_err(|e| {
                        BuildError::Pool(format!("could not start a forwarder thread: {e}"))
                    })?;
            let core = Arc::new(CpuCore {
                name: Arc::clone(&name),
                f: Box::new(move |x| f(x).map_err(Into::into)),
                input,
                ended: ctx.ended.clone(),
                stats,
                slots,
                workers,
                abort: ctx.shared.shutdown.abort.clone(),
                pool,
                output,
                ready: crossbeam_channel::unbounded(),
                active: AtomicUsize::new(0),
                item_nanos: std::sync::atomic::AtomicU64::new(0),
                first: index == 0,
            });
            let span = tracing::info_span!("stage", stage = %name, kind = "cpu");
            let batcher = core.run(results, ctx.shared.config.subscribe());
            tokio::spawn(tracing::Instrument::instrument(batcher, span));
            Ok(())
        })
    }

    fn then<U: Send + 'static>(
        self,
        name: String,
        stage: impl FnOnce(&mut Ctx, Build<T>, Outlet<U>) -> Result<(), BuildError> + Send + 'static,
    ) -> Pipeline<U> {
        let Pipeline {
            config,
            build,
            mut names,
            tuner,
            schedule,
            sink: _,
            dead_letter,
        } = self;
        names.push(name);
        Pipeline {
            config,
            build: Box::new(move |ctx, output| stage(ctx, build, output)),
            names,
            tuner,
            schedule,
            sink: None,
            dead_letter,
        }
    }

    /// Starts the pipeline on the current tokio runtime. Outcomes go to the
    /// sink if one was set, else they are counted and dropped.
    ///
    /// Dropping every handle does not stop the pipeline: it runs to the end
    /// (use [`PipelineHandle::cancel`] to stop it).
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a bad configuration, no runtime, or no rayon pool.
    pub fn spawn(self) -> Result<PipelineHandle, BuildError> {
        self.start(false).map(|(h, _)| h)
    }

    /// Starts the pipeline and returns its outcomes as a stream.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn).
    pub fn spawn_stream(self) -> Result<(PipelineHandle, Outcomes<T>), BuildError> {
        self.start(true)
            .map(|(h, o)| (h, o.expect("a stream was asked for")))
    }

    /// Runs the pipeline to the end and returns its report.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn).
    pub async fn run(self) -> Result<Report, BuildError> {
        Ok(self.spawn()?.join().await)
    }

    /// Runs the pipeline to the end and returns every outcome and the report.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn).
    pub async fn collect(self) -> Result<(Vec<Outcome<T>>, Report), BuildError> {
        let (handle, outcomes) = self.spawn_stream()?;
        let outcomes = outcomes.collect().await;
        Ok((outcomes, handle.join().await))
    }

    /// Runs the pipeline to the end on a runtime of its own, for code that
    /// is not async.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn), and [`BuildError::Pool`] if the
    /// runtime cannot start.
    pub fn run_blocking(self) -> Result<Report, BuildError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.config.cores.clamp(1, 64))
            .thread_name("gearshift-io")
            .enable_all()
            .build()
            .map_err(|e| BuildError::Pool(format!("could not start a tokio runtime: {e}")))?;
        rt.block_on(self.run())
    }

    fn start(self, stream: bool) -> Result<(PipelineHandle, Option<Outcomes<T>>), BuildError> {
        self.config.validate()?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let shared = Shared::new(self.config.clone(), rt);
        let (ended_tx, ended_rx) = async_channel::unbounded::<Ended>();
        let window = match self.config.order {
            Order::Ordered { window } => Some(Arc::new(Semaphore::new(window))),
            Order::Unordered => None,
        };
        let mut ctx = Ctx {
            shared: Arc::clone(&shared),
            config: self.config.clone(),
            ended: ended_tx,
            pool: None,
            window: window.clone(),
            names: self.names.iter().map(|n| Arc::from(n.as_str())).collect(),
        };
        let (tx, main): (_, BatchReceiver<T>) = batch_channel(self.config.channel_capacity);
        (self.build)(&mut ctx, Outlet::Batches(tx))?;
        let Ctx { pool, .. } = ctx; // drops the last spare ended-items sender
        let capacity = self.config.channel_capacity;
        let mut outputs = Outputs {
            outcomes: None,
            dead_letter: None,
            threads: Vec::new(),
        };
        let mut stream_rx = None;
        if let Some(sink) = self.sink {
            let (tx, rx) = link::bounded::<Outcome<T>>(capacity);
            outputs.outcomes = Some(tx);
            outputs
                .threads
                .push(spawn_sink("gearshift-sink", rx, sink)?);
        } else if stream {
            let (tx, rx) = link::bounded(capacity);
            outputs.outcomes = Some(tx);
            stream_rx = Some(Outcomes::new(rx));
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
        let controller = Controller {
            shared: Arc::clone(&shared),
            tuner: self.tuner,
            schedule: self.schedule,
        };
        tokio::spawn(controller.run());
        tracing::info!(
            stages = ?self.names,
            agents = self.config.total_agents(),
            api_permits = self.config.total_api_permits(),
            workers = self.config.workers,
            items_per_batch = self.config.items_per_batch,
            "pipeline started"
        );
        Ok((PipelineHandle::new(shared), stream_rx))
    }
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
