//! `mbms-keys kms client init|keyprov|certcache`: one Annex D request to a KMS, every check of
//! docs/mcx.md §3.3 (structure → signature → decryption and bound identifiers → key material
//! against the KMS certificate and the UID computed here), then the key material stored sealed
//! and printed.
//!
//! New TrK/InK the KMS delivers (docs/mcx.md §3.4) are adopted once everything verified: their
//! IDs are printed (`"rotated"` under `--json`), the keys written only to `--trk-out` /
//! `--ink-out`, never to the output.
//!
//! Exit status: 0 verified (and stored); 1 refused, with `{"ok": false, "reason": …,
//! "error": …}` under `--json`, or a new key that cannot be written; 2 malformed arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use mbms_keys::crypto::StateKey;
use mbms_keys::kms::client::{
    ClientConfig, ClientStore, KeyMaterial, KmsClient, KmsClientError, Request, Verified,
};
use mbms_keys::kms::messages::KmsCertificate;
use mbms_keys::kms::transport::{Mode, TransportKeys};
use mbms_keys::kms::{KeyId, Secret};

use crate::input::key_octets;

/// The request to send.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Op {
    /// `…/init`: the KMS certificate (KPAK, Z, key period), stored as the home KMS's.
    Init,
    /// `…/keyprov` (or `…/keyprov/<user>/<time>` with --at): the user's key material; runs
    /// init first when the store holds no certificate.
    Keyprov,
    /// `…/certcache`: the certificates of other KMSs.
    Certcache,
}

/// The transport protection mode of this client's TrK record.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// Interoperable XML Encryption (docs/mcx.md §3.1).
    Standard,
    /// The TrK-ID (and InK-ID) bound inside the encrypted content (docs/mcx.md §3.2).
    Bound,
}

/// Request, check and store key material from a KMS.
#[derive(Debug, clap::Args)]
pub struct KmsClientArgs {
    /// The request.
    #[arg(value_enum)]
    op: Op,
    /// The KMS: http://host[:port][/prefix] (TLS is the deployment's terminator).
    #[arg(long, value_name = "URL")]
    kms: String,
    /// The KMS URI (KmsUri) this client is configured with: named in requests until the KMS
    /// certificate is stored (then the certificate's), and required of that certificate.
    /// Without it, a first init names the KMS by the URL's host[:port].
    #[arg(long, value_name = "URI")]
    kms_uri: Option<String>,
    /// The access token (a JWT from the MC identity management server): @FILE, or the token.
    #[arg(
        long,
        value_name = "@FILE",
        env = "MBMS_KMS_TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// The user's URI (MC service ID), e.g. sip:alice@example.org.
    #[arg(long, value_name = "URI")]
    user: String,
    /// The TrK-ID of the trusted store, 8 hex digits.
    #[arg(long, value_name = "HEX")]
    trk_id: String,
    /// The transport key, 32 octets: HEX or @FILE.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_TRK",
        hide_env_values = true
    )]
    trk: String,
    /// The InK-ID, 8 hex digits (with --ink).
    #[arg(long, value_name = "HEX", requires = "ink")]
    ink_id: Option<String>,
    /// The integrity key, 32 octets: HEX or @FILE (with --ink-id).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_INK",
        hide_env_values = true,
        requires = "ink_id"
    )]
    ink: Option<String>,
    /// The protection mode registered for this client at the KMS.
    #[arg(long, value_enum, default_value = "standard")]
    mode: ModeArg,
    /// keyprov only: the key period holding this time (seconds since the Unix epoch), asked as
    /// …/keyprov/<user>/<time>.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<u64>,
    /// Write the raw response XML here (also when it is refused; the keyprov response when
    /// init ran first).
    #[arg(long, value_name = "FILE")]
    save_response: Option<PathBuf>,
    /// The key store directory (sealed files). Without it, a temporary store is used and
    /// removed: keyprov then runs init first.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The store key file (64 hex digits, mode 0600); default DIR/store.key, created with a
    /// new store.
    #[arg(long, value_name = "FILE", requires = "store")]
    store_key: Option<PathBuf>,
    /// Bound on one HTTP exchange, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    timeout: std::time::Duration,
    /// Where to write a new TrK the KMS delivers (64 hex digits, mode 0600, replaced
    /// atomically), for the next runs' --trk @FILE. The new TrK-ID is printed, never the key.
    #[arg(long, value_name = "FILE")]
    trk_out: Option<PathBuf>,
    /// Where to write a new InK the KMS delivers (as --trk-out).
    #[arg(long, value_name = "FILE")]
    ink_out: Option<PathBuf>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    mbms_keys::duration::parse(s).map_err(|e| e.to_string())
}

