//! `mbms-keys ue`: a UE that registers to MBMS user services, receives MSK
//! and MTK pushes on UDP 2269 and prints one JSON line per event on
//! standard output (for a media client reading a pipe). Discards and
//! diagnostics go to standard error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use mbms_keys::crypto::{Kaf, KsExtNaf, KsIntNaf, KsNaf};
use mbms_keys::duration;
use mbms_keys::gba::akma::parse_akid;
use mbms_keys::gba::{Btid, GbaKeys};
use mbms_keys::mbms::KeyDomainId;
use mbms_keys::ue::driver::{MIKEY_PORT, UeClient, UeConfig, host_of};
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::multicast::Join;
use mbms_keys::ue::{Event, ReceiverConfig, SrtpPolicy};
use serde_json::{Value, json};

use crate::input::key;

#[derive(Args)]
pub struct UeArgs {
    /// The BM-SC Key Request function, e.g. http://bmsc.example.org:8080.
    #[arg(long, required_unless_present = "listen_only")]
    bmsc: Option<String>,
    /// The B-TID of the GBA bootstrapping (Digest username, MIKEY IDr).
    #[arg(long, required_unless_present = "akid", conflicts_with = "akid")]
    btid: Option<String>,
    /// Ks_NAF for the BM-SC (GBA_ME), 32 octets.
    #[arg(
        long,
        value_name = "HEX|@FILE", env = "MBMS_KS_NAF", hide_env_values = true,
        required_unless_present_any = ["ks_int_naf", "kaf", "akid"],
        conflicts_with = "ks_int_naf"
    )]
    ks_naf: Option<String>,
    /// 5G MBS with AKMA (TS 33.501 Annex W): the A-KID (Digest username, MIKEY IDr), in place
    /// of --btid.
    #[arg(long, requires = "kaf", conflicts_with_all = ["ks_naf", "ks_ext_naf", "ks_int_naf"])]
    akid: Option<String>,
    /// KAF for the BM-SC, 32 octets: the MUK (with --akid, in place of the GBA NAF keys).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_KAF",
        hide_env_values = true,
        requires = "akid"
    )]
    kaf: Option<String>,
    /// Ks_ext_NAF (GBA_U), 32 octets: the MRK.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_KS_EXT_NAF",
        hide_env_values = true,
        requires = "ks_int_naf"
    )]
    ks_ext_naf: Option<String>,
    /// Ks_int_NAF (GBA_U), 32 octets: the MUK.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_KS_INT_NAF",
        hide_env_values = true,
        requires = "ks_ext_naf"
    )]
    ks_int_naf: Option<String>,
    /// An MBMS user service to register to (repeatable).
    #[arg(long = "service", required_unless_present = "listen_only")]
    services: Vec<String>,
    /// Where MIKEY pushes arrive. The BM-SC sends MSK messages to the UE's address at the port
    /// of its own configuration (`ue_port`, 2269 by default): registration does not carry the
    /// UE's port, so another port here receives pushes only from a BM-SC whose ue_port is that
    /// port (a note on standard error says so).
    #[arg(long, default_value = "0.0.0.0:2269")]
    listen: SocketAddr,
    /// The MGV-S state file (sealed; its key is kept in FILE.key, mode 0600).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Lab mode: no HTTP procedures, keys arrive by push only.
    #[arg(long)]
    listen_only: bool,
    /// The BM-SC FQDN (MIKEY IDi); by default the host of --bmsc.
    #[arg(long, required_unless_present = "bmsc")]
    idi: Option<String>,
    /// Back-off window for MSK requests after a solicited pull, e.g. 1s..30s (durations as in
    /// the BM-SC configuration: 500ms, 90s, 10m, 1h, 2h30m).
    #[arg(long, value_parser = parse_window)]
    backoff: Option<(Duration, Duration)>,
    /// A Key Group of the UE's services, KD:GROUP (6 hex digits : 1-4 hex digits, the first half
    /// of the MSK ID; repeatable). MTK messages under a missing MSK cause an MSK request only for
    /// these and for the groups of verified MSK messages.
    #[arg(long = "key-group", value_parser = parse_key_group)]
    key_groups: Vec<(KeyDomainId, u16)>,
    /// A multicast group carrying MTK messages, GROUP[:PORT][%IFACE] (repeatable): PORT defaults
    /// to the --listen port; IFACE is the interface address for IPv4 (e.g. %127.0.0.1), its name
    /// or index for IPv6; IPv6 with a port is written [GROUP]:PORT.
    #[arg(long = "join")]
    joins: Vec<Join>,
}

