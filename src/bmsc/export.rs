//! The key export for external encryptors (download packagers, hardware encryptors): a local
//! Unix domain socket (`key_export_socket`, mode 0600, never a network port) on which every
//! connected client reads the MTKs as JSON lines.
//!
//! On connecting, a client gets one line per MTK held now — of every service (in service id
//! order) its current MTK, and the one announced for the next switch if there is one — then one
//! line per MTK as the distributor makes it: when it is announced (`valid_from` in the future:
//! the planned switch), and again when it becomes current (`valid_from`: the moment of the
//! switch). A consumer keeps keys by (`msk_id`, `mtk_id`); a line for a key it holds only
//! updates `valid_from`. An MTK restored from the store at start is current from the start.
//!
//! ```json
//! {"service":"urn:tv","key_domain":"00f110","msk_id":"00070001","mtk_id":3,"mki":"000700010003","mtk":"…","salt":"…","valid_from":"2030-01-01T00:00:10.000Z"}
//! ```
//!
//! Each client has a bounded queue ([`Tuning::export_queue`] lines beyond its socket buffer):
//! a client that falls further behind is disconnected and counted
//! (`mbms_bmsc_key_export_slow_clients_total`); the distributor never waits for a client.
//! What clients send is read and ignored. Logs carry connections and counts, never a key.
//!
//! [`Tuning::export_queue`]: crate::bmsc::distribution::Tuning::export_queue

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::bmsc::config::format_rfc3339;
use crate::bmsc::distribution::{CurrentMtks, ExportedMtk};
use crate::bmsc::metrics::Metrics;
use crate::mbms::profile::srtp_mki;

/// Clients served at once; one more is closed at once.
pub const MAX_CLIENTS: usize = 64;

/// How long a socket found at the path may take to answer before it counts as in use.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// After a failed accept (out of file descriptors), the listener waits this long.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The key-export socket could not be set up. Every variant names the configuration key.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum ExportError {
    /// Something other than a socket is at the path: it is not replaced.
    #[error("key_export_socket: {0} exists and is not a socket")]
    NotASocket(PathBuf),
    /// A server answers on the socket at the path.
    #[error("key_export_socket: {0} is in use by another server")]
    InUse(PathBuf),
    /// A system call failed.
    #[error("key_export_socket: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |source| ExportError::Io { what, path, source }
}

/// The bound key-export socket.
#[derive(Debug)]
pub struct ExportListener {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file: it is removed at the end only if still ours.
    file: (u64, u64),
}

impl ExportListener {
    /// Binds the socket at `path` with mode 0600, so that it is never reachable with wider
    /// permissions: bound in a private directory (mode 0700, `.<name>.new` beside `path`),
    /// restricted, then renamed into place. A stale socket at `path` (no server answers) is
    /// replaced; anything else there is refused.
    ///
    /// # Errors
    /// [`ExportError::NotASocket`], [`ExportError::InUse`], or a failed system call.
    pub async fn bind(path: &Path) -> Result<Self, ExportError> {
        check_replaceable(path).await?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(ExportError::NotASocket(path.to_path_buf()));
        };
        let mut private_name = std::ffi::OsString::from(".");
        private_name.push(name);
        private_name.push(".new");
        let private = dir.join(private_name);
        remove_private_dir(&private)?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(io_err("creating", &private))?;
        let tmp = private.join("s");
        let placed = UnixListener::bind(&tmp)
            .map_err(io_err("binding", &tmp))
            .and_then(|listener| {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .map_err(io_err("restricting", &tmp))?;
                std::fs::rename(&tmp, path).map_err(io_err("renaming to", path))?;
                let meta = std::fs::symlink_metadata(path).map_err(io_err("reading", path))?;
                Ok(Self {
                    listener,
                    path: path.to_path_buf(),
                    file: (meta.dev(), meta.ino()),
                })
            });
        let removed = remove_private_dir(&private);
        let this = placed?;
        removed?;
        Ok(this)
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ExportListener {
    /// Removes the socket file if it is still the one this listener bound (also when the start
    /// fails after binding it).
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.file
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Nothing at `path`, or a socket no server answers on.
async fn check_replaceable(path: &Path) -> Result<(), ExportError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("reading", path)(e)),
        Ok(meta) if !meta.file_type().is_socket() => {
            Err(ExportError::NotASocket(path.to_path_buf()))
        }
        Ok(_) => match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            Ok(Err(e)) => Err(io_err("probing", path)(e)),
            Ok(Ok(_)) | Err(_) => Err(ExportError::InUse(path.to_path_buf())),
        },
    }
}

