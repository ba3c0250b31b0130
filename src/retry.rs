//! Retrying an action with exponential backoff. Only what the caller's predicate calls retryable
//! is tried again; failures before the last one are logged at debug level only, so a retry that
//! ends in success leaves nothing alarming in the log, and the caller reports the final failure.

use std::fmt::Display;
use std::time::Duration;

use crate::time::Clock;
pub use crate::time::Pause;

/// An exponential backoff: `tries` attempts, waiting `first`, then `first * factor`, and so on,
/// never more than `max_delay`, between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all (at least one is made).
    pub tries: u32,
    /// The first wait.
    pub first: Duration,
    /// What each wait is multiplied by for the next.
    pub factor: u32,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Backoff {
    /// The waits between attempts, in order (one fewer than `tries`).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + '_ {
        let mut next = self.first;
        (1..self.tries.max(1)).map(move |_| {
            let d = next.min(self.max_delay);
            next = next.saturating_mul(self.factor.max(1));
            d
        })
    }
}

/// The final failure of a retried action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried<E> {
    /// How many attempts were made.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: E,
}

impl<E: Display> Display for Retried<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.attempts > 1 {
            write!(f, "{} (after {} attempts)", self.error, self.attempts)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

/// Runs `op` until it succeeds, fails with an error `retryable` refuses, or `policy` runs out of
/// attempts. `what` names the action in debug logs.
pub fn retry<T, E: Display>(
    clock: &dyn Clock,
    policy: &Backoff,
    what: &str,
    retryable: impl Fn(&E) -> bool,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, Retried<E>> {
    let mut delays = policy.delays();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match op() {
            Ok(v) => return Ok(v),
            Err(error) => {
                let delay = if retryable(&error) {
                    delays.next()
                } else {
                    None
                };
                match delay {
                    Some(d) => {
                        tracing::debug!(action = what, attempt = attempts, %error, retry_in = ?d, "will retry");
                        clock.sleep(d);
                    }
                    None => return Err(Retried { attempts, error }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::FakeClock;

    const POLICY: Backoff = Backoff {
        tries: 5,
        first: Duration::from_millis(100),
        factor: 2,
        max_delay: Duration::from_millis(500),
    };

    #[test]
    fn pauses_double_up_to_the_cap() {
        let mut p = Pause::new(Duration::from_millis(5), Duration::from_millis(50));
        let ms: Vec<u128> = (0..6).map(|_| p.take().as_millis()).collect();
        assert_eq!(ms, [5, 10, 20, 40, 50, 50]);
        let mut p = Pause::new(Duration::from_millis(80), Duration::from_millis(50));
        assert_eq!(p.take(), Duration::from_millis(50), "never above the cap");
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let ms: Vec<u128> = POLICY.delays().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 500]);
    }

    #[test]
    fn succeeds_after_failures_with_exact_waits() {
        let clock = FakeClock::default();
        let mut n = 0;
        let r = retry(
            &clock,
            &POLICY,
            "t",
            |_: &String| true,
            || {
                n += 1;
                if n < 3 {
                    Err(format!("fail {n}"))
                } else {
                    Ok(n)
                }
            },
        );
        assert_eq!(r, Ok(3));
        assert_eq!(
            clock.sleeps(),
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
    }

    #[test]
    fn gives_up_after_all_tries_with_the_last_error() {
        let clock = FakeClock::default();
        let mut n = 0;
        let r: Result<(), _> = retry(
            &clock,
            &POLICY,
            "t",
            |_: &String| true,
            || {
                n += 1;
                Err(format!("fail {n}"))
            },
        );
        assert_eq!(
            r,
            Err(Retried {
                attempts: 5,
                error: "fail 5".to_string()
            })
        );
        assert_eq!(clock.sleeps().len(), 4);
    }

    #[test]
    fn non_retryable_error_stops_at_once() {
        let clock = FakeClock::default();
        let r: Result<(), _> = retry(
            &clock,
            &POLICY,
            "t",
            |e: &&str| *e != "fatal",
            || Err("fatal"),
        );
        assert_eq!(
            r,
            Err(Retried {
                attempts: 1,
                error: "fatal"
            })
        );
        assert!(clock.sleeps().is_empty());
    }
}
