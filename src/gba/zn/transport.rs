//! The transport under a Diameter peer connection: the seam where TLS or SCTP would go.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connected byte stream a peer connection runs on.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// How a peer is reached. Only TCP is implemented; RFC 6733 §2.1 also has TLS/TCP, DTLS/SCTP
/// and SCTP, which would be more variants of this enum.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP (RFC 6733 §2.1).
    #[default]
    Tcp,
}

/// A connection to `addr` (`host:port`), opened within `timeout`; also returns the local IP,
/// which the CER announces as Host-IP-Address.
pub(super) async fn connect(
    transport: Transport,
    addr: &str,
    timeout: Duration,
) -> io::Result<(Box<dyn Stream>, std::net::IpAddr)> {
    match transport {
        Transport::Tcp => {
            let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            s.set_nodelay(true)?;
            let local = s.local_addr()?.ip();
            Ok((Box::new(s), local))
        }
    }
}
