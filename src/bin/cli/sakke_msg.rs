//! `mbms-keys mikey build-sakke` and `verify-sakke`: the MIKEY-SAKKE I_MESSAGE of TS 33.180
//! key delivery (docs/mcx.md §11). Octets in and out in hex; keys also as @FILE or from the
//! environment.
//!
//! Exit status: 0 built / verified; 1 the message was refused (`{"ok": false, "reason": …}`
//! under `--json`); 2 malformed arguments or keys.

use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use mbms_keys::bmsc::config::{format_rfc3339, parse_rfc3339};
use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{Kpak, Rsk, SakkePublic, Ssk};
use mbms_keys::mcx::{
    DeliveryKey, Expect, KeyDelivery, KeyPurpose, Receiver, ReplayCache, Signer, build_i_message,
    ntp_timestamp, ntp_to_system, profile, verify_i_message,
};

use crate::input::{key, read_hex_arg};

#[derive(Debug, clap::Args)]
pub struct BuildSakkeArgs {
    /// The key to deliver (GMK, PCK or CSK): 16 octets (carried as the SAKKE SSV) or 32 octets
    /// (carried in a KEMAC under a fresh SSV, docs/mcx.md §11.5).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_KEY",
        hide_env_values = true
    )]
    key: String,
    /// The key ID, 4 octets; its 4 most significant bits are the purpose tag (0 GMK, 1 PCK,
    /// 2 CSK).
    #[arg(long, value_name = "HEX")]
    key_id: String,
    /// What the key is for.
    #[arg(long, value_name = "gmk|pck|csk")]
    purpose: KeyPurpose,
    /// The receiver's UID for the current key period (32 octets).
    #[arg(long, value_name = "HEX")]
    to_uid: String,
    /// The receiver's URI (MC ID): a GMK then goes with its GUK-ID (TS 33.180 F.1.3), not
    /// the GMK-ID in clear.
    #[arg(long, value_name = "URI")]
    to_uri: Option<String>,
    /// Z, the SAKKE public key of the receiver's KMS (257 octets).
    #[arg(long, value_name = "HEX|@FILE")]
    z: String,
    /// The sender's UID for the current key period (32 octets).
    #[arg(long, value_name = "HEX")]
    from_uid: String,
    /// The sender's Secret Signing Key (32 octets).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_SSK",
        hide_env_values = true
    )]
    ssk: String,
    /// The sender's Public Validation Token, 04 ‖ x ‖ y (65 octets).
    #[arg(long, value_name = "HEX|@FILE")]
    pvt: String,
    /// The KPAK of the sender's KMS (65 octets).
    #[arg(long, value_name = "HEX|@FILE")]
    kpak: String,
    /// The KMS URI, written as IDRkmsi and IDRkmsr.
    #[arg(long, value_name = "URI")]
    kms_uri: Option<String>,
    /// T of the message, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    time: Option<String>,
    /// Print `{"message": HEX}` instead of the bare hex.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifySakkeArgs {
    /// Our UID for the message's key period (32 octets).
    #[arg(long, value_name = "HEX")]
    uid: String,
    /// Our URI (MC ID): checks a GMK's GUK-ID and recovers its GMK-ID.
    #[arg(long, value_name = "URI")]
    uri: Option<String>,
    /// Our Receiver Secret Key (257 octets).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_RSK",
        hide_env_values = true
    )]
    rsk: String,
    /// Z, the SAKKE public key of our KMS (257 octets).
    #[arg(long, value_name = "HEX|@FILE")]
    z: String,
    /// The KPAK of the sender's KMS (65 octets).
    #[arg(long, value_name = "HEX|@FILE")]
    kpak: String,
    /// The sender's UID for the message's key period (32 octets).
    #[arg(long, value_name = "HEX")]
    from_uid: String,
    /// Refuse a key for another purpose.
    #[arg(long, value_name = "gmk|pck|csk")]
    purpose: Option<KeyPurpose>,
    /// Verify as of this time, RFC 3339 (default: now): T must lie within the window of it.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// How far T may lie from that time, e.g. 5m, 90s (default 5m).
    #[arg(long, value_name = "DURATION")]
    window: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// The message: hex, @FILE (hex text or binary) or - (standard input).
    #[arg(value_name = "MESSAGE")]
    message: String,
}

fn octets(flag: &str, arg: &str) -> Result<Vec<u8>, String> {
    read_hex_arg(arg).map_err(|e| format!("{flag}: {e}"))
}

fn time_arg(flag: &str, arg: Option<&str>) -> Result<SystemTime, String> {
    arg.map_or(Ok(SystemTime::now()), |t| {
        parse_rfc3339(t).map_err(|e| format!("{flag}: {e}"))
    })
}

fn key_id(arg: &str) -> Result<u32, String> {
    let b = octets("--key-id", arg)?;
    let b: [u8; 4] = b
        .try_into()
        .map_err(|_| "--key-id: must be 4 octets".to_owned())?;
    Ok(u32::from_be_bytes(b))
}

