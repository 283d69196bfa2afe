//! `mbms-keys gba …`: the GBA derivations of docs/profile.md §1 from the command line.

use std::process::ExitCode;

use zeroize::Zeroizing;

use mbms_keys::crypto::{Ks, KsExtNaf, KsNaf};
use mbms_keys::gba::{self, Btid, NafId};

use crate::input::{key, key_octets};

/// GBA key derivations (TS 33.220 Annex B) and B-TIDs.
#[derive(Debug, clap::Args)]
pub struct GbaArgs {
    #[command(subcommand)]
    cmd: GbaCmd,
}

#[derive(Debug, clap::Subcommand)]
enum GbaCmd {
    /// Ks_NAF (or Ks_int_NAF with --gba-u) = KDF(Ks, "gba-me"/"gba-u", RAND, IMPI, NAF_Id).
    KsNaf(KsNafArgs),
    /// MRK: GBA_ME from Ks_NAF (docs/profile.md §1 [CHOICE]), GBA_U = Ks_ext_NAF.
    Mrk(MrkArgs),
    /// B-TID = base64(RAND)@BSF.
    Btid(BtidArgs),
}

#[derive(Debug, clap::Args)]
struct KsNafArgs {
    /// Ks = CK ‖ IK, 32 octets.
    #[arg(long, value_name = "HEX|@FILE", env = "MBMS_KS", hide_env_values = true, required_unless_present_all = ["ck", "ik"], conflicts_with_all = ["ck", "ik"])]
    ks: Option<String>,
    /// CK, 16 octets (with --ik instead of --ks).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_CK",
        hide_env_values = true,
        requires = "ik"
    )]
    ck: Option<String>,
    /// IK, 16 octets (with --ck instead of --ks).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_IK",
        hide_env_values = true,
        requires = "ck"
    )]
    ik: Option<String>,
    /// The bootstrapping RAND, 16 octets in hex.
    #[arg(long, value_name = "HEX")]
    rand: String,
    /// The IMPI (UTF-8).
    #[arg(long, value_name = "STR")]
    impi: String,
    /// The NAF (BM-SC) FQDN; the NAF_Id appends the MBMS Ua id 0100000001.
    #[arg(long, value_name = "STR")]
    naf_fqdn: String,
    /// Derive Ks_int_NAF ("gba-u") instead of Ks_NAF.
    #[arg(long)]
    gba_u: bool,
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct MrkArgs {
    /// GBA_ME: Ks_NAF, 32 octets.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_KS_NAF",
        hide_env_values = true
    )]
    ks_naf: Option<String>,
    /// GBA_U: Ks_ext_NAF, 32 octets.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_KS_EXT_NAF",
        hide_env_values = true
    )]
    ks_ext_naf: Option<String>,
}

#[derive(Debug, clap::Args)]
struct BtidArgs {
    /// The bootstrapping RAND, 16 octets in hex.
    #[arg(long, value_name = "HEX")]
    rand: String,
    /// The BSF FQDN.
    #[arg(long, value_name = "FQDN")]
    bsf: String,
}

/// Runs a `gba` subcommand: result on stdout, exit 0; bad input on stderr, exit 2.
pub fn run(args: GbaArgs) -> ExitCode {
    let result = match args.cmd {
        GbaCmd::KsNaf(a) => ks_naf(&a),
        GbaCmd::Mrk(a) => mrk(&a),
        GbaCmd::Btid(a) => btid(&a).map(Zeroizing::new),
    };
    match result {
        Ok(line) => {
            println!("{}", line.as_str());
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("mbms-keys gba: {msg}");
            ExitCode::from(2)
        }
    }
}

fn ks_naf(a: &KsNafArgs) -> Result<Zeroizing<String>, String> {
    let ks = match (&a.ks, &a.ck, &a.ik) {
        (Some(ks), _, _) => key("--ks", ks, Ks::from_slice)?,
        (None, Some(ck), Some(ik)) => {
            let ck = half_key(ck, "--ck")?;
            let ik = half_key(ik, "--ik")?;
            Ks::from_slice(&[ck.as_slice(), ik.as_slice()].concat())
                .map_err(|e| format!("--ck/--ik: {e}"))?
        }
        _ => return Err("give --ks, or --ck and --ik".to_owned()),
    };
    let rand = rand16(&a.rand)?;
    let naf_id = NafId::mbms(&a.naf_fqdn);
    let out = if a.gba_u {
        gba::ks_int_naf(&ks, &rand, &a.impi, &naf_id).map(|k| hex::encode(k.as_bytes()))
    } else {
        gba::ks_naf(&ks, &rand, &a.impi, &naf_id).map(|k| hex::encode(k.as_bytes()))
    };
    out.map(Zeroizing::new).map_err(|e| e.to_string())
}

fn mrk(a: &MrkArgs) -> Result<Zeroizing<String>, String> {
    let mrk = match (&a.ks_naf, &a.ks_ext_naf) {
        (Some(k), None) => gba::mrk_gba_me(&key("--ks-naf", k, KsNaf::from_slice)?),
        (None, Some(k)) => gba::mrk_gba_u(&key("--ks-ext-naf", k, KsExtNaf::from_slice)?),
        _ => return Err("give exactly one of --ks-naf, --ks-ext-naf".to_owned()),
    };
    Ok(Zeroizing::new(hex::encode(mrk.as_bytes())))
}

fn btid(a: &BtidArgs) -> Result<String, String> {
    let rand = rand16(&a.rand)?;
    let btid = Btid::from_rand(&rand, &a.bsf);
    // Re-parse so a bad --bsf gives an error, not a malformed B-TID.
    let checked: Btid = btid.as_str().parse().map_err(|e| format!("--bsf: {e}"))?;
    Ok(checked.to_string())
}

/// 16 octets of CK or IK (`HEX` or `@FILE`), wiped after use.
fn half_key(text: &str, flag: &str) -> Result<Zeroizing<[u8; 16]>, String> {
    let octets = key_octets(flag, text)?;
    let mut out = Zeroizing::new([0u8; 16]);
    if octets.len() != out.len() {
        return Err(format!("{flag}: expected 16 octets, got {}", octets.len()));
    }
    out.copy_from_slice(&octets);
    Ok(out)
}

fn rand16(text: &str) -> Result<[u8; 16], String> {
    let mut out = [0u8; 16];
    if text.len() != 32 {
        return Err("--rand: expected 16 octets (32 hex digits)".to_owned());
    }
    hex::decode_to_slice(text, &mut out).map_err(|_| "--rand: not a hex string".to_owned())?;
    Ok(out)
}
