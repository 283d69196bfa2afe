//! `mbms-keys mikey ...`

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::{build, decode, sakke_msg, verify};

#[derive(Args)]
pub struct MikeyArgs {
    #[command(subcommand)]
    cmd: MikeyCmd,
}

#[derive(Subcommand)]
enum MikeyCmd {
    /// Decode a MIKEY message and print every payload and field.
    Decode(decode::DecodeArgs),
    /// Build an MSK delivery message (new key, validity-only update, invalidation, solicited pull).
    BuildMsk(build::BuildMskArgs),
    /// Build an MTK delivery message (download; streaming with --srtp-ssrc/--srtp-roc).
    BuildMtk(build::BuildMtkArgs),
    /// Build the acknowledgement of an MSK message.
    BuildAck(build::BuildAckArgs),
    /// Verify a message's MAC under a key and show its key data (exit 0 verified, 1 MAC fails, 2 malformed).
    Verify(verify::VerifyArgs),
    /// Build a MIKEY-SAKKE I_MESSAGE delivering a GMK, PCK or CSK to one user (TS 33.180):
    /// SAKKE to the receiver's UID, ECCSI-signed by the sender.
    BuildSakke(sakke_msg::BuildSakkeArgs),
    /// Verify a MIKEY-SAKKE I_MESSAGE and recover its key (exit 0 verified, 1 refused, 2 malformed arguments).
    VerifySakke(sakke_msg::VerifySakkeArgs),
}

pub fn run(args: MikeyArgs) -> ExitCode {
    match args.cmd {
        MikeyCmd::Decode(a) => decode::run(a),
        MikeyCmd::BuildMsk(a) => build::msk(a),
        MikeyCmd::BuildMtk(a) => build::mtk(a),
        MikeyCmd::BuildAck(a) => build::ack(a),
        MikeyCmd::Verify(a) => verify::run(a),
        MikeyCmd::BuildSakke(a) => sakke_msg::run_build(a),
        MikeyCmd::VerifySakke(a) => sakke_msg::run_verify(a),
    }
}
