//! A cluster-wide API budget: processes on many machines share one API's
//! limit on calls in flight, through NATS key-value.
//!
//! Every process's budget runs a [`ClusterTuner`], which resizes the local
//! limit to the process's share of the cluster's; everything else in
//! gearshift is unchanged. Behind it, a task per process, every renewal
//! (100 ms by default):
//!
//! - puts the process's record, `<api>.member.<process id>`: what it could
//!   use (its demand) and running totals of what its calls did;
//! - takes part in electing a leader, `<api>.leader`: created when free,
//!   renewed by compare-and-set on its revision, taken over by
//!   compare-and-set when its revision has not moved for a lease (judged on
//!   the observer's own clock, never by comparing clocks);
//! - when leading, divides the cluster's limit among the live members, max-min
//!   fair by demand (a share shrinks at once and grows only into calls no
//!   member holds, so the budgets together never allow more than the
//!   limit), writes the grant, `<api>.grant`, and once per control
//!   window merges the members' calls into one [`Window`] and runs one step
//!   of one control law (by default [`Gradient`]) for the whole cluster: a
//!   429 seen by three processes is one decrease, not three;
//! - reads the grant. A process without a fresh grant for a lease holds the
//!   floor (1 call), never its old share: it fails closed.
//!
//! `docs/cluster.md` has the protocol, the failure modes and why NATS.
//! The protocol is hand-written on async-nats' key-value store: no crate
//! offers leases whose leader runs a gearshift control law, and the whole
//! of it is a few compare-and-set calls per renewal.
//!
//! [`Window`]: gearshift::tuner::Window
//! [`Gradient`]: gearshift::tuner::Gradient
//!
//! # Examples
//!
//! ```no_run
//! use gearshift_nats::budget::{ClusterBudget, ClusterConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let cluster = ClusterBudget::connect(client, "search", ClusterConfig::default()).await?;
//! // Starts at the floor, then holds this process's share.
//! let api = cluster.api();
//! # drop(api);
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod fair;
mod leader;
mod local;
mod member;
mod record;
mod tuner;
mod watch;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{ClusterConfig, InnerTuner};
pub use error::BudgetError;
pub use tuner::ClusterTuner;

use local::Local;
use member::Member;

/// This process's membership in a cluster-wide budget for one API.
///
/// Dropping it stops its task at once, as a crash would (the others notice
/// after a lease); [`ClusterBudget::leave`] tells them first.
#[derive(Debug)]
pub struct ClusterBudget {
    api: String,
    process_id: String,
    renewal: Duration,
    floor: usize,
    local: Arc<Local>,
    task: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

/// What a process knows of the cluster budget, for reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Calls in flight this process may make now (the floor without a
    /// fresh grant).
    pub share: usize,
    /// The cluster's limit, from a fresh grant.
    pub limit: Option<usize>,
    /// Whether this process leads.
    pub leader: bool,
    /// The term of the latest grant read.
    pub term: Option<u64>,
    /// Control steps that term has taken.
    pub steps: u64,
}

impl ClusterBudget {
    /// Joins the budget of `api`, opening (or creating) the bucket, and
    /// starts this process's task. Call it inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`BudgetError::Config`] for a name or setting out of range,
    /// [`BudgetError::Nats`] when the bucket cannot be opened.
    pub async fn connect(
        client: async_nats::Client,
        api: &str,
        config: ClusterConfig,
    ) -> Result<ClusterBudget, BudgetError> {
        check(&config, api)?;
        let js = async_nats::jetstream::new(client);
        let kv = crate::kv::key_value(&js, &config.bucket).await?;
        let keys = Keys::new(api, &config.process_id);
        let local = Arc::new(Local::new(config.floor, config.lease));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let incarnation = nanos ^ u64::from(std::process::id()).rotate_left(32);
        let (stop, stopped) = oneshot::channel();
        let member = Member::new(kv, keys, config.clone(), incarnation, Arc::clone(&local));
        let task = tokio::spawn(member.run(stopped));
        Ok(ClusterBudget {
            api: api.to_owned(),
            process_id: config.process_id,
            renewal: config.renewal,
            floor: config.floor,
            local,
            task: Some(task),
            stop: Some(stop),
        })
    }

