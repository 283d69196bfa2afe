//! `[gba.nbsp]` and `[gba.aanf]`: the 5G key sources asked over HTTP (docs/key-sources-5g.md),
//! two more arms of [`KeySourceConfig`]; `gba.rs` refuses more than one source.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::runtime::Handle;

use super::table::Section;
use super::{Config, ConfigError, KeySourceConfig};
use crate::gba::KeySource;
use crate::gba::aanf::AanfKeySource;
use crate::gba::nbsp::NbspKeySource;
use crate::gba::sbi::{HttpVersion, SbiMetrics, SbiSettings, parse_api_root};

/// `[gba.nbsp]`: the BSF asked over Nbsp_GBA (TS 29.309).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbspConfig {
    /// `api_root`, `token_file`, `request_timeout`, `http_version`.
    pub settings: SbiSettings,
}

/// `[gba.aanf]`: the AAnF asked for KAF over Naanf_AKMA (TS 29.535).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AanfConfig {
    /// `api_root`, `token_file`, `request_timeout`, `http_version`.
    pub settings: SbiSettings,
    /// `af_id`: the AF identifier sent as `afId` (default: the BM-SC's `fqdn`).
    pub af_id: String,
}

const KEYS: &[&str] = &["api_root", "token_file", "request_timeout", "http_version"];

fn settings(s: &mut Section) -> Result<SbiSettings, ConfigError> {
    let root = s.req_str("api_root")?;
    let api_root = parse_api_root(&root).map_err(|e| s.err("api_root", e))?;
    let token_file = s.opt_str("token_file")?.map(PathBuf::from);
    let request_timeout = s.duration("request_timeout", "5s")?;
    if request_timeout.is_zero() {
        return Err(s.err("request_timeout", "must be longer than 0s"));
    }
    let http_version = match s.opt_str("http_version")?.as_deref() {
        None | Some("2") => HttpVersion::Http2,
        Some("1.1") => HttpVersion::Http1,
        Some(other) => {
            return Err(s.err(
                "http_version",
                format!("must be \"2\" (h2c, prior knowledge) or \"1.1\", got {other:?}"),
            ));
        }
    };
    Ok(SbiSettings {
        api_root,
        token_file,
        request_timeout,
        http_version,
    })
}

/// Reads `[gba.nbsp]` and `[gba.aanf]` of `g`: the source configured, with its key (`nbsp` or
/// `aanf`), or `None`; both at once are refused.
pub(super) fn read(
    g: &mut Section,
    fqdn: &str,
) -> Result<Option<(&'static str, KeySourceConfig)>, ConfigError> {
    let nbsp = match g.opt_table("nbsp", KEYS)? {
        None => None,
        Some(mut s) => Some(NbspConfig {
            settings: settings(&mut s)?,
        }),
    };
    let mut aanf_keys = KEYS.to_vec();
    aanf_keys.push("af_id");
    let aanf = match g.opt_table("aanf", &aanf_keys)? {
        None => None,
        Some(mut s) => {
            let settings = settings(&mut s)?;
            let af_id = s.opt_str("af_id")?.unwrap_or_else(|| fqdn.to_owned());
            if af_id.is_empty()
                || af_id.len() > 255
                || !af_id.bytes().all(|b| (0x21..=0x7e).contains(&b))
            {
                return Err(s.err("af_id", "must be 1 to 255 printable ASCII characters"));
            }
            Some(AanfConfig { settings, af_id })
        }
    };
    match (nbsp, aanf) {
        (Some(_), Some(_)) => Err(g.err(
            "aanf",
            "[gba.nbsp] and [gba.aanf] are two key sources: configure one",
        )),
        (Some(n), None) => Ok(Some(("nbsp", KeySourceConfig::Nbsp(n)))),
        (None, Some(a)) => Ok(Some(("aanf", KeySourceConfig::Aanf(a)))),
        (None, None) => Ok(None),
    }
}

impl Config {
    /// The key source of `[gba.nbsp]` or `[gba.aanf]`, its requests running on `handle`'s
    /// runtime, with its counters; `None` for the other sources.
    #[must_use]
    pub fn http_key_source(
        &self,
        handle: &Handle,
    ) -> Option<(Arc<dyn KeySource>, Arc<SbiMetrics>)> {
        match &self.gba.source {
            KeySourceConfig::Nbsp(n) => {
                let source = NbspKeySource::new(&self.fqdn, &n.settings, handle.clone());
                let metrics = source.metrics();
                Some((Arc::new(source), metrics))
            }
            KeySourceConfig::Aanf(a) => {
                let source = AanfKeySource::new(&a.af_id, &a.settings, handle.clone());
                let metrics = source.metrics();
                Some((Arc::new(source), metrics))
            }
            KeySourceConfig::Embedded(_) | KeySourceConfig::Zn(_) => None,
        }
    }
}
