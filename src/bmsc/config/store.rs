//! `store`: where the BM-SC keeps its state. Absent: the embedded SQLite store in `data_dir`.
//! `store = "postgres://user@host:port/db"` or a `[store]` table with `url`, `password_file`
//! and `pool_size`: the PostgreSQL store. The password never sits in the URL (refused there):
//! it comes from `$MBMS_PG_PASSWORD` or from `password_file`, and its `Debug` is redacted.

use std::fmt;
use std::path::PathBuf;

use toml::Value;
use zeroize::Zeroizing;

use super::ConfigError;
use super::table::Section;

/// The environment variable holding the PostgreSQL password (over `password_file`).
pub const PG_PASSWORD_ENV: &str = "MBMS_PG_PASSWORD";

/// Connections of the PostgreSQL store's pool when `pool_size` is not given.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// The keys of a `[store]` table.
const STORE_KEYS: &[&str] = &["url", "password_file", "pool_size"];

/// Where the state is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreConfig {
    /// The embedded SQLite store in `data_dir` (the default).
    #[default]
    Sqlite,
    /// A PostgreSQL database.
    Postgres(PostgresConfig),
}

/// A password, zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Eq for Password {}

impl Password {
    /// Wraps `text`.
    #[must_use]
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The password's octets (for the database client only).
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// The PostgreSQL store's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The connection URL, without a password: `postgres://user@host:port/db[?options]`.
    pub url: String,
    /// `password_file`: read when the store opens (mode 0600 or stricter; one line).
    pub password_file: Option<PathBuf>,
    /// `$MBMS_PG_PASSWORD`, when set and not empty: used over `password_file`.
    pub password: Option<Password>,
    /// Most connections of the pool (1 to 256; default [`DEFAULT_POOL_SIZE`]).
    pub pool_size: usize,
}

/// `url`: a `postgres://` or `postgresql://` URL without a password.
fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "must be a PostgreSQL URL, postgres://user@host:port/database (or absent: the \
             SQLite store in data_dir)"
                .to_owned(),
        );
    }
    // The userinfo is what precedes the first '@' of the authority (before any '/' or '?').
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        // [CHOICE] docs/profile.md §6 "PostgreSQL password": never in the URL.
        return Err(format!(
            "must not hold a password (it would show wherever the configuration does): put it \
             in password_file or ${PG_PASSWORD_ENV}"
        ));
    }
    if rest.contains("password=") {
        return Err(format!(
            "must not hold a password option: put it in password_file or ${PG_PASSWORD_ENV}"
        ));
    }
    check_client_syntax(url)
}

/// The client's own reading of the URL, so that a malformed one is refused at load.
#[cfg(feature = "postgres")]
fn check_client_syntax(url: &str) -> Result<(), String> {
    url.parse::<tokio_postgres::Config>()
        .map(|_| ())
        .map_err(|e| format!("not a usable PostgreSQL URL: {e}"))
}

#[cfg(not(feature = "postgres"))]
fn check_client_syntax(_url: &str) -> Result<(), String> {
    Err("this build has no PostgreSQL store (the `postgres` feature)".to_owned())
}

/// Reads `store` from the top-level table.
pub(super) fn store_config(
    top: &mut Section,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<StoreConfig, ConfigError> {
    let key = top.key("store");
    let (url, password_file, pool_size, url_key) = match top.take_value("store") {
        None => return Ok(StoreConfig::Sqlite),
        Some(Value::String(url)) => (url, None, None, key),
        Some(Value::Table(t)) => {
            let mut s = Section::open(key, t, STORE_KEYS)?;
            let url = s.req_str("url")?;
            let file = match s.opt_str("password_file")? {
                Some(p) if p.is_empty() => return Err(s.err("password_file", "must not be empty")),
                p => p.map(PathBuf::from),
            };
            let pool = s.opt_int::<usize>("pool_size", "1 to 256")?;
            if pool.is_some_and(|n| !(1..=256).contains(&n)) {
                return Err(s.err(
                    "pool_size",
                    format!("must be 1 to 256, got {}", pool.unwrap_or(0)),
                ));
            }
            (url, file, pool, s.key("url"))
        }
        Some(_) => {
            return Err(ConfigError::new(
                key,
                "must be a PostgreSQL URL string or a [store] table",
            ));
        }
    };
    check_url(&url).map_err(|p| ConfigError::new(url_key, p))?;
    let password = env(PG_PASSWORD_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.into_string()
                .map(Password::new)
                .map_err(|_| ConfigError::new(format!("${PG_PASSWORD_ENV}"), "must be valid UTF-8"))
        })
        .transpose()?;
    Ok(StoreConfig::Postgres(PostgresConfig {
        url,
        password_file,
        password,
        pool_size: pool_size.unwrap_or(DEFAULT_POOL_SIZE),
    }))
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls_with_a_password_are_refused() {
        assert!(check_url("postgres://mbms:secret@db:5432/bmsc").is_err());
        assert!(check_url("postgres://mbms@db:5432/bmsc?password=secret").is_err());
        assert!(check_url("mysql://mbms@db/bmsc").is_err());
        let e = check_url("postgres://mbms:secret@db:5432/bmsc").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn urls_without_a_password_are_taken() {
        check_url("postgres://mbms@db.example.org:5432/bmsc").expect("plain");
        check_url("postgresql://mbms@127.0.0.1/bmsc?connect_timeout=5").expect("options");
        check_url("postgres://mbms@db:notaport/bmsc").expect_err("bad port");
    }
}
