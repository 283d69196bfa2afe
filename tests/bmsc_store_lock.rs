//! One BM-SC per store: the store's lock refuses a second BM-SC on the same `data_dir`, in one
//! process and across processes, naming the holder's PID, and the operating system releases it
//! when the holder is killed. `bmsc status` opens the store read-only beside a running BM-SC and
//! creates nothing on a fresh configuration.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mbms_keys::bmsc::store::{SqliteStore, StoreError};
use mbms_keys::crypto::StateKey;
use mbms_lab::bmsc_config::{LabConfig, LabService, LabSubscriber};
use mbms_lab::{TempDir, free_port, listing};

fn exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mbms-keys"));
    c.env_remove("MBMS_KEK_FILE").env("MBMS_LOG", "warn");
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

fn serve(config: &Path) -> Serve {
    Serve(
        exe()
            .args(["bmsc", "serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bmsc serve"),
    )
}

/// Waits until the server listens on `port` (it took the store's lock before).
fn wait_listening(server: &mut Serve, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.0.try_wait().expect("try_wait") {
            panic!("bmsc serve exited with {status}");
        }
        assert!(Instant::now() < deadline, "bmsc serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a server that must exit; one still running after 20 s fails the test.
fn wait_exit(mut server: Serve) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.0.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = server.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return (status, err);
        }
        assert!(
            Instant::now() < deadline,
            "a second bmsc serve on the same store kept running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A configuration on `data_dir` listening for Key Requests on `http_port`.
fn write_config(dir: &Path, name: &str, data_dir: &Path, http_port: u16) -> PathBuf {
    let mut c = LabConfig::new(
        "bmsc.example.org",
        data_dir.to_path_buf(),
        free_port(),
        LabService {
            id: "urn:example:mbms:lock".to_owned(),
            msk_lifetime: "1h",
            mtk_interval: "10m",
            mtk_resend: "10m",
            mtk_destination: ([127, 0, 0, 1], free_port()).into(),
        },
    );
    c.http_port = http_port;
    c.subscribers = vec![LabSubscriber {
        btid: "lock@bsf.example.org".to_owned(),
        impi: "lock@ims.example.org".to_owned(),
        ks_naf: [7; 32],
    }];
    let path = dir.join(name);
    std::fs::write(&path, c.to_toml()).expect("config written");
    path
}

fn status(config: &Path) -> Output {
    exe()
        .args(["bmsc", "status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("bmsc status")
}

#[test]
fn a_second_open_of_a_store_in_use_is_refused_naming_our_pid() {
    let dir = TempDir::new("lock-inproc");
    let (data, kek) = (dir.path().join("data"), dir.path().join("kek"));
    let first = SqliteStore::open_with_kek_file(&data, &kek).expect("first");

    let err = SqliteStore::open(&data, StateKey::from_bytes([1; 32])).expect_err("second");
    match &err {
        StoreError::Locked { path, pid } => {
            assert_eq!(path, &data.join("bmsc.lock"));
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!("process {}", std::process::id())),
        "{text}"
    );
    // Refused before anything else: a KEK file given to the second open is not created.
    let other_kek = dir.path().join("other-kek");
    assert!(matches!(
        SqliteStore::open_with_kek_file(&data, &other_kek),
        Err(StoreError::Locked { .. })
    ));
    assert!(!other_kek.exists());
    // A reader takes no lock.
    drop(SqliteStore::open_read_only(&data, &kek).expect("read-only beside the holder"));

    drop(first);
    drop(SqliteStore::open_with_kek_file(&data, &kek).expect("free again after the drop"));
}

#[test]
fn a_second_bmsc_serve_on_one_store_exits_naming_the_first_and_kill_9_frees_the_store() {
    let dir = TempDir::new("lock-serve");
    let data = dir.path().join("data");
    let (http1, http2) = (free_port(), free_port());
    let config1 = write_config(dir.path(), "first.toml", &data, http1);
    // Another listener, so that only the store can stop the second.
    let config2 = write_config(dir.path(), "second.toml", &data, http2);

    let mut first = serve(&config1);
    wait_listening(&mut first, http1);
    let first_pid = first.0.id();

    let (code, stderr) = wait_exit(serve(&config2));
    assert!(!code.success(), "{stderr}");
    assert!(stderr.contains(&first_pid.to_string()), "{stderr}");
    assert!(stderr.contains("bmsc.lock"), "{stderr}");

    // `bmsc status` reads the store while the first runs.
    let out = status(&config1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(v["services"][0]["id"], "urn:example:mbms:lock");

    // kill -9: the operating system releases the lock; the stale PID in the file is no
    // obstacle.
    first.0.kill().expect("kill -9");
    let _ = first.0.wait();
    let mut third = serve(&config2);
    wait_listening(&mut third, http2);
    let held = std::fs::read_to_string(data.join("bmsc.lock")).expect("lock file");
    assert_eq!(held.trim(), third.0.id().to_string());
}

#[test]
fn bmsc_status_on_a_fresh_configuration_creates_nothing() {
    let dir = TempDir::new("status-fresh");
    let data = dir.path().join("data");
    let config = write_config(dir.path(), "bmsc.toml", &data, free_port());
    let before = listing(dir.path());

    let out = status(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no store at"), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert_eq!(listing(dir.path()), before);

    // With the KEK elsewhere (MBMS_KEK_FILE) as well.
    let out = exe()
        .env("MBMS_KEK_FILE", dir.path().join("secrets/kek"))
        .args(["bmsc", "status", "--config"])
        .arg(&config)
        .output()
        .expect("bmsc status");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(listing(dir.path()), before);
}
