//! `[gba.nbsp]` and `[gba.aanf]`: the 5G key sources asked over HTTP (docs/key-sources-5g.md),
//! and the refusal of more than one key source.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::runtime::Handle;

use super::table::Section;
use super::{Config, ConfigError, GbaConfig};
use crate::gba::KeySource;
use crate::gba::aanf::AanfKeySource;
use crate::gba::nbsp::NbspKeySource;
use crate::gba::sbi::{HttpVersion, SbiSettings, parse_api_root};

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

/// Reads `[gba.nbsp]` and `[gba.aanf]` of `g` into `gba`, then refuses more than one key source.
pub(super) fn read(g: &mut Section, fqdn: &str, gba: &mut GbaConfig) -> Result<(), ConfigError> {
    if let Some(mut s) = g.opt_table("nbsp", KEYS)? {
        gba.nbsp = Some(NbspConfig {
            settings: settings(&mut s)?,
        });
    }
    let mut aanf_keys = KEYS.to_vec();
    aanf_keys.push("af_id");
    if let Some(mut s) = g.opt_table("aanf", &aanf_keys)? {
        let settings = settings(&mut s)?;
        let af_id = s.opt_str("af_id")?.unwrap_or_else(|| fqdn.to_owned());
        if af_id.is_empty()
            || af_id.len() > 255
            || !af_id.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(s.err("af_id", "must be 1 to 255 printable ASCII characters"));
        }
        gba.aanf = Some(AanfConfig { settings, af_id });
    }
    let sources = [
        (!gba.subscribers.is_empty()).then_some("[[gba.subscribers]]"),
        gba.nbsp.as_ref().map(|_| "[gba.nbsp]"),
        gba.aanf.as_ref().map(|_| "[gba.aanf]"),
    ];
    let named: Vec<&str> = sources.into_iter().flatten().collect();
    if named.len() > 1 {
        return Err(ConfigError::new(
            g.path().to_owned(),
            format!(
                "configure exactly one key source, not {}",
                named.join(" and ")
            ),
        ));
    }
    Ok(())
}

impl Config {
    /// The key source of `[gba.nbsp]` or `[gba.aanf]`, its requests running on `handle`'s
    /// runtime; `None` when the embedded `[[gba.subscribers]]` serve.
    #[must_use]
    pub fn http_key_source(&self, handle: &Handle) -> Option<Arc<dyn KeySource>> {
        if let Some(n) = &self.gba.nbsp {
            return Some(Arc::new(NbspKeySource::new(
                &self.fqdn,
                &n.settings,
                handle.clone(),
            )));
        }
        self.gba.aanf.as_ref().map(|a| {
            Arc::new(AanfKeySource::new(&a.af_id, &a.settings, handle.clone()))
                as Arc<dyn KeySource>
        })
    }
}
