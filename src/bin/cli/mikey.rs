//! `mbms-keys mikey ...`

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::decode;

#[derive(Args)]
pub struct MikeyArgs {
    #[command(subcommand)]
    cmd: MikeyCmd,
}

#[derive(Subcommand)]
enum MikeyCmd {
    /// Decode a MIKEY message and print every payload and field.
    Decode(decode::DecodeArgs),
}

pub fn run(args: MikeyArgs) -> ExitCode {
    match args.cmd {
        MikeyCmd::Decode(a) => decode::run(a),
    }
}
