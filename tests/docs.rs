//! The man pages and shell completions that `brick generate` writes (and the Debian package
//! ships), checked against what the `brick` binary itself says in `--help`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn brick(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_brick"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "brick {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The subcommands `brick --help` lists, `help` included.
fn help_subcommands() -> BTreeSet<String> {
    let help = String::from_utf8(brick(&["--help"]).stdout).unwrap();
    let names: BTreeSet<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(names.contains("disconnect"), "{help}");
    names
}

/// What bash's completion of `brick WORDS...` offers for the last word, with the script that
/// `brick generate completions bash` printed, as bash-completion would call it.
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let prog = r#"source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _brick brick "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf '%s\n' "${COMPREPLY[@]}""#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(prog)
        .arg("bash")
        .arg(script)
        .args(words)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_subcommand_in_help_has_a_man_page_and_no_other_page_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    let out = brick(&["generate", "man", man.to_str().unwrap()]);

    let mut expected: BTreeSet<String> = help_subcommands()
        .into_iter()
        .filter(|n| n != "help")
        .map(|n| format!("brick-{n}.8"))
        .collect();
    expected.insert("brick.8".to_string());
    let written: BTreeSet<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, expected);
    let printed: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            l.strip_prefix(&format!("{}/", man.display()))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(printed, expected);
}

#[test]
fn a_subcommand_page_holds_the_text_of_its_help() {
    let dir = tempfile::tempdir().unwrap();
    brick(&["generate", "man", dir.path().to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.path().join("brick-disconnect.8")).unwrap();
    let help = String::from_utf8(brick(&["disconnect", "--help"]).stdout).unwrap();
    // The first line of the long help, as roff writes it (a - is \-).
    let first = help.lines().next().unwrap().replace('-', "\\-");
    assert!(page.contains(&first), "{first}\n{page}");
    for flag in [
        "--device-info",
        "--force",
        "--ignore-errors",
        "--dry-run",
        "--json",
    ] {
        assert!(help.contains(flag), "{help}");
        assert!(page.contains(&flag.replace('-', "\\-")), "{flag}\n{page}");
    }
}

#[test]
fn bash_completion_offers_the_help_subcommands_and_completes_dis_to_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("brick");
    std::fs::write(&script, brick(&["generate", "completions", "bash"]).stdout).unwrap();

    assert_eq!(bash_completes(&script, &["brick", "dis"]), ["disconnect"]);
    assert_eq!(
        bash_completes(&script, &["brick", "disconnect", "--dr"]),
        ["--dry-run"]
    );
    let offered: BTreeSet<String> = bash_completes(&script, &["brick", ""])
        .into_iter()
        .filter(|w| !w.starts_with('-'))
        .collect();
    assert_eq!(offered, help_subcommands());
}

#[test]
fn completions_are_written_under_each_shells_name() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, file) in [
        ("bash", "brick.bash"),
        ("zsh", "_brick"),
        ("fish", "brick.fish"),
    ] {
        let out = brick(&[
            "generate",
            "completions",
            shell,
            dir.path().to_str().unwrap(),
        ]);
        let path = dir.path().join(file);
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{}\n", path.display())
        );
        let script = std::fs::read_to_string(&path).unwrap();
        assert!(script.contains("disconnect"), "{shell}: {script}");
    }
}
