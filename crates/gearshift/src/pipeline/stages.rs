//! The builder's stages and outputs: IO stages (`io`, `io_with`,
//! `io_batch`), CPU stages (`cpu`, `try_cpu`, `cpu_with`) and the sink that
//! ends a pipeline. Each stage starts itself (`io_stage::start`,
//! `cpu_stage::start`) when the pipeline spawns.

use std::future::Future;
use std::marker::PhantomData;

use super::cpu_stage::{self, CpuFn};
use super::io_stage::{self, Batched, Single, Unit, WithCall};
use super::{Build, Ctx, Pipeline, StagePlan, ToSink};
use crate::control::settings::StageSettings;
use crate::error::{BuildError, StageError};
use crate::outcome::{Call, ItemId, Outcome};
use crate::pipeline::link::Outlet;
use crate::stats::counters::StageKind;

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
            io_stage::start(ctx, index, unit, upstream, output)
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
            cpu_stage::start(ctx, index, f, upstream, output)
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
