//! Reading each section of the configuration into its typed form, with the cross-key rules
//! (shared MSKs, MTK object directories, key material forms).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::table::{Section, StrOrList};
use super::values::ImpiPattern;
use super::{
    Authorized, ClusterConfig, ConfigError, DEFAULT_FANOUT_ITEM_SIZE, DEFAULT_KEY_LEAD,
    DigestAlgorithm, DigestConfig, HttpConfig, MulticastConfig, MulticastInterface, PushConfig,
    Qop, ServiceConfig, SrtpSenderConfig, SrtpSuite, SubscriberConfig, Transport,
};
use crate::crypto::{Ks, KsExtNaf, KsIntNaf, KsNaf};
use crate::duration::format as format_duration;
use crate::gba::{Btid, KeyMaterial};
use crate::mikey::KeyDomainId;

/// MTK IDs are 16 bits (docs/profile.md §1), so one MSK carries at most this many MTKs.
const MAX_MTKS_PER_MSK: u128 = 0xfffe;

/// A TOML syntax error, located by line and column.
pub(super) fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let key = match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}")
        }
        None => "toml".to_owned(),
    };
    ConfigError::new(key, e.message().trim().to_owned())
}

pub(super) fn socket_addr(
    s: &mut Section,
    key: &str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = s.opt_str(key)?.unwrap_or_else(|| default.to_owned());
    text.parse().map_err(|_| {
        s.err(
            key,
            format!("must be an address with a port such as \"127.0.0.1:8080\", got {text:?}"),
        )
    })
}

pub(super) fn digest_section(s: Option<Section>) -> Result<DigestConfig, ConfigError> {
    let mut s = s.unwrap_or_else(|| Section::empty("digest"));
    let qop = match s.opt_str("qop")?.as_deref() {
        None | Some("auth-int") => Qop::AuthInt,
        Some("auth") => Qop::Auth,
        Some("auth,auth-int") => Qop::Both,
        Some(other) => {
            return Err(s.err(
                "qop",
                format!("must be \"auth-int\", \"auth\" or \"auth,auth-int\", got {other:?}"),
            ));
        }
    };
    let algorithm = match s.opt_str("algorithm")?.as_deref() {
        None | Some("SHA-256") => DigestAlgorithm::Sha256,
        Some("MD5") => DigestAlgorithm::Md5,
        Some(other) => {
            return Err(s.err(
                "algorithm",
                format!("must be \"SHA-256\" or \"MD5\", got {other:?}"),
            ));
        }
    };
    let nonce_lifetime = s.duration("nonce_lifetime", "5m")?;
    let max_nonces = positive(&mut s, "max_nonces", 100_000)?;
    Ok(DigestConfig {
        qop,
        algorithm,
        nonce_lifetime,
        max_nonces,
    })
}

pub(super) fn http_section(s: Option<Section>) -> Result<HttpConfig, ConfigError> {
    let mut s = s.unwrap_or_else(|| Section::empty("http"));
    Ok(HttpConfig {
        request_timeout: s.duration("request_timeout", "10s")?,
        idle_timeout: s.duration("idle_timeout", "60s")?,
        max_connections: positive(&mut s, "max_connections", 1024)?,
        max_body: positive(&mut s, "max_body", 65_536)?,
    })
}

pub(super) fn push_section(s: Option<Section>) -> Result<PushConfig, ConfigError> {
    let mut s = s.unwrap_or_else(|| Section::empty("push"));
    let retries = s
        .opt_int::<u32>("retries", "an integer 0 to 4294967295")?
        .unwrap_or(4);
    let initial_backoff = s.duration("initial_backoff", "1s")?;
    let max_backoff = s.duration("max_backoff", "30s")?;
    if max_backoff < initial_backoff {
        return Err(s.err(
            "max_backoff",
            format!(
                "must not be shorter than initial_backoff ({})",
                format_duration(initial_backoff)
            ),
        ));
    }
    Ok(PushConfig {
        retries,
        initial_backoff,
        max_backoff,
    })
}

