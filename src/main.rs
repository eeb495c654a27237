//! The `woollama` binary: everything lives in the library.
fn main() -> std::process::ExitCode {
    woollama::cli::main()
}
