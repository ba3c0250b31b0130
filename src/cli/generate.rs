//! `brick generate` (hidden): brick's manual pages and shell completions, made from the very clap
//! definitions that parse its arguments and print `--help`, so the two never say different
//! things. `make deb` runs it with the release binary and packages what it writes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;

use brick::Error;

/// The manual section of brick's pages: 8, administration commands (brick runs as root and acts
/// on the host's storage, as `iscsiadm(8)` and `multipath(8)` do; the package puts it in
/// /usr/sbin).
pub const MAN_SECTION: &str = "8";

/// What `brick generate` writes.
#[derive(clap::Subcommand)]
pub enum Generate {
    /// Write brick.8 and a brick-SUBCOMMAND.8 for every subcommand into DIR (roff, not
    /// compressed); print each file's path.
    Man {
        /// The folder to write the pages into (made if missing).
        dir: PathBuf,
    },
    /// Write the completion script for SHELL: into DIR under clap_complete's name for it
    /// (brick.bash, _brick, brick.fish, ...) printing its path, or without DIR to standard output.
    Completions {
        /// The shell the script is for.
        shell: Shell,
        /// The folder to write the script into (made if missing).
        dir: Option<PathBuf>,
    },
}

/// Runs `brick generate`; what it prints goes into `out`.
pub fn run(what: Generate, out: &mut String) -> Result<(), Error> {
    let cmd = crate::cli::Cli::command();
    match what {
        Generate::Man { dir } => {
            create_dir(&dir)?;
            for page in man_pages(cmd) {
                let path = dir.join(page.get_filename());
                write_file(&path, |w| page.render(w))?;
                out.push_str(&format!("{}\n", path.display()));
            }
        }
        Generate::Completions { shell, dir: None } => {
            let mut cmd = without_hidden(&cmd);
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "brick", &mut script);
            out.push_str(&String::from_utf8_lossy(&script));
        }
        Generate::Completions {
            shell,
            dir: Some(dir),
        } => {
            create_dir(&dir)?;
            let mut cmd = without_hidden(&cmd);
            let path = clap_complete::generate_to(shell, &mut cmd, "brick", &dir)
                .map_err(|e| Error::io(&dir, e))?;
            out.push_str(&format!("{}\n", path.display()));
        }
    }
    Ok(())
}

/// One page for `cmd` and one for each of its subcommands, at any depth, except the hidden ones
/// and clap's own `help` (its text is in every page already). A subcommand's page is named after
/// its path (`brick-connect`), as git's and cargo's are.
pub fn man_pages(cmd: clap::Command) -> Vec<clap_mangen::Man> {
    fn walk(cmd: clap::Command, pages: &mut Vec<clap_mangen::Man>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub.clone(), pages);
        }
        let title = cmd
            .get_display_name()
            .unwrap_or_else(|| cmd.get_name())
            .to_uppercase();
        let source = format!("brick {}", cmd.get_version().unwrap_or_default());
        pages.push(
            clap_mangen::Man::new(cmd)
                .section(MAN_SECTION)
                .title(title)
                .source(source),
        );
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    // Building gives each subcommand its display name (brick-connect) and the global flags.
    cmd.build();
    let mut pages = Vec::new();
    walk(cmd, &mut pages);
    pages
}

/// `cmd` without its hidden subcommands and arguments, at any depth, for clap_complete: its
/// generators (4.6) offer hidden subcommands and flags too, and `brick <TAB>` should not offer
/// `generate` (nor a test build's --sysfs). The arguments and texts are the very ones of `cmd`.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    let mut out = clap::Command::new(cmd.get_name().to_string())
        .propagate_version(cmd.is_propagate_version_set())
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(without_hidden),
        )
        .visible_aliases(cmd.get_visible_aliases().map(str::to_string));
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_string());
    }
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        out = out.long_about(about.clone());
    }
    out
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