/// `[cluster]`: durations, all positive, and a positive item size.
pub(super) fn cluster_section(s: Option<Section>) -> Result<ClusterConfig, ConfigError> {
    let mut s = s.unwrap_or_else(|| Section::empty("cluster"));
    Ok(ClusterConfig {
        takeover_after: s.duration("takeover_after", "10s")?,
        follow_interval: s.duration("follow_interval", "1s")?,
        fanout_item_size: positive(&mut s, "fanout_item_size", DEFAULT_FANOUT_ITEM_SIZE)?,
        fanout_lease: if s.has("fanout_lease") {
            Some(s.duration("fanout_lease", "1s")?)
        } else {
            None
        },
    })
}

fn positive(s: &mut Section, key: &str, default: usize) -> Result<usize, ConfigError> {
    let n = s
        .opt_int::<usize>(key, "a positive integer")?
        .unwrap_or(default);
    if n == 0 {
        return Err(s.err(key, "must be a positive integer, got 0"));
    }
    Ok(n)
}

fn hex_array<const N: usize>(s: &Section, key: &str, text: &str) -> Result<[u8; N], ConfigError> {
    let mut out = [0u8; N];
    if text.len() != 2 * N || hex::decode_to_slice(text, &mut out).is_err() {
        return Err(s.err(key, format!("must be {} hex digits ({N} octets)", 2 * N)));
    }
    Ok(out)
}

/// A secret from hex; the problem names lengths only, never the text.
fn secret<T>(
    s: &mut Section,
    key: &str,
    octets: usize,
    from_hex: impl FnOnce(&str) -> Result<T, crate::crypto::KeyLengthError>,
) -> Result<Option<T>, ConfigError> {
    match s.opt_str(key)? {
        None => Ok(None),
        Some(text) => from_hex(&text).map(Some).map_err(|_| {
            s.err(
                key,
                format!("must be {} hex digits ({octets} octets)", 2 * octets),
            )
        }),
    }
}

fn check_impi(impi: &str) -> Result<(), String> {
    if impi.is_empty() || impi.len() > 255 {
        return Err("must be 1 to 255 octets".to_owned());
    }
    if !impi.bytes().all(|b| (0x21..=0x7e).contains(&b)) || !impi.contains('@') {
        return Err(format!(
            "must be an NAI (user@realm, printable ASCII), got {impi:?}"
        ));
    }
    Ok(())
}

