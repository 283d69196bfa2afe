//! `mbms-lab`: the measurements of `benches/RESULTS.md` and the fault-injection harness, run
//! against the `mbms-keys` library. Not shipped.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The mbms-keys lab: benchmarks, the loopback UE farm, kill -9 of the BM-SC.
#[derive(Parser)]
#[command(name = "mbms-lab", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measurements: UE receiver, fan-out, load battery, Key Request rate, codec, kill -9.
    Bench(mbms_lab::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MBMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    match cli.command {
        Command::Bench(args) => mbms_lab::bench::run(args),
    }
}