/// Removes the private directory of [`ExportListener::bind`] with the socket it may hold (left
/// by a stop in the middle of a start); a file of that name is not touched.
fn remove_private_dir(private: &Path) -> Result<(), ExportError> {
    match std::fs::symlink_metadata(private) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("reading", private)(e)),
        Ok(meta) if !meta.is_dir() => return Err(ExportError::NotASocket(private.to_path_buf())),
        Ok(_) => {}
    }
    let tmp = private.join("s");
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("removing", &tmp)(e)),
        _ => {}
    }
    std::fs::remove_dir(private).map_err(io_err("removing", private))
}

/// The JSON line of `m`, newline included, in a buffer zeroized on drop (it holds the key).
#[must_use]
pub fn export_line(m: &ExportedMtk) -> Zeroizing<Vec<u8>> {
    fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            out.push(DIGITS[usize::from(b >> 4)]);
            out.push(DIGITS[usize::from(b & 0x0f)]);
        }
    }
    let service = serde_json::to_string(&*m.service).unwrap_or_else(|_| "\"\"".to_owned());
    // Sized once, so the key is never left behind in a reallocated buffer.
    let mut out = Zeroizing::new(Vec::with_capacity(service.len() + 256));
    out.extend_from_slice(b"{\"service\":");
    out.extend_from_slice(service.as_bytes());
    out.extend_from_slice(b",\"key_domain\":\"");
    out.extend_from_slice(m.key_domain.to_string().as_bytes());
    out.extend_from_slice(b"\",\"msk_id\":\"");
    out.extend_from_slice(m.msk_id.to_string().as_bytes());
    out.extend_from_slice(b"\",\"mtk_id\":");
    out.extend_from_slice(m.mtk_id.0.to_string().as_bytes());
    out.extend_from_slice(b",\"mki\":\"");
    push_hex(&mut out, &srtp_mki(m.msk_id, m.mtk_id));
    out.extend_from_slice(b"\",\"mtk\":\"");
    push_hex(&mut out, m.mtk.as_bytes());
    out.extend_from_slice(b"\",\"salt\":");
    match &m.salt {
        Some(salt) => {
            out.push(b'"');
            push_hex(&mut out, salt.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"valid_from\":\"");
    out.extend_from_slice(format_rfc3339(m.valid_from).as_bytes());
    out.extend_from_slice(b"\"}\n");
    out
}

/// How the export of one client should behave.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Lines queued beyond the socket buffer (at least the lines held on connecting).
    pub queue: usize,
    /// `SO_SNDBUF` of each connection; `None`: the system's.
    pub send_buffer: Option<usize>,
}

/// Why a client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed it, or a write failed.
    Closed,
    /// The client fell behind by more than its queue.
    Slow,
    /// No more MTKs will come (the distribution stopped).
    Stopped,
}

