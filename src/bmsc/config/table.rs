//! A reader over one TOML table that knows its own path, so every error names the full key
//! (`services[1].key_domain`) — including type errors, which a derived `Deserialize` reports
//! without the field name. Unknown keys are refused when the table is opened, before any
//! "missing key" error, so a misspelt key is reported as what it is.

use std::time::{Duration, SystemTime};

use toml::{Table, Value};

use super::ConfigError;
use super::values::parse_rfc3339;
use crate::duration::parse as parse_duration;

/// One TOML table being read; keys are taken out as they are read.
pub(super) struct Section {
    path: String,
    table: Table,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

impl Section {
    /// Opens `table` at `path` ("" for the document), refusing keys not in `allowed`.
    pub(super) fn open(path: String, table: Table, allowed: &[&str]) -> Result<Self, ConfigError> {
        let s = Self { path, table };
        if let Some(unknown) = s.table.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(s.err(
                unknown,
                format!("unknown key (allowed here: {})", allowed.join(", ")),
            ));
        }
        Ok(s)
    }

    /// An absent table read as an empty one: every key takes its default.
    pub(super) fn empty(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            table: Table::new(),
        }
    }

    /// The full name of `key` in this table.
    pub(super) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// This table's own path.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    pub(super) fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::new(self.key(key), problem)
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    /// The raw value of `key`, taken out (for a key that may have several types).
    pub(super) fn take_value(&mut self, key: &str) -> Option<Value> {
        self.take(key)
    }

    /// Whether `key` is present (and not yet read).
    pub(super) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn typed<T>(
        &mut self,
        key: &str,
        want: &str,
        conv: impl FnOnce(Value) -> Result<T, Value>,
    ) -> Result<Option<T>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => conv(v)
                .map(Some)
                .map_err(|v| self.err(key, format!("must be {want}, got {}", type_name(&v)))),
        }
    }

    pub(super) fn opt_str(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        self.typed(key, "a string", |v| match v {
            Value::String(s) => Ok(s),
            v => Err(v),
        })
    }

    pub(super) fn req_str(&mut self, key: &str) -> Result<String, ConfigError> {
        self.opt_str(key)?
            .ok_or_else(|| self.err(key, "missing (required)"))
    }

    pub(super) fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.typed(key, "a boolean", |v| match v {
            Value::Boolean(b) => Ok(b),
            v => Err(v),
        })
    }

    /// An integer converted to `T`, `range` describing the allowed values for the error.
    pub(super) fn opt_int<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        range: &str,
    ) -> Result<Option<T>, ConfigError> {
        let Some(n) = self.typed(key, "an integer", |v| match v {
            Value::Integer(n) => Ok(n),
            v => Err(v),
        })?
        else {
            return Ok(None);
        };
        T::try_from(n)
            .map(Some)
            .map_err(|_| self.err(key, format!("must be {range}, got {n}")))
    }

    pub(super) fn req_int<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        range: &str,
    ) -> Result<T, ConfigError> {
        self.opt_int(key, range)?
            .ok_or_else(|| self.err(key, "missing (required)"))
    }

    /// A duration string; zero is refused.
    pub(super) fn duration(&mut self, key: &str, default: &str) -> Result<Duration, ConfigError> {
        let text = self.opt_str(key)?.unwrap_or_else(|| default.to_owned());
        let d = parse_duration(&text).map_err(|p| self.err(key, p))?;
        if d.is_zero() {
            return Err(self.err(key, "must be greater than zero"));
        }
        Ok(d)
    }

    /// An RFC 3339 time, as a string or a TOML offset date-time.
    pub(super) fn req_time(&mut self, key: &str) -> Result<SystemTime, ConfigError> {
        let text = self
            .typed(key, "an RFC 3339 time", |v| match v {
                Value::String(s) => Ok(s),
                Value::Datetime(d) => Ok(d.to_string()),
                v => Err(v),
            })?
            .ok_or_else(|| self.err(key, "missing (required)"))?;
        parse_rfc3339(&text).map_err(|p| self.err(key, p))
    }

    /// A sub-table, opened with its own allowed keys.
    pub(super) fn opt_table(
        &mut self,
        key: &str,
        allowed: &[&str],
    ) -> Result<Option<Section>, ConfigError> {
        let path = self.key(key);
        match self.typed(key, "a table", |v| match v {
            Value::Table(t) => Ok(t),
            v => Err(v),
        })? {
            None => Ok(None),
            Some(t) => Section::open(path, t, allowed).map(Some),
        }
    }

    /// An array of tables (`[[key]]`), each opened with `allowed`; absent is empty.
    pub(super) fn table_array(
        &mut self,
        key: &str,
        allowed: &[&str],
    ) -> Result<Vec<Section>, ConfigError> {
        let base = self.key(key);
        let Some(items) = self.typed(key, "an array of tables", |v| match v {
            Value::Array(a) => Ok(a),
            v => Err(v),
        })?
        else {
            return Ok(Vec::new());
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Table(t) => Section::open(format!("{base}[{i}]"), t, allowed),
                v => Err(ConfigError::new(
                    format!("{base}[{i}]"),
                    format!("must be a table, got {}", type_name(&v)),
                )),
            })
            .collect()
    }

    /// A string, or an array of strings (each element's error names its index).
    pub(super) fn opt_str_or_list(&mut self, key: &str) -> Result<Option<StrOrList>, ConfigError> {
        let base = self.key(key);
        let Some(v) = self.take(key) else {
            return Ok(None);
        };
        match v {
            Value::String(s) => Ok(Some(StrOrList::Str(s))),
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    v => Err(ConfigError::new(
                        format!("{base}[{i}]"),
                        format!("must be a string, got {}", type_name(&v)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|l| Some(StrOrList::List(l))),
            v => Err(ConfigError::new(
                base,
                format!(
                    "must be a string or an array of strings, got {}",
                    type_name(&v)
                ),
            )),
        }
    }
}

/// A value that may be one string or a list of strings.
pub(super) enum StrOrList {
    Str(String),
    List(Vec<String>),
}