fn parse_key_group(s: &str) -> Result<(KeyDomainId, u16), String> {
    let (kd, group) = s
        .split_once(':')
        .ok_or("expected KD:GROUP, e.g. 00f110:0001")?;
    let kd = kd
        .parse::<KeyDomainId>()
        .map_err(|e| format!("key domain: {e}"))?;
    if group.is_empty() || group.len() > 4 || !group.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("GROUP must be 1 to 4 hex digits".into());
    }
    let group = u16::from_str_radix(group, 16).map_err(|e| e.to_string())?;
    Ok((kd, group))
}

fn parse_window(s: &str) -> Result<(Duration, Duration), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or("expected MIN..MAX, e.g. 1s..30s")?;
    let (a, b) = (duration::parse(a)?, duration::parse(b)?);
    if a > b {
        return Err("MIN must not exceed MAX".into());
    }
    Ok((a, b))
}

/// One JSON object per event; `None` for discards, which go to standard error.
pub fn event_json(e: &Event) -> Option<Value> {
    Some(match e {
        Event::MskInstalled {
            key_domain_id,
            msk_id,
            seql,
            sequ,
        } => json!({
            "event": "MskInstalled", "key_domain_id": key_domain_id.to_string(),
            "msk_id": msk_id.to_string(), "seql": seql, "sequ": sequ,
        }),
        Event::MskUpdated {
            key_domain_id,
            msk_id,
            seql,
            sequ,
        } => json!({
            "event": "MskUpdated", "key_domain_id": key_domain_id.to_string(),
            "msk_id": msk_id.to_string(), "seql": seql, "sequ": sequ,
        }),
        Event::MskInvalidated {
            key_domain_id,
            msk_id,
        } => json!({
            "event": "MskInvalidated", "key_domain_id": key_domain_id.to_string(),
            "msk_id": msk_id.to_string(),
        }),
        Event::MtkReady {
            key_domain_id,
            msk_id,
            mtk_id,
            mki,
            mtk,
            salt,
            policy,
            srtp_ids,
        } => json!({
            "event": "MtkReady", "key_domain_id": key_domain_id.to_string(),
            "msk_id": msk_id.to_string(), "mtk_id": mtk_id.0,
            "mki": hex::encode(mki),
            "mtk": hex::encode(mtk.as_bytes()),
            "salt": salt.as_ref().map(|s| hex::encode(s.as_bytes())),
            "policy": policy.as_ref().map(policy_json),
            "srtp_ids": srtp_ids.iter().map(|e| json!({
                "policy_no": e.policy_no, "ssrc": e.ssrc, "roc": e.roc,
            })).collect::<Vec<_>>(),
        }),
        Event::MskRequestNeeded {
            key_domain_id,
            msk_id,
        } => json!({
            "event": "MskRequestNeeded", "key_domain_id": key_domain_id.to_string(),
            "msk_id": msk_id.to_string(),
        }),
        Event::MskRequestFailed {
            key_domain_id,
            msk_id,
            code,
        } => json!({
            "event": "MskRequestFailed", "key_domain_id": key_domain_id.to_string(),
            "msk_id": msk_id.to_string(), "code": code,
        }),
        Event::Discarded { .. } => return None,
        _ => return None,
    })
}

/// The SRTP policy of an `MtkReady` line: the suite name when it is a standard one, the
/// algorithms by name (`null` for a value without one) and the lengths in octets.
fn policy_json(p: &SrtpPolicy) -> Value {
    json!({
        "policy_no": p.policy_no,
        "suite": p.suite(),
        "cipher": p.cipher_name(),
        "cipher_key_len": p.encryption_key_len,
        "auth": p.auth_name(),
        "auth_key_len": p.auth_key_len,
        "auth_tag_len": p.auth_tag_len,
        "salt_len": p.salt_key_len,
        "key_derivation_rate": p.key_derivation_rate,
        "srtp_encryption": p.srtp_encryption,
        "srtcp_encryption": p.srtcp_encryption,
        "srtp_authentication": p.srtp_authentication,
    })
}