fn write_file(
    path: &Path,
    body: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), Error> {
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    body(&mut file)
        .and_then(|()| file.flush())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible subcommand at any depth, as its page name: `brick-connect`.
    fn subcommand_pages(cmd: &clap::Command, prefix: &str, names: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() == "help" {
                continue;
            }
            let name = format!("{prefix}-{}", sub.get_name());
            subcommand_pages(sub, &name, names);
            names.push(name);
        }
    }

    /// How roff shows a text: a `-` is `\-`, a `'` is `\*(Aq`.
    fn roff(text: &str) -> String {
        text.replace('-', "\\-").replace('\'', "\\*(Aq")
    }

    #[test]
    fn every_subcommand_has_a_man_page_with_its_about_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = String::new();
        run(
            Generate::Man {
                dir: dir.path().join("man"),
            },
            &mut out,
        )
        .unwrap();

        let cli = crate::cli::Cli::command();
        let mut expected = vec!["brick".to_string()];
        subcommand_pages(&cli, "brick", &mut expected);
        let mut written: Vec<String> = std::fs::read_dir(dir.path().join("man"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        let mut expected_files: Vec<String> = expected.iter().map(|n| format!("{n}.8")).collect();
        expected_files.sort();
        assert_eq!(written, expected_files);
        assert_eq!(out.lines().count(), expected_files.len());
        assert!(expected.len() > 5, "the subcommands were not found");

        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let page = std::fs::read_to_string(
                dir.path()
                    .join("man")
                    .join(format!("brick-{}.8", sub.get_name())),
            )
            .unwrap();
            let title = format!(".TH BRICK-{} 8 ", sub.get_name().to_uppercase());
            assert!(page.lines().any(|l| l.starts_with(&title)), "{page}");
            let about = sub.get_about().unwrap().to_string();
            assert!(page.contains(&roff(&about)), "{about}\n{page}");
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    assert!(
                        page.contains(&roff(&format!("--{long}"))),
                        "--{long}\n{page}"
                    );
                }
            }
        }
        let top = std::fs::read_to_string(dir.path().join("man/brick.8")).unwrap();
        assert!(top.contains(&roff("brick-disconnect(8)")), "{top}");
    }

    #[test]
    fn hidden_subcommands_get_no_page() {
        let cli = crate::cli::Cli::command();
        let hidden: Vec<&str> = cli
            .get_subcommands()
            .filter(|s| s.is_hide_set())
            .map(|s| s.get_name())
            .collect();
        assert!(hidden.contains(&"generate"));
        let names: Vec<String> = man_pages(cli.clone())
            .iter()
            .map(clap_mangen::Man::get_filename)
            .collect();
        for h in hidden {
            assert!(!names.contains(&format!("brick-{h}.8")), "{names:?}");
        }
        assert!(!names.contains(&"brick-help.8".to_string()), "{names:?}");
    }

    #[test]
    fn completions_offer_every_visible_subcommand_and_no_hidden_one() {
        let cli = crate::cli::Cli::command();
        let dir = tempfile::tempdir().unwrap();
        for (shell, file) in [
            (Shell::Bash, "brick.bash"),
            (Shell::Zsh, "_brick"),
            (Shell::Fish, "brick.fish"),
        ] {
            let mut out = String::new();
            run(
                Generate::Completions {
                    shell,
                    dir: Some(dir.path().to_path_buf()),
                },
                &mut out,
            )
            .unwrap();
            assert_eq!(out, format!("{}\n", dir.path().join(file).display()));
            let script = std::fs::read_to_string(dir.path().join(file)).unwrap();
            for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
                assert!(
                    script.contains(sub.get_name()),
                    "{shell}: {}",
                    sub.get_name()
                );
            }
            assert!(!script.contains("generate"), "{shell}:\n{script}");
            // A test build's hidden roots (--sysfs ...) are not offered either.
            assert!(!script.contains("sysfs"), "{shell}:\n{script}");
        }
    }
}
