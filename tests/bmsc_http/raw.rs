//! Raw HTTP/1.1 on a socket, for requests a well-behaved client would not send.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use mbms_keys::mbms::digest::{Authorization, Challenge, ClientSession, Credentials};

use crate::harness::IO_LIMIT;

#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A `100 Continue` came first.
    pub continued: bool,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn challenge(&self) -> Challenge {
        assert_eq!(self.status, 401, "{self:?}");
        Challenge::parse(self.header("www-authenticate").expect("challenge")).expect("parses")
    }
}

pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response (skipping a `100 Continue`), by Content-Length.
pub async fn read_response(stream: &mut TcpStream) -> Raw {
    try_read_response(stream)
        .await
        .expect("a response before the connection closed")
}

/// As [`read_response`], or `None` when the server closes or resets the connection before a
/// whole response head arrived.
pub async fn try_read_response(stream: &mut TcpStream) -> Option<Raw> {
    let mut buf = Vec::new();
    let mut continued = false;
    loop {
        let mut chunk = [0u8; 8192];
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status: u16 = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .expect("status line");
            if status == 100 {
                continued = true;
                buf.drain(..end + 4);
                continue;
            }
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = timeout(IO_LIMIT, stream.read(&mut chunk))
                    .await
                    .expect("body in time")
                    .expect("read");
                assert!(n > 0, "connection closed inside a body");
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(Raw {
                status,
                headers,
                body: buf[end + 4..end + 4 + len].to_vec(),
                continued,
            });
        }
        let read = timeout(IO_LIMIT, stream.read(&mut chunk))
            .await
            .expect("response in time");
        match read {
            Ok(0) | Err(_) => {
                assert!(
                    buf.is_empty(),
                    "connection closed inside a response head: {:?}",
                    String::from_utf8_lossy(&buf)
                );
                return None;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One request on a fresh connection. An answer with `Connection: close` must be followed by
/// the close.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Raw {
    raw_or_closed(addr, bytes)
        .await
        .expect("a response before the connection closed")
}

/// As [`raw`], or `None` when the connection closes without an answer. The server may stop
/// reading before all of `bytes` is written.
pub async fn raw_or_closed(addr: SocketAddr, bytes: &[u8]) -> Option<Raw> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let r = try_read_response(&mut s).await?;
    if r.header("connection") == Some("close") {
        assert!(
            closed_within(&mut s, IO_LIMIT).await,
            "Connection: close is followed by the close: {r:?}"
        );
    }
    Some(r)
}

pub async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Raw {
    raw(addr, &request_bytes("POST", path, headers, body)).await
}

/// Whether the server closes `stream` within `limit` (EOF or reset).
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut b = [0u8; 1024];
    loop {
        match timeout(limit, stream.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

pub async fn session(addr: SocketAddr, path: &str) -> ClientSession {
    ClientSession::new(post(addr, path, &[], b"").await.challenge())
}

/// An authenticated request with `session`; the response and what was sent.
pub async fn authed(
    addr: SocketAddr,
    session: &mut ClientSession,
    creds: &Credentials,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (Raw, Authorization) {
    let auth = session
        .authorize(creds, "POST", path, body)
        .expect("authorize");
    let resp = post(
        addr,
        path,
        &[
            ("content-type", content_type),
            ("authorization", auth.header_value()),
        ],
        body,
    )
    .await;
    (resp, auth)
}
