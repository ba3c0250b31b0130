//! brick's logs on standard error (text or JSON lines, debug with -v, `BRICK_LOG` to choose)
//! and, for a person at a terminal, the one line that says what brick waits for.

use std::io::Write;

/// The form of the logs on standard error.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum LogFormat {
    /// Lines for a person (coloured on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up the logs on standard error (text or JSON lines, debug with -v, `BRICK_LOG` to
/// choose), and, for a person at a terminal, the line that says what brick waits for.
pub(super) fn init(verbose: bool, format: LogFormat) -> Option<std::sync::Arc<ProgressLine>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let level = if verbose { "debug" } else { "warn" };
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("BRICK_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("brick={level}")))
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Colour only for a person at a terminal: logs in files and pipes stay plain text.
    let colour = terminal && std::env::var_os("NO_COLOR").is_none();
    // A log line that cannot be written is lost, not reported with eprintln! (which panics when
    // standard error is closed).
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .log_internal_errors(false);
    let logs = match format {
        LogFormat::Text => fmt.with_ansi(colour).with_filter(filter()).boxed(),
        LogFormat::Json => fmt.json().with_ansi(false).with_filter(filter()).boxed(),
    };
    // With -v the logs say it all already.
    let progress = (terminal && format == LogFormat::Text && !verbose)
        .then(|| std::sync::Arc::new(ProgressLine::default()));
    // The progress line sees the waits and every line the logs print (to clear itself first).
    let shown = progress.clone().map(|p| {
        let wants = format!("{},{}=info", filter(), brick::PROGRESS_TARGET);
        ArcLayer(p).with_filter(tracing_subscriber::EnvFilter::new(wants))
    });
    tracing_subscriber::registry().with(shown).with(logs).init();
    progress
}

/// The one line on a terminal that says what brick waits for and for how long: rewritten in
/// place at each progress event, cleared before any other log line and at the end.
#[derive(Default)]
pub(super) struct ProgressLine {
    shown: std::sync::atomic::AtomicBool,
}

impl ProgressLine {
    pub(super) fn clear(&self) {
        if self.shown.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }

    fn show(&self, line: &str) {
        self.shown.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
    }
}

/// The text of a progress event: `brick: waiting 12 s of 20 s for the multipath map of ...`.
fn progress_text(event: &tracing::Event<'_>) -> String {
    #[derive(Default)]
    struct Fields {
        what: String,
        waited: u64,
        limit: Option<u64>,
    }
    impl tracing::field::Visit for Fields {
        fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
            match f.name() {
                "waited_s" => self.waited = v,
                "limit_s" => self.limit = Some(v),
                _ => {}
            }
        }
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            if f.name() == "what" {
                self.what = format!("{v:?}");
            }
        }
    }
    let mut f = Fields::default();
    event.record(&mut f);
    match f.limit {
        Some(l) => format!("brick: waiting {} s of {l} s for {}", f.waited, f.what),
        None => format!("brick: waiting {} s for {}", f.waited, f.what),
    }
}

/// [`ProgressLine`] as a tracing layer (shared with `main`, which clears it at the end).
struct ArcLayer(std::sync::Arc<ProgressLine>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ArcLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() == brick::PROGRESS_TARGET {
            self.0.show(&progress_text(event));
        } else {
            self.0.clear();
        }
    }
}
