//! Running external programs: an argv (never a shell), a deadline that kills the whole process
//! group, output drained concurrently, and secrets masked in everything logged or returned.

use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What replaces a secret in logs, errors and captured output.
pub const MASK: &str = "***";

/// A command to run: program and arguments, the time it may take, and the values that must never
/// be shown (they are replaced by [`MASK`] wherever the command is logged or reported).
#[derive(Clone, PartialEq, Eq)]
pub struct Cmd {
    argv: Vec<String>,
    timeout: Duration,
    secrets: Vec<String>,
}

impl Cmd {
    /// A command with a 30 s deadline; change it with [`Cmd::timeout`].
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            argv: vec![program.into()],
            timeout: Duration::from_secs(30),
            secrets: Vec::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.argv.push(a.into());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an argument that is a secret: it is passed to the program but masked everywhere else.
    pub fn secret_arg(mut self, a: impl Into<String>) -> Cmd {
        let a = a.into();
        if !a.is_empty() {
            self.secrets.push(a.clone());
        }
        self.argv.push(a);
        self
    }

    /// Sets the deadline after which the process group is killed.
    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }

    /// The argv as given to the program. Do not log it: use `Display`, which masks secrets.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.timeout
    }

    /// Replaces every secret of this command in `text` with [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), MASK);
        }
        out
    }
}

impl fmt::Display for Cmd {
    /// The command line with secrets masked, for logs and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.argv.iter().map(|a| self.mask(a)).collect();
        f.write_str(&shown.join(" "))
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cmd({self}, timeout {:?})", self.timeout)
    }
}

/// What a finished command left: its exit code (`None` when a signal ended it) and its output,
/// with the command's secrets masked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// The exit code; `None` when a signal ended the program.
    pub code: Option<i32>,
    /// Standard output, secrets masked.
    pub stdout: String,
    /// Standard error, secrets masked.
    pub stderr: String,
}

impl Output {
    /// An exit with `code` and the given output.
    pub fn exit(code: i32, stdout: &str, stderr: &str) -> Output {
        Output {
            code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr (or stdout when stderr is empty), for an error message.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = lines.len().saturating_sub(3);
        lines[start..].join(" / ")
    }
}

/// A command that could not run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started (not installed, not executable).
    #[error("could not start `{cmd}`: {reason}")]
    Spawn {
        /// The command line, secrets masked.
        cmd: String,
        /// Why, as the system said.
        reason: String,
    },
    /// The program did not finish in time; its whole process group was killed.
    #[error("`{cmd}` did not finish within {timeout:?} and was killed")]
    TimedOut {
        /// The command line, secrets masked.
        cmd: String,
        /// The deadline it had.
        timeout: Duration,
    },
}

/// Runs commands. The real one is [`SystemRunner`]; tests script one.
pub trait Runner: Send + Sync {
    /// Runs `cmd` to its end or its deadline. A non-zero exit is an `Ok(Output)`: the caller
    /// decides what each exit code means.
    fn run(&self, cmd: &Cmd) -> Result<Output, CmdError>;
}

/// Where [`SystemRunner`] looks for a program given by name (`iscsiadm`), in order. `PATH` is
/// not used: brick runs as root, and the environment of its caller must not choose the program
/// that gets the CHAP secrets or logs out of sessions.
pub const PROGRAM_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Runs programs on this machine, each in its own process group so that a deadline kills the
/// program and everything it started. A program named without a `/` is run from the first of
/// the search folders that has it ([`PROGRAM_DIRS`] by default), never looked up in `PATH`.
#[derive(Debug, Clone)]
pub struct SystemRunner {
    search: Vec<PathBuf>,
}

impl Default for SystemRunner {
    fn default() -> Self {
        SystemRunner::searching(PROGRAM_DIRS.iter().map(PathBuf::from))
    }
}

impl SystemRunner {
    /// A runner that looks for programs in `dirs` (absolute folders), in order.
    pub fn searching(dirs: impl IntoIterator<Item = PathBuf>) -> SystemRunner {
        SystemRunner {
            search: dirs.into_iter().collect(),
        }
    }

