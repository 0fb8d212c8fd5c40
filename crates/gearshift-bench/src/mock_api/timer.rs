//! Sleeps with sub-millisecond precision, for the latency model.
//!
//! tokio's timer rounds every sleep up to its next millisecond tick, which
//! adds 0.5 to 1 ms to each modelled latency (5 to 10% at 10 ms): the model
//! would not be the latency the client sees. One thread per process waits on
//! a condition variable until the earliest deadline (the kernel's
//! high-resolution timers) and wakes the handlers whose time has come.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Sleeps for `d`, within tens of microseconds. Falls back to tokio's timer
/// if the timer thread could not start.
pub(crate) async fn sleep(d: Duration) {
    let at = Instant::now() + d;
    match timer() {
        Some(timer) => {
            // The sender is only dropped once the deadline has passed.
            let _ = timer.register(at).await;
        }
        None => tokio::time::sleep(d).await,
    }
}

/// A sleeper waiting for its deadline; ordered by deadline, then arrival.
struct Sleeper {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Sleeper {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Sleeper {}
impl PartialOrd for Sleeper {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Sleeper {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    sleepers: BinaryHeap<Reverse<Sleeper>>,
    seq: u64,
}

struct Timer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        }));
        match std::thread::Builder::new()
            .name("mock-api-timer".into())
            .spawn(move || timer.run())
        {
            Ok(_) => Some(timer),
            Err(e) => {
                tracing::warn!(error = %e, "no precise timer thread; using tokio's timer");
                None
            }
        }
    })
}

impl Timer {
    fn register(&self, at: Instant) -> oneshot::Receiver<()> {
        let (wake, rx) = oneshot::channel();
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.seq += 1;
        let seq = q.seq;
        let earliest = q.sleepers.peek().is_none_or(|Reverse(s)| at < s.at);
        q.sleepers.push(Reverse(Sleeper { at, seq, wake }));
        drop(q);
        if earliest {
            self.changed.notify_one();
        }
        rx
    }

    fn run(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            while q.sleepers.peek().is_some_and(|Reverse(s)| s.at <= now) {
                if let Some(Reverse(s)) = q.sleepers.pop() {
                    // The handler may have gone (client disconnected).
                    let _ = s.wake.send(());
                }
            }
            q = match q.sleepers.peek() {
                None => self.changed.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some(Reverse(s)) => {
                    let wait = s.at.saturating_duration_since(now);
                    match self.changed.wait_timeout(q, wait) {
                        Ok((q, _)) => q,
                        Err(e) => e.into_inner().0,
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_wake_in_deadline_order_and_never_early() {
        let started = Instant::now();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|ms| {
                let order = std::sync::Arc::clone(&order);
                tokio::spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    assert!(started.elapsed() >= Duration::from_millis(ms), "woke early");
                    order.lock().unwrap().push(ms);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![10, 20, 30]);
    }
}
