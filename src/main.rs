//! The `brick` command: parses arguments, calls the library, prints.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use brick::config::Settings;
use brick::host::Host;
use brick::nvmeof::{NvmeProperties, NvmeTuning};
use brick::DisconnectOptions;
use brick::{ConnectionProperties, DeviceInfo, Error, Protocol, VolumeProperties};

mod generate;

/// Attach and detach iSCSI volumes (single path and dm-multipath) and NVMe over Fabrics (TCP)
/// volumes (native NVMe multipath) without losing data or leaving stale devices behind.
#[derive(Parser)]
#[command(name = "brick", version, propagate_version = true)]
struct Cli {
    /// Show debug logs (each command run, with secrets masked, and its duration).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// How logs are written on standard error: text for a person, or one JSON object per line
    /// for a log collector.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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

/// The form of the logs on standard error.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Lines for a person (coloured on a terminal).
    Text,
    /// One JSON object per line.
    Json,
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
    Cleanup {
        /// Remove what was found (else only list it).
        #[arg(long)]
        apply: bool,
        /// Seconds a blocked disk whose session is not in recovery must stay blocked to count as
        /// dead (one whose session is in recovery never counts).
        #[arg(long, default_value_t = 5)]
        grace: u64,
    },
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

/// `brick request` is what a root helper (sudo, rootwrap) lets an unprivileged caller run: it
/// takes its settings from the root-owned settings file only, never from the caller's
/// `--config` or `--set` (a caller's `lock_dir` would move brick's locks where it holds them).
fn request_takes_no_settings(cli: &Cli) -> Result<(), Error> {
    if !matches!(cli.command, Command::Request) {
        return Ok(());
    }
    let field = if cli.config.is_some() {
        "--config"
    } else if !cli.set.is_empty() {
        "--set"
    } else {
        return Ok(());
    };
    Err(Error::invalid(
        field,
        "`brick request` takes no settings from its caller: it runs for an unprivileged \
         caller through a root helper, and uses /etc/brick/brick.toml alone",
    ))
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
    let progress = init_logs(&cli);
    let json = cli.json;
    if let Err(e) = request_takes_no_settings(&cli) {
        return finish("", Err(e), json);
    }
    let settings = match Settings::load(cli.config.as_deref(), &cli.set) {
        Ok(s) => s,
        Err(e) => return finish("", Err(e), json),
    };
    let host = settings.apply(host_of(&cli));
    let mut out = String::new();
    let result = run(&host, &settings, cli.command, json, cli.protocol, &mut out);
    if let Some(p) = progress {
        p.clear();
    }
    finish(&out, result, json)
}

/// Sets up the logs on standard error (text or JSON lines, debug with -v, `BRICK_LOG` to
/// choose), and, for a person at a terminal, the line that says what brick waits for.
fn init_logs(cli: &Cli) -> Option<std::sync::Arc<ProgressLine>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let level = if cli.verbose { "debug" } else { "warn" };
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("BRICK_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("brick={level}")))
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Colour only for a person at a terminal: logs in files and pipes stay plain text.
    let colour = terminal && std::env::var_os("NO_COLOR").is_none();
    // A log line that cannot be written is lost, not reported with eprintln! (which panics when
    // standard error is closed).
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .log_internal_errors(false);
    let logs = match cli.log_format {
        LogFormat::Text => fmt.with_ansi(colour).with_filter(filter()).boxed(),
        LogFormat::Json => fmt.json().with_ansi(false).with_filter(filter()).boxed(),
    };
    // With -v the logs say it all already.
    let progress = (terminal && cli.log_format == LogFormat::Text && !cli.verbose)
        .then(|| std::sync::Arc::new(ProgressLine::default()));
    // The progress line sees the waits and every line the logs print (to clear itself first).
    let shown = progress.clone().map(|p| {
        let wants = format!("{},{}=info", filter(), brick::PROGRESS_TARGET);
        ArcLayer(p).with_filter(tracing_subscriber::EnvFilter::new(wants))
    });
    tracing_subscriber::registry().with(shown).with(logs).init();
    progress
}

/// The one line on a terminal that says what brick waits for and for how long: rewritten in
/// place at each progress event, cleared before any other log line and at the end.
#[derive(Default)]
struct ProgressLine {
    shown: std::sync::atomic::AtomicBool,
}

impl ProgressLine {
    fn clear(&self) {
        if self.shown.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }

