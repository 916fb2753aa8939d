//! The `megascaler` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    megascaler::cli::main()
}