pub(super) fn subscribers(g: &mut Section) -> Result<Vec<SubscriberConfig>, ConfigError> {
    let items = g.table_array(
        "subscribers",
        &[
            "btid",
            "impi",
            "ks_naf",
            "ks",
            "rand",
            "gba_u",
            "ks_ext_naf",
            "ks_int_naf",
            "expires",
        ],
    )?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for mut s in items {
        let btid_text = s.req_str("btid")?;
        let btid: Btid = btid_text
            .parse()
            .map_err(|e| s.err("btid", format!("not a B-TID: {e}")))?;
        if !seen.insert(btid_text) {
            return Err(s.err("btid", format!("{btid} is listed twice")));
        }
        let impi = s.req_str("impi")?;
        check_impi(&impi).map_err(|p| s.err("impi", p))?;
        let forms = [
            s.has("ks_naf"),
            s.has("ks") || s.has("rand"),
            s.has("ks_ext_naf") || s.has("ks_int_naf"),
        ];
        let count = forms.iter().filter(|f| **f).count();
        if count != 1 {
            let problem = if count == 0 {
                "no key material: give exactly one of ks_naf, ks + rand, ks_ext_naf + ks_int_naf"
            } else {
                "more than one key material form: give exactly one of ks_naf, ks + rand, \
                 ks_ext_naf + ks_int_naf"
            };
            return Err(ConfigError::new(s.path().to_owned(), problem));
        }
        let gba_u = s.opt_bool("gba_u")?;
        let material = if let Some(k) = secret(&mut s, "ks_naf", KsNaf::LEN, KsNaf::from_hex)? {
            KeyMaterial::KsNaf(k)
        } else if forms[1] {
            let ks = secret(&mut s, "ks", Ks::LEN, Ks::from_hex)?
                .ok_or_else(|| s.err("ks", "missing: rand is given, so ks (CK ‖ IK) is too"))?;
            let rand_text = s.req_str("rand")?;
            let rand = hex_array::<16>(&s, "rand", &rand_text)?;
            KeyMaterial::Ks {
                ks,
                rand,
                gba_u: gba_u.unwrap_or(false),
            }
        } else {
            let ext = secret(&mut s, "ks_ext_naf", KsExtNaf::LEN, KsExtNaf::from_hex)?;
            let int = secret(&mut s, "ks_int_naf", KsIntNaf::LEN, KsIntNaf::from_hex)?;
            match (ext, int) {
                (Some(ks_ext_naf), Some(ks_int_naf)) => KeyMaterial::GbaU {
                    ks_ext_naf,
                    ks_int_naf,
                },
                (None, _) => {
                    return Err(s.err("ks_ext_naf", "missing: GBA_U needs both NAF keys"));
                }
                (_, None) => {
                    return Err(s.err("ks_int_naf", "missing: GBA_U needs both NAF keys"));
                }
            }
        };
        if gba_u.is_some() && !matches!(material, KeyMaterial::Ks { .. }) {
            return Err(s.err("gba_u", "applies only to the ks + rand form"));
        }
        let expires = s.req_time("expires")?;
        out.push(SubscriberConfig {
            btid,
            impi,
            material,
            expires,
        });
    }
    Ok(out)
}

fn check_service_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 255 {
        return Err("must be 1 to 255 octets".to_owned());
    }
    if !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) || id.contains(['/', '\\']) {
        return Err(format!(
            "must be printable ASCII without spaces or slashes (it names a directory), got {id:?}"
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("{id:?} cannot name a directory"));
    }
    Ok(())
}

fn destination(
    s: &Section,
    key: &str,
    text: &str,
    ue_port: u16,
) -> Result<SocketAddr, ConfigError> {
    let addr = match text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, ue_port),
            Err(_) => {
                return Err(s.err(
                    key,
                    format!(
                        "must be \"ip\" or \"ip:port\" (IPv6 with port: \"[ip]:port\"), got {text:?}"
                    ),
                ));
            }
        },
    };
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(s.err(key, "must be a concrete address and a non-zero port"));
    }
    Ok(addr)
}

/// Largest `key_lead`: more repetitions before use only delay the media.
const MAX_KEY_LEAD: u32 = 16;

/// Largest start `roc` of a service with `rtp_input`: the SRTP sender reaches it by stepping its
/// packet index forward (see `bmsc::media`), about two steps per unit.
pub(crate) const MAX_SENDER_START_ROC: u32 = 0xffff;

/// `multicast_ttl` and `multicast_interface` of `s`, each defaulting to `inherited`'s.
pub(super) fn multicast(
    s: &mut Section,
    inherited: MulticastConfig,
) -> Result<MulticastConfig, ConfigError> {
    let ttl = match s.opt_int::<u32>("multicast_ttl", "an integer 0 to 255")? {
        Some(t) if t > 255 => {
            return Err(s.err("multicast_ttl", format!("must be 0 to 255, got {t}")));
        }
        Some(t) => t,
        None => inherited.ttl,
    };
    let interface = match s.opt_str("multicast_interface")? {
        None => inherited.interface,
        Some(text) => Some(multicast_interface(s, &text)?),
    };
    Ok(MulticastConfig { ttl, interface })
}

