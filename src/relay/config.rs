//! The relay's configuration file (`examples/relay.toml` documents every key): TOML, unknown
//! keys refused, each error naming its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use super::Purpose;
use crate::ibe::Kpak;
use crate::kms::config::{AccessTokenConfig, DEFAULT_LEEWAY, DEFAULT_USER_KEY_PERIOD};

/// Default `max_envelope`, octets (an I_MESSAGE with one SAKKE payload is under 1 KiB).
pub const DEFAULT_MAX_ENVELOPE: usize = 8 * 1024;
/// Largest `max_envelope` accepted.
pub const MAX_MAX_ENVELOPE: usize = 64 * 1024;
/// Default `transfer_ttl`: one day.
pub const DEFAULT_TRANSFER_TTL: Duration = Duration::from_secs(86_400);
/// Default `max_open_per_source`.
pub const DEFAULT_MAX_OPEN_PER_SOURCE: u64 = 1000;
/// Most `[[policy]]` rules.
pub const MAX_POLICIES: usize = 1024;

/// Why a configuration was refused.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Not TOML, or a key unknown, missing or of the wrong type (the message names it).
    #[error("{0}")]
    Syntax(String),
    /// A key out of range.
    #[error("{key}: {problem}")]
    Key {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// One `[[policy]]` rule: `source` may send to `target` keys of `purposes` (`*` for any
/// identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The source identity, or `*`.
    pub source: String,
    /// The target identity, or `*`.
    pub target: String,
    /// The purposes allowed.
    pub purposes: Vec<Purpose>,
}

impl Policy {
    fn matches(&self, source: &str, target: &str, purpose: Purpose) -> bool {
        (self.source == "*" || self.source == source)
            && (self.target == "*" || self.target == target)
            && self.purposes.contains(&purpose)
    }
}

/// A checked relay configuration.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Address and port of the HTTP server.
    pub http_listen: SocketAddr,
    /// Directory of the store (`relay.sqlite`).
    pub data_dir: PathBuf,
    /// The key-encryption key file (default `<data_dir>/kek`).
    pub kek_file: PathBuf,
    /// The KMS URI of the identities (part of every UID).
    pub kms_uri: String,
    /// `UserKeyPeriod`, seconds.
    pub user_key_period: u64,
    /// `UserKeyOffset`, seconds.
    pub user_key_offset: u64,
    /// The KMS's public authentication key, which source signatures verify under.
    pub kpak: Kpak,
    /// The access token check (as the KMS's `[access_token]`).
    pub access_token: AccessTokenConfig,
    /// Longest envelope, octets.
    pub max_envelope: usize,
    /// How long a transfer lives after it is opened.
    pub transfer_ttl: Duration,
    /// Most transfers one source may have open or posted at once.
    pub max_open_per_source: u64,
    /// The rules; a transfer no rule allows is refused.
    pub policies: Vec<Policy>,
}

impl RelayConfig {
    /// Whether a rule allows `source` to send `purpose` to `target`.
    #[must_use]
    pub fn allows(&self, source: &str, target: &str, purpose: Purpose) -> bool {
        self.policies
            .iter()
            .any(|p| p.matches(source, target, purpose))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    jwks_file: PathBuf,
    issuer: String,
    audience: String,
    leeway: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    source: String,
    target: String,
    purposes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    http_listen: String,
    data_dir: PathBuf,
    kek_file: Option<PathBuf>,
    kms_uri: String,
    user_key_period: Option<u64>,
    user_key_offset: Option<u64>,
    kpak: String,
    max_envelope: Option<u64>,
    transfer_ttl: Option<String>,
    max_open_per_source: Option<u64>,
    access_token: RawToken,
    #[serde(default)]
    policy: Vec<RawPolicy>,
}

fn key_err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        problem: problem.into(),
    }
}

fn duration(key: &str, v: Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => crate::duration::parse(&s).map_err(|e| key_err(key, e)),
    }
}

/// The KPAK from hex, or from the file after `@` (hex, surrounding white space ignored).
fn kpak(v: &str) -> Result<Kpak, ConfigError> {
    let text = match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| key_err("kpak", e.to_string()))?,
        None => v.to_owned(),
    };
    let octets = hex::decode(text.trim()).map_err(|_| key_err("kpak", "not hex"))?;
    Kpak::from_octets(&octets).map_err(|e| key_err("kpak", e.to_string()))
}

