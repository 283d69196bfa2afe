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
#[path = "cli/ibe.rs"]
mod ibe;
#[path = "cli/input.rs"]
mod input;
#[path = "cli/kms.rs"]
mod kms;
#[path = "cli/kms_client.rs"]
mod kms_client;
#[path = "cli/mikey.rs"]
mod mikey;
#[path = "cli/relay.rs"]
mod relay;
#[path = "cli/sakke_msg.rs"]
mod sakke_msg;
#[path = "cli/ue.rs"]
mod ue;
#[path = "cli/verify.rs"]
mod verify;

/// How every key option (`--muk`, `--msk`, `--mtk`, `--salt`, `--key`, `--ks`, `--ck`, `--ik`,
/// `--ks-naf`, `--ks-ext-naf`, `--ks-int-naf`, `--kaf`, `--ssk`, `--rsk`, `--ssv`, `--trk`,
/// `--ink`) is given: see `input`.
const KEY_HELP: &str = "\
Keys: every key option takes HEX, or @FILE: a file holding the key as hex text \
(white space and ':' allowed) or as its raw octets (a file that is not printable text). \
Each is also read from an environment variable, named in the option's help \
(e.g. MBMS_MUK for --muk, MBMS_KS_NAF for --ks-naf), so the key does not show in the \
process list; a variable counts as giving the option, and the option on the command line \
wins. --help never prints a variable's value.";

/// MBMS key delivery after 3GPP TS 33.246: MIKEY tools, GBA derivations, the UE.
#[derive(Parser)]
#[command(name = "mbms-keys", version, about, long_about = None, after_help = KEY_HELP)]
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
    /// ECCSI and SAKKE (RFC 6507, RFC 6508) and UID format 2 (TS 33.180) for mission-critical keys.
    Ibe(ibe::IbeArgs),
    /// The BM-SC key server: serve, status.
    Bmsc(bmsc::BmscArgs),
    /// The mission-critical KMS (TS 33.180 Annex D): serve, add-client, rotate-client, client.
    Kms(kms::KmsArgs),
    /// The asynchronous key relay: serve; send, fetch, status (device side).
    Relay(relay::RelayArgs),
    /// Run a UE: register, receive MSK/MTK pushes, print one JSON line per event.
    Ue(Box<ue::UeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server sets up its own logging once its configuration is read.
    let serve = match &cli.command {
        Command::Bmsc(a) => a.is_serve(),
        Command::Kms(a) => a.is_serve(),
        Command::Relay(a) => a.is_serve(),
        _ => false,
    };
    if !serve {
        init_logging("warn", false);
    }
    match cli.command {
        Command::Mikey(args) => mikey::run(args),
        Command::Gba(args) => gba::run(args),
        Command::Ibe(args) => ibe::run(args),
        Command::Bmsc(args) => bmsc::run(args),
        Command::Kms(args) => kms::run(args),
        Command::Relay(args) => relay::run(args),
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
