//! The KMS server's configuration file (`examples/kms.toml` documents every key): read from
//! TOML, every key checked, unknown keys refused, each error naming its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use toml::{Table, Value};

/// Default `user_key_period`: 30 days, in seconds.
pub const DEFAULT_USER_KEY_PERIOD: u64 = 2_592_000;
/// Default `max_periods_ahead`.
pub const DEFAULT_MAX_PERIODS_AHEAD: u64 = 1;
/// Default `max_body`, octets.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Default `request_timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default `[access_token] leeway`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

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
    /// Not TOML.
    #[error("not valid TOML: {0}")]
    Syntax(String),
    /// A key is missing, unknown, of the wrong type or out of range.
    #[error("{key}: {problem}")]
    Key {
        /// The full key (`access_token.issuer`).
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// `[access_token]`: how the bearer tokens of requests are checked (docs/mcx.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenConfig {
    /// The JWKS file with the identity management server's public keys.
    pub jwks_file: PathBuf,
    /// The expected `iss`.
    pub issuer: String,
    /// The audience the KMS answers to.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

/// A checked KMS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsConfig {
    /// Address and port of the HTTP server.
    pub http_listen: SocketAddr,
    /// Directory of the store (`kms.sqlite`).
    pub data_dir: PathBuf,
    /// The key-encryption key file (default `<data_dir>/kek`).
    pub kek_file: PathBuf,
    /// The KMS URI (`KmsUri`, no scheme), part of every UID.
    pub kms_uri: String,
    /// `UserKeyPeriod`, seconds.
    pub user_key_period: u64,
    /// `UserKeyOffset`, seconds.
    pub user_key_offset: u64,
    /// How many key periods past the current one `/keyprov/<uri>/<time>` may ask for.
    pub max_periods_ahead: u64,
    /// Longest request body, octets.
    pub max_body: usize,
    /// Time a request gets from its first byte to its answer (header and body included).
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// The access token check.
    pub access_token: AccessTokenConfig,
}

const TOP_KEYS: &[&str] = &[
    "http_listen",
    "data_dir",
    "kek_file",
    "kms_uri",
    "user_key_period",
    "user_key_offset",
    "max_periods_ahead",
    "max_body",
    "request_timeout",
    "max_connections",
    "access_token",
];
const TOKEN_KEYS: &[&str] = &["jwks_file", "issuer", "audience", "leeway"];

struct Section<'a> {
    prefix: &'a str,
    table: Table,
}

impl<'a> Section<'a> {
    fn open(prefix: &'a str, table: Table, allowed: &[&str]) -> Result<Self, ConfigError> {
        let s = Self { prefix, table };
        if let Some(k) = s.table.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(s.err(
                k,
                format!("unknown key (allowed here: {})", allowed.join(", ")),
            ));
        }
        Ok(s)
    }

    fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            key: format!("{}{key}", self.prefix),
            problem: problem.into(),
        }
    }

    fn opt_str(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.table.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Err(self.err(key, "must not be empty")),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(key, "must be a string")),
        }
    }

    fn str(&mut self, key: &str) -> Result<String, ConfigError> {
        self.opt_str(key)?
            .ok_or_else(|| self.err(key, "missing (required)"))
    }

    fn opt_u64(&mut self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        match self.table.remove(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => match u64::try_from(i) {
                Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(self.err(key, format!("must be between {min} and {max}"))),
            },
            Some(_) => Err(self.err(key, "must be an integer")),
        }
    }

    fn opt_duration(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => crate::duration::parse(&s)
                .map(Some)
                .map_err(|e| self.err(key, e)),
        }
    }

    fn table(&mut self, key: &str) -> Result<Table, ConfigError> {
        match self.table.remove(key) {
            Some(Value::Table(t)) => Ok(t),
            None => Err(self.err(key, "missing (required table)")),
            Some(_) => Err(self.err(key, "must be a table")),
        }
    }
}