    /// The local budget for this process's pipeline: named as the API,
    /// starting at the floor (no share is known yet), resized to the
    /// process's share every renewal. Give it to one pipeline: a process's
    /// share is one budget's limit.
    pub fn api(&self) -> gearshift::Api {
        gearshift::Api::new(self.api.as_str())
            .max_in_flight(self.floor)
            .tuner(self.tuner())
    }

    /// The tuner behind [`ClusterBudget::api`], for a budget built by hand
    /// (`Api::new(name).tuner(cluster.tuner())`; without a fixed
    /// `max_in_flight` it starts from the pipeline's default limit until
    /// its first window). Give it to one budget only.
    pub fn tuner(&self) -> ClusterTuner {
        ClusterTuner {
            local: Arc::clone(&self.local),
            renewal: self.renewal,
        }
    }

    /// What this process knows now.
    pub fn status(&self) -> Status {
        let s = self.local.lock();
        Status {
            share: self.local.share(&s),
            limit: self
                .local
                .fresh(&s)
                .map(|g| usize::try_from(g.limit).unwrap_or(usize::MAX)),
            leader: s.leading,
            term: s.leader_term,
            steps: s.steps,
        }
    }

    /// The API this budget is for.
    pub fn name(&self) -> &str {
        &self.api
    }

    /// This process's id among the members.
    pub fn process_id(&self) -> &str {
        &self.process_id
    }

    /// Leaves the budget: deletes this process's record (and gives up the
    /// leader key), so the others divide the limit without it at once.
    pub async fn leave(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ClusterBudget {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The keys of one API's records.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub api: String,
    pub member: String,
    pub members: String,
    pub leader: String,
    pub grant: String,
}

impl Keys {
    fn new(api: &str, process_id: &str) -> Keys {
        Keys {
            api: api.to_owned(),
            member: format!("{api}.member.{process_id}"),
            members: format!("{api}.member.*"),
            leader: format!("{api}.leader"),
            grant: format!("{api}.grant"),
        }
    }
}

impl ClusterConfig {
    /// How long one request to NATS may take before the task moves on.
    pub(crate) fn op_timeout(&self) -> Duration {
        (self.renewal * 3).max(self.lease / 2)
    }
}

/// Names become key tokens: letters, digits, `-` and `_` only.
fn check(c: &ClusterConfig, api: &str) -> Result<(), BudgetError> {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    };
    let bad = |field, rule, value: String| Err(BudgetError::Config { field, rule, value });
    const NAME: &str = "1 to 128 letters, digits, '-' or '_'";
    if !token(api) {
        return bad("api", NAME, format!("{api:?}"));
    }
    if !token(&c.process_id) {
        return bad("process_id", NAME, format!("{:?}", c.process_id));
    }
    if !token(&c.bucket) {
        return bad("bucket", NAME, format!("{:?}", c.bucket));
    }
    if c.renewal < Duration::from_millis(1) || c.renewal > Duration::from_secs(60) {
        return bad("renewal", "within 1 ms..=60 s", format!("{:?}", c.renewal));
    }
    if c.lease < c.renewal * 2 || c.lease > Duration::from_secs(3600) {
        return bad(
            "lease",
            "at least 2 renewals and at most 1 h",
            format!("{:?}", c.lease),
        );
    }
    if c.floor == 0 {
        return bad("floor", "> 0", "0".into());
    }
    if c.initial_limit == 0 || c.initial_limit > c.max_limit {
        return bad(
            "initial_limit",
            "within 1..=max_limit",
            c.initial_limit.to_string(),
        );
    }
    Ok(())
}
