//! systemd readiness notification (`Type=notify`, sd_notify(3)): one datagram to the Unix
//! socket named by `$NOTIFY_SOCKET`. Without that variable, nothing is sent. An abstract
//! socket name (`@...`) is not supported: systemd passes a path.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The environment variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Sends `state` (e.g. `READY=1`, `STOPPING=1`, `RELOADING=1`) to `$NOTIFY_SOCKET` if set.
/// Returns whether it was sent; a failure is logged, never fatal.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os(NOTIFY_SOCKET_ENV).filter(|p| !p.is_empty()) else {
        return false;
    };
    match send(Path::new(&path), state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, state, "systemd notification not sent");
            false
        }
    }
}

/// Sends `state` to the datagram socket at `path`.
///
/// # Errors
/// The socket cannot be created, the path is abstract (`@...`) or the send fails.
pub fn send(path: &Path, state: &str) -> std::io::Result<()> {
    if path.as_os_str().as_encoded_bytes().first() == Some(&b'@') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "abstract notification sockets are not supported",
        ));
    }
    let socket = UnixDatagram::unbound()?;
    socket.send_to(state.as_bytes(), path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_arrives_as_one_datagram() {
        let dir = std::env::temp_dir().join(format!("mbms-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).expect("bind");
        send(&path, "READY=1").expect("sent");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_abstract_name_is_refused() {
        assert!(send(Path::new("@abstract"), "READY=1").is_err());
    }
}
