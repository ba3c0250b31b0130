//! `brick properties`: this host's connector properties.

use std::fmt::Write as _;

use brick::Error;

use super::output::to_json;
use super::Ctx;

#[derive(clap::Args)]
pub(super) struct Args {
    /// The address to report as the host's (os-brick's my_ip).
    #[arg(long)]
    ip: Option<String>,
}

pub(super) fn run(ctx: &Ctx, args: Args, out: &mut String) -> Result<(), Error> {
    let props = brick::connector_properties(ctx.host, args.ip)?;
    let _ = writeln!(out, "{}", to_json(&props));
    Ok(())
}
