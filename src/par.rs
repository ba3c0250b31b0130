//! Doing one thing to several items at once: on at most [`MAX_THREADS`] threads, within the
//! caller's tracing span, results in the items' order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The most threads one call of [`par_map`] runs at once. A request names its paths and
/// sessions, and a volume with hundreds of them must not start hundreds of threads (each one a
/// stack, and each a forked helper or iscsiadm at the same moment).
pub(crate) const MAX_THREADS: usize = 16;

/// Runs `f` on every item of `items`, up to [`MAX_THREADS`] at once, each on a scoped thread that
/// logs within the current tracing span, and returns the results in the order of `items`. A
/// panic in `f` is carried on to the caller once every thread has finished. A single item runs
/// on the calling thread.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    // One item: no thread to start.
    if items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let span = tracing::Span::current();
    // The caller's subscriber too: a scoped one (`tracing::subscriber::with_default`, as a
    // library caller or a test sets) is the calling thread's only, and would not see the logs.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let f = &f;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..items.len().min(MAX_THREADS))
            .map(|_| {
                let (span, dispatch) = (span.clone(), dispatch.clone());
                let (next, results) = (&next, &results);
                s.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        span.in_scope(|| loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            let r = f(item);
                            results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                        })
                    })
                })
            })
            .collect();
        for w in workers {
            if let Err(p) = w.join() {
                std::panic::resume_unwind(p);
            }
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        // Every index below items.len() was taken by a worker that finished without a panic.
        .map(|r| r.expect("every item has a result"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{par_map, MAX_THREADS};
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
    fn at_most_max_threads_run_at_once_and_every_item_is_done_once() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<usize> = (0..100).collect();
        let out = par_map(&items, |n| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            (n * 3, std::thread::current().id())
        });
        assert_eq!(
            out.iter().map(|r| r.0).collect::<Vec<_>>(),
            (0..100).map(|n| n * 3).collect::<Vec<_>>()
        );
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= MAX_THREADS, "{peak} at once");
        let mut threads: Vec<_> = out.iter().map(|r| r.1).collect();
        threads.sort_by_key(|t| format!("{t:?}"));
        threads.dedup();
        assert!(threads.len() <= MAX_THREADS, "{} threads", threads.len());
    }

    #[test]
    fn one_item_runs_on_the_calling_thread() {
        let here = std::thread::current().id();
        assert_eq!(par_map(&[7], |_| std::thread::current().id()), [here]);
        assert!(par_map(&[] as &[u8], |_| ()).is_empty());
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| par_map(&[1, 2], |n| assert_ne!(*n, 2)));
        assert!(r.is_err());
    }
}