    fn show(&self, line: &str) {
        self.shown.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
    }
}

/// The text of a progress event: `brick: waiting 12 s of 20 s for the multipath map of ...`.
fn progress_text(event: &tracing::Event<'_>) -> String {
    #[derive(Default)]
    struct Fields {
        what: String,
        waited: u64,
        limit: Option<u64>,
    }
    impl tracing::field::Visit for Fields {
        fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
            match f.name() {
                "waited_s" => self.waited = v,
                "limit_s" => self.limit = Some(v),
                _ => {}
            }
        }
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            if f.name() == "what" {
                self.what = format!("{v:?}");
            }
        }
    }
    let mut f = Fields::default();
    event.record(&mut f);
    match f.limit {
        Some(l) => format!("brick: waiting {} s of {l} s for {}", f.waited, f.what),
        None => format!("brick: waiting {} s for {}", f.waited, f.what),
    }
}

/// [`ProgressLine`] as a tracing layer (shared with `main`, which clears it at the end).
struct ArcLayer(std::sync::Arc<ProgressLine>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ArcLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() == brick::PROGRESS_TARGET {
            self.0.show(&progress_text(event));
        } else {
            self.0.clear();
        }
    }
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
            Error::Incomplete { report, .. } => Some(report.clone()),
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

/// Refuses the first flag of `flags` that was given (`true`): it applies to `theirs` volumes
/// only, and this one is `ours`. Silently ignored, it would let a caller believe it took effect.
fn refuse_other_transport(flags: &[(&str, bool)], theirs: &str, ours: &str) -> Result<(), Error> {
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(Error::invalid(
            *flag,
            format!("applies to {theirs} volumes only, and this volume is {ours}"),
        )),
        None => Ok(()),
    }
}

fn read_props(path: &str, protocol: Option<Protocol>) -> Result<VolumeProperties, Error> {
    VolumeProperties::from_json(&read_input(path)?, protocol)
}

