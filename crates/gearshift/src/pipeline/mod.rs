//! [`Pipeline`]: compose a source and any number of IO and CPU stages, then
//! spawn them as one run with bounded memory.

mod collector;
mod cpu_stage;
mod io_stage;
pub(crate) mod item;
mod link;
mod outcomes;
mod source;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use futures::StreamExt;
use futures::stream::Stream;
use tokio::sync::Semaphore;

use self::collector::{Collector, Outputs};
use self::cpu_stage::CpuCore;
use self::io_stage::{Batched, IoCore, Single, Unit};
use self::item::{EndedTx, ended_channel};
use self::link::{BatchReceiver, Outlet, batch_channel};
use self::source::{Source, SourceTask};
use crate::config::{Config, Order};
use crate::control::controller::Controller;
use crate::control::shared::Shared;
use crate::control::{PipelineHandle, Schedule};
use crate::error::{BuildError, StageError};
use crate::outcome::{Failure, Outcome};
use crate::preset::{Preset, ratio};
use crate::stats::counters::{Capacity, QueueLen, StageKind, StageStats};
use crate::stats::report::Report;
use crate::sync::gate::Gate;
use crate::sync::pause::Pause;
use crate::sync::rate::RateLimit;
use crate::sync::roster::Roster;
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
/// # Outputs
///
/// The second type parameter says where the outcomes go, so that every
/// combination that compiles works. A new pipeline is a
/// `Pipeline<T, ToCaller>`: [`spawn_stream`](Self::spawn_stream) and
/// [`collect`](Self::collect) hand the outcomes back, [`spawn`](Self::spawn)
/// and [`run`](Self::run) count and drop them. [`sink`](Self::sink) turns it
/// into a `Pipeline<T, ToSink>`, which hands every outcome to the sink: it
/// takes no more stages (the sink is typed by the last stage's output) and
/// has no `collect` or `spawn_stream` (its outcomes are the sink's).
///
/// # Settings: which call wins
///
/// Calls apply in the order written, and a later one wins, with one
/// exception: [`config`](Self::config) replaces the base configuration but
/// keeps a [`preset`](Self::preset) given earlier, applied again on top
/// (logged at info). [`configure`](Self::configure) changes made before a
/// `config` are replaced with the rest of the old configuration (logged at
/// info). Once running, [`PipelineHandle`] documents who wins between the
/// handle, a [`Schedule`] and a [`Tuner`].
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
pub struct Pipeline<T, O = ToCaller> {
    config: Config,
    /// The last preset given, kept on top of a later `config(..)`.
    preset: Option<Preset>,
    /// Whether `configure` changed the configuration since it was last set.
    edited: bool,
    build: Build<T>,
    names: Vec<String>,
    tuner: Option<Box<dyn Tuner>>,
    schedule: Option<Schedule>,
    /// Set only by `sink`, which makes the pipeline a `Pipeline<T, ToSink>`.
    sink: Option<Box<dyn FnMut(Outcome<T>) + Send>>,
    dead_letter: Option<Box<dyn FnMut(Failure) + Send>>,
    output: PhantomData<fn() -> O>,
}

/// Where a [`Pipeline`]'s outcomes go: back to the caller, through
/// [`Pipeline::spawn_stream`] or [`Pipeline::collect`] (or counted and dropped
/// by [`Pipeline::spawn`] and [`Pipeline::run`]). The default.
#[derive(Debug)]
pub enum ToCaller {}

/// Where a [`Pipeline`]'s outcomes go: to the sink given to
/// [`Pipeline::sink`]. Such a pipeline takes no more stages and has no
/// stream to hand back.
#[derive(Debug)]
pub enum ToSink {}

impl<T, O> std::fmt::Debug for Pipeline<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .field("preset", &self.preset)
            .field("stages", &self.names)
            .field("tuner", &self.tuner.as_ref().map(|t| t.name().to_owned()))
            .field("schedule", &self.schedule)
            .field("sink", &self.sink.is_some())
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
    /// recorded as cancelled. The channel is an `async_channel`, re-exported
    /// as [`gearshift::async_channel`](crate::async_channel) so its version
    /// always matches.
    ///
    /// # Examples
    ///
    /// ```
    /// use gearshift::{Pipeline, async_channel};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), gearshift::BuildError> {
    /// let (tx, rx) = async_channel::bounded(64);
    /// let handle = Pipeline::from_channel(rx).cpu(|x: u64| x * 2).spawn()?;
    /// for i in 0..10 {
    ///     tx.send(i).await.unwrap();
    /// }
    /// drop(tx); // closing the channel ends the run
    /// assert_eq!(handle.join().await.ok, 10);
    /// # Ok(()) }
    /// ```
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
                    taken: Arc::clone(&ctx.shared.ledger.taken),
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
            output: PhantomData,
            preset: None,
            edited: false,
        }
    }
}

