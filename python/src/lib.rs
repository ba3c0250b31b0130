//! `brick._native`: brick's operations for the Python package, one JSON request in and one JSON
//! answer out (see `brick::request`), run on this host with the GIL released, so that threads
//! of the caller (nova-compute attaches volumes from several) run their calls at once.

use pyo3::prelude::*;

/// Runs one request (JSON text) on this host and returns the answer (JSON text), with the
/// settings of `settings_file`, by default those `brick request` uses (`/etc/brick/brick.toml`
/// when it exists): the same lock folder and lock timeout as the command line, so their locks
/// collide. The GIL is released for the whole operation. Errors are answers, never Python
/// exceptions: the Python layer turns them into os-brick's exceptions, for this path and the
/// root helper's alike.
#[pyfunction]
#[pyo3(signature = (request, settings_file=None))]
fn call(py: Python<'_>, request: String, settings_file: Option<std::path::PathBuf>) -> String {
    py.allow_threads(move || {
        brick::request::handle_with_settings_file(
            &brick::host::Host::real(),
            settings_file.as_deref(),
            &request,
        )
    })
}

/// Sends brick's logs to standard error at `filter` (an env-filter such as `brick=debug`); the
/// Python layer calls it once when `BRICK_LOG` is set. Secrets are masked in brick's logs.
#[pyfunction]
fn init_logging(filter: &str) -> bool {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .log_internal_errors(false)
        .try_init()
        .is_ok()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(call, m)?)?;
    m.add_function(wrap_pyfunction!(init_logging, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
