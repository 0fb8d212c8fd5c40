//! The agent roster: how many agents a stage should run and how many are
//! alive, so that growing spawns exactly the missing ones and shrinking
//! retires exactly the surplus, each between two items.
//!
//! Both sides race (agents retire on their own, the supervisor spawns), so
//! every change is a compare-and-swap on `alive`; `tests/loom_roster.rs`
//! model-checks it.

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// Target and live agent counts of one IO stage.
#[derive(Debug)]
pub(crate) struct Roster {
    target: AtomicUsize,
    alive: AtomicUsize,
}

impl Roster {
    pub(crate) fn new(target: usize) -> Self {
        Roster {
            target: AtomicUsize::new(target),
            alive: AtomicUsize::new(0),
        }
    }

    pub(crate) fn set_target(&self, target: usize) {
        self.target.store(target, Ordering::Release);
    }

    pub(crate) fn target(&self) -> usize {
        self.target.load(Ordering::Acquire)
    }

    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Acquire)
    }

    /// Claims one spawn slot if fewer agents are alive than wanted; the
    /// caller must then start exactly one agent.
    pub(crate) fn try_enlist(&self) -> bool {
        self.alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a < self.target.load(Ordering::Acquire)).then_some(a + 1)
            })
            .is_ok()
    }

    /// Retires the calling agent if more are alive than wanted.
    pub(crate) fn try_retire(&self) -> bool {
        self.alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a > self.target.load(Ordering::Acquire)).then(|| a - 1)
            })
            .is_ok()
    }

    /// Records an agent that stopped for a reason other than retiring (its
    /// input closed).
    pub(crate) fn leave(&self) {
        self.alive.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(all(test, not(gearshift_loom)))]
mod tests {
    use super::*;

    #[test]
    fn enlists_up_to_target_and_retires_down_to_it() {
        let r = Roster::new(3);
        assert_eq!((0..5).filter(|_| r.try_enlist()).count(), 3);
        r.set_target(1);
        assert_eq!((0..5).filter(|_| r.try_retire()).count(), 2);
        assert_eq!(r.alive(), 1);
        r.leave();
        assert_eq!(r.alive(), 0);
    }
}

#[cfg(all(test, gearshift_loom))]
mod loom_tests {
    use loom::sync::Arc;

    use super::Roster;

    /// The supervisor grows the target and enlists while an agent retires
    /// after a shrink: at rest exactly `target` agents are alive.
    #[test]
    fn enlist_and_retire_race() {
        loom::model(|| {
            let roster = Arc::new(Roster::new(2));
            assert!(roster.try_enlist() && roster.try_enlist());
            roster.set_target(1);
            let r = Arc::clone(&roster);
            let agent = loom::thread::spawn(move || r.try_retire());
            roster.set_target(3);
            let mut started = 0;
            while roster.try_enlist() {
                started += 1;
            }
            let retired = agent.join().unwrap();
            // If the agent retired after the enlisting, one more is due.
            while roster.try_enlist() {
                started += 1;
            }
            assert_eq!(roster.alive(), 3);
            assert_eq!(2 + started - usize::from(retired), 3);
        });
    }

    /// Two agents retiring at once after a shrink by one: exactly one goes.
    #[test]
    fn only_the_surplus_retires() {
        loom::model(|| {
            let roster = Arc::new(Roster::new(2));
            assert!(roster.try_enlist() && roster.try_enlist());
            roster.set_target(1);
            let r = Arc::clone(&roster);
            let a = loom::thread::spawn(move || r.try_retire());
            let b = roster.try_retire();
            let a = a.join().unwrap();
            assert!(a ^ b, "exactly one agent retires");
            assert_eq!(roster.alive(), 1);
        });
    }
}
