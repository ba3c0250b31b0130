//! The `brick` command: parses arguments, calls the library, prints.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use brick::host::Host;
use brick::{ConnectionProperties, DeviceInfo, Error};
use brick::{DisconnectOptions, Tuning};

mod generate;

/// Attach and detach iSCSI volumes (single path and dm-multipath) without losing data or leaving
/// stale devices behind.
#[derive(Parser)]
#[command(name = "brick", version, propagate_version = true)]
struct Cli {
    /// Show debug logs (each command run, with secrets masked, and its duration).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Print the result as JSON, errors too (`{"error": {"kind", "field", "message", ...}}` on
    /// standard output).
    #[arg(long, global = true)]
    json: bool,
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
    Connect {
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
    },
    /// Make the host see a volume's new size after it grew; prints the size in bytes.
    Extend {
        /// The connection properties (JSON file, or - for standard input).
        props: String,
        /// The device_info that connect returned (JSON file).
        #[arg(long)]
        device_info: Option<PathBuf>,
    },
    /// Print the volume's block devices on this host as a JSON list (the map first).
    Paths {
        /// The connection properties (JSON file, or - for standard input).
        props: String,
        /// The device_info that connect returned (JSON file).
        #[arg(long)]
        device_info: Option<PathBuf>,
    },
    /// Print this host's connector properties (initiator IQN, host name, multipathd) as JSON.
    Properties {
        /// The address to report as the host's (os-brick's my_ip).
        #[arg(long)]
        ip: Option<String>,
    },
    /// Detach a volume: flush and remove its multipath map and every path device, log out of
    /// sessions no other volume uses and delete their node records.
    ///
    /// Exits 0 only when the volume is gone from the host (or with --force --ignore-errors).
    Disconnect {
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
    },
    /// Show every iSCSI session with its devices, LUNs, WWNs, states and multipath maps.
    Inspect,
    /// Write brick's man pages or shell completions, made from these definitions (`make deb`).
    #[command(subcommand, hide = true)]
    Generate(generate::Generate),
}

fn main() -> ExitCode {
    // No core dump and no ptrace by an unprivileged process while CHAP secrets are in memory.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // SIGPIPE stays ignored (Rust's default): a closed standard error or output must not kill
    // brick in the middle of a connect or disconnect. Output is written at the end, and a write
    // error there ends brick quietly (see `finish`).
    let cli = Cli::parse();
    let level = if cli.verbose { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRICK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("brick={level}")));
    // Colour only for a person at a terminal: logs in files and pipes stay plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        // A log line that cannot be written is lost, not reported with eprintln! (which panics
        // when standard error is closed).
        .log_internal_errors(false)
        .init();

    let host = host_of(&cli);
    let mut out = String::new();
    let json = cli.json;
    let result = run(&host, cli.command, json, &mut out);
    finish(&out, result, json)
}

/// Writes what `run` printed to standard output, then the error, if any: to standard error, or
/// with `--json` as `{"error": {...}}` on standard output (with the report of a disconnect
/// that stopped or failed). Gives the exit status of the error's kind (see README: 0 done,
/// 1 failed, 2 bad input, 3 refused to protect data, 4 done with something left, 5 missing
/// prerequisite). A closed standard output ends brick with 141 (what a shell reports for a
/// process that SIGPIPE killed), quietly; a closed standard error loses the message only.
fn finish(out: &str, result: Result<(), Error>, json: bool) -> ExitCode {
    let mut text = out.to_string();
    let code = match &result {
        Ok(()) => 0,
        Err(e) => e.kind().exit_code(),
    };
    if let (Err(e), true) = (&result, json) {
        let report = match e {
            Error::Disconnect { report, .. } => serde_json::to_value(report).ok(),
            _ => None,
        };
        let value = serde_json::json!({
            "error": {
                "kind": e.kind(),
                "field": e.field(),
                "message": e.to_string(),
                "exit_code": code,
            },
            "report": report,
        });
        text = format!("{}\n", to_json(&value));
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::from(141);
        }
        say(&format!("brick: cannot write the output: {e}"));
        return ExitCode::FAILURE;
    }
    if let Err(e) = &result {
        say(&format!("brick: {e}"));
    }
    ExitCode::from(code)
}

/// Writes a line to standard error, if it is still open (`eprintln!` panics when it is not).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn read_input(path: &str) -> Result<String, Error> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io(std::path::Path::new("<stdin>"), e))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| Error::io(std::path::Path::new(path), e))
    }
}