fn build(a: &BuildSakkeArgs) -> Result<String, String> {
    let k = key("--key", &a.key, DeliveryKey::from_slice)?;
    let z = SakkePublic::from_octets(&octets("--z", &a.z)?).map_err(|e| format!("--z: {e}"))?;
    let kpak =
        Kpak::from_octets(&octets("--kpak", &a.kpak)?).map_err(|e| format!("--kpak: {e}"))?;
    let ssk = key("--ssk", &a.ssk, Ssk::from_slice)?;
    let pvt = octets("--pvt", &a.pvt)?;
    let from_uid = octets("--from-uid", &a.from_uid)?;
    let to_uid = octets("--to-uid", &a.to_uid)?;
    let at = time_arg("--time", a.time.as_deref())?;
    let time = ntp_timestamp(at).ok_or("--time: outside the NTP eras of 1968-2104")?;
    let d = KeyDelivery {
        key: &k,
        key_id: key_id(&a.key_id)?,
        purpose: a.purpose,
        to_uid: &to_uid,
        to_uri: a.to_uri.as_deref(),
        kms_uri: a.kms_uri.as_deref(),
        time,
        key_params: None,
    };
    let signer = Signer {
        uid: &from_uid,
        ssk: &ssk,
        pvt: &pvt,
        kpak: &kpak,
    };
    let msg = build_i_message(&d, &z, &signer, &mut OsRandom).map_err(|e| e.to_string())?;
    Ok(hex::encode(msg))
}

/// `mikey build-sakke` (exit status in the module doc).
pub fn run_build(a: BuildSakkeArgs) -> ExitCode {
    match build(&a) {
        Ok(hex) => {
            if a.json {
                println!("{}", json!({ "message": hex }));
            } else {
                println!("{hex}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mbms-keys mikey build-sakke: {e}");
            ExitCode::from(2)
        }
    }
}

/// `mikey verify-sakke` (exit status in the module doc).
pub fn run_verify(a: VerifySakkeArgs) -> ExitCode {
    match verify(&a) {
        Err(e) => {
            eprintln!("mbms-keys mikey verify-sakke: {e}");
            ExitCode::from(2)
        }
        Ok(Ok(o)) => {
            if a.json {
                println!("{}", Value::Object(o));
            } else {
                for (k, v) in o {
                    println!(
                        "{k}: {}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Ok(Err((reason, error))) => {
            if a.json {
                println!("{}", json!({"ok": false, "reason": reason, "error": error}));
            } else {
                eprintln!("mbms-keys mikey verify-sakke: refused ({reason}): {error}");
            }
            ExitCode::from(1)
        }
    }
}

type Verified = Result<Map<String, Value>, (&'static str, String)>;

fn verify(a: &VerifySakkeArgs) -> Result<Verified, String> {
    let uid = octets("--uid", &a.uid)?;
    let rsk = key("--rsk", &a.rsk, Rsk::from_slice)?;
    let z = SakkePublic::from_octets(&octets("--z", &a.z)?).map_err(|e| format!("--z: {e}"))?;
    let kpak =
        Kpak::from_octets(&octets("--kpak", &a.kpak)?).map_err(|e| format!("--kpak: {e}"))?;
    let from_uid = octets("--from-uid", &a.from_uid)?;
    let at = time_arg("--at", a.at.as_deref())?;
    let window = match &a.window {
        Some(w) => mbms_keys::duration::parse(w).map_err(|e| format!("--window: {e}"))?,
        None => profile::FRESHNESS_WINDOW,
    };
    let msg = octets("MESSAGE", &a.message)?;
    let rx = Receiver {
        uid: &uid,
        uri: a.uri.as_deref(),
        rsk: &rsk,
        z: &z,
    };
    let expect = Expect {
        from_uid: &from_uid,
        kpak: &kpak,
        purpose: a.purpose,
        at,
        window,
    };
    let got = match verify_i_message(&msg, &rx, &expect, &mut ReplayCache::new()) {
        Ok(got) => got,
        Err(r) => return Ok(Err((r.reason(), r.to_string()))),
    };
    let mut o = Map::new();
    o.insert("ok".into(), Value::Bool(true));
    o.insert("key".into(), hex::encode(got.key.as_bytes()).into());
    o.insert("key_id".into(), format!("{:08x}", got.key_id).into());
    o.insert("purpose".into(), got.purpose.name().into());
    o.insert("csb_id".into(), format!("{:08x}", got.csb_id).into());
    o.insert("sender_uid".into(), hex::encode(&got.sender_uid).into());
    o.insert(
        "time".into(),
        format_rfc3339(ntp_to_system(got.time)).into(),
    );
    if let Some(kms) = &got.kms_uri {
        o.insert(
            "kms_uri".into(),
            String::from_utf8_lossy(kms).into_owned().into(),
        );
    }
    if let Some(p) = &got.key_params {
        o.insert("key_params".into(), hex::encode(p).into());
    }
    Ok(Ok(o))
}
