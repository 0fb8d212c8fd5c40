//! A semaphore that can be resized while permits are out.
//!
//! Used twice: as the IO stage's API semaphore (the single authority on calls
//! in flight) and in front of the CPU pool (batches running at once).
//! Growing adds permits at once; shrinking forgets idle permits and records a
//! debt for the rest, which returning permits pay off instead of going back.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use super::debt::Debt;

/// A resizable async semaphore that also counts permits in use.
///
/// Permits in use are derived (`size + debt - available`) rather than
/// counted: the API semaphore is taken once per call, and every shared
/// counter it touches is a cache line the agents fight over.
#[derive(Debug)]
pub(crate) struct Gate {
    sem: Arc<Semaphore>,
    /// The size asked for; guarded so that resizes do not interleave.
    size: Mutex<usize>,
    /// `size`, readable without the lock.
    size_now: AtomicUsize,
    /// Permits still out that must be forgotten, not returned, when dropped.
    debt: Debt,
    peak: AtomicUsize,
}

/// A permit borrowed from a [`Gate`], for a wait and a release in the same
/// task: no reference counts to touch.
#[derive(Debug)]
pub(crate) struct GateRef<'a> {
    permit: Option<SemaphorePermit<'a>>,
    gate: &'a Gate,
}

/// A permit a task keeps from one call to its next, out of the semaphore:
/// a permit's round trip through the semaphore takes its lock, which the
/// agents of a stage would otherwise fight over once per call. Dropping it
/// gives it back (or pays a debt).
#[derive(Debug)]
pub(crate) struct Kept(Arc<Gate>);

/// One permit of a [`Gate`]; dropping it returns the permit (or pays a debt).
#[derive(Debug)]
pub(crate) struct GatePermit {
    permit: Option<OwnedSemaphorePermit>,
    gate: Arc<Gate>,
}

impl Gate {
    pub(crate) fn new(size: usize) -> Arc<Self> {
        Arc::new(Gate {
            sem: Arc::new(Semaphore::new(size)),
            size: Mutex::new(size),
            size_now: AtomicUsize::new(size),
            debt: Debt::default(),
            peak: AtomicUsize::new(0),
        })
    }

    /// Waits for a permit. Cancel-safe: dropping the future takes nothing.
    pub(crate) async fn acquire(self: &Arc<Self>) -> GatePermit {
        let permit = self
            .sem
            .clone()
            .acquire_owned()
            .await
            .expect("a gate's semaphore is never closed");
        self.note_peak();
        GatePermit {
            permit: Some(permit),
            gate: Arc::clone(self),
        }
    }

