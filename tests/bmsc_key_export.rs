//! The key export for external encryptors (README "Key export for external encryptors"): a
//! whole BM-SC with short MTK intervals hands its MTKs as JSON lines to the clients of its Unix
//! socket — the keys held on connecting, then each new one — equal to what the distribution
//! made; a client that does not read is cut off without holding up the others.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbms_keys::bmsc::config::{Config, parse_rfc3339};
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::export::ExportError;
use mbms_keys::bmsc::server::{Bmsc, ServeError};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

const TV: &str = "urn:lab:tv";
const FILE: &str = "urn:lab:file";

/// One streaming and `extra + 1` download services sharing an MSK (so each MTK gives a line
/// per service), an MTK every second, the export socket at `socket`.
fn config(dir: &Path, socket: &Path, extra: usize) -> Config {
    let mtk_dest = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let service = |id: &str, transport: &str| {
        format!(
            "\n[[services]]\nid = \"{id}\"\nkey_domain = \"00f110\"\nkey_group = 7\n\
             msk_lifetime = \"1h\"\nmtk_interval = \"1s\"\nmtk_resend = \"250ms\"\n\
             mtk_destination = \"{mtk_dest}\"\nauthorized = \"*\"\n{transport}"
        )
    };
    let mut text = format!(
        "fqdn = \"bmsc.lab.example.org\"\nhttp_listen = \"127.0.0.1:0\"\n\
         admin_listen = \"127.0.0.2:0\"\ndata_dir = \"{}\"\nkey_export_socket = \"{}\"\n",
        dir.join("data").display(),
        socket.display()
    );
    text += &service(
        TV,
        "transport = \"streaming\"\n[services.srtp]\nssrc = 4660\n",
    );
    text += &service(FILE, "transport = \"download\"\n");
    for i in 0..extra {
        text += &service(&format!("urn:lab:file{i}"), "transport = \"download\"\n");
    }
    Config::parse(&text).expect("config")
}

/// The keys the distribution made current, by (MSK ID, MTK ID) in hex: MTK and salt, seen by
/// polling `Bmsc::current_mtks` until the returned flag is set.
type Seen = Arc<Mutex<HashMap<(String, u16), (String, Option<String>)>>>;

