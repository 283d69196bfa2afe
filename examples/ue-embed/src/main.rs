//! A media client's key handling, as small as it gets: the UE side of mbms-keys built with only
//! its `ue` feature, receiving MSK and MTK messages pushed to a UDP port and printing each MTK as
//! a media client would hand it to its SRTP or FLUTE decryptor.
//!
//! ```text
//! mbms-ue-embed LISTEN_ADDR BMSC_FQDN B-TID KS_NAF_HEX
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mbms_keys::crypto::KsNaf;
use mbms_keys::gba::GbaKeys;
use mbms_keys::ue::Event;
use mbms_keys::ue::driver::{UeClient, UeConfig};
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, fqdn, btid, ks_naf] = args.as_slice() else {
        eprintln!("usage: mbms-ue-embed LISTEN_ADDR BMSC_FQDN B-TID KS_NAF_HEX");
        return ExitCode::from(2);
    };
    match run(listen, fqdn, btid, ks_naf).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(listen: &str, fqdn: &str, btid: &str, ks_naf: &str) -> Result<(), String> {
    let keys = UeGbaKeys {
        btid: btid.parse().map_err(|e| format!("B-TID: {e}"))?,
        material: GbaKeys::Me {
            ks_naf: KsNaf::from_hex(ks_naf).map_err(|e| format!("Ks_NAF: {e}"))?,
        },
        expiry: SystemTime::now() + Duration::from_secs(24 * 3600),
    };
    let mut config = UeConfig::new(fqdn);
    config.listen = listen.parse().map_err(|e| format!("listen address: {e}"))?;
    let mut ue = UeClient::start(config, Arc::new(StaticGbaKeys::new(keys)))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("listening on {}", ue.local_addr());
    while let Some(event) = ue.next_event().await {
        if let Some(line) = describe(&event) {
            println!("{line}");
        }
    }
    Ok(())
}

/// One line per key event; the MTK itself is printed only as its identifiers.
fn describe(event: &Event) -> Option<String> {
    match event {
        Event::MskInstalled {
            key_domain_id,
            msk_id,
            ..
        } => Some(format!(
            "MSK installed: key domain {key_domain_id}, MSK {msk_id}"
        )),
        Event::MtkReady {
            key_domain_id,
            msk_id,
            mtk_id,
            ..
        } => Some(format!(
            "MTK ready: key domain {key_domain_id}, MSK {msk_id}, MTK {}",
            mtk_id.0
        )),
        _ => None,
    }
}
