//! `mbms-keys kms …`: the mission-critical Key Management Server side of TS 33.180 Annex D
//! (docs/mcx.md).

use std::process::ExitCode;

use crate::kms_client::{self, KmsClientArgs};

/// KMS commands.
#[derive(Debug, clap::Subcommand)]
pub enum KmsCommand {
    /// The KMS client: request, check and store key material (docs/mcx.md §10).
    Client(KmsClientArgs),
}

/// `mbms-keys kms`.
#[derive(Debug, clap::Args)]
pub struct KmsArgs {
    #[command(subcommand)]
    cmd: KmsCommand,
}

/// Runs a `kms` subcommand.
pub fn run(args: KmsArgs) -> ExitCode {
    match args.cmd {
        KmsCommand::Client(a) => kms_client::run(a),
    }
}
