//! `mbms-keys`: the command line of the MBMS key-delivery engine.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "cli/bmsc.rs"]
mod bmsc;
#[path = "cli/build.rs"]
mod build;
#[path = "cli/decode.rs"]
mod decode;
#[path = "cli/gba.rs"]
mod gba;
#[path = "cli/input.rs"]
mod input;
#[path = "cli/mikey.rs"]
mod mikey;
#[path = "cli/ue.rs"]
mod ue;
#[path = "cli/verify.rs"]
mod verify;

/// MBMS key delivery after 3GPP TS 33.246: MIKEY tools, GBA derivations, the UE.
#[derive(Parser)]
#[command(name = "mbms-keys", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// MIKEY messages: decode, build and verify the messages of the MBMS profile.
    Mikey(mikey::MikeyArgs),
    /// GBA (TS 33.220) derivations: Ks_NAF, MRK, B-TID.
    Gba(gba::GbaArgs),
    /// The BM-SC key server: serve, status.
    Bmsc(bmsc::BmscArgs),
    /// Run a UE: register, receive MSK/MTK pushes, print one JSON line per event.
    Ue(Box<ue::UeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server sets up its own logging once its configuration is read.
    if !matches!(&cli.command, Command::Bmsc(a) if a.is_serve()) {
        init_logging("warn", false);
    }
    match cli.command {
        Command::Mikey(args) => mikey::run(args),
        Command::Gba(args) => gba::run(args),
        Command::Bmsc(args) => bmsc::run(args),
        Command::Ue(args) => ue::run(*args),
    }
}

/// Diagnostics go to standard error (standard output carries results only);
/// `MBMS_LOG` overrides the level filter (e.g. `MBMS_LOG=debug`).
pub fn init_logging(default_level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MBMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A multi-threaded tokio runtime, or the exit code after saying why there is none.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: starting the runtime: {e}");
            ExitCode::from(1)
        })
}
