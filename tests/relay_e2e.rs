//! End to end (docs/relay.md §7): the real `mbms-keys kms serve` and `mbms-keys relay serve` on
//! loopback, and two devices whose keys come from that KMS through `kms client keyprov`
//! (access tokens signed with the keys of `proto-vectors/mcx/token/`, as in
//! tests/kms_server.rs).
//!
//! - the source (the library: `relay::client::RelayClient`, and `mikey build-sakke`) transfers
//!   a 256-bit key (a KEMAC under the SAKKE SSV, docs/mcx.md §11.5) while the target runs nothing; the target starts later, gets its keys, fetches with
//!   `relay fetch`, verifies and decapsulates with `mikey verify-sakke`, and obtains exactly
//!   the 32 octets;
//! - a revoked transfer is not delivered; an expired one is deleted (410, its envelope gone
//!   from the store);
//! - every file the relay and the KMS wrote holds none of the transferred keys, nor either
//!   16-octet half of one.
#![cfg(feature = "relay")]

mod kms_support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use mbms_keys::kms::transport::Mode;
use mbms_keys::relay::Purpose;
use mbms_keys::relay::client::{ClientError, RelayClient};
use mbms_keys::relay::store::RelayStore;
use mbms_lab::TempDir;
use serde_json::Value;

use kms_support::server::{ALICE, ISSUER, KMS_URI, Kms, PERIOD, bin, claims, token};

const BOB: &str = "sip:bob@example.org";

/// `mbms-keys ARGS`: exit code, standard output, standard error.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("MBMS_KMS_TOKEN")
        .env_remove("MBMS_TRK")
        .env_remove("MBMS_KEY")
        .env_remove("MBMS_SSK")
        .env_remove("MBMS_RSK")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A device: its identity, access token file and key store.
struct Device {
    user: &'static str,
    dir: PathBuf,
    token_file: PathBuf,
}

impl Device {
    fn new(root: &Path, name: &str, user: &'static str) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token.jwt");
        std::fs::write(&token_file, token(Algorithm::ES256, &claims(user))).unwrap();
        Self {
            user,
            dir,
            token_file,
        }
    }

    fn token_arg(&self) -> String {
        format!("@{}", self.token_file.display())
    }

    fn token(&self) -> String {
        std::fs::read_to_string(&self.token_file).unwrap()
    }

    /// `kms client keyprov`: the device's key set for the current period (hex fields).
    fn keyprov(&self, kms: &Kms, client_id: &str) -> Value {
        let keys = kms.add_client(client_id, &[self.user], Mode::Standard, false);
        let trk = hex::encode(keys.trk.expose());
        let (code, out, err) = self.keyprov_run(kms, &keys.trk_id.to_string(), &trk, &[]);
        // Without its KMS URI, the client names the KMS by the URL's host:port, which this
        // KMS refuses (KmsUri is not this KMS): nothing stored, the init refused.
        assert_eq!(code, Some(1), "keyprov without --kms-uri: {out} {err}");
        let (code, out, err) =
            self.keyprov_run(kms, &keys.trk_id.to_string(), &trk, &["--kms-uri", KMS_URI]);
        assert_eq!(code, Some(0), "keyprov {}: {out} {err}", self.user);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["key_sets"][0]["kms_uri"], KMS_URI, "{v}");
        v["key_sets"][0].clone()
    }

    fn keyprov_run(
        &self,
        kms: &Kms,
        trk_id: &str,
        trk: &str,
        extra: &[&str],
    ) -> (Option<i32>, String, String) {
        let kms_url = format!("http://{}", kms.addr);
        let store = self.dir.join("keys");
        let token = self.token_arg();
        let mut args = vec![
            "kms",
            "client",
            "keyprov",
            "--kms",
            &kms_url,
            "--token",
            &token,
            "--user",
            self.user,
            "--trk-id",
            trk_id,
            "--trk",
            trk,
            "--store",
            store.to_str().unwrap(),
            "--json",
        ];
        args.extend(extra);
        run(&args)
    }
}

/// A running `relay serve`; killed on drop.
struct Relay {
    dir: PathBuf,
    addr: SocketAddr,
    kms_uri: String,
    kpak: String,
    child: Option<Child>,
}

