//! `brick paths`: the volume's block devices on this host, through the seam.

use std::fmt::Write as _;
use std::path::PathBuf;

use brick::Error;

use super::output::{read_device_info, read_props, to_json};
use super::Ctx;

#[derive(clap::Args)]
pub(super) struct Args {
    /// The connection properties (JSON file, or - for standard input).
    props: String,
    /// The device_info that connect returned (JSON file).
    #[arg(long)]
    device_info: Option<PathBuf>,
}

pub(super) fn run(ctx: &Ctx, args: Args, out: &mut String) -> Result<(), Error> {
    let props = read_props(&args.props, ctx.protocol)?;
    let info = read_device_info(args.device_info)?;
    let paths = brick::volume_paths(ctx.host, &props, info.as_ref())?;
    let _ = writeln!(out, "{}", to_json(&paths));
    Ok(())
}
