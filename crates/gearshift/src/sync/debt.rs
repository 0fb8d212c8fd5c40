//! The accounting behind a resizable semaphore: how many permits still out
//! must be forgotten when they come back, after a shrink.
//!
//! Returning permits, shrinks and grows race, so every change is a
//! compare-and-swap that never lets the debt underflow; the semaphore itself
//! is reached through closures so that loom can model it (`loom_tests`).

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// Permits owed to a shrink.
#[derive(Debug, Default)]
pub(crate) struct Debt {
    owed: AtomicUsize,
}

impl Debt {
    /// Grows by `n`: cancels debt first, then adds the rest with `add`.
    pub(crate) fn grow(&self, n: usize, add: impl FnOnce(usize)) {
        let cancelled = self.take(n);
        if n > cancelled {
            add(n - cancelled);
        }
    }

    /// Shrinks by `n`: `forget(k)` forgets up to `k` idle permits and says
    /// how many it did; the rest is owed by permits in use.
    pub(crate) fn shrink(&self, n: usize, forget: impl Fn(usize) -> usize) {
        let forgotten = forget(n);
        self.owed.fetch_add(n - forgotten, Ordering::AcqRel);
        // A permit that came back between `forget` and the debt being
        // recorded went back to the pool: settle with idle permits now. A
        // permit returning during the settle can still go idle; it stays
        // owed, so the next return pays it (a transient of at most the
        // permits returning during a resize, never above the old size).
        let owed = self.take(n - forgotten);
        if owed > 0 {
            let settled = forget(owed);
            if settled < owed {
                self.owed.fetch_add(owed - settled, Ordering::AcqRel);
            }
        }
    }

    /// Called by a returning permit: whether it must be forgotten. Reads
    /// before it writes: there is rarely a debt, and every permit asks.
    pub(crate) fn pay(&self) -> bool {
        self.owed.load(Ordering::Acquire) > 0 && self.take(1) == 1
    }

    /// Takes up to `n` from the debt; returns how much it took.
    fn take(&self, n: usize) -> usize {
        self.owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| Some(d - d.min(n)))
            .map_or(0, |d| d.min(n))
    }

    /// Permits owed now.
    pub(crate) fn owed(&self) -> usize {
        self.owed.load(Ordering::Acquire)
    }
}

#[cfg(all(test, gearshift_loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering};

    use super::Debt;

    /// A model semaphore: `avail` idle permits.
    fn forget(avail: &AtomicUsize, n: usize) -> usize {
        avail
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| Some(a - a.min(n)))
            .map_or(0, |a| a.min(n))
    }

    fn give_back(debt: &Debt, avail: &AtomicUsize) {
        if !debt.pay() {
            avail.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Size 3 with 2 permits out; one comes back while the gate shrinks to
    /// 1 and the other comes back later. At rest the semaphore holds exactly
    /// the new size and owes nothing.
    #[test]
    fn shrink_races_a_returning_permit() {
        loom::model(|| {
            let debt = Arc::new(Debt::default());
            let avail = Arc::new(AtomicUsize::new(1));
            let (d, a) = (Arc::clone(&debt), Arc::clone(&avail));
            let returner = loom::thread::spawn(move || give_back(&d, &a));
            debt.shrink(2, |n| forget(&avail, n));
            returner.join().unwrap();
            // One permit is still out: idle permits plus that one never
            // exceed the old size, and what is idle is owed back.
            let idle = avail.load(Ordering::Acquire);
            assert!(idle + 1 <= 3, "more permits than before the shrink");
            assert!(
                idle <= debt.owed(),
                "an idle permit that is not owed: the shrink overshot"
            );
            give_back(&debt, &avail);
            assert_eq!(debt.owed(), 0);
            assert_eq!(avail.load(Ordering::Acquire), 1);
        });
    }

    /// A grow racing a returning permit that owes a debt.
    #[test]
    fn grow_races_a_paying_permit() {
        loom::model(|| {
            let debt = Arc::new(Debt::default());
            let avail = Arc::new(AtomicUsize::new(0));
            // Size 2, both out; shrink to 0: both owe.
            debt.shrink(2, |n| forget(&avail, n));
            let (d, a) = (Arc::clone(&debt), Arc::clone(&avail));
            let returner = loom::thread::spawn(move || give_back(&d, &a));
            debt.grow(1, |n| {
                avail.fetch_add(n, Ordering::AcqRel);
            });
            returner.join().unwrap();
            give_back(&debt, &avail);
            // Size 1 now, nothing out: one idle permit, no debt.
            assert_eq!(debt.owed(), 0);
            assert_eq!(avail.load(Ordering::Acquire), 1);
        });
    }
}
