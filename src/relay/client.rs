//! The device side of the relay API (docs/relay.md §2): open a transfer and post its envelope,
//! look at the inbox (long-poll), fetch, acknowledge, ask a transfer's state. Plain HTTP/1.1
//! over hyper; answers over [`MAX_ANSWER`] octets are refused.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use thiserror::Error;

use super::Purpose;

/// Longest answer read.
pub const MAX_ANSWER: usize = 256 * 1024;
/// Time a request gets beyond its long-poll wait.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum ClientError {
    /// No answer (connection, timeout, too long).
    #[error("relay: {0}")]
    Transport(String),
    /// The relay refused: its status and reason.
    #[error("relay answered {status}: {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `error` of its answer.
        reason: String,
    },
    /// An answer that is not what the API gives.
    #[error("relay: unexpected answer: {0}")]
    Answer(String),
}

/// A client of one relay with one access token. The token is redacted in `Debug`.
pub struct RelayClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient")
            .field("base", &self.base)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

impl RelayClient {
    /// A client of the relay at `relay` (`http://host:port`, the API under `/relay/v1`);
    /// must be made inside a tokio runtime.
    #[must_use]
    pub fn new(relay: &str, token: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: format!("{}/relay/v1", relay.trim_end_matches('/')),
            token: zeroize::Zeroizing::new(token.trim().to_owned()),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        extra: Duration,
    ) -> Result<(Bytes, String), ClientError> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.token.as_str()))
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let run = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?
                .to_bytes();
            if (200..300).contains(&status) {
                Ok((body, ct))
            } else {
                let reason = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                Err(ClientError::Refused { status, reason })
            }
        };
        tokio::time::timeout(TIMEOUT + extra, run)
            .await
            .map_err(|_| ClientError::Transport("no answer in time".into()))?
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        extra: Duration,
    ) -> Result<Value, ClientError> {
        let (b, _) = self.call(method, path, body, content_type, extra).await?;
        serde_json::from_slice(&b).map_err(|e| ClientError::Answer(e.to_string()))
    }

    /// Opens a transfer to `target`: the relay's answer (`id`, `target_uid`, ...).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn open(&self, target: &str, purpose: Purpose) -> Result<Value, ClientError> {
        let body = json!({"target": target, "purpose": purpose.name()}).to_string();
        self.json(
            Method::POST,
            "/transfers",
            body.into_bytes(),
            "application/json",
            Duration::ZERO,
        )
        .await
    }

    /// Posts the envelope of transfer `id`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn post(&self, id: &str, envelope: &[u8]) -> Result<Value, ClientError> {
        self.json(
            Method::PUT,
            &format!("/transfers/{id}/envelope"),
            envelope.to_vec(),
            "application/mikey",
            Duration::ZERO,
        )
        .await
    }

    /// The transfer ids waiting for the caller, waiting up to `wait` seconds for one.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn inbox(&self, wait: u64) -> Result<Vec<String>, ClientError> {
        let v = self
            .json(
                Method::GET,
                &format!("/inbox?wait={wait}"),
                Vec::new(),
                "application/json",
                Duration::from_secs(wait),
            )
            .await?;
        v["transfers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| ClientError::Answer("no transfers list".into()))
    }

    /// The envelope of transfer `id`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn fetch(&self, id: &str) -> Result<Vec<u8>, ClientError> {
        let (b, ct) = self
            .call(
                Method::GET,
                &format!("/transfers/{id}/envelope"),
                Vec::new(),
                "application/json",
                Duration::ZERO,
            )
            .await?;
        if ct != super::service::MIKEY_TYPE {
            return Err(ClientError::Answer(format!("content type {ct:?}")));
        }
        Ok(b.to_vec())
    }

    /// Acknowledges transfer `id`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn ack(&self, id: &str) -> Result<Value, ClientError> {
        self.json(
            Method::POST,
            &format!("/transfers/{id}/ack"),
            Vec::new(),
            "application/json",
            Duration::ZERO,
        )
        .await
    }

    /// Revokes transfer `id` (the source only): its envelope is deleted, never delivered.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn revoke(&self, id: &str) -> Result<Value, ClientError> {
        self.json(
            Method::DELETE,
            &format!("/transfers/{id}"),
            Vec::new(),
            "application/json",
            Duration::ZERO,
        )
        .await
    }

    /// The state of transfer `id`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn status(&self, id: &str) -> Result<Value, ClientError> {
        self.json(
            Method::GET,
            &format!("/transfers/{id}"),
            Vec::new(),
            "application/json",
            Duration::ZERO,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_redacted_in_debug() {
        let c = RelayClient::new("http://127.0.0.1:1/", "eyJhbGciOiJFUzI1NiJ9.secret.sig");
        let d = format!("{c:?}");
        assert!(!d.contains("secret") && d.contains("[REDACTED]"), "{d}");
        assert!(d.contains("http://127.0.0.1:1/relay/v1"), "{d}");
    }
}
