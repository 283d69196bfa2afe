//! `[gba]`: where the BM-SC gets GBA keys. Exactly one source is configured: the embedded
//! `[[gba.subscribers]]` list (labs) or `[gba.zn]` (a BSF over Diameter Zn). Another source is
//! one more arm of [`KeySourceConfig`](super::KeySourceConfig) and one more key here.

use super::read::subscribers;
use super::table::{Section, StrOrList};
use super::{ConfigError, GbaConfig, KeySourceConfig};
use crate::gba::zn::ZnConfig;

/// The keys of `[gba.zn]`.
const ZN_KEYS: &[&str] = &[
    "peers",
    "origin_host",
    "origin_realm",
    "destination_realm",
    "destination_host",
    "request_timeout",
    "watchdog",
    "reconnect_max",
    "max_concurrent",
    "gba_u_aware",
];

/// Reads `[gba]`; `g` was opened with the keys of [`GBA_KEYS`].
pub(super) fn gba_section(mut g: Section) -> Result<GbaConfig, ConfigError> {
    let listed = g.has("subscribers");
    let subs = subscribers(&mut g)?;
    let zn = g.opt_table("zn", ZN_KEYS)?.map(zn_section).transpose()?;
    let source = match zn {
        Some(_) if listed => {
            return Err(g.err(
                "zn",
                "[gba.zn] and [[gba.subscribers]] are two key sources: configure one",
            ));
        }
        Some(z) => KeySourceConfig::Zn(z),
        None => KeySourceConfig::Embedded(subs),
    };
    Ok(GbaConfig { source })
}

/// The keys `[gba]` may hold.
pub(super) const GBA_KEYS: &[&str] = &["subscribers", "zn"];

/// A DiameterIdentity: a non-empty FQDN of printable ASCII without spaces.
fn identity(s: &mut Section, key: &str, text: String) -> Result<String, ConfigError> {
    if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(s.err(key, "must be a non-empty FQDN of printable ASCII"));
    }
    Ok(text)
}

fn zn_section(mut s: Section) -> Result<ZnConfig, ConfigError> {
    let peers = match s.opt_str_or_list("peers")? {
        None => return Err(s.err("peers", "missing (required)")),
        Some(StrOrList::Str(p)) => vec![p],
        Some(StrOrList::List(l)) => l,
    };
    if peers.is_empty() {
        return Err(s.err("peers", "must list at least one host:port"));
    }
    for (i, p) in peers.iter().enumerate() {
        let ok = p
            .rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
        if !ok {
            return Err(s.err(&format!("peers[{i}]"), format!("{p:?} is not host:port")));
        }
    }
    let origin_host = s.req_str("origin_host")?;
    let origin_host = identity(&mut s, "origin_host", origin_host)?;
    let origin_realm = s.req_str("origin_realm")?;
    let origin_realm = identity(&mut s, "origin_realm", origin_realm)?;
    let destination_realm = s.req_str("destination_realm")?;
    let destination_realm = identity(&mut s, "destination_realm", destination_realm)?;
    let destination_host = match s.opt_str("destination_host")? {
        None => None,
        Some(h) => Some(identity(&mut s, "destination_host", h)?),
    };
    let mut z = ZnConfig::new(peers, &origin_host, &origin_realm, &destination_realm);
    z.destination_host = destination_host;
    z.request_timeout = s.duration("request_timeout", "2s")?;
    z.watchdog = s.duration("watchdog", "30s")?;
    z.reconnect_max = s.duration("reconnect_max", "30s")?;
    z.max_concurrent = s
        .opt_int::<usize>("max_concurrent", "a positive integer")?
        .unwrap_or(256);
    if z.max_concurrent == 0 {
        return Err(s.err("max_concurrent", "must be a positive integer"));
    }
    z.gba_u_aware = s.opt_bool("gba_u_aware")?.unwrap_or(true);
    Ok(z)
}