impl RelayConfig {
    /// Reads and checks the file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Checks a configuration text.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let http_listen = raw
            .http_listen
            .parse()
            .map_err(|_| key_err("http_listen", "must be ADDRESS:PORT"))?;
        if raw.kms_uri.is_empty()
            || raw.kms_uri.contains("://")
            || raw.kms_uri.chars().any(|c| c.is_whitespace() || c == '/')
        {
            return Err(key_err(
                "kms_uri",
                "must be the KMS URI without scheme or path",
            ));
        }
        let user_key_period = raw.user_key_period.unwrap_or(DEFAULT_USER_KEY_PERIOD);
        if !(1..=u64::from(u32::MAX)).contains(&user_key_period) {
            return Err(key_err(
                "user_key_period",
                "must be between 1 and 4294967295",
            ));
        }
        let user_key_offset = raw.user_key_offset.unwrap_or(0);
        if user_key_offset > u64::from(u32::MAX) {
            return Err(key_err("user_key_offset", "must be at most 4294967295"));
        }
        let max_envelope = match raw.max_envelope {
            None => DEFAULT_MAX_ENVELOPE,
            Some(v) => usize::try_from(v)
                .ok()
                .filter(|v| (512..=MAX_MAX_ENVELOPE).contains(v))
                .ok_or_else(|| key_err("max_envelope", "must be between 512 and 65536"))?,
        };
        let transfer_ttl = duration("transfer_ttl", raw.transfer_ttl, DEFAULT_TRANSFER_TTL)?;
        if transfer_ttl.is_zero() {
            return Err(key_err("transfer_ttl", "must be more than 0"));
        }
        let max_open_per_source = raw
            .max_open_per_source
            .unwrap_or(DEFAULT_MAX_OPEN_PER_SOURCE);
        if !(1..=1_000_000).contains(&max_open_per_source) {
            return Err(key_err(
                "max_open_per_source",
                "must be between 1 and 1000000",
            ));
        }
        let t = raw.access_token;
        let access_token = AccessTokenConfig {
            jwks_file: t.jwks_file,
            issuer: t.issuer,
            audience: t.audience,
            leeway: duration("access_token.leeway", t.leeway, DEFAULT_LEEWAY)?,
        };
        if raw.policy.len() > MAX_POLICIES {
            return Err(key_err("policy", "too many rules"));
        }
        let mut policies = Vec::with_capacity(raw.policy.len());
        for (i, p) in raw.policy.into_iter().enumerate() {
            let key = format!("policy[{i}]");
            if p.source.is_empty() || p.target.is_empty() {
                return Err(key_err(&key, "source and target must not be empty"));
            }
            let purposes = p
                .purposes
                .iter()
                .map(|s| Purpose::parse(s))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| key_err(&format!("{key}.purposes"), "each is gmk, pck or csk"))?;
            if purposes.is_empty() {
                return Err(key_err(&format!("{key}.purposes"), "must not be empty"));
            }
            policies.push(Policy {
                source: p.source,
                target: p.target,
                purposes,
            });
        }
        Ok(Self {
            http_listen,
            kek_file: raw.kek_file.unwrap_or_else(|| raw.data_dir.join("kek")),
            data_dir: raw.data_dir,
            kms_uri: raw.kms_uri,
            user_key_period,
            user_key_offset,
            kpak: kpak(&raw.kpak)?,
            access_token,
            max_envelope,
            transfer_ttl,
            max_open_per_source,
            policies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_loads_with_every_key() {
        let text = include_str!("../../examples/relay.toml");
        let c = RelayConfig::parse(text).unwrap();
        assert_eq!(c.kms_uri, "kms.example.org");
        assert!(c.allows("sip:alice@example.org", "sip:bob@example.org", Purpose::Pck));
        assert!(!c.allows(
            "sip:mallory@example.org",
            "sip:bob@example.org",
            Purpose::Pck
        ));
        for key in [
            "http_listen",
            "data_dir",
            "kek_file",
            "kms_uri",
            "user_key_period",
            "user_key_offset",
            "kpak",
            "max_envelope",
            "transfer_ttl",
            "max_open_per_source",
            "[access_token]",
            "jwks_file",
            "issuer",
            "audience",
            "leeway",
            "[[policy]]",
            "source",
            "target",
            "purposes",
        ] {
            assert!(text.contains(key), "{key}");
        }
    }

    #[test]
    fn errors_name_their_key() {
        let text = include_str!("../../examples/relay.toml");
        for (bad, key) in [
            (text.replace("kms_uri =", "kms_url ="), "kms_url"),
            (text.replace("\"pck\"", "\"xyz\""), "purposes"),
            (
                text.replace("max_envelope = 8192", "max_envelope = 10"),
                "max_envelope",
            ),
            (
                text.replace("transfer_ttl = \"24h\"", "transfer_ttl = \"0s\""),
                "transfer_ttl",
            ),
        ] {
            let e = RelayConfig::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