/// Settings, and starting: for every pipeline, whatever its outputs.
impl<T: Send + 'static, O> Pipeline<T, O> {
    /// Replaces the whole configuration. A preset given earlier stays: it is
    /// applied again on top of `config` (logged at info when that changes
    /// one of `config`'s values), so the order of `.preset(..)` and
    /// `.config(..)` does not matter. By default, `Config::default()`.
    pub fn config(mut self, config: Config) -> Self {
        if self.edited {
            tracing::info!(
                "config(..) replaces the whole configuration, with the changes made by configure(..) before it"
            );
        }
        self.config = config;
        self.edited = false;
        if let Some(preset) = self.preset {
            let before = ratio(&self.config);
            preset.apply_to(&mut self.config);
            if before != ratio(&self.config) {
                tracing::info!(
                    %preset,
                    "the preset given earlier overrides the ratio of the configuration given to config(..)"
                );
            }
        }
        self
    }

    /// Changes the configuration in place, after what came before in the
    /// chain (so a change here wins over an earlier preset).
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self.edited = true;
        self
    }

    /// Applies a preset's ratio knobs (agents, API permits, workers, batch
    /// size) to the configuration; the other settings stay. The preset also
    /// stays on top of a later [`config`](Self::config). By default, none.
    pub fn preset(mut self, preset: Preset) -> Self {
        preset.apply_to(&mut self.config);
        self.preset = Some(preset);
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

    /// Routes failed outcomes to their own sink instead of the outputs.
    pub fn dead_letter(mut self, sink: impl FnMut(Failure) + Send + 'static) -> Self {
        self.dead_letter = Some(Box::new(sink));
        self
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
}

/// Stages and outputs: for a pipeline whose outcomes are not yet a sink's.
impl<T: Send + 'static> Pipeline<T> {
    /// Sends every outcome to `sink`, called on a thread of its own (so a
    /// slow sink pushes back on the pipeline without blocking the runtime).
    /// The sink takes the last stage's outputs, so it comes after the last
    /// stage: the pipeline it returns takes no more stages, and its outcomes
    /// are the sink's, so it has no [`collect`](Self::collect) or
    /// [`spawn_stream`](Self::spawn_stream) (use [`run`](Pipeline::run) or
    /// [`spawn`](Pipeline::spawn)). By default, none.
    ///
    /// ```compile_fail
    /// # async fn f() {
    /// // A sink takes the outcomes: there is nothing left to collect.
    /// let _ = gearshift::Pipeline::from_iter(0..3u64).cpu(|x| x).sink(|_| {}).collect().await;
    /// # }
    /// ```
    ///
    /// ```compile_fail
    /// // The sink goes after the last stage.
    /// let _ = gearshift::Pipeline::from_iter(0..3u64).sink(|_| {}).cpu(|x| x);
    /// ```
    pub fn sink(self, sink: impl FnMut(Outcome<T>) + Send + 'static) -> Pipeline<T, ToSink> {
        Pipeline {
            config: self.config,
            preset: self.preset,
            edited: self.edited,
            build: self.build,
            names: self.names,
            tuner: self.tuner,
            schedule: self.schedule,
            sink: Some(Box::new(sink)),
            dead_letter: self.dead_letter,
            output: PhantomData,
        }
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
                max_pause: c.max_pause,
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
            let results = cpu_stage::spawn_forwarder(
                &name,
                Arc::clone(&output),
                ctx.ended.clone(),
                Arc::clone(&stats),
            )
            .map_err(|e| BuildError::Pool(format!("could not start a forwarder thread: {e}")))?;
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
            preset,
            edited,
            build,
            mut names,
            tuner,
            schedule,
            sink: _, // always `None` for a `Pipeline<T, ToCaller>`
            dead_letter,
            output: _,
        } = self;
        names.push(name);
        Pipeline {
            config,
            preset,
            edited,
            build: Box::new(move |ctx, output| stage(ctx, build, output)),
            names,
            tuner,
            schedule,
            sink: None,
            dead_letter,
            output: PhantomData,
        }
    }

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

impl<T: Send + 'static, O> Pipeline<T, O> {
    /// Starts every stage; outcomes go to the sink if one was set, else to
    /// `outcomes` if given, else they are counted and dropped.
    fn start(
        self,
        outcomes: Option<link::Sender<Outcome<T>>>,
    ) -> Result<PipelineHandle, BuildError> {
        self.config.validate()?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let shared = Shared::new(self.config.clone(), rt);
        let (ended_tx, ended_rx) = ended_channel();
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
        shared.set_automatic(self.schedule.is_some(), self.tuner.is_some());
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
        Ok(PipelineHandle::new(shared))
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
