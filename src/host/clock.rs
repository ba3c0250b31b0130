//! Time as a parameter: retries and waits sleep through a [`Clock`], so tests run them in
//! microseconds and check the exact delays.

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
