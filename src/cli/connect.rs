//! `brick connect`: attach a volume through the seam, print its device_info.

use std::fmt::Write as _;
use std::time::Duration;

use brick::{ConnectOptions, CtrlLossTmo, Error};

use super::output::{read_props, say, to_json};
use super::Ctx;

#[derive(clap::Args)]
pub(super) struct Args {
    /// The connection properties: a JSON file in os-brick's format, or - for standard input.
    props: String,
    /// Use every portal and wait for the multipath map (the default when the properties list
    /// several portals; with target_portal alone, the target's other portals come from a
    /// sendtargets discovery on it, as in os-brick).
    #[arg(long, conflicts_with = "single_path")]
    multipath: bool,
    /// Use one path only, trying the portals in turn.
    #[arg(long)]
    single_path: bool,
    /// The open-iscsi interface for the sessions (os-brick's transport): default (TCP),
    /// iser, or the name of an iface record (`iscsiadm -m iface`). Default: iser for a
    /// `driver_volume_type: iser` volume, else default.
    #[arg(long, value_name = "NAME")]
    iface: Option<String>,
    /// NVMe-oF: how long the kernel keeps reconnecting a controller whose portal is gone
    /// before it deletes it and fails the queued I/O (ctrl_loss_tmo): seconds, at least 1,
    /// or `off` (os-brick's -1: for ever, until a disconnect decides). Default: the setting
    /// nvme_ctrl_loss_tmo (off).
    #[arg(long, value_name = "SECONDS|off")]
    ctrl_loss_tmo: Option<String>,
    /// NVMe-oF: seconds between two reconnect attempts (reconnect_delay). Default: the
    /// setting nvme_reconnect_delay (5 s).
    #[arg(long)]
    reconnect_delay: Option<u64>,
    /// NVMe-oF: fail I/O on a reconnecting controller after this many seconds
    /// (fast_io_fail_tmo; default: wait for the reconnect).
    #[arg(long)]
    fast_io_fail_tmo: Option<u64>,
}

impl Args {
    /// The flags as the seam's options (`--ctrl-loss-tmo` parsed here, to name the flag).
    fn options(&self) -> Result<ConnectOptions, Error> {
        let ctrl_loss_tmo = match &self.ctrl_loss_tmo {
            Some(v) => Some(
                v.parse::<CtrlLossTmo>()
                    .map_err(|why| Error::invalid("--ctrl-loss-tmo", why))?,
            ),
            None => None,
        };
        Ok(ConnectOptions {
            multipath: match (self.multipath, self.single_path) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            iface: self.iface.clone(),
            ctrl_loss_tmo,
            reconnect_delay: self.reconnect_delay.map(Duration::from_secs),
            fast_io_fail_tmo: self.fast_io_fail_tmo.map(Duration::from_secs),
        })
    }
}

pub(super) fn run(ctx: &Ctx, args: Args, out: &mut String) -> Result<(), Error> {
    let props = read_props(&args.props, ctx.protocol)?;
    let opts = args.options()?;
    let c = brick::connect_volume(ctx.host, &props, &opts, ctx.settings).map_err(flag_named)?;
    for f in &c.failed_paths {
        say(&format!("brick: warning: path not attached: {f}"));
    }
    let _ = writeln!(out, "{}", to_json(&c.device_info));
    Ok(())
}

/// The seam names a refused option by its field (`ctrl_loss_tmo`); here it is the flag
/// (`--ctrl-loss-tmo`).
fn flag_named(e: Error) -> Error {
    match e {
        Error::InvalidInput { field, reason } if ConnectOptions::FIELDS.contains(&&*field) => {
            Error::InvalidInput {
                field: format!("--{}", field.replace('_', "-")),
                reason,
            }
        }
        e => e,
    }
}
