//! Helpers shared by the integration tests: loading `proto-vectors/`.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto-vectors")
}

/// Every JSON vector file, by name (without `.json`), sorted.
pub fn load_all() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(vectors_dir()).expect("proto-vectors/ readable") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("vector readable");
        let v: Value = serde_json::from_str(&text).expect("vector is JSON");
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        out.push((name, v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(vectors_dir().join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).expect("vector is JSON")
}

pub fn hex_field(v: &Value, path: &[&str]) -> Vec<u8> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    hex::decode(
        cur.as_str()
            .unwrap_or_else(|| panic!("{path:?} is not a string")),
    )
    .unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Every complete MIKEY message among the vectors: (name, octets).
pub fn all_messages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, v) in load_all() {
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            out.push((name.clone(), hex::decode(m).expect("hex")));
        }
        if let Some(list) = v.get("messages").and_then(Value::as_array) {
            for m in list {
                let n = m["name"].as_str().expect("name").to_string();
                out.push((
                    n,
                    hex::decode(m["hex"].as_str().expect("hex")).expect("hex"),
                ));
            }
        }
    }
    out
}

/// An interop peer program found on PATH (and its extra files present), or
/// `None`: the test then skips with a message, unless `MBMS_REQUIRE_ORACLES=1`,
/// where a missing peer is a failure.
pub fn oracle(program: &str, extra_files: &[&str], install_hint: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .filter(|_| {
            extra_files
                .iter()
                .all(|f| std::path::Path::new(f).is_file())
        });
    if found.is_none() {
        let required = std::env::var("MBMS_REQUIRE_ORACLES").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "MBMS_REQUIRE_ORACLES=1 and {program} is not usable ({install_hint})"
        );
        eprintln!(
            "SKIPPED: {program} not usable ({install_hint}); set MBMS_REQUIRE_ORACLES=1 to make this a failure"
        );
    }
    found
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mbms-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command to completion off the async executor.
pub async fn run_blocking(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("program runs")
}

/// A port free on 127.0.0.1 for both UDP and TCP. It is drawn below the
/// system's ephemeral range (32768 and up on Linux), so that no socket bound
/// to port 0 in the meantime (the BM-SC's own, another test's) can be handed
/// the same one.
pub fn free_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().rotate_left(16);
    let mut x = u64::from(seed) | 1;
    for _ in 0..1000 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20_000 + (x % 12_000) as u16;
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port below the ephemeral range")
}
