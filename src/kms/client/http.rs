//! One Annex D exchange over HTTP/1.1 (hyper's client, as the UE's Key Request client): a fresh
//! connection, `POST` with `Authorization: Bearer`, the whole exchange under a timeout, the
//! response body read up to a bound.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{ClientConfig, KmsClientError};

/// `Content-Type` of requests and `Accept` (Annex D: XML bodies).
const XML: &str = "application/xml";

const USER_AGENT_VALUE: &str = concat!("mbms-keys/", env!("CARGO_PKG_VERSION"));

/// Where requests go: `http://host[:port][/prefix]`.
#[derive(Debug, Clone)]
pub(super) struct Target {
    host: String,
    port: u16,
    /// host\[:port\] as in the Host header.
    pub(super) authority: String,
    /// A path prefix before `/keymanagement/identity/v1`, without a trailing `/`.
    pub(super) prefix: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Self, KmsClientError> {
        let bad = |why: &str| {
            KmsClientError::Url(format!(
                "{why} in {:?}",
                url.chars().take(200).collect::<String>()
            ))
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("expected http:// (TLS is the deployment's terminator)"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let prefix = prefix.trim_end_matches('/');
        if prefix.contains(['?', '#', ' ']) || prefix.chars().any(char::is_control) {
            return Err(bad("bad path"));
        }
        if authority.is_empty() || authority.contains(['@', '?', '#']) {
            return Err(bad("expected host[:port]"));
        }
        let parse_port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("bad IPv6 literal"))?;
            match after {
                "" => (host, 80),
                p => (
                    host,
                    p.strip_prefix(':')
                        .and_then(parse_port)
                        .ok_or_else(|| bad("bad port"))?,
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, parse_port(p).ok_or_else(|| bad("bad port"))?),
                None => (authority, 80),
            }
        };
        if host.is_empty() || hyper::header::HeaderValue::from_str(authority).is_err() {
            return Err(bad("bad host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// Ends the connection task when the exchange is over (or abandoned on timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// POSTs `body` to `path` and returns the 200 response's body. On failure, the body read when
/// there was one (a 4xx/5xx answer), and the error.
pub(super) async fn post(
    target: &Target,
    path: &str,
    token: &str,
    body: Vec<u8>,
    config: &ClientConfig,
) -> Result<Vec<u8>, (Option<Vec<u8>>, KmsClientError)> {
    let limit = config.timeout;
    match tokio::time::timeout(limit, exchange(target, path, token, body, config)).await {
        Ok(r) => r,
        Err(_) => Err((None, KmsClientError::Timeout(limit))),
    }
}

async fn exchange(
    target: &Target,
    path: &str,
    token: &str,
    body: Vec<u8>,
    config: &ClientConfig,
) -> Result<Vec<u8>, (Option<Vec<u8>>, KmsClientError)> {
    let no_body = |e| (None, e);
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| KmsClientError::Connect {
            addr: target.authority.clone(),
            source,
        })
        .map_err(no_body)?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| (None, KmsClientError::Http(e.to_string())))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, target.authority.as_str())
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CONTENT_TYPE, XML)
        .header(ACCEPT, XML)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| (None, KmsClientError::InvalidRequest(e.to_string())))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| (None, KmsClientError::Http(e.to_string())))?;
    let (parts, incoming) = resp.into_parts();
    let max = config.max_response_body;
    let too_large = || (None, KmsClientError::ResponseTooLarge { max });
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(incoming, max).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) if e.is::<LengthLimitError>() => return Err(too_large()),
        Err(e) => return Err((None, KmsClientError::Http(e.to_string()))),
    };
    match parts.status {
        StatusCode::OK => Ok(body),
        StatusCode::UNAUTHORIZED => Err((Some(body), KmsClientError::Unauthorized)),
        StatusCode::FORBIDDEN => Err((Some(body), KmsClientError::Forbidden)),
        s => Err((Some(body), KmsClientError::Status(s.as_u16()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_with_an_optional_prefix() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("127.0.0.1", 8080, "")
        );
        let t = Target::parse("http://kms.example.org/base/").unwrap();
        assert_eq!((t.port, t.prefix.as_str()), (80, "/base"));
        let t = Target::parse("http://[::1]:9/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        for bad in [
            "https://kms.example.org",
            "kms.example.org",
            "http://",
            "http://h:0",
            "http://h:x",
            "http://u@h",
            "http://h/a?b",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(KmsClientError::Url(_))),
                "{bad}"
            );
        }
    }
}
