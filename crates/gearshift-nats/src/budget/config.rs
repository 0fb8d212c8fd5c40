//! The cluster budget's settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gearshift::tuner::{Gradient, Tuner};

/// Makes the control law the leader runs for the whole cluster; called
/// once per leader term.
pub type InnerTuner = Arc<dyn Fn() -> Box<dyn Tuner> + Send + Sync>;

/// Settings of a [`ClusterBudget`](super::ClusterBudget); every process
/// sharing an API should use the same values.
#[derive(Clone)]
pub struct ClusterConfig {
    /// The key-value bucket holding the records. By default,
    /// `gearshift_budget`.
    pub bucket: String,
    /// This process's name among the members: letters, digits, `-`, `_`.
    /// By default, the process id and a random suffix.
    pub process_id: String,
    /// How often a member puts its record and reads its grant, and the
    /// leader writes the grant. By default, 100 ms.
    pub renewal: Duration,
    /// How long a record may stay unchanged before its writer counts as
    /// gone: a member without a fresh grant falls to `floor`, the leader
    /// drops a silent member, another process takes over a silent leader.
    /// By default, 1 s.
    pub lease: Duration,
    /// Calls in flight a process keeps without a fresh grant. By default, 1.
    pub floor: usize,
    /// The cluster's limit before the control law has moved it. By
    /// default, 8.
    pub initial_limit: usize,
    /// The most the control law may set the cluster's limit to. By
    /// default, 10 000.
    pub max_limit: usize,
    /// The control law run once per control window for the whole cluster.
    /// By default, [`Gradient`] with its default parameters.
    pub tuner: InnerTuner,
}

impl ClusterConfig {
    /// Sets the control law the leader runs for the cluster.
    pub fn tuner<T: Tuner>(mut self, make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        self.tuner = Arc::new(move || Box::new(make()) as Box<dyn Tuner>);
        self
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        ClusterConfig {
            bucket: "gearshift_budget".into(),
            process_id: format!("{}-{nanos:08x}", std::process::id()),
            renewal: Duration::from_millis(100),
            lease: Duration::from_secs(1),
            floor: 1,
            initial_limit: 8,
            max_limit: 10_000,
            tuner: Arc::new(|| Box::new(Gradient::new()) as Box<dyn Tuner>),
        }
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("bucket", &self.bucket)
            .field("process_id", &self.process_id)
            .field("renewal", &self.renewal)
            .field("lease", &self.lease)
            .field("floor", &self.floor)
            .field("initial_limit", &self.initial_limit)
            .field("max_limit", &self.max_limit)
            .finish_non_exhaustive()
    }
}
