//! `brick disconnect`: detach a volume through the seam, or with --dry-run say what that would
//! do; print the report.

use std::path::PathBuf;

use brick::{DisconnectOptions, Error};

use super::output::{print, read_device_info, read_props};
use super::Ctx;

#[derive(clap::Args)]
pub(super) struct Args {
    /// The connection properties: a JSON file in os-brick's format, or - for standard input.
    props: String,
    /// The device_info that connect returned (JSON file); its scsi_wwn pins the volume's WWN.
    #[arg(long)]
    device_info: Option<PathBuf>,
    /// A clean host matters more than the data: go on whatever fails (unwritten data is lost).
    #[arg(long)]
    force: bool,
    /// With --force: exit 0 even when something failed (failures are still reported).
    #[arg(long, requires = "force")]
    ignore_errors: bool,
    /// Change nothing: print what the disconnect would do now (from the code it runs), what
    /// would stop it, and what --force would do.
    #[arg(long)]
    dry_run: bool,
}

pub(super) fn run(ctx: &Ctx, args: Args, out: &mut String) -> Result<(), Error> {
    let info = read_device_info(args.device_info)?;
    let props = read_props(&args.props, ctx.protocol)?;
    if args.dry_run {
        let plan = brick::disconnect_plan(ctx.host, &props, info.as_ref())?;
        print(&plan, ctx.json, out);
        return Ok(());
    }
    let opts = DisconnectOptions {
        force: args.force,
        ignore_errors: args.ignore_errors,
    };
    match brick::disconnect_volume(ctx.host, &props, info.as_ref(), opts, ctx.settings) {
        Ok(report) => {
            print(&report, ctx.json, out);
            Ok(())
        }
        // With --json the report goes with the error instead (see `output::finish`).
        Err(Error::Disconnect { message, report }) => {
            if !ctx.json {
                print(&report, false, out);
            }
            Err(Error::Disconnect { message, report })
        }
        Err(e) => Err(e),
    }
}
