//! Time as a parameter: retries and waits sleep through a [`Clock`], so tests run them in
//! microseconds and check the exact delays; and the [`Pause`] between two polls. A leaf: it
//! imports nothing of brick.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A source of time that can also wait.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Waits for `d`.
    fn sleep(&self, d: Duration);
}

/// The machine's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A clock that advances only when slept on, and remembers every sleep.
#[derive(Debug)]
pub struct FakeClock {
    state: Mutex<(Instant, Vec<Duration>)>,
}

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock {
            state: Mutex::new((Instant::now(), Vec::new())),
        }
    }
}

impl FakeClock {
    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0
    }
    fn sleep(&self, d: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 += d;
        s.1.push(d);
    }
}

/// The pause between two polls of something that is not there yet (a disk in sysfs, a lock):
/// short at first, so that what comes quickly is seen at once, then doubling up to `cap`, so
/// that a long wait does not spin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    next: Duration,
    cap: Duration,
}

impl Pause {
    /// Pauses of `first`, then twice that, and so on, never more than `cap`.
    pub fn new(first: Duration, cap: Duration) -> Pause {
        Pause { next: first, cap }
    }

    /// The pause to make now; the next one is twice as long, up to the cap.
    pub fn take(&mut self) -> Duration {
        let now = self.next.min(self.cap);
        self.next = now.saturating_mul(2).min(self.cap);
        now
    }
}
