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

/// The target of the events that tell a person what brick waits for (a wait of more than a
/// second, once a second, with fields `what`, `waited_s` and `limit_s`); the
/// command line shows them on a terminal.
pub const PROGRESS_TARGET: &str = "brick::progress";

/// A wait a person may want to see while it lasts (a map that does not come, a dead portal, a
/// flush that does not return): after its first second, [`Progress::tick`] emits an event at
/// [`PROGRESS_TARGET`] at most once a second, with what is awaited, for how long so far and the
/// limit. Short waits, the usual case, emit nothing.
#[derive(Debug)]
pub struct Progress {
    what: String,
    start: Instant,
    limit: Option<Duration>,
    shown: Option<Instant>,
}

impl Progress {
    /// A wait for `what` (`the multipath map of 3600...`) that began at `start`, bounded by
    /// `limit` when it has one.
    pub fn new(what: impl Into<String>, start: Instant, limit: Option<Duration>) -> Progress {
        Progress {
            what: what.into(),
            start,
            limit,
            shown: None,
        }
    }

    /// Called at each turn of the wait, with the time now.
    pub fn tick(&mut self, now: Instant) {
        const EVERY: Duration = Duration::from_secs(1);
        let waited = now.saturating_duration_since(self.start);
        if waited < EVERY
            || self
                .shown
                .is_some_and(|t| now.saturating_duration_since(t) < EVERY)
        {
            return;
        }
        self.shown = Some(now);
        tracing::info!(
            target: PROGRESS_TARGET,
            what = %self.what,
            waited_s = waited.as_secs(),
            limit_s = self.limit.map(|l| l.as_secs()),
            "waiting"
        );
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// Counts the progress events.
    struct Count(Arc<Mutex<usize>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            if e.metadata().target() == PROGRESS_TARGET {
                *self.0.lock().unwrap() += 1;
            }
        }
    }

    #[test]
    fn a_wait_shows_after_its_first_second_then_once_a_second() {
        let n = Arc::new(Mutex::new(0));
        let sub = tracing_subscriber::registry().with(Count(n.clone()));
        tracing::subscriber::with_default(sub, || {
            let t0 = Instant::now();
            let mut p = Progress::new("the map", t0, Some(Duration::from_secs(20)));
            let count = || *n.lock().unwrap();
            for ms in [0, 300, 999] {
                p.tick(t0 + Duration::from_millis(ms));
            }
            assert_eq!(count(), 0, "a short wait shows nothing");
            p.tick(t0 + Duration::from_millis(1000));
            assert_eq!(count(), 1);
            p.tick(t0 + Duration::from_millis(1500));
            assert_eq!(count(), 1, "at most once a second");
            p.tick(t0 + Duration::from_millis(2000));
            p.tick(t0 + Duration::from_millis(9000));
            assert_eq!(count(), 3);
        });
    }
}
