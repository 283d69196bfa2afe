//! The real `mbms-keys kms serve` on loopback for the tests: its configuration, clients added
//! with `kms add-client`, access tokens signed with the keys of `proto-vectors/mcx/token/`,
//! and a small HTTP/1.1 client over a raw socket (so that malformed requests can be sent).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mbms_keys::kms::messages::{KmsRequest, xml_datetime};
use mbms_keys::kms::transport::{Mode, TransportKeys};
use mbms_keys::kms::{KeyId, Secret};
use serde_json::{Value, json};

pub const KMS_URI: &str = "kms.example.org";
pub const ISSUER: &str = "https://idms.example.org";
pub const ALICE: &str = "sip:alice@example.org";
pub const PERIOD: u64 = 2_592_000;
pub const MAX_BODY: usize = 16 * 1024;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mbms-keys")
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_file(name: &str) -> Vec<u8> {
    std::fs::read(super::vector("token").join(name)).unwrap()
}

pub fn claims(user: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": [KMS_URI],
        "sub": "alice",
        "exp": now() + 3600,
        "mcptt_id": user,
    })
}

/// A token signed ES256 (`idms-es256`) or RS256 (`idms-rs256`).
pub fn token(alg: Algorithm, claims: &Value) -> String {
    let mut h = Header::new(alg);
    let key = match alg {
        Algorithm::ES256 => {
            h.kid = Some("idms-es256".into());
            EncodingKey::from_ec_der(&token_file("es256-key.pk8.der"))
        }
        _ => {
            h.kid = Some("idms-rs256".into());
            EncodingKey::from_rsa_der(&token_file("rs256-key.pkcs1.der"))
        }
    };
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

/// A token signed with a key that is not the JWKS's, under its `kid`.
pub fn forged_token(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("idms-es256".into());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_ec_der(&token_file("es256-other-key.pk8.der")),
    )
    .unwrap()
}

/// A KmsRequest document for `user` carrying `trk_id` (and `ink_id`).
pub fn request(user: &str, path: &str, trk_id: KeyId, ink_id: Option<KeyId>) -> String {
    KmsRequest {
        id: None,
        user_uri: user.into(),
        kms_uri: KMS_URI.into(),
        time: xml_datetime(now()),
        client_id: None,
        device_id: None,
        client_req_url: format!("http://{KMS_URI}{path}"),
        trk_id: Some(trk_id),
        ink_id,
    }
    .to_xml()
}

/// A running KMS; killed on drop.
pub struct Kms {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Kms {
    /// Writes a configuration in `dir` and starts the server.
    pub fn start(dir: &Path) -> Self {
        Self::start_with_uri(dir, |_| KMS_URI.to_owned())
    }

    /// As [`Kms::start`], its KMS URI `kms_uri(address)` (`kms client` names the KMS by the
    /// authority of its URL until it has the certificate).
    pub fn start_with_uri(dir: &Path, kms_uri: impl FnOnce(SocketAddr) -> String) -> Self {
        let port = mbms_lab::free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let kms_uri = kms_uri(addr);
        let config = dir.join("kms.toml");
        std::fs::write(
            &config,
            format!(
                "http_listen = \"127.0.0.1:{port}\"\n\
                 data_dir = \"data\"\n\
                 kms_uri = \"{kms_uri}\"\n\
                 user_key_period = {PERIOD}\n\
                 user_key_offset = 0\n\
                 max_periods_ahead = 1\n\
                 max_body = {MAX_BODY}\n\
                 request_timeout = \"5s\"\n\
                 [access_token]\n\
                 jwks_file = \"{}\"\n\
                 issuer = \"{ISSUER}\"\n\
                 audience = \"{KMS_URI}\"\n",
                super::vector("token/jwks.json").display()
            ),
        )
        .unwrap();
        let mut kms = Self {
            dir: dir.to_owned(),
            config,
            addr,
            child: None,
        };
        kms.restart();
        kms
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.join("kms.log")).unwrap();
        let child = Command::new(bin())
            .args(["kms", "serve", "--config"])
            .arg(&self.config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("kms serve exited {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "kms serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kms.log")).unwrap_or_default()
    }

    /// `kms add-client --json` for `users`; the client's keys as its trusted store holds them.
    pub fn add_client(&self, id: &str, users: &[&str], mode: Mode, ink: bool) -> TransportKeys {
        let mut cmd = Command::new(bin());
        cmd.args(["kms", "add-client", "--config"])
            .arg(&self.config)
            .current_dir(&self.dir)
            .args(["--client-id", id, "--json", "--mode"])
            .arg(match mode {
                Mode::Standard => "standard",
                Mode::Bound => "bound",
            });
        for u in users {
            cmd.args(["--user", u]);
        }
        if ink {
            cmd.arg("--ink");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "add-client: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = |k: &str| KeyId::parse(v[k].as_str().unwrap()).unwrap();
        let key = |k: &str| Secret::new(hex::decode(v[k].as_str().unwrap()).unwrap());
        assert_eq!(v["trk"].as_str().unwrap().len(), 64);
        TransportKeys {
            trk_id: id("trk_id"),
            trk: key("trk"),
            ink: if ink {
                assert_eq!(v["ink"].as_str().unwrap().len(), 64);
                Some((id("ink_id"), key("ink")))
            } else {
                assert!(v["ink_id"].is_null() && v["ink"].is_null(), "{v}");
                None
            },
            mode,
        }
    }

    /// Sends raw octets; the status and body of the answer (the connection is closed after).
    pub fn raw(&self, bytes: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        // The server may answer (413) and close before all is written.
        let _ = s.write_all(bytes);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        parse_response(&buf)
    }

    /// `method path` with an optional bearer token and a body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, String) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {KMS_URI}\r\nconnection: close\r\n\
             content-type: application/xml\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(t) = token {
            head.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(&bytes)
    }

    /// `POST path` with a token and a body.
    pub fn post(&self, path: &str, token: &str, body: &str) -> (u16, String) {
        self.call("POST", path, Some(token), body.as_bytes())
    }
}

impl Drop for Kms {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse_response(buf: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(buf).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, text);
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

pub const BASE: &str = "/keymanagement/identity/v1";

/// `/keyprov/<user>/<time>` for the period after the current one.
pub fn next_period_path(user: &str) -> (String, u64) {
    let t = now() + PERIOD;
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    (
        format!("{BASE}/keyprov/{}/{}", enc(user), enc(&xml_datetime(t))),
        t,
    )
}
