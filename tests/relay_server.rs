//! The key relay (docs/relay.md): the real `mbms-keys relay serve` on loopback, access tokens
//! signed with the keys of `proto-vectors/mcx/token/`, envelopes that are real MIKEY-SAKKE
//! I_MESSAGEs (SAKKE to the target's UID, ECCSI-signed by the source) made with test KMS
//! secrets.
//!
//! - the full flow: the source opens and posts, the target long-polls its inbox, fetches the
//!   exact octets, decapsulates the SSV with its RSK, acknowledges;
//! - every refusal with its status (401, 403, 404, 405, 400, 409, 410, 413, 422) and nothing
//!   stored on refusal; revoked and expired transfers are not delivered;
//! - the store and every file under data_dir hold no transferred SSV (raw or hex), and the
//!   audit log has a row for each step and no key.
#![cfg(feature = "relay")]

mod kms_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{Ksak, SakkeMaster, Ssv, sakke, uid_format2};
use mbms_keys::kms::issue::NTP_UNIX_OFFSET;
use mbms_keys::mcx::{DeliveryKey, KeyDelivery, KeyPurpose, Signer, build_i_message};
use mbms_keys::relay::store::RelayStore;
use mbms_lab::TempDir;
use serde_json::{Value, json};

use kms_support::server::{ALICE, KMS_URI, PERIOD, bin, claims, forged_token, now, token};

const BOB: &str = "sip:bob@example.org";
const CAROL: &str = "sip:carol@example.org";
const MAX_ENVELOPE: usize = 2048;

/// The test KMS: its secrets, the users' keys.
struct Keys {
    ksak: Ksak,
    z: SakkeMaster,
}

fn uid(user: &str) -> [u8; 32] {
    let n = (now() + NTP_UNIX_OFFSET) / PERIOD;
    uid_format2(user, KMS_URI, PERIOD, 0, n).unwrap()
}

impl Keys {
    fn new() -> Self {
        Self {
            ksak: Ksak::generate(&mut OsRandom).unwrap(),
            z: SakkeMaster::generate(&mut OsRandom).unwrap(),
        }
    }

    /// An I_MESSAGE (`mcx::build_i_message`, as `mikey build-sakke` makes it) carrying `ssv`
    /// to `target`, signed by `signer`.
    fn envelope<K: Clone + Into<DeliveryKey>>(
        &self,
        signer: &str,
        target: &str,
        ssv: &K,
    ) -> Vec<u8> {
        let kpak = self.ksak.kpak().unwrap();
        let pair = self.ksak.issue(&uid(signer), &mut OsRandom).unwrap();
        let to_uid = uid(target);
        let from_uid = uid(signer);
        let key: DeliveryKey = ssv.clone().into();
        build_i_message(
            &KeyDelivery {
                key: &key,
                key_id: 0x1699_2638,
                purpose: KeyPurpose::Pck,
                to_uid: &to_uid,
                to_uri: None,
                kms_uri: Some(KMS_URI),
                time: (now() + NTP_UNIX_OFFSET) << 32,
                key_params: None,
            },
            &self.z.public().unwrap(),
            &Signer {
                uid: &from_uid,
                ssk: &pair.ssk,
                pvt: &pair.pvt,
                kpak: &kpak,
            },
            &mut OsRandom,
        )
        .unwrap()
    }
}

/// `msg` with the s of its ECCSI signature (`r ‖ s ‖ PVT`, the last 129 octets) replaced by
/// n − s (n the order of P-256): the same signature for a verifier, other octets.
fn malleated(msg: &[u8]) -> Vec<u8> {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let mut out = msg.to_vec();
    let at = out.len() - 129 + 32;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(msg[at + i]) - borrow;
        borrow = i16::from(d < 0);
        out[at + i] = (d + 256 * borrow) as u8;
    }
    out
}

/// Starts `relay serve` with `dir/relay.toml` and waits until it accepts connections.
fn spawn(dir: &Path, addr: SocketAddr) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("relay.log"))
        .unwrap();
    let child = Command::new(bin())
        .args(["relay", "serve", "--config"])
        .arg(dir.join("relay.toml"))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "relay did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A running relay; killed on drop.
struct Relay {
    dir: PathBuf,
    addr: SocketAddr,
    child: Child,
}