fn keys(a: &UeArgs) -> Result<UeGbaKeys, String> {
    // Keys given on the command line do not expire while the process runs.
    let expiry = SystemTime::now() + Duration::from_secs(10 * 365 * 24 * 3600);
    if let (Some(akid), Some(kaf)) = (&a.akid, &a.kaf) {
        let akid = parse_akid(akid).map_err(|e| format!("--akid: {e}"))?;
        let kaf = key("--kaf", kaf, Kaf::from_slice)?;
        return Ok(UeGbaKeys::akma(akid, &kaf, expiry));
    }
    let btid: Btid = a
        .btid
        .as_deref()
        .ok_or("give --btid (GBA) or --akid with --kaf (AKMA)")?
        .parse()
        .map_err(|e| format!("--btid: {e}"))?;
    let material = match (&a.ks_naf, &a.ks_ext_naf, &a.ks_int_naf) {
        (Some(k), None, None) => GbaKeys::Me {
            ks_naf: key("--ks-naf", k, KsNaf::from_slice)?,
        },
        (None, Some(ext), Some(int)) => GbaKeys::U {
            ks_ext_naf: key("--ks-ext-naf", ext, KsExtNaf::from_slice)?,
            ks_int_naf: key("--ks-int-naf", int, KsIntNaf::from_slice)?,
        },
        _ => return Err("give --ks-naf (GBA_ME) or --ks-ext-naf with --ks-int-naf (GBA_U)".into()),
    };
    Ok(UeGbaKeys {
        btid,
        material,
        expiry,
    })
}

fn print(v: &Value) {
    println!("{v}");
}

pub fn run(a: UeArgs) -> ExitCode {
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(run_async(a))
}

async fn run_async(a: UeArgs) -> ExitCode {
    let keys = match keys(&a) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(fqdn) = a
        .idi
        .clone()
        .or_else(|| a.bmsc.as_deref().and_then(host_of))
    else {
        eprintln!("error: --idi is needed to name the BM-SC");
        return ExitCode::from(2);
    };
    let mut config = UeConfig::new(&fqdn);
    config.listen = a.listen;
    config.state_file = a.state.clone();
    config.join = a.joins.clone();
    config.bmsc_url = if a.listen_only { None } else { a.bmsc.clone() };
    config.receiver = ReceiverConfig {
        backoff: a.backoff,
        key_groups: a.key_groups.clone(),
        ..ReceiverConfig::default()
    };
    let mut client = match UeClient::start(config, Arc::new(StaticGbaKeys::new(keys))).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    print(&json!({ "event": "Listening", "addr": client.local_addr().to_string() }));
    let registered = !a.listen_only;
    let port = client.local_addr().port();
    // [CHOICE] docs/profile.md §6 "ue --listen on a port other than 2269": told, not refused.
    if registered && port != MIKEY_PORT {
        eprintln!(
            "note: listening on port {port}, but the BM-SC pushes MSK messages to the port of its \
             ue_port setting ({MIKEY_PORT} by default): registration does not tell it this port"
        );
    }
    if registered {
        match client.register(&a.services).await {
            Ok(r) => print(&json!({
                "event": "Registered",
                "statuses": r.statuses.iter().map(|s| json!({"service_id": s.service_id, "code": s.code})).collect::<Vec<_>>(),
            })),
            Err(e) => {
                eprintln!("error: registration failed: {e}");
                client.shutdown().await;
                return ExitCode::from(1);
            }
        }
    }
    loop {
        tokio::select! {
            e = client.next_event() => match e {
                Some(event) => match event_json(&event) {
                    Some(v) => print(&v),
                    None => if let Event::Discarded { reason } = event {
                        eprintln!("discarded: {}", reason.as_str());
                    },
                },
                None => break,
            },
            () = stop_signal() => break,
        }
    }
    if registered {
        match client.deregister(&a.services).await {
            Ok(_) => print(&json!({ "event": "Deregistered" })),
            Err(e) => eprintln!("error: deregistration failed: {e}"),
        }
    }
    client.shutdown().await;
    ExitCode::SUCCESS
}

/// Ctrl-C, or SIGTERM where there is one: the UE deregisters and stops.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups_are_a_key_domain_and_up_to_four_hex_digits() {
        let kd: KeyDomainId = "00f110".parse().unwrap();
        assert_eq!(parse_key_group("00f110:0001"), Ok((kd, 1)));
        assert_eq!(parse_key_group("00f110:ab"), Ok((kd, 0xab)));
        for bad in ["00f110", "00f110:", "00f110:12345", "00f110:xy", "0f110:1"] {
            assert!(parse_key_group(bad).is_err(), "{bad}");
        }
    }
}
