//! `mbms-keys kms serve | add-client | rotate-client | client`: the mission-critical KMS (TS 33.180 Annex D,
//! docs/mcx.md §9) and its client (§10, `kms_client.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use mbms_keys::crypto::{OsRandom, Random};
use mbms_keys::kms::config::KmsConfig;
use mbms_keys::kms::server::{self, HttpLimits};
use mbms_keys::kms::store::{Client, KmsStore, KmsStoreError};
use mbms_keys::kms::transport::{Mode, TransportKeys};
use mbms_keys::kms::{KeyId, Secret};

use crate::kms_client::{self, KmsClientArgs};

#[derive(Args)]
pub struct KmsArgs {
    #[command(subcommand)]
    cmd: KmsCommand,
}

impl KmsArgs {
    /// Whether this is `kms serve` (which configures its own logging).
    pub fn is_serve(&self) -> bool {
        matches!(self.cmd, KmsCommand::Serve(_))
    }
}

/// The `kms` subcommands; each variant holds its own arguments.
#[derive(Subcommand)]
pub enum KmsCommand {
    /// Run the KMS over HTTP (see examples/kms.toml).
    ///
    /// POST /keymanagement/identity/v1/init, /keyprov, /keyprov/<uri>/<time> and /certcache,
    /// answers protected under each client's TrK/InK. Makes the master
    /// secrets (KSAK, z) on first start, sealed in <data_dir>/kms.sqlite under the KEK.
    /// Statuses: 400 malformed request, 401 token missing or refused, 403 identity not in the
    /// token or not registered / unknown TrK-ID, 404, 405, 408, 413, 431. Stops on SIGTERM or
    /// Ctrl-C. Exit status: 0 after a signal, 1 when it cannot start, 2 for an invalid
    /// configuration.
    Serve(ServeArgs),
    /// Register a client and print its TrK/InK once, for the device's trusted storage.
    ///
    /// Draws a TrK (and an InK with --ink) and their 32-bit IDs, stores
    /// them sealed, and prints them once for the device's trusted storage. Works beside a
    /// running KMS (the client is served at once).
    AddClient(AddClientArgs),
    /// Stage new transport keys for a registered client (docs/mcx.md §3.4).
    ///
    /// Draws a new TrK (and a new InK with --ink; without, the client keeps its InK) with new
    /// 32-bit IDs and stores them sealed. Nothing secret is printed: the keys travel to the
    /// client encrypted under its current TrK in the next KmsInit/KmsKeyProv answers; the
    /// client switches by naming the new TrK-ID, and from that request on the old TrK/InK are
    /// refused. Prints the new IDs. One rotation at a time per client (exit 1 while one is
    /// pending). Works beside a running KMS.
    RotateClient(RotateClientArgs),
    /// The KMS client: request, check and store key material (docs/mcx.md §10).
    Client(Box<KmsClientArgs>),
}

#[derive(Args)]
pub struct ServeArgs {
    /// The KMS configuration file (TOML); see examples/kms.toml.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// How the client's key material is encrypted (docs/mcx.md §3).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Interoperable XML Encryption.
    Standard,
    /// The TrK-ID (and InK-ID) inside the encrypted content.
    Bound,
}

#[derive(Args)]
pub struct AddClientArgs {
    /// The KMS configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The client's identifier (unique).
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// An MC service identity the client may ask keys for (repeat for more).
    #[arg(long = "user", value_name = "URI", required = true)]
    users: Vec<String>,
    /// Also give the client an integrity key (InK) to sign its responses with.
    #[arg(long)]
    ink: bool,
    /// The protection mode.
    #[arg(long, value_enum, default_value = "standard")]
    mode: ModeArg,
    /// Print one JSON object {"trk_id", "trk", "ink_id", "ink"} (hex; null without --ink).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RotateClientArgs {
    /// The KMS configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The registered client.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// Also draw a new integrity key (InK); without it, the client keeps its InK.
    #[arg(long)]
    ink: bool,
    /// Print one JSON object {"client_id", "new_trk_id", "new_ink_id"} (null without --ink).
    #[arg(long)]
    json: bool,
}

pub fn run(args: KmsArgs) -> ExitCode {
    match args.cmd {
        KmsCommand::Serve(a) => serve_cmd(&a.config),
        KmsCommand::AddClient(a) => add_client_cmd(&a),
        KmsCommand::RotateClient(a) => rotate_client_cmd(&a),
        KmsCommand::Client(a) => kms_client::run(*a),
    }
}

fn load(path: &Path) -> Result<KmsConfig, ExitCode> {
    KmsConfig::load(path).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn serve_cmd(path: &Path) -> ExitCode {
    crate::init_logging("info", false);
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let service = match server::build_service(&config) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let listener = match server::bind(&config).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        server::serve(listener, service, HttpLimits::of(&config), stop_signal()).await;
        tracing::info!("KMS stopped");
        ExitCode::SUCCESS
    })
}

