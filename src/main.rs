//! The `brick` command: parses arguments, calls the library, prints (see `cli`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
