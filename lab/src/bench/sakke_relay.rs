//! The relay side of `mbms-lab bench sakke`: the relay (`relay::server`, as `relay serve` runs
//! it) on loopback in this process on a runtime of its own, a fresh store each run, and
//! `transfers` transfers under way at once from one source to one target through
//! `relay::client::RelayClient`: open → send (the envelope) → fetch (the octets compared) →
//! ack. The envelopes are real I_MESSAGEs built before the timing (so the rate is the
//! relay's); the access tokens are signed with the test identity server's key of
//! `proto-vectors/mcx/token/`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{Ksak, SakkeMaster, Ssv, uid_format2};
use mbms_keys::mcx::{
    DeliveryKey, KeyDelivery, KeyPurpose, Signer, build_i_message, ntp_timestamp,
};
use mbms_keys::relay::Purpose;
use mbms_keys::relay::client::RelayClient;
use mbms_keys::relay::config::RelayConfig;
use mbms_keys::relay::envelope::period_no;
use mbms_keys::relay::server;
use tokio::sync::Semaphore;

const KMS_URI: &str = "kms.example.org";
const ISSUER: &str = "https://idms.example.org";
const SOURCE: &str = "sip:alice@example.org";
const TARGET: &str = "sip:bob@example.org";
const PERIOD: u64 = 2_592_000;

/// One run's figures.
#[derive(Debug, Clone, Copy)]
pub struct RelayRun {
    /// Transfers completed per second.
    pub rate: f64,
    /// Wall time of the run.
    pub seconds: f64,
}

/// The prebuilt envelopes, the KPAK and the tokens.
pub struct Load {
    envelopes: Arc<Vec<Vec<u8>>>,
    kpak_hex: String,
    source_token: String,
    target_token: String,
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto-vectors/mcx/token")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An ES256 access token for `user`, valid for an hour.
fn token(user: &str) -> Result<String, String> {
    let der = std::fs::read(vectors().join("es256-key.pk8.der")).map_err(|e| e.to_string())?;
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("idms-es256".into());
    let claims = serde_json::json!({
        "iss": ISSUER,
        "aud": [KMS_URI],
        "sub": user,
        "exp": unix_now() + 3600,
        "mcptt_id": user,
    });
    jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(&der)).map_err(|e| e.to_string())
}

impl Load {
    /// A KMS key of its own and `n` envelopes from the source to the target, each a new key.
    ///
    /// # Errors
    /// Key generation, building, token signing.
    pub fn prepare(n: usize) -> Result<Self, String> {
        let e = |e: mbms_keys::ibe::IbeError| e.to_string();
        let mut rng = OsRandom;
        let ksak = Ksak::generate(&mut rng).map_err(e)?;
        let kpak = ksak.kpak().map_err(e)?;
        let z = SakkeMaster::generate(&mut rng)
            .and_then(|m| m.public())
            .map_err(e)?;
        let now = unix_now();
        let uid = |user: &str| {
            uid_format2(user, KMS_URI, PERIOD, 0, period_no(now, PERIOD, 0))
                .map_err(|e| e.to_string())
        };
        let (from_uid, to_uid) = (uid(SOURCE)?, uid(TARGET)?);
        let pair = ksak.issue(&from_uid, &mut rng).map_err(e)?;
        let signer = Signer {
            uid: &from_uid,
            ssk: &pair.ssk,
            pvt: &pair.pvt,
            kpak: &kpak,
        };
        let mut envelopes = Vec::with_capacity(n);
        for i in 0..n {
            let key = DeliveryKey::from(Ssv::generate(&mut rng).map_err(e)?);
            let d = KeyDelivery {
                key: &key,
                key_id: 0x1000_0000 | (i as u32 & 0x0fff_ffff),
                purpose: KeyPurpose::Pck,
                to_uid: &to_uid,
                to_uri: None,
                kms_uri: Some(KMS_URI),
                time: ntp_timestamp(SystemTime::now()).unwrap_or(0),
                key_params: None,
            };
            envelopes.push(build_i_message(&d, &z, &signer, &mut rng).map_err(|e| e.to_string())?);
        }
        Ok(Self {
            envelopes: Arc::new(envelopes),
            kpak_hex: hex::encode(kpak.to_octets()),
            source_token: token(SOURCE)?,
            target_token: token(TARGET)?,
        })
    }

