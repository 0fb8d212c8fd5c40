//! [`Pipeline`]: compose a source and any number of IO and CPU stages, then
//! spawn them as one run with bounded memory.

mod collector;
mod cpu_stage;
mod io_stage;
pub(crate) mod item;
mod link;
mod outcomes;
mod per_stage;
mod source;
mod start;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use futures::StreamExt;
use futures::stream::Stream;
use tokio::sync::Semaphore;

use self::cpu_stage::{CpuCore, CpuFn};
use self::io_stage::{Batched, IoCore, Single, Unit, WithCall};
use self::item::EndedTx;
use self::link::{Outlet, batch_channel};
use self::source::{Source, SourceTask};
use crate::config::Config;
use crate::control::Schedule;
use crate::control::budget::Api;
use crate::control::settings::{Live, StageSettings};
use crate::control::shared::Shared;
use crate::error::{BuildError, StageError};
use crate::outcome::{Call, Failure, ItemId, Outcome};
use crate::preset::Preset;
use crate::stats::counters::{
    Concurrency, ConcurrencyGauge, QueueLen, StageGauges, StageKind, StageStats,
};
use crate::sync::gate::Gate;
use crate::sync::roster::Roster;

pub use outcomes::Outcomes;

/// What is needed to start the stages, built at `spawn`.
struct Ctx {
    shared: Arc<Shared>,
    /// The settings at spawn (stages follow live changes through `shared`).
    live: Live,
    ended: EndedTx,
    pool: Option<Arc<rayon::ThreadPool>>,
    window: Option<Arc<Semaphore>>,
}