/// Serves the key export on `listener` until `stop` turns true, then closes every client and
/// removes the socket file.
pub async fn run_export(
    listener: ExportListener,
    mtks: CurrentMtks,
    limits: ClientLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut clients: JoinSet<()> = JoinSet::new();
    tracing::info!(path = %listener.path.display(), "key export listening");
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            accepted = listener.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if clients.len() >= MAX_CLIENTS {
                        tracing::warn!(clients = clients.len(), "key export: client refused, too many connected");
                        continue;
                    }
                    if let Some(size) = limits.send_buffer {
                        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
                    }
                    let (held, feed) = mtks.subscribe_exported();
                    metrics.key_export_connections.inc();
                    let connected = metrics.key_export_clients.get() + 1;
                    metrics.key_export_clients.set(connected);
                    tracing::info!(clients = connected, keys = held.len(), "key export: client connected");
                    let m = metrics.clone();
                    clients.spawn(async move {
                        let end = serve_client(stream, &held, feed, limits.queue, &m).await;
                        let left = m.key_export_clients.get().saturating_sub(1);
                        m.key_export_clients.set(left);
                        match end {
                            End::Slow => {
                                m.key_export_slow_clients.inc();
                                tracing::warn!(clients = left, "key export: client disconnected, it did not keep up");
                            }
                            End::Closed | End::Stopped => {
                                tracing::info!(clients = left, "key export: client disconnected");
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("key export: accept: {e}");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
        }
    }
    clients.shutdown().await;
    metrics.key_export_clients.set(0);
    drop(listener);
    tracing::info!("key export stopped");
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Writes the held MTKs, then every exported one, to one client until it closes, falls
/// behind, or the distribution stops.
async fn serve_client(
    mut stream: UnixStream,
    held: &[ExportedMtk],
    mut feed: broadcast::Receiver<ExportedMtk>,
    queue: usize,
    metrics: &Metrics,
) -> End {
    let limit = queue.max(held.len()).max(1);
    let mut lines: VecDeque<Zeroizing<Vec<u8>>> = held.iter().map(export_line).collect();
    let mut offset = 0usize;
    let mut ignored = [0u8; 512];
    let (mut rd, mut wr) = stream.split();
    loop {
        let pending = lines
            .front()
            .and_then(|l| l.get(offset..))
            .unwrap_or_default();
        tokio::select! {
            biased;
            received = feed.recv() => match received {
                Ok(m) => {
                    if lines.len() >= limit {
                        return End::Slow;
                    }
                    lines.push_back(export_line(&m));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return End::Slow,
                Err(broadcast::error::RecvError::Closed) => return End::Stopped,
            },
            // Cancel-safe: a write that loses the race wrote nothing.
            written = wr.write(pending), if !pending.is_empty() => match written {
                Ok(0) | Err(_) => return End::Closed,
                Ok(n) => {
                    offset += n;
                    if lines.front().is_some_and(|l| offset >= l.len()) {
                        lines.pop_front();
                        offset = 0;
                        metrics.key_export_lines.inc();
                    }
                }
            },
            read = rd.read(&mut ignored) => match read {
                Ok(0) | Err(_) => return End::Closed,
                Ok(_) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::crypto::{Mtk, Salt};
    use crate::mikey::{KeyDomainId, MskId, MtkId};

    fn mtk(service: &str, salt: Option<Salt>) -> ExportedMtk {
        ExportedMtk {
            service: Arc::from(service),
            key_domain: KeyDomainId([0x00, 0xf1, 0x10]),
            msk_id: MskId::new(7, 1),
            mtk_id: MtkId(0x0103),
            mtk: Mtk::from_bytes([0xab; 16]),
            salt,
            valid_from: SystemTime::UNIX_EPOCH + Duration::from_millis(1_893_456_010_250),
        }
    }

    #[test]
    fn a_line_holds_every_field_in_the_documented_form() {
        let line = export_line(&mtk("urn:tv", Some(Salt::from_bytes([0x01; 14]))));
        assert_eq!(
            std::str::from_utf8(&line).unwrap_or_default(),
            concat!(
                "{\"service\":\"urn:tv\",\"key_domain\":\"00f110\",\"msk_id\":\"00070001\",",
                "\"mtk_id\":259,\"mki\":\"000700010103\",",
                "\"mtk\":\"abababababababababababababababab\",",
                "\"salt\":\"0101010101010101010101010101\",",
                "\"valid_from\":\"2030-01-01T00:00:10.250Z\"}\n"
            )
        );
    }

    #[test]
    fn a_download_line_has_a_null_salt_and_the_service_id_is_escaped() {
        let line = export_line(&mtk("a\"b\\c", None));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or(serde_json::Value::Null);
        assert_eq!(v["service"], "a\"b\\c");
        assert!(v["salt"].is_null());
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
