//! The `corrflow` command line: optical flow between two frames, adapter information, benchmarks.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
