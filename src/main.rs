//! The `gradscope` binary: a thin shell over the library's command line (see `gradscope::cli`).

fn main() -> std::process::ExitCode {
    gradscope::device::tune_cpu_runtime();
    gradscope::cli::main()
}