impl Relay {
    fn start(dir: &Path, keys: &Keys, ttl: &str) -> Self {
        let port = mbms_lab::free_port();
        let config = dir.join("relay.toml");
        std::fs::write(
            &config,
            format!(
                "http_listen = \"127.0.0.1:{port}\"\n\
                 data_dir = \"data\"\n\
                 kms_uri = \"{KMS_URI}\"\n\
                 user_key_period = {PERIOD}\n\
                 user_key_offset = 0\n\
                 kpak = \"{}\"\n\
                 max_envelope = {MAX_ENVELOPE}\n\
                 transfer_ttl = \"{ttl}\"\n\
                 max_open_per_source = 4\n\
                 [access_token]\n\
                 jwks_file = \"{}\"\n\
                 issuer = \"https://idms.example.org\"\n\
                 audience = \"{KMS_URI}\"\n\
                 [[policy]]\n\
                 source = \"{ALICE}\"\n\
                 target = \"*\"\n\
                 purposes = [\"pck\", \"gmk\"]\n",
                hex::encode(keys.ksak.kpak().unwrap().to_octets()),
                kms_support::vector("token/jwks.json").display()
            ),
        )
        .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = spawn(dir, addr);
        Self {
            dir: dir.to_owned(),
            addr,
            child,
        }
    }

