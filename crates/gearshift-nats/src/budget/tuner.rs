//! The [`Tuner`] a process's budget runs: it resizes the local limit to the
//! process's share of the cluster's.

use std::sync::Arc;
use std::time::Duration;

use gearshift::tuner::{Decision, Tuner, Window};

use super::local::Local;

/// A budget's tuner that holds the process's share of the cluster limit.
///
/// Made by [`ClusterBudget::tuner`](super::ClusterBudget::tuner). Its
/// window is the renewal interval; [`Tuner::decide`] never waits on the
/// network: it records the window for the next put and returns the latest
/// grant (or the floor when no fresh grant is held).
#[derive(Debug, Clone)]
pub struct ClusterTuner {
    pub(crate) local: Arc<Local>,
    pub(crate) renewal: Duration,
}

impl Tuner for ClusterTuner {
    fn name(&self) -> &str {
        "cluster"
    }

    fn window(&self) -> Duration {
        self.renewal
    }

    fn decide(&mut self, window: &Window) -> Decision {
        let share = self.local.observe(window);
        if share == window.api_permits {
            return Decision::hold("share unchanged");
        }
        Decision {
            agents: Some(share),
            api_permits: Some(share),
            workers: None,
            reason: format!("cluster share {share} (was {})", window.api_permits),
        }
    }
}
