//! `brick request`: one request of the Python package, run as `brick::request` runs it.

use std::fmt::Write as _;

use brick::Error;

use super::output::read_input;
use super::Ctx;

pub(super) fn run(ctx: &Ctx, out: &mut String) -> Result<(), Error> {
    let request = read_input("-")?;
    let _ = writeln!(
        out,
        "{}",
        brick::request::handle(ctx.host, ctx.settings, &request)
    );
    Ok(())
}

/// `brick request` is what a root helper (sudo, rootwrap) lets an unprivileged caller run: it
/// takes its settings from the root-owned settings file only, never from the caller's
/// `--config` or `--set` (a caller's `lock_dir` would move brick's locks where it holds them).
pub(super) fn takes_no_settings(
    is_request: bool,
    config: bool,
    set: &[String],
) -> Result<(), Error> {
    if !is_request {
        return Ok(());
    }
    let field = if config {
        "--config"
    } else if !set.is_empty() {
        "--set"
    } else {
        return Ok(());
    };
    Err(Error::invalid(
        field,
        "`brick request` takes no settings from its caller: it runs for an unprivileged \
         caller through a root helper, and uses /etc/brick/brick.toml alone",
    ))
}