fn multicast_interface(s: &Section, text: &str) -> Result<MulticastInterface, ConfigError> {
    const KEY: &str = "multicast_interface";
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        if v4.is_multicast() || v4.is_broadcast() {
            return Err(s.err(
                KEY,
                format!("must be the address of a local interface, got {v4}"),
            ));
        }
        return Ok(MulticastInterface::V4(v4));
    }
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err(s.err(
            KEY,
            "an IPv6 interface is named by its name or index (\"eth0\", \"2\"), not an address",
        ));
    }
    if let Ok(index) = text.parse::<u32>() {
        if index == 0 {
            return Err(s.err(KEY, "an interface index starts at 1"));
        }
        return Ok(MulticastInterface::V6(index));
    }
    match nix::net::if_::if_nametoindex(text) {
        Ok(index) => Ok(MulticastInterface::V6(index)),
        Err(_) => Err(s.err(
            KEY,
            format!(
                "must be an IPv4 address, an interface index or the name of an interface of \
                 this host, got {text:?}"
            ),
        )),
    }
}

fn srtp_sender(
    srtp: &mut Section,
    roc: u32,
    ue_port: u16,
) -> Result<Option<SrtpSenderConfig>, ConfigError> {
    let Some(input_text) = srtp.opt_str("rtp_input")? else {
        for key in [
            "media_destination",
            "suite",
            "mki",
            "key_lead",
            "udp_offload",
        ] {
            if srtp.has(key) {
                return Err(srtp.err(key, "applies only with rtp_input (the SRTP sender)"));
            }
        }
        return Ok(None);
    };
    let rtp_input = input_text.parse::<SocketAddr>().map_err(|_| {
        srtp.err(
            "rtp_input",
            format!("must be \"ip:port\" (IPv6: \"[ip]:port\"), got {input_text:?}"),
        )
    })?;
    if rtp_input.port() == 0 {
        return Err(srtp.err("rtp_input", "must have a non-zero port"));
    }
    if rtp_input.ip().is_multicast() {
        return Err(srtp.err(
            "rtp_input",
            "must be a local address to listen on, not a multicast group",
        ));
    }
    let dest_text = srtp
        .opt_str("media_destination")?
        .ok_or_else(|| srtp.err("media_destination", "missing: rtp_input needs it"))?;
    let media_destination = destination(srtp, "media_destination", &dest_text, ue_port)?;
    if dest_text.parse::<SocketAddr>().is_err() {
        return Err(srtp.err(
            "media_destination",
            format!("must be \"ip:port\" (IPv6: \"[ip]:port\"), got {dest_text:?}"),
        ));
    }
    if media_destination == rtp_input {
        return Err(srtp.err("media_destination", "must differ from rtp_input"));
    }
    let suite = match srtp.opt_str("suite")?.as_deref() {
        None | Some("AES_CM_128_HMAC_SHA1_80") => SrtpSuite::AesCm128HmacSha1_80,
        Some("AES_CM_128_HMAC_SHA1_32") => SrtpSuite::AesCm128HmacSha1_32,
        Some(other) => {
            return Err(srtp.err(
                "suite",
                format!(
                    "must be \"AES_CM_128_HMAC_SHA1_80\" or \"AES_CM_128_HMAC_SHA1_32\", got \
                     {other:?}"
                ),
            ));
        }
    };
    let mki = srtp.opt_bool("mki")?.unwrap_or(true);
    let key_lead = srtp
        .opt_int::<u32>("key_lead", "an integer 1 to 16")?
        .unwrap_or(DEFAULT_KEY_LEAD);
    if !(1..=MAX_KEY_LEAD).contains(&key_lead) {
        return Err(srtp.err(
            "key_lead",
            format!(
                "must be 1 to {MAX_KEY_LEAD} (sends of an MTK message before use), got {key_lead}"
            ),
        ));
    }
    let udp_offload = srtp.opt_bool("udp_offload")?.unwrap_or(true);
    if roc > MAX_SENDER_START_ROC {
        return Err(srtp.err(
            "roc",
            format!(
                "must be at most {MAX_SENDER_START_ROC} with rtp_input (the sender's rollover \
                 counter at start), got {roc}"
            ),
        ));
    }
    Ok(Some(SrtpSenderConfig {
        rtp_input,
        media_destination,
        suite,
        mki,
        key_lead,
        udp_offload,
    }))
}

