//! `brick cleanup`: find what no volume needs any more and, with --apply, remove it.

use std::fmt::Write as _;

use brick::Error;

use super::output::to_json;
use super::Ctx;

#[derive(clap::Args)]
pub(super) struct Args {
    /// Remove what was found (else only list it).
    #[arg(long)]
    apply: bool,
    /// Seconds a blocked disk whose session is not in recovery must stay blocked to count as
    /// dead (one whose session is in recovery never counts).
    #[arg(long, default_value_t = 5)]
    grace: u64,
}

pub(super) fn run(ctx: &Ctx, args: Args, out: &mut String) -> Result<(), Error> {
    let opts = brick::CleanupOptions {
        apply: args.apply,
        grace: std::time::Duration::from_secs(args.grace),
    };
    let settings = ctx.settings;
    let report = brick::cleanup_with(ctx.host, opts, &settings.tuning, &settings.nvme)?;
    if report.clean() {
        if ctx.json {
            let _ = writeln!(out, "{}", to_json(&report));
        } else {
            let _ = write!(out, "{report}");
        }
        return Ok(());
    }
    // With --json the report goes with the error (see `output::finish`).
    if !ctx.json {
        let _ = write!(out, "{report}");
    }
    Err(Error::Incomplete {
        message: format!(
            "cleanup left {} of {} leftover(s) in place",
            report.kept.len() + report.failed.len(),
            report.found.len()
        ),
        report: serde_json::to_value(&report).unwrap_or_default(),
    })
}
