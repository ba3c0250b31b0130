//! Doing one thing to several items at once: each item on its own thread, within the caller's
//! tracing span, results in the items' order.

/// Runs `f` on every item of `items` at once, each on its own scoped thread that logs within
/// the current tracing span, and returns the results in the order of `items`. A panic in `f`
/// is carried on to the caller once every thread has finished.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let span = tracing::Span::current();
    // The caller's subscriber too: a scoped one (`tracing::subscriber::with_default`, as a
    // library caller or a test sets) is the calling thread's only, and would not see the logs.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| {
                let (span, dispatch) = (span.clone(), dispatch.clone());
                s.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || span.in_scope(|| f(item)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::par_map;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    #[test]
    fn results_come_in_the_items_order() {
        let out = par_map(&[3u64, 1, 2], |n| {
            std::thread::sleep(std::time::Duration::from_millis(n * 10));
            n * 2
        });
        assert_eq!(out, [6, 2, 4]);
    }

    #[test]
    fn items_run_at_once() {
        // Every item waits for all the others: this only finishes if they run together.
        let barrier = Barrier::new(4);
        let ran = AtomicUsize::new(0);
        par_map(&[0; 4], |_| {
            barrier.wait();
            ran.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| par_map(&[1, 2], |n| assert_ne!(*n, 2)));
        assert!(r.is_err());
    }
}
