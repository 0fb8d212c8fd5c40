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
mod stages;
mod start;

use std::marker::PhantomData;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::Stream;
use tokio::sync::Semaphore;

use self::item::EndedTx;
use self::link::Outlet;
use self::source::{Source, SourceTask};
use crate::config::Config;
use crate::control::Schedule;
use crate::control::budget::Api;
use crate::control::settings::{Live, StageSettings};
use crate::control::shared::Shared;
use crate::error::{BuildError, StageError};
use crate::outcome::{Failure, Outcome};
use crate::preset::Preset;
use crate::stats::counters::{StageKind, StageStats};

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
    /// stays on top of a later [`config`](Self::config). Its agents are
    /// fixed, so no budget runs the default controller unless a stage leaves
    /// its agents to it ([`Agents::Auto`](crate::Agents::Auto)). By default,
    /// none.
    pub fn preset(mut self, preset: Preset) -> Self {
        preset.apply_to(&mut self.config);
        self.preset = Some(preset);
        self
    }

    /// Switches presets on a schedule. A schedule sets the ratio, so no
    /// budget of the pipeline runs the default controller (a tuner of your
    /// own still runs). By default, none.
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

/// The knobs a preset sets, to tell whether applying one changed anything.
fn preset_knobs(c: &Config) -> (usize, usize, usize) {
    (c.total_agents(), c.workers, c.items_per_batch)
}
