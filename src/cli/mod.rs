//! The `brick` command: the arguments (clap), the one dispatch to a file per command, and
//! `main`'s order of things (logs, settings, host, run, output). Each command's file has its
//! flags and what it prints; `output.rs` and `logs.rs` the helpers they share.

mod cleanup;
mod config;
mod connect;
mod disconnect;
mod extend;
mod generate;
mod inspect;
mod logs;
mod output;
mod paths;
mod properties;
mod request;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use brick::config::Settings;
use brick::host::Host;
use brick::{Error, Protocol};

/// Attach and detach iSCSI volumes (single path and dm-multipath) and NVMe over Fabrics (TCP)
/// volumes (native NVMe multipath) without losing data or leaving stale devices behind.
#[derive(Parser)]
#[command(name = "brick", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Show debug logs (each command run, with secrets masked, and its duration).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// How logs are written on standard error: text for a person, or one JSON object per line
    /// for a log collector.
    #[arg(long, global = true, value_enum, default_value_t = logs::LogFormat::Text)]
    log_format: logs::LogFormat,
    /// Print the result as JSON, errors too (`{"error": {"kind", "field", "message", ...}}` on
    /// standard output).
    #[arg(long, global = true)]
    json: bool,
    /// The settings file (deadlines, retries, locks); default /etc/brick/brick.toml when it
    /// exists. `brick config` shows every setting.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set one setting for this run, over the file (repeatable): --set map_deadline=40s.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The volume's protocol, `iscsi` or `nvmeof`. Default: a connection_info's
    /// driver_volume_type, else NVMe-oF when the properties have target_nqn, nqn or
    /// volume_replicas, else iSCSI. `inspect` shows only that protocol's state.
    #[arg(long, global = true)]
    protocol: Option<Protocol>,
    /// Test builds only (debug assertions on, as `cargo test` builds it): the roots of a fake
    /// host, and where programs are looked for. A release build has none of these: the
    /// environment of the root process that runs brick cannot redirect what it writes or runs.
    #[cfg(debug_assertions)]
    #[command(flatten)]
    test_roots: TestRoots,
    #[command(subcommand)]
    command: Command,
}

/// Where a test build finds the host (see `Cli::test_roots`).
#[cfg(debug_assertions)]
#[derive(clap::Args)]
struct TestRoots {
    /// Where sysfs is (for tests on a copied or fake tree).
    #[arg(
        long,
        global = true,
        default_value = "/sys",
        env = "BRICK_SYSFS",
        hide = true
    )]
    sysfs: PathBuf,
    /// Where device nodes are.
    #[arg(
        long,
        global = true,
        default_value = "/dev",
        env = "BRICK_DEV",
        hide = true
    )]
    dev: PathBuf,
    /// Where open-iscsi keeps its configuration and node records.
    #[arg(
        long,
        global = true,
        default_value = "/etc/iscsi",
        env = "BRICK_ISCSI_CONF",
        hide = true
    )]
    iscsi_conf: PathBuf,
    /// The folders where programs (iscsiadm) are looked for, separated by `:`, instead of the
    /// fixed list.
    #[arg(long, global = true, env = "BRICK_PROGRAMS", hide = true)]
    programs: Option<String>,
}

#[cfg(debug_assertions)]
fn host_of(cli: &Cli) -> Host {
    let t = &cli.test_roots;
    let host = Host::with_roots(&t.sysfs, &t.dev, &t.iscsi_conf);
    match &t.programs {
        Some(dirs) => host.runner(std::sync::Arc::new(brick::host::SystemRunner::searching(
            std::env::split_paths(dirs),
        ))),
        None => host,
    }
}

#[cfg(not(debug_assertions))]
fn host_of(_cli: &Cli) -> Host {
    Host::real()
}