fn key_id(flag: &str, s: &str) -> Result<KeyId, String> {
    KeyId::parse(s).map_err(|_| format!("{flag}: expected 8 hex digits"))
}

fn key32(flag: &str, arg: &str) -> Result<Secret, String> {
    let k = key_octets(flag, arg)?;
    if k.len() != 32 {
        return Err(format!("{flag}: expected 32 octets, got {}", k.len()));
    }
    Ok(Secret::new(k.to_vec()))
}

fn token(arg: &str) -> Result<zeroize::Zeroizing<String>, String> {
    let t = match arg.strip_prefix('@') {
        Some(path) => zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| format!("--token: reading {path}: {e}"))?,
        ),
        None => zeroize::Zeroizing::new(arg.to_owned()),
    };
    Ok(zeroize::Zeroizing::new(t.trim().to_owned()))
}

/// A store removed when the command ends (no --store).
struct TempStore(PathBuf);

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn certificate_json(c: &KmsCertificate) -> Value {
    json!({
        "kms_uri": c.kms_uri,
        "user_id_format": c.user_id_format,
        "user_key_period": c.user_key_period,
        "user_key_offset": c.user_key_offset,
        "kpak": hex::encode(&c.pub_auth_key),
        "z": hex::encode(&c.pub_enc_key),
    })
}

fn material_json(m: &KeyMaterial) -> Value {
    json!({
        "user_uri": m.user_uri,
        "kms_uri": m.kms_uri,
        "user_key_period": m.user_key_period,
        "user_key_offset": m.user_key_offset,
        "key_period_no": m.key_period_no,
        "uid": hex::encode(m.uid),
        "ssk": hex::encode(m.ssk.as_bytes()),
        "pvt": hex::encode(m.pvt),
        "rsk": hex::encode(m.rsk.as_bytes()),
        "kpak": hex::encode(m.kpak),
        "z": hex::encode(m.z),
    })
}

fn verified_json(v: &Verified) -> Value {
    match v {
        Verified::Init(c) => {
            json!({"ok": true, "request": "init", "certificate": certificate_json(c)})
        }
        Verified::KeyProv(m) => json!({
            "ok": true,
            "request": "keyprov",
            "key_sets": m.iter().map(material_json).collect::<Vec<_>>(),
        }),
        Verified::CertCache(cs) => json!({
            "ok": true,
            "request": "certcache",
            "certificates": cs.iter().map(certificate_json).collect::<Vec<_>>(),
        }),
        _ => json!({"ok": true}),
    }
}

/// What the arguments give, or the message for exit 2.
struct Prepared {
    client: KmsClient,
    request: Request,
    _temp: Option<TempStore>,
}

fn prepare(a: &KmsClientArgs) -> Result<Prepared, String> {
    let trk_id = key_id("--trk-id", &a.trk_id)?;
    let trk = key32("--trk", &a.trk)?;
    let ink = match (&a.ink_id, &a.ink) {
        (Some(id), Some(k)) => Some((key_id("--ink-id", id)?, key32("--ink", k)?)),
        _ => None,
    };
    let keys = TransportKeys {
        trk_id,
        trk,
        ink,
        mode: match a.mode {
            ModeArg::Standard => Mode::Standard,
            ModeArg::Bound => Mode::Bound,
        },
    };
    let request = match (a.op, a.at) {
        (Op::Init, None) => Request::Init,
        (Op::Certcache, None) => Request::CertCache,
        (Op::Keyprov, None) => Request::KeyProv,
        (Op::Keyprov, Some(unix_secs)) => Request::KeyProvAt { unix_secs },
        (_, Some(_)) => return Err("--at is for keyprov only".into()),
    };
    let (store, temp) = match &a.store {
        Some(dir) => (
            ClientStore::open_with_key_file(dir, a.store_key.as_deref())
                .map_err(|e| format!("--store: {e}"))?,
            None,
        ),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "mbms-kms-client-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
            ));
            let key = StateKey::try_random().map_err(|e| format!("no randomness: {e}"))?;
            let store = ClientStore::open(&dir, key).map_err(|e| e.to_string())?;
            (store, Some(TempStore(dir)))
        }
    };
    let config = ClientConfig {
        timeout: a.timeout,
        kms_uri: a.kms_uri.clone(),
        ..ClientConfig::default()
    };
    let client = KmsClient::new(&a.kms, &token(&a.token)?, &a.user, keys, store, config)
        .map_err(|e| e.to_string())?;
    Ok(Prepared {
        client,
        request,
        _temp: temp,
    })
}