    /// Waits for a permit that is given back in this task. Cancel-safe.
    pub(crate) async fn acquire_ref(&self) -> GateRef<'_> {
        let permit = self
            .sem
            .acquire()
            .await
            .expect("a gate's semaphore is never closed");
        self.note_peak();
        GateRef {
            permit: Some(permit),
            gate: self,
        }
    }

    /// Takes a permit if one is free now.
    pub(crate) fn try_acquire_ref(&self) -> Option<GateRef<'_>> {
        let permit = self.sem.try_acquire().ok()?;
        self.note_peak();
        Some(GateRef {
            permit: Some(permit),
            gate: self,
        })
    }

    /// Raises the peak to the permits in use now; reads before it writes,
    /// as a new peak is rare.
    fn note_peak(&self) {
        let now = self.in_use();
        if now > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Sets the number of permits. Takes effect at once when growing; when
    /// shrinking, permits in use are retired as they come back.
    pub(crate) fn resize(&self, new: usize) {
        let mut size = self.size.lock().unwrap_or_else(|e| e.into_inner());
        let old = *size;
        *size = new;
        let sem = &*self.sem;
        // Permits in use are derived from the size: store it after adding
        // permits and before forgetting them, so a racing reader may see too
        // few in use, never too many.
        if new > old {
            self.debt.grow(new - old, |n| sem.add_permits(n));
            self.size_now.store(new, Ordering::Release);
        } else if new < old {
            self.size_now.store(new, Ordering::Release);
            self.debt.shrink(old - new, |n| sem.forget_permits(n));
        }
    }

    /// The size asked for.
    pub(crate) fn size(&self) -> usize {
        *self.size.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives back `n` permits kept by [`GatePermit::detach`] (or pays a
    /// debt with them).
    pub(crate) fn release(&self, n: usize) {
        let paid = (0..n).take_while(|_| self.debt.pay()).count();
        if n > paid {
            self.sem.add_permits(n - paid);
        }
    }

    /// Permits in use now: those out of the semaphore, less the ones a
    /// shrink has already taken back.
    pub(crate) fn in_use(&self) -> usize {
        let size = self.size_now.load(Ordering::Acquire);
        (size + self.debt.owed()).saturating_sub(self.sem.available_permits())
    }

    /// Most permits in use at once since the last call; restarts from now.
    pub(crate) fn take_peak(&self) -> usize {
        self.peak.swap(self.in_use(), Ordering::Relaxed)
    }
}

impl GateRef<'_> {
    /// Keeps the permit for this task's next call, if nobody can be waiting
    /// for it (some permits are free) and no shrink wants it back; else it
    /// goes back now. `gate` is the gate this permit came from.
    pub(crate) fn keep(mut self, gate: &Arc<Gate>) -> Option<Kept> {
        debug_assert!(std::ptr::eq(self.gate, &**gate));
        let permit = self.permit.take()?;
        Kept::may_stay(gate).then(|| {
            permit.forget();
            Kept(Arc::clone(gate))
        })
    }
}

impl Kept {
    /// Keeps the permit for one more call, under the same rule as
    /// [`GateRef::keep`]: a waiting task gets it at the next call at most.
    pub(crate) fn keep(self) -> Option<Kept> {
        Kept::may_stay(&self.0).then_some(self)
    }

    /// Whether the permit may still serve a call: no shrink wants it back.
    pub(crate) fn still_ours(&self) -> bool {
        self.0.debt.owed() == 0
    }

    /// No task waits while permits are free, and no shrink is owed.
    fn may_stay(gate: &Gate) -> bool {
        gate.sem.available_permits() > 0 && gate.debt.owed() == 0
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.0.release(1);
    }
}

impl GatePermit {
    /// Keeps the permit in use with no guard: for a permit taken in one task
    /// and given back in another with [`Gate::release`].
    pub(crate) fn detach(mut self) {
        if let Some(permit) = self.permit.take() {
            permit.forget();
        }
    }
}

impl Drop for GatePermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            if self.gate.debt.pay() {
                permit.forget();
            }
        }
    }
}

impl Drop for GateRef<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            if self.gate.debt.pay() {
                permit.forget();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shrinking_retires_permits_in_use_as_they_return() {
        let gate = Gate::new(4);
        let held: Vec<_> = futures::future::join_all((0..4).map(|_| gate.acquire())).await;
        gate.resize(1);
        assert_eq!(gate.sem.available_permits(), 0);
        drop(held);
        // Three of the four returning permits paid the debt.
        assert_eq!(gate.sem.available_permits(), 1);
        assert_eq!(gate.in_use(), 0);
    }

    #[tokio::test]
    async fn a_detached_permit_stays_in_use_until_released() {
        let gate = Gate::new(2);
        gate.acquire().await.detach();
        gate.acquire().await.detach();
        assert_eq!((gate.in_use(), gate.sem.available_permits()), (2, 0));
        gate.resize(1);
        gate.release(1);
        assert_eq!(
            gate.sem.available_permits(),
            0,
            "the first release pays the debt"
        );
        gate.release(1);
        assert_eq!((gate.in_use(), gate.sem.available_permits()), (0, 1));
    }

    #[tokio::test]
    async fn a_kept_permit_stays_in_use_only_while_others_are_free() {
        let gate = Gate::new(2);
        let kept = gate
            .acquire_ref()
            .await
            .keep(&gate)
            .expect("one permit is free");
        assert_eq!((gate.in_use(), gate.sem.available_permits()), (1, 1));
        let other = gate.acquire_ref().await;
        assert!(
            other.keep(&gate).is_none(),
            "no permit is free: a task may be waiting"
        );
        assert_eq!(gate.in_use(), 1);
        let kept = kept.keep().expect("a permit is free again");
        gate.resize(0);
        assert!(!kept.still_ours(), "a shrink wants it back");
        drop(kept);
        assert_eq!((gate.in_use(), gate.sem.available_permits()), (0, 0));
    }

    #[tokio::test]
    async fn growing_cancels_debt_before_adding_permits() {
        let gate = Gate::new(2);
        let a = gate.acquire().await;
        let b = gate.acquire().await;
        gate.resize(0);
        gate.resize(3);
        drop((a, b));
        assert_eq!(gate.sem.available_permits(), 3);
        assert_eq!(gate.size(), 3);
        assert_eq!(gate.take_peak(), 2, "two permits were out at once");
        assert_eq!(gate.take_peak(), 0, "the peak restarts from permits in use");
    }
}
