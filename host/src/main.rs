//! The `aileron` command: parses the command line and maps errors to exit codes.

fn main() -> std::process::ExitCode {
    aileron::cli::main()
}
