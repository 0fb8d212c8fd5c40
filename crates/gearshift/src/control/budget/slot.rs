//! A budget's controller slot: which tuner runs it (the user's or the
//! default one), whether a manual change holds it off, and which pipeline
//! drives it.

use std::sync::atomic::Ordering;

use super::Budget;
use crate::tuner::{self, Tuner};

/// A budget's controller, and whether it is the default one.
pub(crate) struct Attached {
    pub(crate) tuner: Box<dyn Tuner>,
    /// Attached at spawn because nothing fixed the budget's concurrency
    /// ([`tuner::default_for`]), rather than given by the user.
    pub(crate) by_default: bool,
}

/// What a budget runs after [`Budget::settle_default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runs {
    /// The default controller.
    Default,
    /// A tuner the user gave.
    Own,
    /// No controller: its concurrency is fixed.
    Fixed,
}

impl Budget {
    /// Holds the controller off after a manual change, saying so once.
    pub(crate) fn hold_controller(&self, why: &str) {
        let Some(by_default) = self.tuner().as_ref().map(|a| a.by_default) else {
            return;
        };
        if self.held.swap(true, Ordering::AcqRel) {
            return;
        }
        if by_default {
            tracing::info!(api = %self.name, why, "a fixed setting turns the default controller off: held until resume_controller()");
        } else {
            tracing::info!(api = %self.name, why, "manual change overrides the controller: held until resume_controller()");
        }
    }

    /// Holds the controller off if it is the default one: `why` fixed the
    /// concurrency of a stage drawing on the budget.
    pub(crate) fn hold_default_controller(&self, why: &str) {
        if self.runs_default_controller() {
            self.hold_controller(why);
        }
    }

    /// Whether the budget runs the default controller.
    pub(crate) fn runs_default_controller(&self) -> bool {
        self.tuner().as_ref().is_some_and(|a| a.by_default)
    }

    /// Records whether the user fixed the limit on calls in flight.
    pub(crate) fn fix_limit(&self, fixed: bool) {
        self.fixed_limit.store(fixed, Ordering::Release);
    }

    /// Whether the user fixed the limit on calls in flight.
    pub(crate) fn limit_fixed(&self) -> bool {
        self.fixed_limit.load(Ordering::Acquire)
    }

    /// Puts `tuner` in charge (replacing any controller), free to act.
    pub(crate) fn set_tuner(&self, tuner: Box<dyn Tuner>, by_default: bool) {
        *self.tuner() = Some(Attached { tuner, by_default });
        self.held.store(false, Ordering::Release);
    }

    /// Whether the controller may act now.
    pub(crate) fn controller_free(&self) -> bool {
        !self.held.load(Ordering::Acquire)
    }

    /// Claims the right to drive the controller for pipeline `id`: one
    /// pipeline at a time drives a budget several pipelines share.
    pub(crate) fn claim_driver(&self, id: u64) -> bool {
        match self
            .driver
            .compare_exchange(0, id, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(current) => current == id,
        }
    }

    /// Gives the controller up when pipeline `id` finishes.
    pub(crate) fn release_driver(&self, id: u64) {
        let _ = self
            .driver
            .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    pub(crate) fn tuner(&self) -> std::sync::MutexGuard<'_, Option<Attached>> {
        self.tuner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At spawn: gives the budget the default controller if `auto` (no
    /// stage drawing on it fixes its agents) and nothing else fixes its
    /// concurrency, or takes a default controller away (with the limit it
    /// set) if something now does. A user's tuner stays either way. A
    /// default controller a finished pipeline held (a preset, fixed agents)
    /// is free again: that pipeline's settings are not this one's.
    pub(crate) fn settle_default(&self, auto: bool, cores: usize) -> Runs {
        let fixed_limit = self.limit_fixed();
        let auto = auto && !fixed_limit;
        let mut slot = self.tuner();
        match slot.as_ref().map(|a| a.by_default) {
            Some(false) => Runs::Own,
            Some(true) if auto => {
                drop(slot);
                if self.driver.load(Ordering::Acquire) == 0
                    && self.held.swap(false, Ordering::AcqRel)
                {
                    tracing::info!(api = %self.name, "default controller resumed: nothing fixes the budget in the new pipeline");
                }
                Runs::Default
            }
            None if auto => {
                drop(slot);
                self.set_tuner(tuner::default_for(cores), true);
                Runs::Default
            }
            Some(true) => {
                *slot = None;
                drop(slot);
                if !fixed_limit {
                    // The limit was the controller's: it leaves with it.
                    let _ = self.update(|s| s.max_in_flight = None);
                }
                Runs::Fixed
            }
            None => Runs::Fixed,
        }
    }
}