/// SIGTERM or Ctrl-C.
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn random_key() -> Result<Secret, ExitCode> {
    let mut k = vec![0u8; 32];
    OsRandom.fill(&mut k).map_err(|_| {
        eprintln!("error: no randomness available");
        ExitCode::from(1)
    })?;
    Ok(Secret::new(k))
}

fn random_id() -> Result<KeyId, ExitCode> {
    loop {
        let v = OsRandom.next_u64().map_err(|_| {
            eprintln!("error: no randomness available");
            ExitCode::from(1)
        })?;
        // reason: the low 32 bits of a random 64-bit value.
        #[allow(clippy::cast_possible_truncation)]
        let id = v as u32;
        if id != 0 {
            return Ok(KeyId(id));
        }
    }
}

fn add_client_cmd(a: &AddClientArgs) -> ExitCode {
    let config = match load(&a.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match KmsStore::open(&config.data_dir, &config.kek_file) {
        Ok((s, _)) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mode = match a.mode {
        ModeArg::Standard => Mode::Standard,
        ModeArg::Bound => Mode::Bound,
    };
    // A fresh draw when a random identifier is already taken (1 in 2^32 per client).
    for _ in 0..8 {
        let keys = match (|| -> Result<TransportKeys, ExitCode> {
            Ok(TransportKeys {
                trk_id: random_id()?,
                trk: random_key()?,
                ink: if a.ink {
                    Some((random_id()?, random_key()?))
                } else {
                    None
                },
                mode,
            })
        })() {
            Ok(k) => k,
            Err(code) => return code,
        };
        let client = Client {
            client_id: a.client_id.clone(),
            users: a.users.clone(),
            keys,
        };
        match store.add_client(&client) {
            Ok(()) => return print_keys(&client.keys, a.json),
            Err(KmsStoreError::Duplicate(what)) if what.starts_with("TrK-ID") => {}
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    eprintln!("error: no free TrK-ID found");
    ExitCode::from(1)
}

fn rotate_client_cmd(a: &RotateClientArgs) -> ExitCode {
    let config = match load(&a.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match KmsStore::open(&config.data_dir, &config.kek_file) {
        Ok((s, _)) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // A fresh draw when a random identifier is already taken.
    for _ in 0..8 {
        let drawn = (|| -> Result<_, ExitCode> {
            let trk = (random_id()?, random_key()?);
            let ink = if a.ink {
                Some((random_id()?, random_key()?))
            } else {
                None
            };
            Ok((trk, ink))
        })();
        let ((trk_id, trk), ink) = match drawn {
            Ok(d) => d,
            Err(code) => return code,
        };
        match store.stage_rotation(
            &a.client_id,
            (trk_id, &trk),
            ink.as_ref().map(|(id, k)| (*id, k)),
            now,
        ) {
            Ok(()) => {
                let ink_id = ink.as_ref().map(|(id, _)| id.to_string());
                if a.json {
                    println!(
                        "{}",
                        json!({
                            "client_id": a.client_id,
                            "new_trk_id": trk_id.to_string(),
                            "new_ink_id": ink_id,
                        })
                    );
                } else {
                    println!("client {} rotation staged", a.client_id);
                    println!("new_trk_id {trk_id}");
                    if let Some(id) = ink_id {
                        println!("new_ink_id {id}");
                    }
                }
                return ExitCode::SUCCESS;
            }
            Err(KmsStoreError::Duplicate(what)) if what.starts_with("TrK-ID") => {}
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    eprintln!("error: no free TrK-ID found");
    ExitCode::from(1)
}

fn print_keys(k: &TransportKeys, as_json: bool) -> ExitCode {
    let trk_id = k.trk_id.to_string();
    let trk = zeroize::Zeroizing::new(hex::encode(k.trk.expose()));
    let ink_id = k.ink.as_ref().map(|(id, _)| id.to_string());
    let ink = k
        .ink
        .as_ref()
        .map(|(_, s)| zeroize::Zeroizing::new(hex::encode(s.expose())));
    if as_json {
        let v = json!({
            "trk_id": trk_id,
            "trk": trk.as_str(),
            "ink_id": ink_id,
            "ink": ink.as_ref().map(|s| s.as_str()),
        });
        println!("{v}");
    } else {
        println!("trk_id {trk_id}");
        println!("trk {}", trk.as_str());
        if let (Some(id), Some(k)) = (ink_id, ink) {
            println!("ink_id {id}");
            println!("ink {}", k.as_str());
        }
    }
    ExitCode::SUCCESS
}
