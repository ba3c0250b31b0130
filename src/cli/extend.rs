//! `brick extend`: make the host see a volume's new size through the seam; print it.

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
    let bytes = brick::extend_volume(ctx.host, &props, info.as_ref(), ctx.settings)?;
    if ctx.json {
        let _ = writeln!(out, "{}", to_json(&serde_json::json!({ "size": bytes })));
    } else {
        let _ = writeln!(out, "{}", bytes.0);
    }
    Ok(())
}