fn run(
    host: &Host,
    settings: &Settings,
    command: Command,
    json: bool,
    protocol: Option<Protocol>,
    out: &mut String,
) -> Result<(), Error> {
    let tuning = &settings.tuning;
    match command {
        Command::Connect {
            props,
            multipath,
            single_path,
            iface,
            ctrl_loss_tmo,
            reconnect_delay,
            fast_io_fail_tmo,
        } => {
            let props = match read_props(&props, protocol)? {
                VolumeProperties::Iscsi(p) => {
                    let nvme_only = [
                        ("--ctrl-loss-tmo", ctrl_loss_tmo.is_some()),
                        ("--reconnect-delay", reconnect_delay.is_some()),
                        ("--fast-io-fail-tmo", fast_io_fail_tmo.is_some()),
                    ];
                    refuse_other_transport(&nvme_only, "NVMe-oF", "iSCSI")?;
                    p
                }
                VolumeProperties::Nvmeof(p) => {
                    refuse_other_transport(&[("--iface", iface.is_some())], "iSCSI", "NVMe-oF")?;
                    let secs = std::time::Duration::from_secs;
                    let base = settings.nvme.clone();
                    let tuning = NvmeTuning {
                        ctrl_loss_tmo: match ctrl_loss_tmo {
                            Some(v) => brick::config::seconds_or_off(&v)
                                .map_err(|why| Error::invalid("--ctrl-loss-tmo", why))?,
                            None => base.ctrl_loss_tmo,
                        },
                        reconnect_delay: reconnect_delay.map_or(base.reconnect_delay, secs),
                        fast_io_fail_tmo: fast_io_fail_tmo.map(secs).or(base.fast_io_fail_tmo),
                        multipath: single_path.then_some(false),
                        ..base
                    };
                    let c = brick::nvmeof::connect_volume(host, &p, &tuning)?;
                    for f in &c.failed_paths {
                        say(&format!("brick: warning: path not attached: {f}"));
                    }
                    let _ = writeln!(out, "{}", to_json(&c.device_info));
                    return Ok(());
                }
            };
            let multipath = multipath || (!single_path && props.targets().len() > 1);
            let c = brick::connect_volume(
                host,
                &props,
                brick::ConnectOptions { multipath, iface },
                tuning,
            )?;
            for f in &c.failed_paths {
                say(&format!("brick: warning: path not attached: {f}"));
            }
            let _ = writeln!(out, "{}", to_json(&c.device_info));
            Ok(())
        }
        Command::Extend { props, device_info } => {
            let props = match read_props(&props, protocol)? {
                VolumeProperties::Iscsi(p) => p,
                VolumeProperties::Nvmeof(p) => {
                    let bytes = brick::nvmeof::extend_volume(host, &p, &settings.nvme)?;
                    print_size(bytes.0, json, out);
                    return Ok(());
                }
            };
            let info = read_device_info(device_info)?;
            let bytes = brick::extend_volume(host, &props, info.as_ref(), tuning)?;
            print_size(bytes.0, json, out);
            Ok(())
        }
        Command::Paths { props, device_info } => {
            let props = match read_props(&props, protocol)? {
                VolumeProperties::Iscsi(p) => p,
                VolumeProperties::Nvmeof(p) => {
                    let paths = brick::nvmeof::volume_paths(host, &p)?;
                    let _ = writeln!(out, "{}", to_json(&paths));
                    return Ok(());
                }
            };
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
            let info = match device_info {
                Some(p) => Some(DeviceInfo::from_json(&read_input(&p.to_string_lossy())?)?),
                None => None,
            };
            let props: ConnectionProperties = match read_props(&props, protocol)? {
                VolumeProperties::Iscsi(p) => p,
                VolumeProperties::Nvmeof(p) => {
                    return nvme_disconnect(
                        host,
                        &settings.nvme,
                        &p,
                        info.as_ref(),
                        force,
                        ignore_errors,
                        dry_run,
                        json,
                        out,
                    );
                }
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
            print_disconnect(
                brick::disconnect_volume(host, &props, info.as_ref(), opts, tuning),
                json,
                out,
            )
        }
        Command::Request => {
            let request = read_input("-")?;
            let _ = writeln!(out, "{}", brick::request::handle(host, settings, &request));
            Ok(())
        }
        Command::Inspect => {
            if protocol == Some(Protocol::Nvmeof) || (protocol.is_none() && !json) {
                let subs = brick::nvmeof::inspect(host)?;
                if json {
                    let _ = writeln!(out, "{}", to_json(&subs));
                    return Ok(());
                }
                if protocol.is_some() || !subs.is_empty() {
                    print_nvme_tree(&subs, out);
                }
                if protocol.is_some() {
                    return Ok(());
                }
            }
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
        Command::Cleanup { apply, grace } => {
            let opts = brick::CleanupOptions {
                apply,
                grace: std::time::Duration::from_secs(grace),
            };
            let report = brick::cleanup(host, opts, tuning)?;
            if report.clean() {
                if json {
                    let _ = writeln!(out, "{}", to_json(&report));
                } else {
                    let _ = write!(out, "{report}");
                }
                return Ok(());
            }
            // With --json the report goes with the error (see `finish`).
            if !json {
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
        Command::Config => {
            print_settings(settings, json, out);
            Ok(())
        }
        Command::Generate(what) => generate::run(what, out),
    }
}

/// The settings in effect: as JSON, or as a settings file with each value's source and meaning
/// in a comment (durations quoted, so the text is valid TOML).
fn print_settings(settings: &Settings, json: bool, out: &mut String) {
    let entries = settings.entries();
    if json {
        let file = settings.file().map(|p| p.display().to_string());
        let v = serde_json::json!({ "file": file, "settings": entries });
        let _ = writeln!(out, "{}", to_json(&v));
        return;
    }
    let _ = match settings.file() {
        Some(p) => writeln!(out, "# settings file: {}", p.display()),
        None => writeln!(
            out,
            "# no settings file ({} does not exist)",
            brick::config::DEFAULT_PATH
        ),
    };
    for e in entries {
        let value = if e.value.bytes().all(|b| b.is_ascii_digit()) {
            e.value.clone()
        } else {
            format!("{:?}", e.value)
        };
        let _ = writeln!(
            out,
            "{:<23} = {:<14} # {}: {}",
            e.key, value, e.source, e.help
        );
    }
}

fn print_size(bytes: u64, json: bool, out: &mut String) {
    if json {
        let _ = writeln!(out, "{}", to_json(&serde_json::json!({ "size": bytes })));
    } else {
        let _ = writeln!(out, "{bytes}");
    }
}

#[allow(clippy::too_many_arguments)]
fn nvme_disconnect(
    host: &Host,
    tuning: &NvmeTuning,
    props: &NvmeProperties,
    info: Option<&DeviceInfo>,
    force: bool,
    ignore_errors: bool,
    dry_run: bool,
    json: bool,
    out: &mut String,
) -> Result<(), Error> {
    if dry_run {
        let plan = brick::nvmeof::disconnect_plan(host, props, info)?;
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
    print_disconnect(
        brick::nvmeof::disconnect_volume(host, props, info, opts, tuning),
        json,
        out,
    )
}

fn print_nvme_tree(subs: &[brick::nvmeof::Subsystem], out: &mut String) {
    if subs.is_empty() {
        let _ = writeln!(out, "no NVMe subsystems");
        return;
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    for s in subs {
        let _ = writeln!(out, "{} {}", s.name, opt(&s.nqn));
        for c in &s.controllers {
            let _ = writeln!(
                out,
                "  ├─ controller {} {} {} [{}]",
                c.name,
                c.transport.as_ref().map_or("?".into(), ToString::to_string),
                opt(&c.address),
                c.state.as_ref().map_or("?".into(), ToString::to_string)
            );
        }
        for h in &s.heads {
            let size = h
                .size_bytes
                .map(|b| format!(" {} MiB", b.0 >> 20))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  └─ /dev/{} nsid {} {}{size}",
                h.name,
                h.nsid.map_or("?".into(), |n| n.to_string()),
                h.wwid.as_deref().unwrap_or("?")
            );
            for (ctrl, p) in brick::nvmeof::paths_of(s, h) {
                let _ = writeln!(
                    out,
                    "       └─ {} via {ctrl} ana {}",
                    p.name,
                    p.ana_state.as_deref().unwrap_or("?")
                );
            }
        }
        // With native multipath off, each controller's namespaces are devices of their own.
        for c in &s.controllers {
            for n in c.namespaces.iter().filter(|n| !n.name.contains('c')) {
                let _ = writeln!(
                    out,
                    "  └─ /dev/{} nsid {} {} via {}",
                    n.name,
                    n.nsid.map_or("?".into(), |n| n.to_string()),
                    n.wwid.as_deref().unwrap_or("?"),
                    c.name
                );
            }
        }
    }
}

/// A disconnect's outcome, either protocol's: its report printed (with --json, a failed one's
/// goes with the error instead; see `finish`), its error passed on.
fn print_disconnect(
    result: Result<brick::DisconnectReport, Error>,
    json: bool,
    out: &mut String,
) -> Result<(), Error> {
    match result {
        Ok(report) => {
            print_report(&report, json, out);
            Ok(())
        }
        Err(Error::Disconnect { message, report }) => {
            if !json {
                print_report(&report, json, out);
            }
            Err(Error::Disconnect { message, report })
        }
        Err(e) => Err(e),
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
        let iface = if s.session.iface == "default" {
            String::new()
        } else {
            format!(" iface {}", s.session.iface)
        };
        let _ = writeln!(
            out,
            "session {} {}{iface} {},{} {} [{}]{host}",
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
                .map(|b| format!(" {} MiB", b.0 >> 20))
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
