//! `mbms-keys ibe …`: the ECCSI (RFC 6507) and SAKKE (RFC 6508) primitives and UID format 2
//! (TS 33.180 F.2.1) on the command line. Octets in and out in hex; points as `04 ‖ x ‖ y`.
//!
//! Exit status: 0 done; 1 the input was refused (not on the curve, wrong length, bad signature,
//! invalid key), with `{"ok": false, "error": …}` under `--json`; 2 malformed arguments.

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{IbeError, Kpak, Rsk, SakkePublic, Ssk, Ssv, eccsi, sakke, uid_format2};

use crate::input::{key_octets, read_hex_arg};

/// ECCSI and SAKKE primitives, UID format 2.
#[derive(Debug, clap::Args)]
pub struct IbeArgs {
    #[command(subcommand)]
    cmd: IbeCmd,
    /// Print the result as one JSON object (`ok`, and `uid`, `sig`, `ssv`, `data` or `error`).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum IbeCmd {
    /// UID format 2 = SHA-256 over "MIKEY-SAKKE-UID", the URIs and the key period (TS 33.180 F.2.1).
    Uid(UidArgs),
    /// Sign --msg with an SSK and PVT (RFC 6507 §5.2.1): prints `sig` = r ‖ s ‖ PVT.
    EccsiSign(EccsiSignArgs),
    /// Verify an ECCSI signature (RFC 6507 §5.2.2).
    EccsiVerify(EccsiVerifyArgs),
    /// Validate an SSK and PVT against the KPAK and identifier (RFC 6507 §5.1.2).
    EccsiValidate(EccsiValidateArgs),
    /// Encapsulate an SSV to an identifier (RFC 6508 §6.2.1): prints `ssv` and `data` = R ‖ H.
    SakkeEncap(SakkeEncapArgs),
    /// Decapsulate SAKKE data with an RSK (RFC 6508 §6.2.2): prints `ssv`.
    SakkeDecap(SakkeDecapArgs),
    /// Validate an RSK against Z and the identifier (RFC 6508 §6.1.2).
    SakkeValidate(SakkeValidateArgs),
}

#[derive(Debug, clap::Args)]
struct UidArgs {
    /// The user's URI (MC service ID), e.g. sip:alice@example.org.
    #[arg(long, value_name = "URI")]
    uri: String,
    /// The KMS URI as in KmsUri (no scheme), e.g. kms.example.org.
    #[arg(long, value_name = "URI")]
    kms_uri: String,
    /// UserKeyPeriod, seconds.
    #[arg(long, value_name = "N")]
    period: u64,
    /// UserKeyOffset, seconds.
    #[arg(long, value_name = "N")]
    offset: u64,
    /// The key period number.
    #[arg(long, value_name = "N")]
    period_no: u64,
}

/// The identifier and the KMS's ECCSI public key.
#[derive(Debug, clap::Args)]
struct EccsiKey {
    /// The KMS Public Authentication Key, 04 ‖ x ‖ y (65 octets, hex).
    #[arg(long, value_name = "HEX")]
    kpak: String,
    /// The identifier in hex: the 32-octet UID (TS 33.180), or any octets (RFC 6507).
    #[arg(long, value_name = "HEX")]
    id: String,
}

#[derive(Debug, clap::Args)]
struct EccsiSignArgs {
    #[command(flatten)]
    key: EccsiKey,
    /// The Secret Signing Key, 32 octets.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_SSK",
        hide_env_values = true
    )]
    ssk: String,
    /// The Public Validation Token, 04 ‖ x ‖ y (65 octets).
    #[arg(long, value_name = "HEX")]
    pvt: String,
    /// The message: hex, @FILE (hex text or binary) or - (standard input).
    #[arg(long, value_name = "HEX|@FILE|-")]
    msg: String,
}

#[derive(Debug, clap::Args)]
struct EccsiVerifyArgs {
    #[command(flatten)]
    key: EccsiKey,
    /// The message: hex, @FILE (hex text or binary) or - (standard input).
    #[arg(long, value_name = "HEX|@FILE|-")]
    msg: String,
    /// The signature r ‖ s ‖ PVT (129 octets).
    #[arg(long, value_name = "HEX|@FILE")]
    sig: String,
}

