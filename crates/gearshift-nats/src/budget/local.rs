//! What one process knows: its measurements since the last put, its demand
//! and its grant. Shared by the tuner (which must never wait) and the
//! background task (which talks to NATS).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gearshift::tuner::Window;

use super::record::{Gauges, Totals};

/// Share of agent time idle or blocked under which the local limit counts
/// as used: the member could use more than it holds.
const USED: f64 = 0.1;
/// The longest `Retry-After` believed (it comes from the remote API).
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// Calls in flight a member asks for over what its flow used.
const HEADROOM: f64 = 1.25;

/// A process's view of the cluster budget.
#[derive(Debug)]
pub(crate) struct Local {
    floor: usize,
    lease: Duration,
    state: Mutex<State>,
}

/// Guarded by [`Local`]'s lock; held for a few field updates, never across
/// an await.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub totals: Totals,
    pub gauges: Gauges,
    /// Most calls the member could use in a window since the last put;
    /// `None` when no window said.
    pub demand: Option<u64>,
    /// The demand put last (all it can get before any window said).
    pub last_demand: Option<u64>,
    /// Until when the API asked for a pause (`Retry-After`): the budget
    /// waits, and its windows say nothing of the demand.
    pub paused_until: Option<Instant>,
    /// The latest grant and since when it is known fresh.
    pub grant: Option<Held>,
    /// The term of the latest grant read.
    pub leader_term: Option<u64>,
    /// Control steps of that term.
    pub steps: u64,
    /// Whether this process leads.
    pub leading: bool,
    /// The term and step of the grant whose share the last window applied.
    pub applied: (u64, u64),
    /// The share the last window applied; `None` before the first.
    pub holding: Option<u64>,
}

/// A grant as this process holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    /// This process's calls in flight; `None` when the grant does not list it.
    pub share: Option<u64>,
    /// The cluster's limit.
    pub limit: u64,
    /// The term and control step of the grant.
    pub term: u64,
    pub steps: u64,
    /// The grant was written after this instant (by this process's clock).
    pub fresh_at: Instant,
}

impl Local {
    pub fn new(floor: usize, lease: Duration) -> Self {
        Local {
            floor,
            lease,
            state: Mutex::new(State::default()),
        }
    }

    /// The demand to put: the most any window since the last put wanted,
    /// else what was put last. Taking it starts the next period.
    pub fn take_demand(s: &mut State) -> u64 {
        let d = s.demand.take().or(s.last_demand).unwrap_or(u64::MAX);
        s.last_demand = Some(d);
        d
    }

    /// Calls in flight the process's budget allows: the share the last
    /// window applied, the floor before any.
    pub fn holding(&self, s: &State) -> u64 {
        s.holding.unwrap_or(self.floor as u64)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain numbers behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The grant, if written less than a lease ago and listing this process.
    pub fn fresh(&self, s: &State) -> Option<Held> {
        s.grant
            .filter(|g| g.fresh_at.elapsed() <= self.lease && g.share.is_some())
    }

    /// Calls in flight this process may make now: its share of a fresh
    /// grant, else the floor (fail closed).
    pub fn share(&self, s: &State) -> usize {
        self.fresh(s).and_then(|g| g.share).map_or(self.floor, |c| {
            usize::try_from(c).unwrap_or(usize::MAX).max(1)
        })
    }

    /// Takes a local window: adds it to the totals, updates the demand, and
    /// returns the share to hold.
    pub fn observe(&self, w: &Window) -> usize {
        let mut s = self.lock();
        s.totals.add(w);
        s.gauges.add(w);
        // Windows with refusals or inside a `Retry-After` pause say nothing
        // of the demand (agents wait on backoffs and the pause, not for
        // input): the last one holds.
        let now = Instant::now();
        if let Some(pause) = w.retry_after {
            let until = now.checked_add(pause.min(MAX_PAUSE));
            s.paused_until = until.max(s.paused_until);
        }
        let pausing = s.paused_until.is_some_and(|t| now < t);
        if !pausing && w.paused.is_zero() && w.throttled == 0 {
            s.demand = Some(s.demand.map_or(demand(w), |d| d.max(demand(w))));
        }
        if let Some(g) = self.fresh(&s) {
            s.applied = (g.term, g.steps);
        }
        let share = self.share(&s);
        s.holding = Some(share as u64);
        share
    }
}

/// Calls in flight a window says its process could use: all it can get
/// when the limit was used (agents neither waiting for input nor blocked
/// downstream, calls in flight reaching the limit), else what its flow
/// needed plus headroom.
pub(crate) fn demand(w: &Window) -> u64 {
    let unused = (w.agents_idle + w.agents_blocked).clamp(0.0, 1.0);
    if unused < USED && w.peak_in_flight >= w.api_permits.max(1) {
        return u64::MAX;
    }
    let needed = (w.mean_in_flight.max(0.0) * HEADROOM).ceil();
    // `as` saturates on floats; the cap keeps a corrupt window from asking
    // for everything.
    (needed as u64).clamp(1, u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(permits: usize, peak: usize, mean: f64, idle: f64) -> Window {
        Window {
            api_permits: permits,
            peak_in_flight: peak,
            mean_in_flight: mean,
            agents_idle: idle,
            ..Window::default()
        }
    }

    #[test]
    fn a_used_limit_wants_all_it_can_get() {
        assert_eq!(demand(&window(4, 4, 3.9, 0.0)), u64::MAX);
    }

    #[test]
    fn an_unused_limit_wants_its_flow_and_headroom() {
        // Agents waiting for input half the time: 2.4 calls x 1.25.
        assert_eq!(demand(&window(8, 4, 2.4, 0.5)), 3);
        // Never below one call.
        assert_eq!(demand(&window(8, 0, 0.0, 1.0)), 1);
        assert_eq!(demand(&window(8, 0, f64::NAN, 1.0)), 1);
    }

    #[test]
    fn without_a_fresh_grant_the_share_is_the_floor() {
        let local = Local::new(1, Duration::from_millis(50));
        local.lock().grant = Some(Held {
            share: Some(9),
            limit: 20,
            term: 1,
            steps: 1,
            fresh_at: Instant::now(),
        });
        assert_eq!(local.observe(&window(4, 4, 4.0, 0.0)), 9);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(local.observe(&window(9, 9, 9.0, 0.0)), 1);
    }
}