fn watch_current(bmsc: &Bmsc) -> (Seen, Arc<std::sync::atomic::AtomicBool>) {
    let seen: Seen = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mtks, s, d) = (bmsc.current_mtks().clone(), seen.clone(), done.clone());
    tokio::spawn(async move {
        while !d.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(k) = mtks.media_key(TV) {
                s.lock().unwrap().insert(
                    (k.msk_id.to_string(), k.mtk_id.0),
                    (
                        hex::encode(k.mtk.as_bytes()),
                        Some(hex::encode(k.salt.as_bytes())),
                    ),
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (seen, done)
}

async fn wait_for_current(bmsc: &Bmsc) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while bmsc.current_mtks().get(TV).is_none() || bmsc.current_mtks().get(FILE).is_none() {
        assert!(Instant::now() < deadline, "no current MTK");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Client {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    _write: tokio::net::unix::OwnedWriteHalf,
}

impl Client {
    async fn connect(path: &Path) -> Self {
        let (read, write) = UnixStream::connect(path)
            .await
            .expect("connects")
            .into_split();
        Self {
            lines: BufReader::new(read).lines(),
            _write: write,
        }
    }

    /// The next line as JSON, checked for the documented format, or `None` at `within`.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .ok()?
            .expect("reads")
            .expect("the server keeps the connection");
        Some(checked(&line))
    }
}

/// Parses one line and checks every field's form.
fn checked(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let obj = v.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "service",
            "key_domain",
            "msk_id",
            "mtk_id",
            "mki",
            "mtk",
            "salt",
            "valid_from"
        ]
    );
    assert_eq!(v["key_domain"], "00f110");
    let msk_id = v["msk_id"].as_str().unwrap();
    assert_eq!(msk_id.len(), 8);
    assert!(msk_id.starts_with("0007"), "Key Group 7: {msk_id}");
    let mtk_id = u16::try_from(v["mtk_id"].as_u64().unwrap()).unwrap();
    assert_eq!(v["mki"], format!("{msk_id}{mtk_id:04x}"));
    assert_eq!(hex::decode(v["mtk"].as_str().unwrap()).unwrap().len(), 16);
    match v["service"].as_str().unwrap() {
        TV => assert_eq!(hex::decode(v["salt"].as_str().unwrap()).unwrap().len(), 14),
        _ => assert!(
            v["salt"].is_null(),
            "a download service has no salt: {line}"
        ),
    }
    parse_rfc3339(v["valid_from"].as_str().unwrap()).expect("valid_from is RFC 3339");
    v
}

fn name(v: &Value) -> (String, u16) {
    (
        v["msk_id"].as_str().unwrap().to_owned(),
        u16::try_from(v["mtk_id"].as_u64().unwrap()).unwrap(),
    )
}

fn socket_path(dir: &Path) -> PathBuf {
    dir.join("keys.sock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_the_current_keys_then_each_new_mtk_as_the_distribution_made_them() {
    let dir = mbms_lab::TempDir::new("key-export");
    let path = socket_path(dir.path());
    let bmsc = Bmsc::start_with(config(dir.path(), &path, 0), Tuning::default())
        .await
        .expect("starts");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert!(
        !dir.path().join(".keys.sock.new").exists(),
        "no temporary name left"
    );
    let (seen, done) = watch_current(&bmsc);
    wait_for_current(&bmsc).await;

    // On connecting: the current key of each service at once (and an announced one, if any).
    let current = bmsc.current_mtks().media_key(TV).unwrap();
    let mut first = Client::connect(&path).await;
    let mut lines = Vec::new();
    while let Some(v) = first.next(Duration::from_millis(300)).await {
        lines.push(v);
    }
    assert!(lines.len() >= 2, "the held keys at once: {lines:?}");
    for service in [TV, FILE] {
        assert!(
            lines.iter().any(|v| v["service"] == service
                && name(v).1 >= current.mtk_id.0
                && v["msk_id"] == current.msk_id.to_string()),
            "{service}: its current key on connecting: {lines:?}"
        );
    }
    let held = lines.len();

    // Then each new MTK, announced and made current.
    let deadline = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < deadline {
        if let Some(v) = first.next(Duration::from_millis(100)).await {
            lines.push(v);
        }
    }
    let newest = lines.iter().map(|v| name(v).1).max().unwrap();
    assert!(
        newest >= current.mtk_id.0 + 2,
        "new MTKs came: {:?}",
        &lines[held..]
    );

    // A second client connecting later gets the keys held then.
    let now_current = bmsc.current_mtks().media_key(TV).unwrap();
    let mut second = Client::connect(&path).await;
    let mut late = Vec::new();
    while let Some(v) = second.next(Duration::from_millis(300)).await {
        late.push(v);
    }
    assert!(
        late.iter().any(|v| v["service"] == TV
            && name(v).1 >= now_current.mtk_id.0
            && v["msk_id"] == now_current.msk_id.to_string()),
        "the second client's held keys: {late:?}"
    );
    // The first client is still served.
    assert!(first.next(Duration::from_secs(3)).await.is_some());
    done.store(true, std::sync::atomic::Ordering::Relaxed);

    // Every line holds what the distribution made for that (MSK ID, MTK ID), the same MTK for
    // every service of the MSK.
    let seen = seen.lock().unwrap().clone();
    let mut by_name: HashMap<(String, u16), String> = HashMap::new();
    let mut matched = 0;
    for v in lines.iter().chain(&late) {
        let mtk = v["mtk"].as_str().unwrap().to_owned();
        if let Some(other) = by_name.insert(name(v), mtk.clone()) {
            assert_eq!(other, mtk, "one MTK per (MSK ID, MTK ID)");
        }
        if v["service"] == TV
            && let Some((m, salt)) = seen.get(&name(v))
        {
            assert_eq!(*m, mtk, "{v}");
            assert_eq!(salt.as_deref(), v["salt"].as_str(), "{v}");
            matched += 1;
        }
    }
    assert!(matched >= 3, "only {matched} lines matched current_mtks");
    // The announce of an MTK says when it becomes current; the switch says when it did.
    for v in &lines[held..] {
        let from = parse_rfc3339(v["valid_from"].as_str().unwrap()).unwrap();
        assert!(
            from < std::time::SystemTime::now() + Duration::from_secs(2),
            "{v}"
        );
    }
    assert_eq!(bmsc.metrics().key_export_connections.get(), 2);
    assert_eq!(bmsc.metrics().key_export_clients.get(), 2);
    drop(first);
    drop(second);
    bmsc.shutdown().await.expect("clean stop");
    assert!(!path.exists(), "the socket is removed at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_disconnected_and_the_others_go_on() {
    let dir = mbms_lab::TempDir::new("key-export-slow");
    let path = socket_path(dir.path());
    let tuning = Tuning {
        export_queue: 2,
        export_send_buffer: Some(4096),
        ..Tuning::default()
    };
    // Ten services: twenty lines a second.
    let bmsc = Bmsc::start_with(config(dir.path(), &path, 8), tuning)
        .await
        .expect("starts");
    wait_for_current(&bmsc).await;
    let mut idle = UnixStream::connect(&path).await.expect("connects");
    let mut reader = Client::connect(&path).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut read = 0;
    while bmsc.metrics().key_export_slow_clients.get() == 0 {
        assert!(Instant::now() < deadline, "the idle client was not cut off");
        if reader.next(Duration::from_millis(50)).await.is_some() {
            read += 1;
        }
    }
    // The idle client finds its connection closed once it reads what was sent.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("closed by the server")
        .expect("reads");
    assert!(!rest.is_empty());
    // The reading client was not held up and goes on.
    let before = read;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if reader.next(Duration::from_millis(100)).await.is_some() {
            read += 1;
        }
    }
    assert!(read > before, "the reading client goes on");
    assert!(read >= 20, "the reading client got {read} lines");
    assert_eq!(bmsc.metrics().key_export_slow_clients.get(), 1);
    assert_eq!(bmsc.metrics().key_export_clients.get(), 1);
    let text = bmsc.metrics().render();
    assert!(text.contains("mbms_bmsc_key_export_slow_clients_total 1\n"));
    bmsc.shutdown().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced_and_anything_else_at_the_path_is_refused() {
    let dir = mbms_lab::TempDir::new("key-export-path");
    let path = socket_path(dir.path());

    // A regular file is not replaced.
    std::fs::write(&path, b"not a socket").unwrap();
    match Bmsc::start_with(config(dir.path(), &path, 0), Tuning::default()).await {
        Err(e @ ServeError::KeyExport(ExportError::NotASocket(_))) => {
            assert!(e.to_string().starts_with("key_export_socket: "), "{e}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started over a regular file"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    std::fs::remove_file(&path).unwrap();

    // A socket another server answers on is in use.
    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    match Bmsc::start_with(config(dir.path(), &path, 0), Tuning::default()).await {
        Err(e @ ServeError::KeyExport(ExportError::InUse(_))) => {
            assert!(e.to_string().starts_with("key_export_socket: "), "{e}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started over a live socket"),
    }
    // Once nobody answers, the socket is stale and replaced; so is the private directory a
    // stop in the middle of a start may leave.
    drop(live);
    assert!(path.exists());
    let private = dir.path().join(".keys.sock.new");
    std::fs::create_dir(&private).unwrap();
    drop(std::os::unix::net::UnixListener::bind(private.join("s")).unwrap());
    let bmsc = Bmsc::start_with(config(dir.path(), &path, 0), Tuning::default())
        .await
        .expect("starts over a stale socket");
    assert!(!private.exists(), "the private directory is gone");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    wait_for_current(&bmsc).await;
    let mut client = Client::connect(&path).await;
    assert!(client.next(Duration::from_secs(2)).await.is_some());
    bmsc.shutdown().await.expect("clean stop");
    assert!(!path.exists());
}