impl KmsConfig {
    /// Reads and checks the file at `path`; relative paths in it are taken from the working
    /// directory (as in the BM-SC's file).
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
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(e.message().to_owned()))?;
        let mut top = Section::open("", table, TOP_KEYS)?;
        let listen = top.str("http_listen")?;
        let http_listen = listen
            .parse()
            .map_err(|_| top.err("http_listen", "must be ADDRESS:PORT, e.g. 0.0.0.0:8443"))?;
        let data_dir = PathBuf::from(top.str("data_dir")?);
        let kek_file = top
            .opt_str("kek_file")?
            .map_or_else(|| data_dir.join("kek"), PathBuf::from);
        let kms_uri = top.str("kms_uri")?;
        if kms_uri.contains("://") || kms_uri.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(top.err(
                "kms_uri",
                "must be the KMS URI without scheme or path, e.g. kms.example.org",
            ));
        }
        let user_key_period = top
            .opt_u64("user_key_period", 1, u64::from(u32::MAX))?
            .unwrap_or(DEFAULT_USER_KEY_PERIOD);
        let user_key_offset = top
            .opt_u64("user_key_offset", 0, u64::from(u32::MAX))?
            .unwrap_or(0);
        let max_periods_ahead = top
            .opt_u64("max_periods_ahead", 0, 100)?
            .unwrap_or(DEFAULT_MAX_PERIODS_AHEAD);
        let max_body = top
            .opt_u64("max_body", 1024, crate::kms::MAX_DOCUMENT_LEN as u64)?
            .map_or(DEFAULT_MAX_BODY, |v| {
                usize::try_from(v).unwrap_or(DEFAULT_MAX_BODY)
            });
        let request_timeout = top
            .opt_duration("request_timeout")?
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        if request_timeout.is_zero() {
            return Err(top.err("request_timeout", "must be more than 0"));
        }
        let max_connections = top
            .opt_u64("max_connections", 1, 65_536)?
            .map_or(DEFAULT_MAX_CONNECTIONS, |v| {
                usize::try_from(v).unwrap_or(DEFAULT_MAX_CONNECTIONS)
            });
        let mut tok = Section::open("access_token.", top.table("access_token")?, TOKEN_KEYS)?;
        let access_token = AccessTokenConfig {
            jwks_file: PathBuf::from(tok.str("jwks_file")?),
            issuer: tok.str("issuer")?,
            audience: tok.str("audience")?,
            leeway: tok.opt_duration("leeway")?.unwrap_or(DEFAULT_LEEWAY),
        };
        Ok(Self {
            http_listen,
            data_dir,
            kek_file,
            kms_uri,
            user_key_period,
            user_key_offset,
            max_periods_ahead,
            max_body,
            request_timeout,
            max_connections,
            access_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
http_listen = "127.0.0.1:8443"
data_dir = "data"
kms_uri = "kms.example.org"
[access_token]
jwks_file = "jwks.json"
issuer = "https://idms.example.org"
audience = "kms.example.org"
"#;

    #[test]
    fn defaults() {
        let c = KmsConfig::parse(GOOD).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.kek_file, PathBuf::from("data/kek"));
        assert_eq!(c.user_key_period, DEFAULT_USER_KEY_PERIOD);
        assert_eq!(c.user_key_offset, 0);
        assert_eq!(c.max_periods_ahead, 1);
        assert_eq!(c.access_token.jwks_file, PathBuf::from("jwks.json"));
        assert_eq!(c.access_token.leeway, DEFAULT_LEEWAY);
    }

    #[test]
    fn the_example_file_loads_with_every_key() {
        let text = include_str!("../../examples/kms.toml");
        let c = KmsConfig::parse(text).unwrap();
        assert_eq!(c.kms_uri, "kms.example.org");
        // Every key is shown in the example (commented or not).
        for key in TOP_KEYS.iter().chain(TOKEN_KEYS) {
            assert!(
                text.contains(&format!("{key} =")) || text.contains(&format!("[{key}]")),
                "{key}"
            );
        }
    }

    #[test]
    fn errors_name_their_key() {
        let cases = [
            (GOOD.replace("kms_uri", "kms_url"), "kms_url"),
            (
                GOOD.replace("\"kms.example.org\"\n[", "\"https://kms\"\n["),
                "kms_uri",
            ),
            (GOOD.replace("127.0.0.1:8443", "nowhere"), "http_listen"),
            (format!("user_key_period = 0\n{GOOD}"), "user_key_period"),
            (
                format!("max_periods_ahead = \"2\"\n{GOOD}"),
                "max_periods_ahead",
            ),
            (GOOD.replace("issuer", "isuer"), "access_token.isuer"),
            (GOOD.replace("audience = ", "# "), "access_token.audience"),
        ];
        for (text, key) in cases {
            match KmsConfig::parse(&text) {
                Err(ConfigError::Key { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{key}: {other:?}"),
            }
        }
        assert!(matches!(
            KmsConfig::parse("x = ["),
            Err(ConfigError::Syntax(_))
        ));
    }
}