    /// Restarts with the configuration's `[[policy]]` rules replaced by `policy`.
    fn restart_with_policy(&mut self, policy: &str) {
        self.stop();
        let config = self.dir.join("relay.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let head = &text[..text.find("[[policy]]").unwrap()];
        std::fs::write(&config, format!("{head}{policy}")).unwrap();
        self.child = spawn(&self.dir, self.addr);
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: relay\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(t) = token {
            head.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        let _ = s.write_all(&bytes);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let at = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&buf[..at]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, buf[at + 4..].to_vec())
    }

    fn json(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
        let (s, b) = self.call(method, path, token, body);
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    fn open(&self, token: &str, target: &str) -> String {
        let (s, v) = self.json(
            "POST",
            "/relay/v1/transfers",
            Some(token),
            json!({"target": target, "purpose": "pck"})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["target_uid"], hex::encode(uid(target)));
        assert_eq!(v["kms_uri"], KMS_URI);
        v["id"].as_str().unwrap().to_owned()
    }

    fn state(&self, token: &str, id: &str) -> String {
        let (s, v) = self.json(
            "GET",
            &format!("/relay/v1/transfers/{id}"),
            Some(token),
            b"",
        );
        assert_eq!(s, 200, "{v}");
        v["state"].as_str().unwrap().to_owned()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tok(user: &str) -> String {
    token(Algorithm::ES256, &claims(user))
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

/// No file under `dir` holds any of `secrets`, raw or in hex (either case).
fn assert_absent(dir: &Path, secrets: &[[u8; 16]]) {
    let all = files(dir);
    assert!(all.iter().any(|p| p.ends_with("relay.sqlite")), "{all:?}");
    for p in &all {
        let bytes = std::fs::read(p).unwrap();
        for s in secrets {
            let needles = [
                s.to_vec(),
                hex::encode(s).into_bytes(),
                hex::encode_upper(s).into_bytes(),
            ];
            for n in &needles {
                assert!(
                    !bytes.windows(n.len()).any(|w| w == &n[..]),
                    "a transferred key in {}",
                    p.display()
                );
            }
        }
    }
}

fn audit(relay: &Relay) -> Vec<(String, String, String)> {
    let data = relay.dir.join("data");
    let store = RelayStore::open(&data, &data.join("kek")).unwrap();
    store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|r| (r.who, r.transfer, r.action))
        .collect()
}

#[test]
fn a_signed_envelope_goes_from_source_to_target_and_every_refusal_has_its_status() {
    let dir = TempDir::new("relay-flow");
    let keys = Keys::new();
    let mut relay = Relay::start(dir.path(), &keys, "1h");
    let (ta, tb, tc) = (tok(ALICE), tok(BOB), tok(CAROL));
    let open_body = json!({"target": BOB, "purpose": "pck"}).to_string();

    // 401, 404, 405 and 400 before any transfer.
    let (s, _) = relay.call("POST", "/relay/v1/transfers", None, open_body.as_bytes());
    assert_eq!(s, 401);
    let forged = forged_token(&claims(ALICE));
    let (s, _) = relay.call(
        "POST",
        "/relay/v1/transfers",
        Some(&forged),
        open_body.as_bytes(),
    );
    assert_eq!(s, 401);
    assert_eq!(
        relay.call("GET", "/relay/v1/nothing", Some(&ta), b"").0,
        404
    );
    assert_eq!(
        relay.call("GET", "/relay/v1/transfers", Some(&ta), b"").0,
        405
    );
    assert_eq!(
        relay
            .call(
                "PATCH",
                &format!("/relay/v1/transfers/{}", "0".repeat(32)),
                Some(&ta),
                b""
            )
            .0,
        405
    );
    assert_eq!(
        relay
            .call(
                "GET",
                &format!("/relay/v1/transfers/{}", "0".repeat(32)),
                Some(&ta),
                b""
            )
            .0,
        404
    );
    assert_eq!(
        relay
            .call("POST", "/relay/v1/transfers", Some(&ta), b"{not json")
            .0,
        400
    );
    let bad_purpose = json!({"target": BOB, "purpose": "tek"}).to_string();
    assert_eq!(
        relay
            .call(
                "POST",
                "/relay/v1/transfers",
                Some(&ta),
                bad_purpose.as_bytes()
            )
            .0,
        400
    );
    // 403: no policy for carol; alice cannot open as bob.
    assert_eq!(
        relay
            .call(
                "POST",
                "/relay/v1/transfers",
                Some(&tc),
                open_body.as_bytes()
            )
            .0,
        403
    );
    let as_bob = json!({"target": CAROL, "purpose": "pck", "source": BOB}).to_string();
    assert_eq!(
        relay
            .call("POST", "/relay/v1/transfers", Some(&ta), as_bob.as_bytes())
            .0,
        403
    );

    // The transfer, and refused envelopes: nothing is stored for them.
    let id = relay.open(&ta, BOB);
    let put = format!("/relay/v1/transfers/{id}/envelope");
    let ssv = Ssv::generate(&mut OsRandom).unwrap();
    let good = keys.envelope(ALICE, BOB, &ssv);
    assert_eq!(
        relay.call("PUT", &put, Some(&tb), &good).0,
        403,
        "not the source"
    );
    let ssv_carol = Ssv::generate(&mut OsRandom).unwrap();
    let for_carol = keys.envelope(ALICE, CAROL, &ssv_carol);
    assert_eq!(
        relay.call("PUT", &put, Some(&ta), &for_carol).0,
        422,
        "another target"
    );
    let ssv_forged = Ssv::generate(&mut OsRandom).unwrap();
    let signed_by_carol = keys.envelope(CAROL, BOB, &ssv_forged);
    assert_eq!(
        relay.call("PUT", &put, Some(&ta), &signed_by_carol).0,
        422,
        "not the source's signature"
    );
    let mut flipped = good.clone();
    let last = flipped.len() - 70;
    flipped[last] ^= 1;
    assert_eq!(
        relay.call("PUT", &put, Some(&ta), &flipped).0,
        422,
        "bad signature"
    );
    assert_eq!(
        relay.call("PUT", &put, Some(&ta), b"\x01\x1a garbage").0,
        400
    );
    assert_eq!(
        relay
            .call("PUT", &put, Some(&ta), &vec![0u8; MAX_ENVELOPE + 1])
            .0,
        413
    );
    assert_eq!(relay.state(&ta, &id), "open");
    assert_eq!(
        relay.call("GET", &put, Some(&tb), b"").0,
        409,
        "nothing posted yet"
    );

    // The target long-polls; the source posts meanwhile.
    let poll = std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let t0 = Instant::now();
            let r = relay.json("GET", "/relay/v1/inbox?wait=20", Some(&tb), b"");
            (r, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(800));
        let (st, v) = relay.json("PUT", &put, Some(&ta), &good);
        assert_eq!(st, 200, "{v}");
        waiting.join().unwrap()
    });
    let ((s, v), waited) = poll;
    assert_eq!(s, 200);
    assert_eq!(v["transfers"], json!([id]));
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // An empty inbox answers after its wait.
    let t0 = Instant::now();
    let (s, v) = relay.json("GET", "/relay/v1/inbox?wait=1", Some(&tc), b"");
    assert_eq!((s, v["transfers"].clone()), (200, json!([])));
    assert!(t0.elapsed() >= Duration::from_millis(900));

    // Replays: the same envelope again, here and for another transfer (which stays open).
    assert_eq!(relay.call("PUT", &put, Some(&ta), &good).0, 409);
    let id2 = relay.open(&ta, BOB);
    assert_eq!(
        relay
            .call(
                "PUT",
                &format!("/relay/v1/transfers/{id2}/envelope"),
                Some(&ta),
                &good
            )
            .0,
        409
    );
    // The same envelope with s replaced by n − s: still a valid ECCSI signature of the same
    // octets, still a replay.
    let other = malleated(&good);
    assert_ne!(other, good);
    assert_eq!(
        relay
            .call(
                "PUT",
                &format!("/relay/v1/transfers/{id2}/envelope"),
                Some(&ta),
                &other
            )
            .0,
        409
    );
    assert_eq!(relay.state(&ta, &id2), "open");

    // Only the target fetches; it gets the exact octets and its RSK opens the SSV.
    assert_eq!(relay.call("GET", &put, Some(&tc), b"").0, 403);
    assert_eq!(relay.call("GET", &put, Some(&ta), b"").0, 403);
    assert_eq!(
        relay
            .call("GET", &format!("/relay/v1/transfers/{id}"), Some(&tc), b"")
            .0,
        403
    );
    let (s, got) = relay.call("GET", &put, Some(&tb), b"");
    assert_eq!(s, 200);
    assert_eq!(got, good);
    let view = mbms_keys::mikey::MessageView::decode(&got).unwrap();
    let rsk = keys.z.issue_rsk(&uid(BOB)).unwrap();
    let opened = sakke::decapsulate(
        &keys.z.public().unwrap(),
        &uid(BOB),
        &rsk,
        view.sakke().unwrap().data,
    )
    .unwrap();
    assert_eq!(opened.as_bytes(), ssv.as_bytes());

    // Ack once; then it is delivered and gone.
    let ack = format!("/relay/v1/transfers/{id}/ack");
    assert_eq!(relay.call("POST", &ack, Some(&ta), b"").0, 403);
    assert_eq!(relay.call("POST", &ack, Some(&tb), b"").0, 200);
    assert_eq!(relay.call("POST", &ack, Some(&tb), b"").0, 409);
    assert_eq!(relay.call("GET", &put, Some(&tb), b"").0, 409);
    assert_eq!(relay.state(&tb, &id), "delivered");
    assert_eq!(
        relay.json("GET", "/relay/v1/inbox", Some(&tb), b"").1["transfers"],
        json!([])
    );

    // Revoked before the target fetched: 410.
    let id3 = relay.open(&ta, BOB);
    let ssv3 = Ssv::generate(&mut OsRandom).unwrap();
    let put3 = format!("/relay/v1/transfers/{id3}/envelope");
    assert_eq!(
        relay
            .call("PUT", &put3, Some(&ta), &keys.envelope(ALICE, BOB, &ssv3))
            .0,
        200
    );
    assert_eq!(
        relay
            .call(
                "DELETE",
                &format!("/relay/v1/transfers/{id3}"),
                Some(&tb),
                b""
            )
            .0,
        403
    );
    assert_eq!(
        relay
            .call(
                "DELETE",
                &format!("/relay/v1/transfers/{id3}"),
                Some(&ta),
                b""
            )
            .0,
        200
    );
    assert_eq!(
        relay
            .call(
                "DELETE",
                &format!("/relay/v1/transfers/{id3}"),
                Some(&ta),
                b""
            )
            .0,
        409
    );
    assert_eq!(relay.call("GET", &put3, Some(&tb), b"").0, 410);
    assert_eq!(
        relay
            .call(
                "POST",
                &format!("/relay/v1/transfers/{id3}/ack"),
                Some(&tb),
                b""
            )
            .0,
        410
    );
    assert_eq!(
        relay
            .call("PUT", &put3, Some(&ta), &keys.envelope(ALICE, BOB, &ssv3))
            .0,
        410
    );
    assert_eq!(relay.state(&ta, &id3), "revoked");

    // After all that the server serves.
    assert_eq!(relay.json("GET", "/relay/v1/inbox", Some(&tb), b"").0, 200);
    relay.stop();

    let secrets = [
        *ssv.as_bytes(),
        *ssv_carol.as_bytes(),
        *ssv_forged.as_bytes(),
        *ssv3.as_bytes(),
    ];
    assert_absent(&dir.path().join("data"), &secrets);
    let log = std::fs::read(dir.path().join("relay.log")).unwrap();
    for s in &secrets {
        assert!(!log.windows(32).any(|w| w == hex::encode(s).as_bytes()));
    }
    let rows = audit(&relay);
    let has = |who: &str, t: &str, action: &str| {
        rows.iter()
            .any(|(w, i, a)| w == who && i == t && a == action)
    };
    for (who, t, action) in [
        (ALICE, &id, "open"),
        (ALICE, &id, "refuse-envelope"),
        (ALICE, &id, "post"),
        (BOB, &id, "fetch"),
        (BOB, &id, "ack"),
        (ALICE, &id2, "refuse-replay"),
        (ALICE, &id3, "post"),
        (ALICE, &id3, "revoke"),
    ] {
        assert!(has(who, t, action), "{who} {t} {action}: {rows:?}");
    }
    for (w, i, a) in &rows {
        for s in &secrets {
            let h = hex::encode(s);
            assert!(!w.contains(&h) && !i.contains(&h) && !a.contains(&h));
        }
    }
}

/// A 256-bit key's envelope (a KEMAC before SIGN, docs/mcx.md §11.5) passes the envelope check
/// as it is and reaches the target with the exact octets; with an octet of its KEMAC changed
/// (not signed again) it is refused as not signed by the source, and nothing is stored.
#[test]
fn a_256_bit_envelope_passes_the_envelope_check_and_an_altered_kemac_does_not() {
    let dir = TempDir::new("relay-256");
    let keys = Keys::new();
    let mut relay = Relay::start(dir.path(), &keys, "1h");
    let (ta, tb) = (tok(ALICE), tok(BOB));
    let key = DeliveryKey::from_slice(&[0x5e; 32]).unwrap();
    let good = keys.envelope(ALICE, BOB, &key);
    // SIGN 2 + 129 octets end the message; the KEMAC's MAC is the 20 octets before them.
    let mut altered = good.clone();
    let in_mac = altered.len() - 131 - 10;
    altered[in_mac] ^= 1;
    let id = relay.open(&ta, BOB);
    let put = format!("/relay/v1/transfers/{id}/envelope");
    assert_eq!(relay.call("PUT", &put, Some(&ta), &altered).0, 422);
    assert_eq!(relay.call("GET", &put, Some(&tb), b"").0, 409);
    assert_eq!(relay.call("PUT", &put, Some(&ta), &good).0, 200);
    let (status, body) = relay.call("GET", &put, Some(&tb), b"");
    assert_eq!((status, &body[..]), (200, &good[..]));
    relay.stop();
    let halves: Vec<[u8; 16]> = key
        .as_bytes()
        .chunks(16)
        .map(|c| c.try_into().unwrap())
        .collect();
    assert_absent(&dir.path().join("data"), &halves);
}

#[test]
fn an_expired_transfer_is_swept_and_not_delivered() {
    let dir = TempDir::new("relay-expiry");
    let keys = Keys::new();
    let mut relay = Relay::start(dir.path(), &keys, "2s");
    let (ta, tb) = (tok(ALICE), tok(BOB));
    let ssv = Ssv::generate(&mut OsRandom).unwrap();
    // Built before the 2 s transfer is opened: a slow build under load must not outlive it.
    let envelope = keys.envelope(ALICE, BOB, &ssv);
    let id = relay.open(&ta, BOB);
    let put = format!("/relay/v1/transfers/{id}/envelope");
    assert_eq!(relay.call("PUT", &put, Some(&ta), &envelope).0, 200);
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(relay.call("GET", &put, Some(&tb), b"").0, 410);
    assert_eq!(relay.state(&tb, &id), "expired");
    assert_eq!(
        relay.json("GET", "/relay/v1/inbox", Some(&tb), b"").1["transfers"],
        json!([])
    );
    relay.stop();
    assert_absent(&dir.path().join("data"), &[*ssv.as_bytes()]);
    let rows = audit(&relay);
    assert!(
        rows.iter()
            .any(|(w, i, a)| w == "relay" && i == &id && a == "expire"),
        "{rows:?}"
    );
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_device_commands_send_fetch_ack_and_show_the_state() {
    let dir = TempDir::new("relay-cli");
    let keys = Keys::new();
    let relay = Relay::start(dir.path(), &keys, "1h");
    let url = format!("http://{}", relay.addr);
    let (ta, tb) = (dir.path().join("alice.jwt"), dir.path().join("bob.jwt"));
    std::fs::write(&ta, tok(ALICE)).unwrap();
    std::fs::write(&tb, tok(BOB)).unwrap();
    let (ta, tb) = (format!("@{}", ta.display()), format!("@{}", tb.display()));
    let ssv = Ssv::generate(&mut OsRandom).unwrap();
    let msg = keys.envelope(ALICE, BOB, &ssv);

    let (ok, out, err) = cli(&[
        "relay",
        "send",
        "--relay",
        &url,
        "--token",
        &ta,
        "--to",
        BOB,
        "--purpose",
        "pck",
        "--message",
        &hex::encode(&msg),
    ]);
    assert!(ok, "{err}");
    let sent: Value = serde_json::from_str(&out).unwrap();
    let id = sent["id"].as_str().unwrap().to_owned();
    assert_eq!(sent["state"], "posted");
    assert_eq!(sent["target_uid"], hex::encode(uid(BOB)));

    let (ok, out, err) = cli(&[
        "relay", "status", "--relay", &url, "--token", &tb, "--id", &id,
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["state"],
        "posted"
    );

    let (ok, out, err) = cli(&[
        "relay", "fetch", "--relay", &url, "--token", &tb, "--wait", "2", "--ack",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["id"], id);
    assert_eq!(lines[0]["envelope"], hex::encode(&msg));

    let (ok, out, _) = cli(&[
        "relay", "status", "--relay", &url, "--token", &ta, "--id", &id,
    ]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["state"],
        "delivered"
    );
    // A second send of the same message is refused (replay), with the status.
    let (ok, _, err) = cli(&[
        "relay",
        "send",
        "--relay",
        &url,
        "--token",
        &ta,
        "--to",
        BOB,
        "--purpose",
        "pck",
        "--message",
        &hex::encode(&msg),
    ]);
    assert!(!ok && err.contains("409"), "{err}");
    // Carol's token finds nothing.
    let tc = dir.path().join("carol.jwt");
    std::fs::write(&tc, tok(CAROL)).unwrap();
    let (ok, out, _) = cli(&[
        "relay",
        "fetch",
        "--relay",
        &url,
        "--token",
        &format!("@{}", tc.display()),
    ]);
    assert!(ok && out.is_empty(), "{out}");
}

#[test]
fn the_policy_is_checked_again_when_the_target_fetches_and_the_store_survives_a_restart() {
    let dir = TempDir::new("relay-policy");
    let keys = Keys::new();
    let mut relay = Relay::start(dir.path(), &keys, "1h");
    let (ta, tb) = (tok(ALICE), tok(BOB));
    let id = relay.open(&ta, BOB);
    let ssv = Ssv::generate(&mut OsRandom).unwrap();
    let msg = keys.envelope(ALICE, BOB, &ssv);
    let put = format!("/relay/v1/transfers/{id}/envelope");
    assert_eq!(relay.call("PUT", &put, Some(&ta), &msg).0, 200);
    // Same rules after a restart: the sealed envelope opens with the KEK and is delivered as is.
    relay.restart_with_policy("[[policy]]\nsource = \"*\"\ntarget = \"*\"\npurposes = [\"pck\"]\n");
    assert_eq!(relay.call("GET", &put, Some(&tb), b""), (200, msg.clone()));
    // Pck from alice no longer allowed: the fetch is refused and audited, nothing changes.
    relay.restart_with_policy("[[policy]]\nsource = \"*\"\ntarget = \"*\"\npurposes = [\"gmk\"]\n");
    assert_eq!(relay.call("GET", &put, Some(&tb), b"").0, 403);
    assert_eq!(relay.state(&tb, &id), "posted");
    relay.stop();
    let rows = audit(&relay);
    assert!(
        rows.iter()
            .any(|(w, i, a)| w == BOB && i == &id && a == "refuse-fetch-policy"),
        "{rows:?}"
    );
}

#[test]
fn a_source_has_at_most_max_open_per_source_transfers_at_once() {
    let dir = TempDir::new("relay-limit");
    let keys = Keys::new();
    let relay = Relay::start(dir.path(), &keys, "1h");
    let ta = tok(ALICE);
    let ids: Vec<String> = (0..4).map(|_| relay.open(&ta, BOB)).collect();
    let body = json!({"target": BOB, "purpose": "pck"}).to_string();
    assert_eq!(
        relay
            .call("POST", "/relay/v1/transfers", Some(&ta), body.as_bytes())
            .0,
        429
    );
    // A revoked transfer no longer counts.
    let del = format!("/relay/v1/transfers/{}", ids[0]);
    assert_eq!(relay.call("DELETE", &del, Some(&ta), b"").0, 200);
    relay.open(&ta, BOB);
    // Bob's own transfers are not Alice's: the policy refuses him (403), not the limit.
    let tb = tok(BOB);
    assert_eq!(
        relay
            .call("POST", "/relay/v1/transfers", Some(&tb), body.as_bytes())
            .0,
        403
    );
}
