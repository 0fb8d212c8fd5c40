//! The design note's `adjust_agents`, as it is.

use std::time::Duration;

use super::{Decision, Tuner, Window};

/// The seed's adjust rule: when the median API latency is above `slow`
/// (1 s), add one agent per core up to `max_per_core` (4); when it is below
/// `fast` (0.1 s), remove one down to `min_per_core` (1).
///
/// It reacts to latency alone, so it cannot tell a slow-but-scalable API from
/// an overloaded one; it is here as the simplest tuner and as a baseline.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gearshift::tuner::{SeedRule, Tuner, Window};
///
/// let mut rule = SeedRule::default();
/// let window = Window {
///     cores: 2,
///     agents: 4,
///     latency_p50: Some(Duration::from_millis(1500)),
///     ..Window::default()
/// };
/// assert_eq!(rule.decide(&window).agents, Some(6)); // 2 -> 3 agents per core
/// ```
#[derive(Debug, Clone)]
pub struct SeedRule {
    /// Latency above which an agent per core is added. By default, 1 s.
    pub slow: Duration,
    /// Latency below which an agent per core is removed. By default, 100 ms.
    pub fast: Duration,
    /// Fewest agents per core. By default, 1.
    pub min_per_core: usize,
    /// Most agents per core. By default, 4.
    pub max_per_core: usize,
    /// Length of a control window. By default, 1 s.
    pub window: Duration,
}

impl Default for SeedRule {
    fn default() -> Self {
        SeedRule {
            slow: Duration::from_secs(1),
            fast: Duration::from_millis(100),
            min_per_core: 1,
            max_per_core: 4,
            window: Duration::from_secs(1),
        }
    }
}

impl SeedRule {
    /// The agents per core the rule chooses, given the current value and the
    /// measured latency: the seed's `adjust_agents`.
    pub fn adjust(&self, per_core: usize, latency: Duration) -> usize {
        if latency > self.slow {
            (per_core + 1).min(self.max_per_core)
        } else if latency < self.fast {
            per_core.saturating_sub(1).max(self.min_per_core)
        } else {
            per_core
        }
    }
}

impl Tuner for SeedRule {
    fn name(&self) -> &str {
        "seed-rule"
    }

    fn window(&self) -> Duration {
        self.window
    }

    fn decide(&mut self, w: &Window) -> Decision {
        let Some(latency) = w.latency_p50 else {
            return Decision::hold("no completed call in the window");
        };
        let cores = w.cores.max(1);
        let per_core = (w.agents as f64 / cores as f64).round().max(1.0) as usize;
        let next = self.adjust(per_core, latency);
        if next == per_core {
            return Decision::hold(format!(
                "latency {latency:?} within [{:?}, {:?}]",
                self.fast, self.slow
            ));
        }
        Decision {
            agents: Some(next * cores),
            api_permits: Some(next * cores * 2),
            workers: None,
            reason: format!(
                "seed rule: p50 latency {latency:?}, agents per core {per_core} -> {next}"
            ),
        }
    }
}