impl Ctx {
    fn pool(&mut self) -> Result<Arc<rayon::ThreadPool>, BuildError> {
        if let Some(pool) = &self.pool {
            return Ok(Arc::clone(pool));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.live.defaults.pool_threads())
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
/// info). Settings of one stage (set right after it: [`agents`](Self::agents),
/// [`workers`](Self::workers), [`api`](Self::api) ...) win over the
/// pipeline-wide defaults that `config` and `preset` set. Once running,
/// [`PipelineHandle`](crate::PipelineHandle) documents who wins between the handle, a [`Schedule`]
/// and a budget's [`Tuner`](crate::Tuner).
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
    stages: Vec<StagePlan>,
    /// The first misuse of a per-stage setting, reported by `spawn`.
    misuse: Option<BuildError>,
    schedule: Option<Schedule>,
    /// Set only by `sink`, which makes the pipeline a `Pipeline<T, ToSink>`.
    sink: Option<Box<dyn FnMut(Outcome<T>) + Send>>,
    dead_letter: Option<Box<dyn FnMut(Failure) + Send>>,
    output: PhantomData<fn() -> O>,
}

/// A stage as the builder knows it: its name, its settings and its budget.
#[derive(Debug)]
struct StagePlan {
    name: String,
    kind: StageKind,
    settings: StageSettings,
    api: Option<Api>,
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
            .field("stages", &self.stages)
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
                    batch: ctx.live.defaults.items_per_batch,
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
            stages: Vec::new(),
            misuse: None,
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
            let before = preset_knobs(&self.config);
            preset.apply_to(&mut self.config);
            if before != preset_knobs(&self.config) {
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
            stages: self.stages,
            misuse: self.misuse,
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

    /// As [`io`](Self::io), for a function that also takes the item's
    /// [`Call`]: its id (as in its [`Outcome`]) and the attempt number at
    /// this stage, from 1. For idempotency keys, request logs and traces
    /// that must be tied to outcomes, without carrying the id in the value.
    ///
    /// ```
    /// use gearshift::{Call, Pipeline, StageError};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let report = Pipeline::from_iter(vec!["a", "b", "c"])
    ///     .io_with(|name, call: Call| async move {
    ///         tracing::info!(item = call.item, attempt = call.attempt, "fetching {name}");
    ///         Ok::<_, StageError>(name.len())
    ///     })
    ///     .run()
    ///     .await?;
    /// assert_eq!(report.ok, 3);
    /// # Ok(()) }
    /// ```
    pub fn io_with<U, F, Fut, E>(self, f: F) -> Pipeline<U>
    where
        T: Clone,
        U: Send + 'static,
        F: Fn(T, Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<StageError> + Send + 'static,
    {
        self.io_unit(WithCall(f))
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
        let index = self.stages.len();
        self.then(StageKind::Io, move |ctx, upstream, output| {
            let live = &ctx.live;
            let capacity = live.channel_capacity(index);
            let (tx, input) = link::bounded(capacity);
            upstream(ctx, Outlet::Items(tx))?;
            let live = &ctx.live;
            let name = Arc::clone(&ctx.shared.names[index]);
            let budget = ctx.shared.stage_apis[index]
                .clone()
                .expect("an IO stage has a budget");
            let roster = Arc::new(Roster::new(live.agents(index)));
            let queue = input.watcher();
            let permits = &budget.permits;
            let (r, p) = (Arc::clone(&roster), Arc::clone(permits));
            let gauges = StageGauges {
                concurrency: ConcurrencyGauge(Box::new(move || Concurrency {
                    alive: r.alive(),
                    target: r.target(),
                    permits: p.size(),
                    in_use: p.in_use(),
                })),
                queue: QueueLen(Box::new(move || queue.len())),
                queue_capacity: capacity,
                peak_in_use: Arc::clone(permits.peaks()),
            };
            let stats = Arc::new(StageStats::new(
                Arc::clone(&name),
                StageKind::Io,
                gauges,
                live.defaults.cores,
            ));
            ctx.register(&stats);
            let core = Arc::new(IoCore::new(
                index,
                name,
                input,
                output,
                ctx.ended.clone(),
                stats,
                roster,
                budget,
                ctx.shared.shutdown.abort.clone(),
                live,
            ));
            let span = tracing::info_span!("stage", stage = %core.name, kind = "io");
            let supervisor =
                io_stage::supervise(core, Arc::new(unit), ctx.shared.settings.subscribe());
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
        self.cpu_unit(Box::new(move |x, _| f(x).map_err(Into::into)))
    }

    /// As [`cpu`](Self::cpu), for a function that also takes the item's id
    /// (as in its [`Outcome`]).
    ///
    /// ```
    /// use gearshift::{ItemId, Pipeline};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (outcomes, _) = Pipeline::from_iter(vec![10u64, 20, 30])
    ///     .cpu_with(|x, id: ItemId| x + id)
    ///     .collect()
    ///     .await?;
    /// let mut values: Vec<u64> = outcomes.into_iter().filter_map(|o| o.ok()).collect();
    /// values.sort();
    /// assert_eq!(values, [10, 21, 32]);
    /// # Ok(()) }
    /// ```
    pub fn cpu_with<U, F>(self, f: F) -> Pipeline<U>
    where
        U: Send + 'static,
        F: Fn(T, ItemId) -> U + Send + Sync + 'static,
    {
        self.cpu_unit(Box::new(move |x, id| Ok(f(x, id))))
    }

    fn cpu_unit<U: Send + 'static>(self, f: CpuFn<T, U>) -> Pipeline<U> {
        let index = self.stages.len();
        self.then(StageKind::Cpu, move |ctx, upstream, output| {
            let capacity = ctx.live.channel_capacity(index);
            let (tx, input) = batch_channel(capacity);
            upstream(ctx, Outlet::Batches(tx))?;
            let pool = ctx.pool()?;
            let live = &ctx.live;
            let output = Arc::new(output);
            let name = Arc::clone(&ctx.shared.names[index]);
            let workers = live.workers(index);
            let slots = Gate::new(workers * cpu_stage::BATCHES_PER_WORKER);
            let workers = Arc::new(AtomicUsize::new(workers));
            let queue = input.watcher();
            let (s, w) = (Arc::clone(&slots), Arc::clone(&workers));
            let gauges = StageGauges {
                concurrency: ConcurrencyGauge(Box::new(move || {
                    let workers = w.load(std::sync::atomic::Ordering::Relaxed);
                    Concurrency {
                        alive: workers,
                        target: workers,
                        permits: s.size(),
                        in_use: s.in_use(),
                    }
                })),
                queue: QueueLen(Box::new(move || queue.len())),
                queue_capacity: capacity,
                peak_in_use: Arc::clone(slots.peaks()),
            };
            let stats = Arc::new(StageStats::new(
                Arc::clone(&name),
                StageKind::Cpu,
                gauges,
                live.defaults.cores,
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
                index,
                name: Arc::clone(&name),
                f,
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
            let batcher = core.run(results, ctx.shared.settings.subscribe());
            tokio::spawn(tracing::Instrument::instrument(batcher, span));
            Ok(())
        })
    }

    fn then<U: Send + 'static>(
        self,
        kind: StageKind,
        stage: impl FnOnce(&mut Ctx, Build<T>, Outlet<U>) -> Result<(), BuildError> + Send + 'static,
    ) -> Pipeline<U> {
        let Pipeline {
            config,
            preset,
            edited,
            build,
            mut stages,
            misuse,
            schedule,
            sink: _, // always `None` for a `Pipeline<T, ToCaller>`
            dead_letter,
            output: _,
        } = self;
        let prefix = match kind {
            StageKind::Io => "io",
            StageKind::Cpu => "cpu",
        };
        stages.push(StagePlan {
            name: format!("{prefix}-{}", stages.len()),
            kind,
            settings: StageSettings::default(),
            api: None,
        });
        Pipeline {
            config,
            preset,
            edited,
            build: Box::new(move |ctx, output| stage(ctx, build, output)),
            stages,
            misuse,
            schedule,
            sink: None,
            dead_letter,
            output: PhantomData,
        }
    }
}

/// The knobs a preset sets, to tell whether applying one changed anything.
fn preset_knobs(c: &Config) -> (usize, usize, usize) {
    (c.total_agents(), c.workers, c.items_per_batch)
}