impl Relay {
    fn start(dir: &Path, kms_uri: &str, kpak: &str, ttl: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut r = Self {
            dir: dir.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], mbms_lab::free_port())),
            kms_uri: kms_uri.to_owned(),
            kpak: kpak.to_owned(),
            child: None,
        };
        r.restart(ttl);
        r
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// (Re)starts with `transfer_ttl = ttl`, same store and port.
    fn restart(&mut self, ttl: &str) {
        self.stop();
        std::fs::write(
            self.dir.join("relay.toml"),
            format!(
                "http_listen = \"{}\"\n\
                 data_dir = \"data\"\n\
                 kms_uri = \"{}\"\n\
                 user_key_period = {PERIOD}\n\
                 user_key_offset = 0\n\
                 kpak = \"{}\"\n\
                 transfer_ttl = \"{ttl}\"\n\
                 [access_token]\n\
                 jwks_file = \"{}\"\n\
                 issuer = \"{ISSUER}\"\n\
                 audience = \"{KMS_URI}\"\n\
                 [[policy]]\n\
                 source = \"{ALICE}\"\n\
                 target = \"{BOB}\"\n\
                 purposes = [\"pck\"]\n",
                self.addr,
                self.kms_uri,
                self.kpak,
                kms_support::vector("token/jwks.json").display()
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("relay.log"))
            .unwrap();
        let child = Command::new(bin())
            .args(["relay", "serve", "--config", "relay.toml"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "relay did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `mikey build-sakke`: a PCK delivery of `key` (hex) from `from` (its key set) to `to_uid`.
fn build(
    key: &str,
    key_id: &str,
    from: &Value,
    to_uid: &str,
    kms_uri: &str,
) -> (Option<i32>, String, String) {
    let s = |k: &str| from[k].as_str().unwrap().to_owned();
    run(&[
        "mikey",
        "build-sakke",
        "--key",
        key,
        "--key-id",
        key_id,
        "--purpose",
        "pck",
        "--to-uid",
        to_uid,
        "--z",
        &s("z"),
        "--from-uid",
        &s("uid"),
        "--ssk",
        &s("ssk"),
        "--pvt",
        &s("pvt"),
        "--kpak",
        &s("kpak"),
        "--kms-uri",
        kms_uri,
        "--json",
    ])
}

/// `relay fetch` as `dev`: the JSON lines it printed.
fn fetch(relay: &Relay, dev: &Device, ack: bool) -> Vec<Value> {
    let url = relay.url();
    let tok = dev.token_arg();
    let mut args = vec!["relay", "fetch", "--relay", &url, "--token", &tok];
    if ack {
        args.push("--ack");
    }
    let (code, out, err) = run(&args);
    assert_eq!(code, Some(0), "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// No file under `dir` holds any of `keys` (hex), raw or in hex of either case.
fn assert_absent(dir: &Path, keys: &[&str]) -> usize {
    let all = files(dir);
    for p in &all {
        let bytes = std::fs::read(p).unwrap();
        for k in keys {
            for needle in [
                hex::decode(k).unwrap(),
                k.to_lowercase().into_bytes(),
                k.to_uppercase().into_bytes(),
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == &needle[..]),
                    "a transferred key in {}",
                    p.display()
                );
            }
        }
    }
    all.len()
}

fn status(client: &RelayClient, id: &str, rt: &tokio::runtime::Runtime) -> String {
    let v = rt.block_on(client.status(id)).unwrap();
    v["state"].as_str().unwrap().to_owned()
}

#[test]
fn a_key_reaches_a_target_that_starts_later_and_no_file_of_the_relay_or_kms_holds_it() {
    let root = TempDir::new("relay-e2e");
    std::fs::create_dir_all(root.path().join("kms")).unwrap();
    // The KMS's URI is a name, not its address: the devices are configured with it
    // (`kms client --kms-uri`).
    let kms = Kms::start(&root.path().join("kms"));
    let kms_uri = KMS_URI.to_owned();
    let alice = Device::new(root.path(), "alice", ALICE);
    let bob = Device::new(root.path(), "bob", BOB);

    // The source gets its keys; the relay is configured with the KMS's KPAK it was given.
    let a_keys = alice.keyprov(&kms, "alice-phone");
    let kpak = a_keys["kpak"].as_str().unwrap();
    let mut relay = Relay::start(&root.path().join("relay"), &kms_uri, kpak, "1h");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let source = rt.block_on(async { RelayClient::new(&relay.url(), &alice.token()) });

    // The source transfers a 256-bit key; the target is not running (no process of its own,
    // no fetch). A key of neither 16 nor 32 octets is refused by the builder.
    let odd = "ab".repeat(24);
    let (code, _, err) = build(&odd, "1a2b3c4d", &a_keys, &"00".repeat(32), &kms_uri);
    assert_eq!(code, Some(2), "a 192-bit key: {err}");
    let key = hex::encode(rand_key());
    assert_eq!(key.len(), 64);
    let opened = rt.block_on(source.open(BOB, Purpose::Pck)).unwrap();
    let id = opened["id"].as_str().unwrap().to_owned();
    let target_uid = opened["target_uid"].as_str().unwrap().to_owned();
    assert_eq!(opened["kms_uri"], kms_uri.as_str());
    let (code, out, err) = build(&key, "1a2b3c4d", &a_keys, &target_uid, &kms_uri);
    assert_eq!(code, Some(0), "{err}");
    let msg = hex::decode(
        serde_json::from_str::<Value>(&out).unwrap()["message"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let posted = rt.block_on(source.post(&id, &msg)).unwrap();
    assert_eq!(posted["state"], "posted");
    assert_eq!(status(&source, &id, &rt), "posted");

    // The target starts later: its keys from the KMS (its UID is the one the relay gave the
    // source), then `relay fetch`, then `mikey verify-sakke`.
    let b_keys = bob.keyprov(&kms, "bob-phone");
    assert_eq!(b_keys["uid"], target_uid.as_str());
    let got = fetch(&relay, &bob, false);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], id.as_str());
    let envelope = got[0]["envelope"].as_str().unwrap().to_owned();
    assert_eq!(envelope, hex::encode(&msg), "the exact octets posted");
    let s = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let (code, out, err) = run(&[
        "mikey",
        "verify-sakke",
        "--uid",
        &s(&b_keys, "uid"),
        "--rsk",
        &s(&b_keys, "rsk"),
        "--z",
        &s(&b_keys, "z"),
        "--kpak",
        &s(&b_keys, "kpak"),
        "--from-uid",
        &s(&a_keys, "uid"),
        "--purpose",
        "pck",
        "--json",
        &envelope,
    ]);
    assert_eq!(code, Some(0), "{out} {err}");
    let verified: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["key"], key.as_str(), "exactly the 32 octets sent");
    assert_eq!(verified["key_id"], "1a2b3c4d");
    // Acknowledged: delivered, deleted, not offered again.
    assert_eq!(fetch(&relay, &bob, true).len(), 1);
    assert_eq!(status(&source, &id, &rt), "delivered");
    assert!(fetch(&relay, &bob, false).is_empty());

    // A revoked transfer is not delivered.
    let key2 = hex::encode(rand_key());
    let opened = rt.block_on(source.open(BOB, Purpose::Pck)).unwrap();
    let id2 = opened["id"].as_str().unwrap().to_owned();
    let (code, out, err) = build(&key2, "1a2b3c4e", &a_keys, &target_uid, &kms_uri);
    assert_eq!(code, Some(0), "{err}");
    let msg2 = hex::decode(
        serde_json::from_str::<Value>(&out).unwrap()["message"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    rt.block_on(source.post(&id2, &msg2)).unwrap();
    let revoked = rt.block_on(source.revoke(&id2)).unwrap();
    assert_eq!(revoked["state"], "revoked");
    assert!(fetch(&relay, &bob, false).is_empty());
    let target = rt.block_on(async { RelayClient::new(&relay.url(), &bob.token()) });
    match rt.block_on(target.fetch(&id2)) {
        Err(ClientError::Refused { status: 410, .. }) => {}
        other => panic!("a revoked transfer: {other:?}"),
    }

    // An expired transfer is deleted: the relay again, same store, transfers living 2 s.
    relay.restart("2s");
    let source = rt.block_on(async { RelayClient::new(&relay.url(), &alice.token()) });
    let target = rt.block_on(async { RelayClient::new(&relay.url(), &bob.token()) });
    let key3 = hex::encode(rand_key());
    // Built before the transfer is opened (the target's UID is known): a slow build under
    // load must not outlive the 2 s transfer before it is posted.
    let (code, out, err) = build(&key3, "1a2b3c4f", &a_keys, &target_uid, &kms_uri);
    assert_eq!(code, Some(0), "{err}");
    let msg3 = hex::decode(
        serde_json::from_str::<Value>(&out).unwrap()["message"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let opened = rt.block_on(source.open(BOB, Purpose::Pck)).unwrap();
    let id3 = opened["id"].as_str().unwrap().to_owned();
    rt.block_on(source.post(&id3, &msg3)).unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    assert!(fetch(&relay, &bob, false).is_empty());
    match rt.block_on(target.fetch(&id3)) {
        Err(ClientError::Refused { status: 410, .. }) => {}
        other => panic!("an expired transfer: {other:?}"),
    }
    assert_eq!(status(&source, &id3, &rt), "expired");
    relay.stop();
    drop(kms);

    // The store: the delivered, revoked and expired envelopes are gone, the steps audited.
    let data = root.path().join("relay/data");
    let store = RelayStore::open(&data, &data.join("kek")).unwrap();
    for i in [&id, &id2, &id3] {
        assert_eq!(store.envelope(i).unwrap(), None, "{i}");
    }
    let actions: Vec<(String, String)> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|r| (r.transfer, r.action))
        .collect();
    for (i, a) in [
        (&id, "post"),
        (&id, "fetch"),
        (&id, "ack"),
        (&id2, "revoke"),
        (&id3, "expire"),
    ] {
        assert!(actions.contains(&(i.clone(), a.into())), "{a}: {actions:?}");
    }
    drop(store);

    // No file the relay or the KMS wrote holds any transferred key, or a 16-octet half of one
    // (the store, its WAL, the KEK, the logs).
    let keys: Vec<&str> = [key.as_str(), key2.as_str(), key3.as_str()]
        .into_iter()
        .flat_map(|k| [k, &k[..32], &k[32..]])
        .collect();
    let n = assert_absent(&root.path().join("relay"), &keys);
    assert!(n >= 3, "relay.sqlite, kek, relay.log at least: {n}");
    assert_absent(&root.path().join("kms"), &keys);
}

/// 32 random octets: a 256-bit key.
fn rand_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    mbms_keys::crypto::Random::fill(&mut mbms_keys::crypto::OsRandom, &mut k).unwrap();
    k
}