    /// One run against a fresh relay: every transfer started at once, at most `connections`
    /// requests in flight.
    ///
    /// # Errors
    /// Starting the relay, or any transfer that did not complete.
    pub fn run(&self, connections: usize) -> Result<RelayRun, String> {
        let dir = crate::TempDir::try_new("bench-sakke-relay").map_err(|e| e.to_string())?;
        let jwks = vectors().join("jwks.json");
        let text = format!(
            "http_listen = \"127.0.0.1:0\"\n\
             data_dir = \"{}\"\n\
             kms_uri = \"{KMS_URI}\"\n\
             user_key_period = {PERIOD}\n\
             user_key_offset = 0\n\
             kpak = \"{}\"\n\
             max_open_per_source = 1000000\n\
             [access_token]\n\
             jwks_file = \"{}\"\n\
             issuer = \"{ISSUER}\"\n\
             audience = \"{KMS_URI}\"\n\
             [[policy]]\n\
             source = \"{SOURCE}\"\n\
             target = \"{TARGET}\"\n\
             purposes = [\"pck\"]\n",
            dir.path().join("data").display(),
            self.kpak_hex,
            jwks.display()
        );
        let config = RelayConfig::parse(&text).map_err(|e| e.to_string())?;
        let service = Arc::new(server::build_service(&config).map_err(|e| e.to_string())?);
        // The relay: its own runtime and threads, as in its own process.
        let relay_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listener = relay_rt
            .block_on(server::bind(&config))
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = relay_rt.spawn(server::serve(listener, service, stopped));

        let client_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let url = format!("http://{addr}");
        let result = client_rt.block_on(async {
            let source = Arc::new(RelayClient::new(&url, &self.source_token));
            let target = Arc::new(RelayClient::new(&url, &self.target_token));
            let slots = Arc::new(Semaphore::new(connections));
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..self.envelopes.len() {
                let (source, target, slots) = (source.clone(), target.clone(), slots.clone());
                let envelopes = self.envelopes.clone();
                tasks.spawn(async move {
                    let env = envelopes.get(i).ok_or("no envelope")?;
                    let step = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
                    let permit = slots.acquire().await.map_err(|e| e.to_string())?;
                    let opened = source
                        .open(TARGET, Purpose::Pck)
                        .await
                        .map_err(|e| step("open", &e))?;
                    drop(permit);
                    let id = opened["id"].as_str().ok_or("no id")?.to_owned();
                    let permit = slots.acquire().await.map_err(|e| e.to_string())?;
                    source.post(&id, env).await.map_err(|e| step("send", &e))?;
                    drop(permit);
                    let permit = slots.acquire().await.map_err(|e| e.to_string())?;
                    let got = target.fetch(&id).await.map_err(|e| step("fetch", &e))?;
                    drop(permit);
                    if &got != env {
                        return Err("fetched octets differ".to_owned());
                    }
                    let _permit = slots.acquire().await.map_err(|e| e.to_string())?;
                    target.ack(&id).await.map_err(|e| step("ack", &e))?;
                    Ok::<(), String>(())
                });
            }
            let mut failed = Vec::new();
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failed.push(e),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            let took = start.elapsed().as_secs_f64();
            if let Some(first) = failed.first() {
                return Err(format!(
                    "{} of {} transfers failed, first: {first}",
                    failed.len(),
                    self.envelopes.len()
                ));
            }
            Ok(RelayRun {
                rate: self.envelopes.len() as f64 / took,
                seconds: took,
            })
        });
        drop(client_rt);
        let _ = stop.send(());
        let _ = relay_rt.block_on(serving);
        result
    }
}