pub(super) fn services(
    top: &mut Section,
    data_dir: &Path,
    ue_port: u16,
    global_multicast: MulticastConfig,
) -> Result<Vec<ServiceConfig>, ConfigError> {
    let items = top.table_array(
        "services",
        &[
            "id",
            "key_domain",
            "key_group",
            "msk_lifetime",
            "mtk_interval",
            "mtk_resend",
            "mtk_destination",
            "transport",
            "srtp",
            "mtk_object_dir",
            "multicast_ttl",
            "multicast_interface",
            "authorized",
        ],
    )?;
    let mut inputs: HashMap<SocketAddr, String> = HashMap::new();
    let mut ids = HashSet::new();
    let mut groups: HashMap<(KeyDomainId, u16), (String, Duration)> = HashMap::new();
    let mut object_dirs: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(items.len());
    for mut s in items {
        let id = s.req_str("id")?;
        check_service_id(&id).map_err(|p| s.err("id", p))?;
        if !ids.insert(id.clone()) {
            return Err(s.err("id", format!("service id {id:?} is used twice")));
        }
        let kd_text = s.req_str("key_domain")?;
        let key_domain = KeyDomainId(hex_array::<3>(&s, "key_domain", &kd_text)?);
        let key_group = s.req_int::<u16>("key_group", "an integer 0 to 65535")?;
        let msk_lifetime = s.duration("msk_lifetime", "1h")?;
        let mtk_interval = s.duration("mtk_interval", "10s")?;
        let mtk_resend = s.duration("mtk_resend", "1s")?;
        if mtk_resend > mtk_interval {
            return Err(s.err(
                "mtk_resend",
                format!(
                    "must not exceed mtk_interval ({}): each MTK is sent at least once",
                    format_duration(mtk_interval)
                ),
            ));
        }
        if msk_lifetime < mtk_interval {
            return Err(s.err(
                "msk_lifetime",
                format!(
                    "must be at least mtk_interval ({})",
                    format_duration(mtk_interval)
                ),
            ));
        }
        if msk_lifetime >= crate::bmsc::distribution::counter::COUNTER_WINDOW {
            return Err(s.err(
                "msk_lifetime",
                format!(
                    "must be shorter than {} (the window of the MIKEY counter that follows the \
                     wall clock, docs/profile.md §5): a UE that gets nothing under its MUK for \
                     that long discards the next push as a replay",
                    format_duration(crate::bmsc::distribution::counter::COUNTER_WINDOW)
                ),
            ));
        }
        if msk_lifetime.as_millis() / mtk_interval.as_millis().max(1) > MAX_MTKS_PER_MSK {
            return Err(s.err(
                "msk_lifetime",
                "needs more MTKs than the 16-bit MTK ID space allows: shorten it or lengthen \
                 mtk_interval",
            ));
        }
        match groups.get(&(key_domain, key_group)) {
            Some((other, lifetime)) if *lifetime != msk_lifetime => {
                return Err(s.err(
                    "msk_lifetime",
                    format!(
                        "must equal that of service {other:?} ({}), which shares this \
                         service's MSK (key_domain {key_domain}, key_group {key_group})",
                        format_duration(*lifetime)
                    ),
                ));
            }
            Some(_) => {}
            None => {
                groups.insert((key_domain, key_group), (id.clone(), msk_lifetime));
            }
        }
        let dest_text = s.req_str("mtk_destination")?;
        let mtk_destination = destination(&s, "mtk_destination", &dest_text, ue_port)?;
        let multicast = multicast(&mut s, global_multicast)?;
        let mut media = None;
        let transport = match s.req_str("transport")?.as_str() {
            "download" => {
                if s.has("srtp") {
                    return Err(s.err("srtp", "applies only to transport = \"streaming\""));
                }
                let dir = match s.opt_str("mtk_object_dir")? {
                    Some(d) if d.is_empty() => {
                        return Err(s.err("mtk_object_dir", "must not be empty"));
                    }
                    Some(d) => PathBuf::from(d),
                    None => data_dir.join("mtk").join(&id),
                };
                if let Some(other) = object_dirs.insert(dir.clone(), id.clone()) {
                    return Err(s.err(
                        "mtk_object_dir",
                        format!("is also the MTK object directory of service {other:?}"),
                    ));
                }
                Transport::Download {
                    mtk_object_dir: dir,
                }
            }
            "streaming" => {
                if s.has("mtk_object_dir") {
                    return Err(s.err("mtk_object_dir", "applies only to transport = \"download\""));
                }
                let mut srtp = s
                    .opt_table(
                        "srtp",
                        &[
                            "ssrc",
                            "roc",
                            "rtp_input",
                            "media_destination",
                            "suite",
                            "mki",
                            "key_lead",
                            "udp_offload",
                        ],
                    )?
                    .ok_or_else(|| s.err("srtp", "missing: streaming needs [services.srtp]"))?;
                let ssrc = srtp.req_int::<u32>("ssrc", "an integer 0 to 4294967295")?;
                let roc = srtp
                    .opt_int::<u32>("roc", "an integer 0 to 4294967295")?
                    .unwrap_or(0);
                media = srtp_sender(&mut srtp, roc, ue_port)?;
                if let Some(m) = &media
                    && let Some(other) = inputs.insert(m.rtp_input, id.clone())
                {
                    return Err(srtp.err(
                        "rtp_input",
                        format!("is also the rtp_input of service {other:?}"),
                    ));
                }
                Transport::Streaming { ssrc, roc }
            }
            other => {
                return Err(s.err(
                    "transport",
                    format!("must be \"download\" or \"streaming\", got {other:?}"),
                ));
            }
        };
        for (key, to) in [
            ("mtk_destination", Some(mtk_destination)),
            (
                "srtp.media_destination",
                media.as_ref().map(|m| m.media_destination),
            ),
        ] {
            let Some(to) = to.filter(|a| a.ip().is_multicast()) else {
                continue;
            };
            match (multicast.interface, to) {
                (Some(MulticastInterface::V6(_)), SocketAddr::V4(_)) => {
                    return Err(s.err(
                        "multicast_interface",
                        format!("{key} is an IPv4 group: name the interface by its IPv4 address"),
                    ));
                }
                (Some(MulticastInterface::V4(_)), SocketAddr::V6(_)) => {
                    return Err(s.err(
                        "multicast_interface",
                        format!("{key} is an IPv6 group: name the interface by name or index"),
                    ));
                }
                _ => {}
            }
        }
        let authorized = authorized(&mut s)?;
        out.push(ServiceConfig {
            id,
            key_domain,
            key_group,
            msk_lifetime,
            mtk_interval,
            mtk_resend,
            mtk_destination,
            transport,
            media,
            multicast,
            authorized,
        });
    }
    Ok(out)
}

fn authorized(s: &mut Section) -> Result<Authorized, ConfigError> {
    match s.opt_str_or_list("authorized")? {
        None => Err(s.err(
            "authorized",
            "missing (required): \"*\" or a list of IMPI patterns",
        )),
        Some(StrOrList::Str(t)) if t == "*" => Ok(Authorized::Everyone),
        Some(StrOrList::Str(t)) => Err(s.err(
            "authorized",
            format!("must be \"*\" or a list of IMPI patterns, got the string {t:?}"),
        )),
        Some(StrOrList::List(l)) if l.is_empty() => Err(s.err(
            "authorized",
            "an empty list authorizes no one: list IMPI patterns, or remove the service",
        )),
        Some(StrOrList::List(l)) => l
            .iter()
            .enumerate()
            .map(|(i, p)| ImpiPattern::new(p).map_err(|e| s.err(&format!("authorized[{i}]"), e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Authorized::Patterns),
    }
}