/// Writes a key as 64 hex digits and a newline to `path`, mode 0600: a temporary file beside
/// it, synced, then renamed over it, so the file is either the old key or the new one.
fn write_key_file(path: &std::path::Path, key: &Secret) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(key.expose())));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves the new keys a verified response delivered where --trk-out/--ink-out point, and
/// describes them (IDs and files, never the keys) for the output.
fn save_rotated(
    a: &KmsClientArgs,
    old: &TransportKeys,
    new: &TransportKeys,
) -> Result<Value, String> {
    let mut out = json!({"trk_id": new.trk_id.to_string(), "trk_file": null, "ink_id": null, "ink_file": null});
    if new.trk_id != old.trk_id
        && let Some(path) = &a.trk_out
    {
        write_key_file(path, &new.trk).map_err(|e| format!("--trk-out {}: {e}", path.display()))?;
        out["trk_file"] = json!(path.display().to_string());
    }
    let old_ink = old.ink.as_ref().map(|(id, _)| *id);
    // `ink_id` only for a new InK: a kept one is not news.
    if let Some((id, k)) = &new.ink
        && Some(*id) != old_ink
    {
        out["ink_id"] = json!(id.to_string());
        if let Some(path) = &a.ink_out {
            write_key_file(path, k).map_err(|e| format!("--ink-out {}: {e}", path.display()))?;
            out["ink_file"] = json!(path.display().to_string());
        }
    }
    Ok(out)
}

fn refused(json: bool, e: &KmsClientError) -> ExitCode {
    if json {
        println!(
            "{}",
            json!({"ok": false, "reason": e.reason(), "error": e.to_string()})
        );
    } else {
        // Text from the KMS (a KmsError message) escaped: no control characters reach the
        // terminal.
        eprintln!(
            "mbms-keys kms client: refused ({}): {}",
            e.reason(),
            e.to_string().escape_debug()
        );
    }
    ExitCode::from(1)
}

/// Runs `mbms-keys kms client …` (exit status in the module doc).
pub fn run(a: KmsClientArgs) -> ExitCode {
    let p = match prepare(&a) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("mbms-keys kms client: {msg}");
            return ExitCode::from(2);
        }
    };
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let old_keys = p.client.transport_keys();
    let outcome = rt.block_on(p.client.run(&p.request));
    if let (Some(path), Some(raw)) = (&a.save_response, &outcome.raw)
        && let Err(e) = std::fs::write(path, raw)
    {
        eprintln!(
            "mbms-keys kms client: --save-response {}: {e}",
            path.display()
        );
        return ExitCode::from(1);
    }
    // New keys adopted: written where the user points before anything is printed.
    let rotated = match &outcome.rotated {
        Some(new) => match save_rotated(&a, &old_keys, new) {
            Ok(v) => Some(v),
            Err(msg) => {
                eprintln!("mbms-keys kms client: the KMS delivered new transport keys: {msg}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    match outcome.result {
        Err(e) => refused(a.json, &e),
        Ok(v) => {
            if a.json {
                let mut out = verified_json(&v);
                if let Some(r) = &rotated {
                    out["rotated"] = r.clone();
                }
                println!("{out}");
            } else {
                if let Some(r) = &rotated {
                    println!(
                        "transport keys rotated: new TrK-ID {}{}",
                        r["trk_id"].as_str().unwrap_or(""),
                        r["ink_id"]
                            .as_str()
                            .map(|i| format!(", InK-ID {i}"))
                            .unwrap_or_default()
                    );
                }
                if rotated.as_ref().is_some_and(|r| r["trk_file"].is_null()) {
                    eprintln!(
                        "mbms-keys kms client: the new TrK was not saved (no --trk-out); the KMS \
                         offers it again until it is used"
                    );
                }
                if rotated
                    .as_ref()
                    .is_some_and(|r| !r["ink_id"].is_null() && r["ink_file"].is_null())
                {
                    eprintln!("mbms-keys kms client: the new InK was not saved (no --ink-out)");
                }
                match &v {
                    Verified::Init(c) => println!("init: certificate of {} stored", c.kms_uri),
                    Verified::KeyProv(m) => {
                        for m in m {
                            println!(
                                "keyprov: key period {} of {} verified and stored (UID {})",
                                m.key_period_no,
                                m.user_uri,
                                hex::encode(m.uid)
                            );
                        }
                    }
                    Verified::CertCache(cs) => {
                        println!("certcache: {} certificate(s) verified and stored", cs.len());
                    }
                    _ => println!("ok"),
                }
            }
            ExitCode::SUCCESS
        }
    }
}
