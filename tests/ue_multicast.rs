//! The UE driver joined to a multicast group over loopback: the MSK arrives by unicast push,
//! the MTK message by the group, and both reach the same receiver. IPv4 multicast works on `lo`
//! when both sides name 127.0.0.1 as the interface; IPv6 needs more than `lo` and is left to the
//! parsing tests of `ue::multicast`.

mod ue_driver_support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, SystemTime};

use mbms_keys::crypto::{Mtk, Muk, Salt};
use mbms_keys::mbms::{
    MskDelivery, MskId, MskUpdate, MtkDelivery, MtkId, MtkKeys, Streaming, build_msk, build_mtk,
    profile,
};
use mbms_keys::ue::Event;
use mbms_keys::ue::driver::{UeClient, UeConfig, UeError};
use mbms_keys::ue::multicast::Join;
use socket2::{Domain, Protocol, Socket, Type};
use ue_driver_support::{BTID, FQDN, ks_naf, msk, provider};

fn msk_id() -> MskId {
    MskId::new(1, 2)
}

/// A group and port of the administratively scoped range, different for each run and test.
fn random_group() -> (Ipv4Addr, u16) {
    let probe = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let x = nanos ^ std::process::id() ^ u32::from(port);
    (Ipv4Addr::new(239, 255, (x >> 8) as u8, x as u8 | 1), port)
}

/// A BM-SC sender whose multicast leaves by `lo`, looped back to this host.
fn multicast_sender() -> StdUdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_loop_v4(true).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    s.into()
}

async fn next_key_event(ue: &mut UeClient) -> Event {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ue.next_event().await.expect("client running") {
                Event::Discarded { .. } => continue,
                e => return e,
            }
        }
    })
    .await
    .expect("an event within 5 s")
}

#[tokio::test]
async fn mtk_messages_arrive_by_the_joined_group_and_msks_by_unicast() {
    let (group, port) = random_group();
    let mut config = UeConfig::new(FQDN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.join = vec![format!("{group}:{port}%127.0.0.1").parse::<Join>().unwrap()];
    let mut ue = UeClient::start(config, provider()).await.unwrap();

    // The MSK: pushed unicast to the listen socket, acknowledged from it.
    let bmsc = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    let push = MskDelivery::new(
        "00f110".parse().unwrap(),
        msk_id(),
        1,
        vec![0x11; 16],
        FQDN,
        BTID,
        MskUpdate::NewKey {
            msk: msk(),
            seql: 0,
            sequ: 100,
        },
    );
    let muk = Muk::from_bytes(*ks_naf().as_bytes());
    bmsc.send_to(&build_msk(&muk, &push).unwrap(), ue.local_addr())
        .unwrap();
    assert!(matches!(
        next_key_event(&mut ue).await,
        Event::MskInstalled { .. }
    ));
    bmsc.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let (_, from) = bmsc.recv_from(&mut buf).expect("an acknowledgement");
    assert_eq!(from, ue.local_addr());

    // The MTK: a streaming MTK message to the group.
    let csb_id = profile::csb_id_for(msk_id());
    let mtk = Mtk::from_bytes([0x5c; 16]);
    let d = MtkDelivery {
        key_domain_id: "00f110".parse().unwrap(),
        msk_id: msk_id(),
        csb_id,
        mtk_id: MtkId(1),
        counter: 2,
        mtk: mtk.clone(),
        salt: Some(Salt::from_bytes([0x5d; 14])),
        streaming: Some(Streaming::srtp_default(0x1234_5678, 0)),
    };
    let message = build_mtk(&MtkKeys::new(&msk(), csb_id), &d).unwrap();
    multicast_sender().send_to(&message, (group, port)).unwrap();
    match next_key_event(&mut ue).await {
        Event::MtkReady {
            mtk_id,
            mki,
            mtk: got,
            srtp_ids,
            ..
        } => {
            assert_eq!(mtk_id, MtkId(1));
            assert_eq!(got, mtk);
            assert_eq!(mki, profile::srtp_mki(msk_id(), MtkId(1)));
            assert_eq!(srtp_ids[0].ssrc, 0x1234_5678);
        }
        other => panic!("{other:?}"),
    }
    ue.shutdown().await;
}

#[tokio::test]
async fn a_group_that_cannot_be_joined_stops_the_start_with_its_name() {
    let mut config = UeConfig::new(FQDN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    // 192.0.2.1 (TEST-NET-1) is no interface of this host.
    config.join = vec!["239.255.3.4:4000%192.0.2.1".parse().unwrap()];
    match UeClient::start(config, provider()).await {
        Err(UeError::Join { group, .. }) => assert_eq!(group, "239.255.3.4:4000%192.0.2.1"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("joined on an address of no interface"),
    }
}