#[derive(Debug, clap::Args)]
struct EccsiValidateArgs {
    #[command(flatten)]
    key: EccsiKey,
    /// The Secret Signing Key, 32 octets.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_SSK",
        hide_env_values = true
    )]
    ssk: String,
    /// The Public Validation Token, 04 ‖ x ‖ y (65 octets).
    #[arg(long, value_name = "HEX")]
    pvt: String,
}

/// The identifier and the KMS's SAKKE public key.
#[derive(Debug, clap::Args)]
struct SakkeKey {
    /// The KMS public key Z_S, 04 ‖ x ‖ y (257 octets, hex or @FILE).
    #[arg(long, value_name = "HEX|@FILE")]
    z: String,
    /// The identifier in hex: the 32-octet UID (TS 33.180), or 1 to 128 octets (RFC 6508).
    #[arg(long, value_name = "HEX")]
    id: String,
}

#[derive(Debug, clap::Args)]
struct SakkeEncapArgs {
    #[command(flatten)]
    key: SakkeKey,
    /// The SSV, 16 octets; a fresh random one when absent.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_SSV",
        hide_env_values = true
    )]
    ssv: Option<String>,
}

#[derive(Debug, clap::Args)]
struct SakkeDecapArgs {
    #[command(flatten)]
    key: SakkeKey,
    /// The Receiver Secret Key, 04 ‖ x ‖ y (257 octets).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_RSK",
        hide_env_values = true
    )]
    rsk: String,
    /// The Encapsulated Data R ‖ H (273 octets).
    #[arg(long, value_name = "HEX|@FILE|-")]
    data: String,
}

#[derive(Debug, clap::Args)]
struct SakkeValidateArgs {
    #[command(flatten)]
    key: SakkeKey,
    /// The Receiver Secret Key, 04 ‖ x ‖ y (257 octets).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_RSK",
        hide_env_values = true
    )]
    rsk: String,
}

