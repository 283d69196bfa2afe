//! `bmsc serve` on a PostgreSQL store (`store = "postgres://..."`, the password from
//! `$MBMS_PG_PASSWORD`): it starts, `curl --digest` registers a UE, and after a restart the
//! registration is still there (`bmsc status` reads it through a read-only open). The password
//! shows in none of its output. Skipped without PostgreSQL or curl, failing then under
//! `MBMS_REQUIRE_ORACLES=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::postgres::{PASSWORD, PgServer};
use mbms_keys::crypto::KsNaf;
use mbms_keys::gba::{digest_password, mrk_gba_me};
use mbms_keys::mbms::keyreq::{MIME_REGISTER, PATH_REGISTER, RegisterRequest};
use mbms_lab::bmsc_config::{LabConfig, LabService, LabSubscriber};
use mbms_lab::{TempDir, free_port};

const SERVICE: &str = "urn:example:mbms:pg";
const BTID: &str = "pg01@bsf.example.org";
const KS_NAF: [u8; 32] = [0x37; 32];

fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mbms-keys"));
    c.env_remove("MBMS_KEK_FILE")
        .env("MBMS_LOG", "info")
        .env("MBMS_PG_PASSWORD", PASSWORD);
    c
}

/// A `bmsc serve` process, killed when the test ends (also on panic).
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serve {
    fn start(config: &Path, http_port: u16) -> Self {
        let mut s = Self(
            exe()
                .args(["bmsc", "serve", "--config"])
                .arg(config)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("bmsc serve"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            if let Some(status) = s.0.try_wait().expect("try_wait") {
                panic!("bmsc serve exited with {status}: {}", s.output());
            }
            assert!(Instant::now() < deadline, "bmsc serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// Stops it (SIGTERM, then waits) and returns everything it wrote.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
        self.output()
    }

    fn output(&mut self) -> String {
        let mut text = String::new();
        for r in [
            self.0
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read>),
            self.0
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn std::io::Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut r = r;
            let _ = r.read_to_string(&mut text);
        }
        text
    }
}

fn write_config(dir: &Path, url: &str, http_port: u16) -> PathBuf {
    let mut c = LabConfig::new(
        "bmsc.example.org",
        dir.join("data"),
        free_port(),
        LabService {
            id: SERVICE.to_owned(),
            msk_lifetime: "1h",
            mtk_interval: "10m",
            mtk_resend: "10m",
            mtk_destination: ([127, 0, 0, 1], free_port()).into(),
        },
    );
    c.http_port = http_port;
    // curl answers qop "auth" (not "auth-int", the default).
    c.qop = Some("auth,auth-int");
    c.subscribers = vec![LabSubscriber {
        btid: BTID.to_owned(),
        impi: "pg01@ims.example.org".to_owned(),
        ks_naf: KS_NAF,
    }];
    // `store` is a top-level key: before the first table.
    let text = format!("store = \"{url}\"\n{}", c.to_toml());
    let path = dir.join("bmsc.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

fn registrations(config: &Path) -> u64 {
    let out = exe()
        .args(["bmsc", "status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("bmsc status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bmsc status: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(PASSWORD));
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    v["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["id"] == SERVICE)
        .and_then(|s| s["registrations"].as_u64())
        .expect("the service's registrations")
}

#[test]
fn a_registration_to_bmsc_serve_on_postgres_survives_a_restart() {
    let Some(curl) = common::oracle("curl", &[], "apt-get install curl") else {
        return;
    };
    let Some(server) = PgServer::start() else {
        return;
    };
    let db = server.database();
    let dir = TempDir::new("serve-pg");
    let http_port = free_port();
    let config = write_config(dir.path(), &server.url(&db), http_port);

    let serve = Serve::start(&config, http_port);
    let body = dir.path().join("register.xml");
    std::fs::write(
        &body,
        RegisterRequest::register(&[SERVICE.to_owned()]).to_xml(),
    )
    .expect("body");
    let password = digest_password(&mrk_gba_me(&KsNaf::from_bytes(KS_NAF))).to_string();
    let out = Command::new(curl)
        .args(["-s", "-S", "--digest", "-u"])
        .arg(format!("{BTID}:{password}"))
        .args([
            "-H",
            &format!("Content-Type: {MIME_REGISTER}"),
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .args(["-w", "\nstatus %{http_code}\n"])
        .arg(format!("http://127.0.0.1:{http_port}{PATH_REGISTER}"))
        .output()
        .expect("curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("status 200"), "curl: {stdout}");
    // The registration is in the database, not only in the BM-SC's memory.
    assert_eq!(
        server.psql(&db, "SELECT btid FROM registrations"),
        format!("{BTID}\n")
    );
    let msks = server.psql(&db, "SELECT msk_id FROM msks ORDER BY msk_id");
    assert!(!msks.is_empty(), "the BM-SC stored its MSK");
    let first = serve.stop();
    assert!(!first.contains(PASSWORD), "the password in the output");

    let serve = Serve::start(&config, http_port);
    assert_eq!(registrations(&config), 1);
    // The MSKs made by the first run were found by the second, not made again.
    let again = server.psql(&db, "SELECT msk_id FROM msks ORDER BY msk_id");
    for id in msks.lines() {
        assert!(again.lines().any(|l| l == id), "MSK {id} kept: {again}");
    }
    let second = serve.stop();
    assert!(!second.contains(PASSWORD), "the password in the output");
}
