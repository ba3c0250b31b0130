//! `brick extend`: make the host see a volume's new size through the seam; print it.

use std::fmt::Write as _;

use brick::Error;

use super::output::{to_json, VolumeArgs};
use super::Ctx;

pub(super) fn run(ctx: &Ctx, args: VolumeArgs, out: &mut String) -> Result<(), Error> {
    let (props, info) = args.read(ctx.protocol)?;
    let bytes = brick::extend_volume(ctx.host, &props, info.as_ref(), ctx.settings)?;
    if ctx.json {
        let _ = writeln!(out, "{}", to_json(&serde_json::json!({ "size": bytes })));
    } else {
        let _ = writeln!(out, "{}", bytes.0);
    }
    Ok(())
}