#[derive(Subcommand)]
enum Command {
    /// Attach a volume and print its device_info (os-brick's shape) as JSON.
    ///
    /// Logs in to every portal at once (or, with --single-path, to the first that works), scans
    /// only the volume's LUN and waits for its disk and multipath map. A failed connect leaves
    /// the host as it was.
    Connect(connect::Args),
    /// Make the host see a volume's new size after it grew; prints the size in bytes.
    Extend(output::VolumeArgs),
    /// Print the volume's block devices on this host as a JSON list (the map first).
    Paths(output::VolumeArgs),
    /// Print this host's connector properties (initiator IQN, host name, multipathd) as JSON.
    Properties(properties::Args),
    /// Detach a volume: flush and remove its multipath map and every path device, log out of
    /// sessions no other volume uses and delete their node records.
    ///
    /// Exits 0 only when the volume is gone from the host (or with --force --ignore-errors).
    Disconnect(disconnect::Args),
    /// Show every iSCSI session with its devices, LUNs, WWNs, states and multipath maps, and
    /// every NVMe subsystem with its controllers (transport, address, state), namespaces and
    /// each path's ANA state (`--protocol` picks one; `--json` is iSCSI's unless
    /// `--protocol nvmeof`).
    Inspect,
    /// Find what no volume needs any more (sessions with no device, disks the transport gave
    /// up on, multipath maps with no live path and no opener, node records of manual logins
    /// with no session, wwids entries of no device) and, with --apply, remove it with the
    /// disconnect's safety: checked again right before, flushed first, never open, mounted or
    /// held, never a WWN a live disk or map has, never a disk whose session is in recovery
    /// (FAILED, within its recovery_tmo). What looks left over but is not (such a disk, a disk
    /// or map in use, a node record set to log in at boot, as os-brick leaves them) is named
    /// with why ("left alone").
    ///
    /// Exits 0 when nothing is left over (or everything found was removed), 4 when --apply left
    /// something in place (the report says what and why).
    Cleanup(cleanup::Args),
    /// Print every setting in effect (deadlines, retries, locks) and where each came from:
    /// brick's default, the settings file or --set. The text output is itself a valid file.
    Config,
    /// Run one request of the Python package (through its root helper): the request as JSON on
    /// standard input, the answer as JSON on standard output, errors included (exit 0 when
    /// answered). See `brick::request`.
    ///
    /// What a root helper (rootwrap, sudo) lets an unprivileged service run: its settings come
    /// from /etc/brick/brick.toml alone, and --config and --set are refused.
    Request,
    /// Write brick's man pages or shell completions, made from these definitions (`make deb`).
    #[command(subcommand, hide = true)]
    Generate(generate::Generate),
}

/// What every command runs with: the host, the settings in effect and the global flags.
struct Ctx<'a> {
    host: &'a Host,
    settings: &'a Settings,
    /// `--json`.
    json: bool,
    /// `--protocol`.
    protocol: Option<Protocol>,
}

/// `brick`: no core dumps, the logs, the settings (refused for `brick request`), the host,
/// the command; then its output and exit status (see `output::finish`).
pub(crate) fn main() -> ExitCode {
    // No core dump and no ptrace by an unprivileged process while CHAP secrets are in memory.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // SIGPIPE stays ignored (Rust's default): a closed standard error or output must not kill
    // brick in the middle of a connect or disconnect. Output is written at the end, and a write
    // error there ends brick quietly (see `finish`).
    let cli = Cli::parse();
    let progress = logs::init(cli.verbose, cli.log_format);
    let json = cli.json;
    let is_request = matches!(cli.command, Command::Request);
    if let Err(e) = request::takes_no_settings(is_request, cli.config.is_some(), &cli.set) {
        return output::finish("", Err(e), json);
    }
    let settings = match Settings::load(cli.config.as_deref(), &cli.set) {
        Ok(s) => s,
        Err(e) => return output::finish("", Err(e), json),
    };
    let host = settings.apply(host_of(&cli));
    let ctx = Ctx {
        host: &host,
        settings: &settings,
        json,
        protocol: cli.protocol,
    };
    let mut out = String::new();
    let result = run(&ctx, cli.command, &mut out);
    if let Some(p) = progress {
        p.clear();
    }
    output::finish(&out, result, json)
}

/// The one dispatch: each command to its file.
fn run(ctx: &Ctx, command: Command, out: &mut String) -> Result<(), Error> {
    match command {
        Command::Connect(args) => connect::run(ctx, args, out),
        Command::Extend(args) => extend::run(ctx, args, out),
        Command::Paths(args) => paths::run(ctx, args, out),
        Command::Properties(args) => properties::run(ctx, args, out),
        Command::Disconnect(args) => disconnect::run(ctx, args, out),
        Command::Inspect => inspect::run(ctx, out),
        Command::Cleanup(args) => cleanup::run(ctx, args, out),
        Command::Config => config::run(ctx, out),
        Command::Request => request::run(ctx, out),
        Command::Generate(what) => generate::run(what, out),
    }
}
