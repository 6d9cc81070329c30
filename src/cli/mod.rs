//! The command line: parse arguments, resolve them into a config, dispatch to the library.
//!
//! Exit codes: 0 success; 2 any error (bad flags or config, unreadable input, a failed run), with
//! the full cause chain on stderr; 130 when Ctrl-C stopped training after writing a checkpoint.

mod bench;
mod data;
mod grad;
mod lab;
mod plot;
mod sample;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "gradscope",
    version,
    about = "Train recurrent and attention models on long-range tasks and measure how the gradient fades with distance"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train one model on one task and write a run directory.
    Train(Box<train::TrainArgs>),
    /// Run a benchmark suite (a grid of task × length × model) and write a report.
    Bench(Box<bench::BenchArgs>),
    /// Measure ‖∂L/∂h_t‖ against the distance from the loss, per layer, with decay metrics.
    Grad(Box<grad::GradArgs>),
    /// Redraw and overlay figures from saved runs and `grad` outputs.
    Plot(plot::PlotArgs),
    /// Generate text from a trained language model, streaming to stdout.
    Sample(sample::SampleArgs),
    /// Download a corpus (the only command that uses the network): tinyshakespeare.
    Data(data::DataArgs),
    /// Merge finished runs or bench shards into one report.
    Report(bench::ReportArgs),
    /// The vanishing-gradient lab: named experiments testing the literature's claims (--list).
    Lab(Box<lab::LabArgs>),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let result = crate::util::with_deep_stack(move || match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Grad(args) => grad::run(*args),
        Command::Plot(args) => plot::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Data(args) => data::run(args),
        Command::Report(args) => bench::report(args),
        Command::Lab(args) => lab::run(*args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(i) = err.downcast_ref::<crate::train::Interrupted>() {
                eprintln!("gradscope: {i}");
                return ExitCode::from(130);
            }
            let mut causes = err.chain();
            if let Some(top) = causes.next() {
                eprintln!("error: {}", plain(top));
            }
            for cause in causes {
                eprintln!("  caused by: {}", plain(cause));
            }
            ExitCode::from(2)
        }
    }
}

/// An error's message without the backtrace candle attaches when RUST_BACKTRACE is set: users
/// need the reason, not our stack.
fn plain(err: &(dyn std::error::Error + 'static)) -> String {
    match err.downcast_ref::<candle_core::Error>() {
        Some(e) => crate::util::candle_message(e),
        None => err.to_string(),
    }
}

/// A Ctrl-C flag: the first press asks the loop to checkpoint and stop, a second one exits.
pub(crate) fn interrupt_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ngradscope: stopping after this step and writing a checkpoint (Ctrl-C again to abort)");
    });
    flag
}
