//! The UE side as a media client embeds it (only the `ue` feature): the sans-IO receiver applies
//! the shared vector messages, and the driver receives an MSK and an MTK message over loopback
//! UDP, acknowledges the MSK and hands the MTK over.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mbms_keys::crypto::{Fixed, KsNaf, Msk, Mtk, Muk};
use mbms_keys::gba::GbaKeys;
use mbms_keys::mbms::{
    AckContext, MskDelivery, MskId, MskUpdate, MtkDelivery, MtkId, MtkKeys, MukId, UnverifiedAck,
    UnverifiedMsk, build_msk, build_mtk,
};
use mbms_keys::ue::driver::{UeClient, UeConfig};
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::{Event, Receiver, ReceiverConfig};
use serde_json::Value;

const IDI: &str = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";
const BTID: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org";

fn vector(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../proto-vectors")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn hex_at(v: &Value, path: &[&str]) -> Vec<u8> {
    let s = path
        .iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_else(|| panic!("{path:?}"));
    hex::decode(s).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn events(rx: &mut Receiver) -> Vec<Event> {
    std::iter::from_fn(|| rx.poll_event()).collect()
}

#[test]
fn the_receiver_applies_the_vector_msk_and_mtk_messages() {
    let msk_vector = vector("msk-message-normal");
    let muk = Muk::from_slice(&hex_at(&msk_vector, &["inputs", "muk"])).expect("MUK");
    let mut rx = Receiver::new(ReceiverConfig::default(), Box::new(Fixed(0)));
    rx.set_muk(MukId::new(IDI.as_bytes(), BTID.as_bytes()), muk);
    let now = Instant::now();

    let ack = rx.handle_datagram(now, &hex_at(&msk_vector, &["message"]));
    assert!(ack.is_some(), "the MSK message asks for an acknowledgement");
    let installed = events(&mut rx);
    assert!(
        installed
            .iter()
            .any(|e| matches!(e, Event::MskInstalled { .. })),
        "{installed:?}"
    );

    let mtk_vector = vector("mtk-message-download");
    let _ = rx.handle_datagram(now, &hex_at(&mtk_vector, &["message"]));
    let want = hex_at(&mtk_vector, &["inputs", "mtk"]);
    let ready = events(&mut rx);
    assert!(
        ready
            .iter()
            .any(|e| matches!(e, Event::MtkReady { mtk, .. } if mtk.as_bytes().as_slice() == want)),
        "{ready:?}"
    );
}

#[tokio::test]
async fn the_driver_acknowledges_an_msk_push_and_hands_over_the_mtk() {
    let ks_naf = KsNaf::from_bytes([0x5a; 32]);
    let keys = UeGbaKeys {
        btid: BTID.parse().expect("B-TID"),
        material: GbaKeys::Me {
            ks_naf: ks_naf.clone(),
        },
        expiry: SystemTime::now() + Duration::from_secs(3600),
    };
    let muk = keys.muk();
    let mut config = UeConfig::new(IDI);
    config.listen = "127.0.0.1:0".parse().expect("address");
    let mut ue = UeClient::start(config, Arc::new(StaticGbaKeys::new(keys)))
        .await
        .expect("UE starts");

    let bmsc = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("BM-SC socket");
    let kd = "00f110".parse().expect("key domain");
    let msk = Msk::from_bytes([0x11; 16]);
    let delivery = MskDelivery::new(
        kd,
        MskId::new(1, 2),
        7,
        vec![0x22; 16],
        IDI,
        BTID,
        MskUpdate::NewKey {
            msk: msk.clone(),
            seql: 0,
            sequ: 0xffff,
        },
    );
    let push = build_msk(&muk, &delivery).expect("MSK message");
    bmsc.send_to(&push, ue.local_addr()).await.expect("send");

    let mut ack = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), bmsc.recv_from(&mut ack))
        .await
        .expect("acknowledgement in time")
        .expect("receive");
    let ack = UnverifiedAck::parse(ack.get(..n).expect("length")).expect("an acknowledgement");
    let sent = UnverifiedMsk::parse(&push)
        .expect("MSK message")
        .verify(&muk)
        .expect("verifies");
    assert!(
        ack.verify(&AckContext::of(&sent)).is_ok(),
        "the acknowledgement verifies under the MUK"
    );

    let mtk = Mtk::from_bytes([0x33; 16]);
    let message = build_mtk(
        &MtkKeys::new(&msk, MskId::new(1, 2).to_u32()),
        &MtkDelivery {
            key_domain_id: kd,
            msk_id: MskId::new(1, 2),
            csb_id: MskId::new(1, 2).to_u32(),
            mtk_id: MtkId(1),
            counter: 1,
            mtk: mtk.clone(),
            salt: None,
            streaming: None,
        },
    )
    .expect("MTK message");
    bmsc.send_to(&message, ue.local_addr()).await.expect("send");
    let ready = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = ue.next_event().await {
            if let Event::MtkReady {
                mtk_id, mtk: got, ..
            } = e
            {
                return Some((mtk_id, got));
            }
        }
        None
    })
    .await
    .expect("MTK in time");
    let (mtk_id, got) = ready.expect("an MtkReady event");
    assert_eq!(mtk_id, MtkId(1));
    assert_eq!(got.as_bytes(), mtk.as_bytes());
    ue.shutdown().await;
}