fn read_device_info(path: Option<PathBuf>) -> Result<Option<DeviceInfo>, Error> {
    match path {
        Some(p) => Ok(Some(DeviceInfo::from_json(&read_input(
            &p.to_string_lossy(),
        )?)?)),
        None => Ok(None),
    }
}

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn run(host: &Host, command: Command, json: bool, out: &mut String) -> Result<(), Error> {
    let tuning = Tuning::default();
    match command {
        Command::Connect {
            props,
            multipath,
            single_path,
        } => {
            let props = ConnectionProperties::from_json(&read_input(&props)?)?;
            let multipath = multipath || (!single_path && props.targets().len() > 1);
            let c =
                brick::connect_volume(host, &props, brick::ConnectOptions { multipath }, &tuning)?;
            for f in &c.failed_paths {
                say(&format!("brick: warning: path not attached: {f}"));
            }
            let _ = writeln!(out, "{}", to_json(&c.device_info));
            Ok(())
        }
        Command::Extend { props, device_info } => {
            let props = ConnectionProperties::from_json(&read_input(&props)?)?;
            let info = read_device_info(device_info)?;
            let bytes = brick::extend_volume(host, &props, info.as_ref(), &tuning)?;
            if json {
                let _ = writeln!(out, "{}", to_json(&serde_json::json!({ "size": bytes })));
            } else {
                let _ = writeln!(out, "{}", bytes.0);
            }
            Ok(())
        }
        Command::Paths { props, device_info } => {
            let props = ConnectionProperties::from_json(&read_input(&props)?)?;
            let info = read_device_info(device_info)?;
            let _ = writeln!(
                out,
                "{}",
                to_json(&brick::volume_paths(host, &props, info.as_ref())?)
            );
            Ok(())
        }
        Command::Properties { ip } => {
            let _ = writeln!(out, "{}", to_json(&brick::connector_properties(host, ip)?));
            Ok(())
        }
        Command::Disconnect {
            props,
            device_info,
            force,
            ignore_errors,
            dry_run,
        } => {
            let props = ConnectionProperties::from_json(&read_input(&props)?)?;
            let info = match device_info {
                Some(p) => Some(DeviceInfo::from_json(&read_input(&p.to_string_lossy())?)?),
                None => None,
            };
            if dry_run {
                let plan = brick::disconnect_plan(host, &props, info.as_ref())?;
                if json {
                    let _ = writeln!(out, "{}", to_json(&plan));
                } else {
                    let _ = write!(out, "{plan}");
                }
                return Ok(());
            }
            let opts = DisconnectOptions {
                force,
                ignore_errors,
            };
            match brick::disconnect_volume(host, &props, info.as_ref(), opts, &Tuning::default()) {
                Ok(report) => {
                    print_report(&report, json, out);
                    Ok(())
                }
                Err(Error::Disconnect { message, report }) => {
                    // With --json the report goes with the error (see `finish`).
                    if !json {
                        print_report(&report, json, out);
                    }
                    Err(Error::Disconnect { message, report })
                }
                Err(e) => Err(e),
            }
        }
        Command::Inspect => {
            let topo = brick::inspect(host)?;
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&topo).unwrap_or_default()
                );
            } else {
                print_tree(&topo, out);
            }
            Ok(())
        }
        Command::Generate(what) => generate::run(what, out),
    }
}

fn print_report(r: &brick::DisconnectReport, json: bool, out: &mut String) {
    if json {
        let _ = writeln!(out, "{}", to_json(r));
    } else {
        let _ = write!(out, "{r}");
    }
}

fn print_tree(topo: &[brick::SessionTopology], out: &mut String) {
    if topo.is_empty() {
        let _ = writeln!(out, "no iSCSI sessions");
        return;
    }
    for s in topo {
        let host = s.scsi_host.map(|h| format!(" host{h}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "session {} {} {},{} {} [{}]{host}",
            s.session.id,
            s.session.transport,
            s.session.portal,
            s.session.tpgt,
            s.session.iqn,
            s.state
                .as_ref()
                .map_or("?".to_string(), ToString::to_string)
        );
        let n = s.disks.len();
        for (i, d) in s.disks.iter().enumerate() {
            let branch = if i + 1 == n { "└─" } else { "├─" };
            let size = d
                .disk
                .size_bytes
                .map(|b| format!(" {} MiB", b >> 20))
                .unwrap_or_default();
            let map = d
                .map
                .as_ref()
                .map(|m| format!(" -> {} ({})", m.dev, m.name))
                .or_else(|| d.disk.holders.first().map(|h| format!(" -> {h}")))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {branch} lun {} {} /dev/{} [{}] wwn {}{size}{map}",
                d.disk.address.lun,
                d.disk.address,
                d.disk.name,
                d.disk
                    .state
                    .as_ref()
                    .map_or("?".to_string(), ToString::to_string),
                d.disk.wwid.as_ref().map_or("?", |w| w.as_str()),
            );
        }
    }
}
