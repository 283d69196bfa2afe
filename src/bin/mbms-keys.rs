//! `mbms-keys`: the command line of the MBMS key-delivery engine.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
#[path = "cli/verify.rs"]
mod verify;

/// MBMS key delivery after 3GPP TS 33.246: MIKEY tools, GBA derivations.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mikey(args) => mikey::run(args),
        Command::Gba(args) => gba::run(args),
    }
}