    /// The file `program` runs: itself when it holds a `/`, else the first executable of that
    /// name in the search folders.
    pub fn program_path(&self, program: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        if program.contains('/') {
            return Some(PathBuf::from(program));
        }
        if program.is_empty() {
            return None;
        }
        self.search.iter().map(|d| d.join(program)).find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }

    /// Where `cmd`'s program is, or why it cannot run.
    fn program_for(&self, cmd: &Cmd, shown: &str) -> Result<PathBuf, CmdError> {
        self.program_path(&cmd.argv[0])
            .ok_or_else(|| CmdError::Spawn {
                cmd: shown.to_string(),
                reason: format!(
                    "{} is not installed in {}",
                    cmd.argv[0],
                    self.search
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// Starts `program` with `cmd`'s arguments in a process group of its own, with no input, its
/// output piped and the C locale.
fn spawn(program: &Path, cmd: &Cmd, shown: &str) -> Result<Child, CmdError> {
    Command::new(program)
        .arg0(&cmd.argv[0])
        .args(&cmd.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .env("LC_ALL", "C")
        .spawn()
        .map_err(|e| CmdError::Spawn {
            cmd: shown.to_string(),
            reason: e.to_string(),
        })
}

/// Waits for `child` until `cmd`'s deadline (counted from `started`), showing progress; at the
/// deadline kills its process group and reaps it.
fn wait_or_kill(
    mut child: Child,
    cmd: &Cmd,
    shown: &str,
    started: Instant,
) -> Result<ExitStatus, CmdError> {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let mut progress = crate::time::Progress::new(format!("`{shown}`"), started, Some(cmd.timeout));
    let deadline = started + cmd.timeout;
    let waited = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                progress.tick(Instant::now())
            }
            other => break other,
        }
    };
    match waited {
        Ok(s) => s.map_err(|e| CmdError::Spawn {
            cmd: shown.to_string(),
            reason: e.to_string(),
        }),
        Err(_) => {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            // Reap it; SIGKILL ends a process that is not stuck in the kernel at once.
            let _ = rx.recv_timeout(Duration::from_secs(5));
            tracing::debug!(cmd = %shown, elapsed = ?started.elapsed(), "killed at its deadline");
            Err(CmdError::TimedOut {
                cmd: shown.to_string(),
                timeout: cmd.timeout,
            })
        }
    }
}

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        let started = Instant::now();
        let shown = cmd.to_string();
        let program = self.program_for(cmd, &shown)?;
        let mut child = spawn(&program, cmd, &shown)?;
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        // Drain both pipes at once: a child that fills one while we read the other would block.
        let out = Drain::start(child.stdout.take().map(boxed));
        let err = Drain::start(child.stderr.take().map(boxed));
        let status = wait_or_kill(child, cmd, &shown, started)?;
        // A grandchild that outlives the program could hold the pipes open: kill the group. One
        // that left the group (setsid, a daemon) is not killed: its output is not waited for past
        // the deadline (or a short grace when the program ended right at it).
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let until = (started + cmd.timeout).max(Instant::now() + OUTPUT_GRACE);
        let output = Output {
            code: status.code(),
            stdout: cmd.mask(&out.finish(until)),
            stderr: cmd.mask(&err.finish(until)),
        };
        tracing::debug!(cmd = %shown, code = ?output.code, elapsed = ?started.elapsed(), "ran");
        Ok(output)
    }
}

fn boxed(pipe: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    Box::new(pipe)
}

/// How long the output of a program that ended is still read, at least, when something it
/// started holds its pipes open.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// One of a child's output pipes, read to its end on a thread of its own into a buffer that can
/// be taken at any time.
struct Drain {
    text: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drain {
    fn start(pipe: Option<Box<dyn Read + Send>>) -> Drain {
        let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let buf = text.clone();
        std::thread::spawn(move || {
            if let Some(mut p) = pipe {
                let mut chunk = [0u8; 8192];
                loop {
                    match p.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => buf
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            let _ = tx.send(());
        });
        Drain { text, done }
    }

    /// What was read by the pipe's end, or by `until` when the pipe is still open then (the
    /// reading thread is left to end with the pipe).
    fn finish(self, until: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        let bytes = self.text.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_masks_secrets() {
        let c = Cmd::new("iscsiadm")
            .args(["-m", "node", "-n", "node.session.auth.password", "-v"])
            .secret_arg("s3cr3t!");
        assert_eq!(
            c.to_string(),
            "iscsiadm -m node -n node.session.auth.password -v ***"
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(c.argv().last().unwrap(), "s3cr3t!");
    }

    #[test]
    fn runs_argv_without_a_shell_and_captures_output() {
        let out = SystemRunner::default()
            .run(&Cmd::new("echo").arg("a;b $HOME"))
            .unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(out.stdout, "a;b $HOME\n");
    }

    #[test]
    fn nonzero_exit_is_output_not_error() {
        let out = SystemRunner::default()
            .run(&Cmd::new("sh").args(["-c", "echo oops >&2; exit 21"]))
            .unwrap();
        assert_eq!(out.code, Some(21));
        assert_eq!(out.tail(), "oops");
    }

    #[test]
    fn programs_are_found_in_the_search_folders_not_in_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("brick-test-prog");
        std::fs::write(&prog, "#!/bin/sh\necho from-search-dir\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let runner = SystemRunner::searching([dir.path().to_path_buf()]);
        let out = runner.run(&Cmd::new("brick-test-prog")).unwrap();
        assert_eq!(out.stdout, "from-search-dir\n");
        // Not in the default folders: not found, whatever PATH holds.
        let e = SystemRunner::default()
            .run(&Cmd::new("brick-test-prog"))
            .unwrap_err();
        assert!(e.to_string().contains("not installed in /usr/sbin"), "{e}");
        assert_eq!(
            SystemRunner::default()
                .program_path("sh")
                .map(|p| p.is_absolute()),
            Some(true)
        );
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let e = SystemRunner::default()
            .run(&Cmd::new("/nonexistent/brick-test-program"))
            .unwrap_err();
        assert!(matches!(e, CmdError::Spawn { .. }), "{e:?}");
    }

    #[test]
    fn hung_command_is_killed_with_its_children_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let cmd = Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(300));
        let t = Instant::now();
        let e = SystemRunner::default().run(&cmd).unwrap_err();
        assert!(matches!(e, CmdError::TimedOut { .. }), "{e:?}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild was in the same process group: it must be gone (or a zombie being reaped).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            if stat.is_empty() || state == Some("Z") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "grandchild {pid} still alive: {stat}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_grandchild_holding_the_output_pipe_does_not_hold_brick_past_the_deadline() {
        // The background sleep leaves the process group (setsid) and keeps the program's stdout
        // open: killing the group does not close the pipe.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("escaped.pid");
        let script = format!("setsid sleep 30 & echo $! > {}; echo hi", pidfile.display());
        let cmd = Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(1500));
        let t = Instant::now();
        let out = SystemRunner::default().run(&cmd);
        let took = t.elapsed();
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let out = out.unwrap();
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert_eq!(out.code, Some(0));
        assert_eq!(out.stdout, "hi\n");
    }

    #[test]
    fn secrets_are_masked_in_captured_output_and_timeout_errors() {
        let cmd = Cmd::new("sh")
            .args(["-c", "echo \"$0\" >&2; sleep 5"])
            .secret_arg("hunter2")
            .timeout(Duration::from_millis(200));
        let e = SystemRunner::default().run(&cmd).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let cmd = Cmd::new("sh")
            .args(["-c", "echo \"pw=$0\" >&2; exit 3"])
            .secret_arg("hunter2");
        let out = SystemRunner::default().run(&cmd).unwrap();
        assert_eq!(out.stderr.trim(), "pw=***");
    }
}
