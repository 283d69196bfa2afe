//! The mbms-keys lab (not published): the measurements of `benches/RESULTS.md` (`mbms-lab
//! bench ...`), the loopback UE farm and the `kill -9` harness they drive, and the helpers the
//! integration tests of `mbms-keys` share with them, so that each is written once:
//!
//! - [`oracle`](mod@oracle): finding an interop peer on `PATH`, skipping or failing when it is missing;
//! - [`TempDir`], [`free_port`], [`median`];
//! - [`lighttpd`]: lighttpd serving a Digest-protected file, the HTTP peer of the tests and of
//!   `bench http`;
//! - [`bmsc_config`]: the BM-SC configuration text of the labs;
//! - [`bsf`]: Debian's freeDiameterd with our Zn extension as the BSF of the Zn tests and `bench zn`;
//! - [`fake_bsf`]: a scripted Diameter Zn peer (BSF) on loopback;
//! - [`multicast`]: loopback IPv4 multicast groups and joined sockets;
//! - [`postgres`](mod@postgres): a throwaway PostgreSQL server (`initdb` + `pg_ctl`) for the
//!   PostgreSQL tests and `bench cluster`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

pub mod bench;
pub mod bmsc_config;
pub mod bsf;
pub mod fake_bsf;
pub mod lighttpd;
pub mod multicast;
pub mod oracle;
pub mod postgres;

pub use oracle::{find_on_path, oracle};

/// A fresh directory under the system's temporary directory, removed with its contents on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `mbms-<tag>-<pid>-<n>-<nanos>` under the temporary directory; panics if it
    /// cannot (for tests: [`TempDir::try_new`] says why instead).
    pub fn new(tag: &str) -> Self {
        Self::try_new(tag).unwrap_or_else(|e| panic!("temporary directory for {tag}: {e}"))
    }

    /// Creates `mbms-<tag>-<pid>-<n>-<nanos>` under the temporary directory.
    pub fn try_new(tag: &str) -> std::io::Result<Self> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mbms-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    /// Creates `dir` (and its parents) and removes it with its contents on drop.
    pub fn at(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file and directory under `dir`, with its length: two listings compare equal when a
/// command created, removed or resized nothing.
///
/// # Panics
/// When `dir` cannot be read (for tests).
pub fn listing(dir: &std::path::Path) -> std::collections::BTreeSet<(PathBuf, u64)> {
    let mut out = std::collections::BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let meta = std::fs::metadata(&p).expect("metadata");
            if meta.is_dir() {
                todo.push(p.clone());
            }
            out.insert((p, meta.len()));
        }
    }
    out
}

/// A port free for both UDP and TCP on every local address. It is drawn below the system's
/// ephemeral range (32768 and up on Linux), so that no socket bound to port 0 in the meantime (the
/// BM-SC's own, another test's) can be handed the same one. The check binds the wildcard address,
/// which fails while any address holds the port (a lab UE on 127.0.0.11, say), and a port is
/// handed out at most once per process, so that tests running side by side never share one.
/// Panics after 1000 tries.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().rotate_left(16);
    let mut x = u64::from(seed) | 1;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20_000 + (x % 12_000) as u16;
        if !handed_out.contains(&port)
            && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
            && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
        {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free port below 32000");
}

/// The median of `values` (the upper one of the two middle values for an even count); `None`
/// when empty.
pub fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> Option<T> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len() / 2).copied()
}

/// The item of `items` whose `key` is the median of the keys (as [`median`]); `None` when
/// empty.
pub fn median_by<T: Clone>(items: &[T], key: impl Fn(&T) -> f64) -> Option<T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    v.get(v.len() / 2).map(|t| (*t).clone())
}

/// A multi-threaded tokio runtime, or the exit code after saying why there is none.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: starting the runtime: {e}");
            ExitCode::from(1)
        })
}

/// Runs a bench to its end on a fresh [`runtime`]: exit 0, or 1 with its error on standard
/// error.
pub fn block_on_bench(bench: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Reads the octets named by `arg`: hex (white space allowed), `@FILE` holding hex, or `-` for
/// standard input.
pub fn read_hex_arg(arg: &str) -> Result<Vec<u8>, String> {
    let text = if arg == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("standard input: {e}"))?
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?
    } else {
        arg.to_owned()
    };
    let compact: String = text.split_whitespace().collect();
    hex::decode(compact).map_err(|e| format!("invalid hex: {e}"))
}

#[cfg(test)]
mod tests {
    use super::{median, median_by};

    #[test]
    fn median_is_the_middle_value_or_none() {
        assert_eq!(median(vec![3, 1, 2]), Some(2));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median::<u32>(vec![]), None);
        assert_eq!(
            median_by(&[("a", 9.0), ("b", 1.0), ("c", 5.0)], |p| p.1),
            Some(("c", 5.0))
        );
    }
}