/// What a subcommand ends with.
enum Outcome {
    /// Done: the named hex values to print.
    Done(Vec<(&'static str, String)>),
    /// The input was refused.
    Refused(IbeError),
}

/// Runs an `ibe` subcommand (exit status in the module doc).
pub fn run(args: IbeArgs) -> ExitCode {
    let result = match &args.cmd {
        IbeCmd::Uid(a) => uid(a),
        IbeCmd::EccsiSign(a) => eccsi_sign(a),
        IbeCmd::EccsiVerify(a) => eccsi_verify(a),
        IbeCmd::EccsiValidate(a) => eccsi_validate(a),
        IbeCmd::SakkeEncap(a) => sakke_encap(a),
        IbeCmd::SakkeDecap(a) => sakke_decap(a),
        IbeCmd::SakkeValidate(a) => sakke_validate(a),
    };
    match result {
        Err(msg) => {
            eprintln!("mbms-keys ibe: {msg}");
            ExitCode::from(2)
        }
        Ok(Outcome::Done(values)) => {
            if args.json {
                let mut o = Map::new();
                o.insert("ok".into(), Value::Bool(true));
                for (k, v) in values {
                    o.insert(k.into(), Value::String(v));
                }
                println!("{}", Value::Object(o));
            } else if values.is_empty() {
                println!("ok");
            } else {
                for (k, v) in values {
                    println!("{k}: {v}");
                }
            }
            ExitCode::SUCCESS
        }
        Ok(Outcome::Refused(e)) => {
            if args.json {
                println!("{}", json!({"ok": false, "error": e.to_string()}));
            } else {
                eprintln!("mbms-keys ibe: refused: {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// Public octets of an option: hex, or @FILE / - for the longer ones.
fn octets(flag: &str, arg: &str) -> Result<Vec<u8>, String> {
    read_hex_arg(arg).map_err(|e| format!("{flag}: {e}"))
}

fn done(values: Vec<(&'static str, String)>) -> Result<Outcome, String> {
    Ok(Outcome::Done(values))
}

/// Maps a library result: refusals exit 1, not 2.
fn refused<T>(r: Result<T, IbeError>) -> Result<Result<T, Outcome>, String> {
    Ok(r.map_err(Outcome::Refused))
}

fn uid(a: &UidArgs) -> Result<Outcome, String> {
    let u = uid_format2(&a.uri, &a.kms_uri, a.period, a.offset, a.period_no)
        .map_err(|e| e.to_string())?;
    done(vec![("uid", hex::encode(u))])
}

fn kpak(k: &EccsiKey) -> Result<Result<(Kpak, Vec<u8>), Outcome>, String> {
    let kp = octets("--kpak", &k.kpak)?;
    let id = octets("--id", &k.id)?;
    Ok(refused(Kpak::from_octets(&kp))?.map(|kp| (kp, id)))
}

fn eccsi_sign(a: &EccsiSignArgs) -> Result<Outcome, String> {
    let (kp, id) = match kpak(&a.key)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let ssk = match secret("--ssk", &a.ssk, "SSK", Ssk::LEN, Ssk::from_slice)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let pvt = octets("--pvt", &a.pvt)?;
    let msg = octets("--msg", &a.msg)?;
    match refused(eccsi::sign(&kp, &id, &ssk, &pvt, &msg, &mut OsRandom))? {
        Ok(sig) => done(vec![("sig", hex::encode(sig))]),
        Err(o) => Ok(o),
    }
}

fn eccsi_verify(a: &EccsiVerifyArgs) -> Result<Outcome, String> {
    let (kp, id) = match kpak(&a.key)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let msg = octets("--msg", &a.msg)?;
    let sig = octets("--sig", &a.sig)?;
    match refused(eccsi::verify(&kp, &id, &msg, &sig))? {
        Ok(()) => done(vec![]),
        Err(o) => Ok(o),
    }
}

fn eccsi_validate(a: &EccsiValidateArgs) -> Result<Outcome, String> {
    let (kp, id) = match kpak(&a.key)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let ssk = match secret("--ssk", &a.ssk, "SSK", Ssk::LEN, Ssk::from_slice)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let pvt = octets("--pvt", &a.pvt)?;
    match refused(eccsi::validate(&kp, &id, &ssk, &pvt))? {
        Ok(()) => done(vec![]),
        Err(o) => Ok(o),
    }
}

fn sakke_key(k: &SakkeKey) -> Result<Result<(SakkePublic, Vec<u8>), Outcome>, String> {
    let z = octets("--z", &k.z)?;
    let id = octets("--id", &k.id)?;
    Ok(refused(SakkePublic::from_octets(&z))?.map(|z| (z, id)))
}

/// A secret of fixed length from its option; a wrong length is a refusal (exit 1), bad hex a
/// malformed argument (exit 2).
fn secret<K>(
    flag: &str,
    arg: &str,
    what: &'static str,
    len: usize,
    from_slice: impl FnOnce(&[u8]) -> Result<K, mbms_keys::crypto::KeyLengthError>,
) -> Result<Result<K, Outcome>, String> {
    let o = key_octets(flag, arg)?;
    Ok(from_slice(&o).map_err(|_| {
        Outcome::Refused(IbeError::Length {
            what,
            expected: len,
            got: o.len(),
        })
    }))
}

fn sakke_encap(a: &SakkeEncapArgs) -> Result<Outcome, String> {
    let (z, id) = match sakke_key(&a.key)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let ssv = match &a.ssv {
        Some(s) => match secret("--ssv", s, "SSV", Ssv::LEN, Ssv::from_slice)? {
            Ok(v) => v,
            Err(o) => return Ok(o),
        },
        None => Ssv::generate(&mut OsRandom).map_err(|e| e.to_string())?,
    };
    match refused(sakke::encapsulate(&z, &id, &ssv))? {
        Ok(data) => done(vec![
            ("ssv", hex::encode(ssv.as_bytes())),
            ("data", hex::encode(data)),
        ]),
        Err(o) => Ok(o),
    }
}

fn sakke_decap(a: &SakkeDecapArgs) -> Result<Outcome, String> {
    let (z, id) = match sakke_key(&a.key)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let rsk = match secret("--rsk", &a.rsk, "RSK", Rsk::LEN, Rsk::from_slice)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let data = octets("--data", &a.data)?;
    match refused(sakke::decapsulate(&z, &id, &rsk, &data))? {
        Ok(ssv) => done(vec![("ssv", hex::encode(ssv.as_bytes()))]),
        Err(o) => Ok(o),
    }
}

fn sakke_validate(a: &SakkeValidateArgs) -> Result<Outcome, String> {
    let (z, id) = match sakke_key(&a.key)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    let rsk = match secret("--rsk", &a.rsk, "RSK", Rsk::LEN, Rsk::from_slice)? {
        Ok(v) => v,
        Err(o) => return Ok(o),
    };
    match refused(sakke::validate_rsk(&z, &id, &rsk))? {
        Ok(()) => done(vec![]),
        Err(o) => Ok(o),
    }
}
