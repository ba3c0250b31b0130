//! `brick paths`: the volume's block devices on this host, through the seam.

use std::fmt::Write as _;

use brick::Error;

use super::output::{to_json, VolumeArgs};
use super::Ctx;

pub(super) fn run(ctx: &Ctx, args: VolumeArgs, out: &mut String) -> Result<(), Error> {
    let (props, info) = args.read(ctx.protocol)?;
    let paths = brick::volume_paths(ctx.host, &props, info.as_ref())?;
    let _ = writeln!(out, "{}", to_json(&paths));
    Ok(())
}
