//! The Key Distribution driver over loopback: three UEs on 127.0.0.1, 127.0.0.2 and
//! 127.0.0.3 (Linux routes all of 127/8 to lo), each bound to the configured `ue_port`,
//! receive their MSK pushes, answer with acknowledgements, and get the next MSK at a rotation;
//! an MTK listener receives the MTK messages, and the download objects land in their directory.

mod common;

use common::TempDir;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::{Datagram, Distributor, os_rng};
use mbms_keys::bmsc::events::KeyRequestEvent;
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::{Registration, SqliteStore, Store};
use mbms_keys::bmsc::udp::{run_distribution, send_batch};
use mbms_keys::crypto::{Fixed, StateKey};
use mbms_keys::files::write_atomic;
use mbms_keys::gba::KeySource;
use mbms_keys::mbms::profile::csb_id_for;
use mbms_keys::mbms::{MtkKeys, MukId, UnverifiedMtk};
use mbms_keys::mikey::{KeyDomainId, MskId};
use mbms_keys::ue::{Event, Receiver, ReceiverConfig};

const FQDN: &str = "bmsc.example.org";
const KD: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);

fn btid(i: u8) -> String {
    format!("ue{i}@bsf.example.org")
}

fn ue_ip(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, i + 1))
}

/// Three UE sockets on 127.0.0.1-3 sharing one free port.
async fn ue_sockets() -> (u16, Vec<UdpSocket>) {
    for _ in 0..50 {
        let first = UdpSocket::bind((ue_ip(0), 0)).await.expect("bind");
        let port = first.local_addr().expect("addr").port();
        let mut all = vec![first];
        for i in 1..3 {
            match UdpSocket::bind((ue_ip(i), port)).await {
                Ok(s) => all.push(s),
                Err(_) => break,
            }
        }
        if all.len() == 3 {
            return (port, all);
        }
    }
    panic!("no port free on 127.0.0.1-3");
}

fn config(dir: &Path, ue_port: u16, mtk_dest: SocketAddr) -> Config {
    let mut text = format!(
        "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\nue_port = {ue_port}\n\
         [push]\nretries = 3\ninitial_backoff = \"200ms\"\nmax_backoff = \"1s\"\n",
        dir.display()
    );
    for i in 0..3u8 {
        text.push_str(&format!(
            "[[gba.subscribers]]\nbtid = \"{}\"\nimpi = \"user{i}@ims.example.org\"\n\
             ks_naf = \"{}\"\nexpires = \"2035-01-01T00:00:00Z\"\n",
            btid(i),
            hex::encode([i + 1; 32])
        ));
    }
    text.push_str(&format!(
        r#"
[[services]]
id = "news"
key_domain = "00f110"
key_group = 1
msk_lifetime = "4s"
mtk_interval = "1s"
mtk_resend = "250ms"
mtk_destination = "{mtk_dest}"
transport = "download"
mtk_object_dir = "{}"
authorized = "*"
"#,
        dir.join("mtk").display()
    ));
    Config::parse_with_env(&text, |_| None).expect("valid configuration")
}

/// A UE: answers every push on its socket, records its receiver's events.
fn spawn_ue(
    socket: UdpSocket,
    mut rx: Receiver,
    events: Arc<Mutex<Vec<Event>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let now = start + start.elapsed();
            let ack = rx.handle_datagram(now, &buf[..n]);
            if let Some(ack) = ack {
                let _ = socket.send_to(&ack, from).await;
            }
            let mut ev = events.lock().expect("lock");
            while let Some(e) = rx.poll_event() {
                ev.push(e);
            }
        }
    })
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_acknowledged_and_rotated_over_loopback() {
    let dir = TempDir::new("loopback");
    let (ue_port, ue_socks) = ue_sockets().await;
    let mtk_listener = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mtk_dest = mtk_listener.local_addr().expect("addr");
    let cfg = config(dir.path(), ue_port, mtk_dest);
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("db"), StateKey::from_bytes([7; 32])).expect("store"),
    );
    let keys: Arc<dyn KeySource> = Arc::new(cfg.key_source().expect("key source"));
    let metrics = Arc::new(Metrics::default());
    let d = Distributor::new(
        &cfg,
        store.clone(),
        keys.clone(),
        metrics.clone(),
        os_rng(),
        mbms_keys::bmsc::udp::clocks(),
    )
    .expect("distributor");
    let mtks = d.current_mtks();
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let (events_tx, events_rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let driver = tokio::spawn(run_distribution(d, socket, events_rx, async move {
        let _ = stop_rx.await;
    }));

    let mut ue_events = Vec::new();
    let mut ue_tasks = Vec::new();
    for (i, sock) in ue_socks.into_iter().enumerate() {
        let i = u8::try_from(i).expect("three");
        let mut rx = Receiver::new(ReceiverConfig::default(), Box::new(Fixed(0)));
        let muk = keys
            .lookup(&btid(i), SystemTime::now())
            .expect("known")
            .keys
            .muk();
        rx.set_muk(MukId::new(FQDN.as_bytes(), btid(i).as_bytes()), muk);
        let events = Arc::new(Mutex::new(Vec::new()));
        ue_tasks.push(spawn_ue(sock, rx, events.clone()));
        ue_events.push(events);
        store
            .register(&Registration {
                btid: btid(i).parse().expect("btid"),
                service_id: "news".to_owned(),
                ue_addr: ue_ip(i),
                registered_at: SystemTime::now(),
            })
            .expect("register");
        events_tx
            .send(KeyRequestEvent::Registered {
                btid: btid(i).parse().expect("btid"),
                ue_addr: ue_ip(i),
                service_ids: vec!["news".to_owned()],
            })
            .await
            .expect("driver running");
    }

    // The registration pushes, acknowledged by each UE.
    wait_for("3 acknowledgements", Duration::from_secs(10), || {
        metrics.pushes_acked.get() >= 3
    })
    .await;
    // A rotation: the next MSK fanned out to the three and acknowledged, then switched to.
    wait_for("a rotation", Duration::from_secs(15), || {
        metrics.msk_rotations.get() >= 1 && metrics.pushes_acked.get() >= 6
    })
    .await;
    for (i, events) in ue_events.iter().enumerate() {
        let events = events.lock().expect("lock").clone();
        let installed: Vec<u16> = events
            .iter()
            .filter_map(|e| match e {
                Event::MskInstalled { msk_id, .. } => Some(msk_id.key_number),
                _ => None,
            })
            .collect();
        assert!(installed.starts_with(&[1, 2]), "UE {i}: {installed:?}");
    }
    assert_eq!(metrics.acks_rejected.get(), 0);

    // MTK messages reach the destination; they verify under the MSK and carry the MTK the
    // media side is told about.
    let mut buf = vec![0u8; 2048];
    while mtk_listener.try_recv_from(&mut buf).is_ok() {}
    let mut received = Vec::new();
    let mut found = false;
    for _ in 0..10 {
        let until = Instant::now() + Duration::from_millis(600);
        while Instant::now() < until {
            let Ok(r) =
                tokio::time::timeout(Duration::from_millis(600), mtk_listener.recv_from(&mut buf))
                    .await
            else {
                break;
            };
            let n = r.expect("recv").0;
            let un = UnverifiedMtk::parse(&buf[..n]).expect("an MTK message");
            let rec = store
                .msk(KD, un.msk_id())
                .expect("read")
                .expect("its MSK is stored");
            let (mtk_id, msk_id) = (un.mtk_id(), un.msk_id());
            let msg = un
                .verify(&MtkKeys::new(&rec.msk, csb_id_for(msk_id)))
                .expect("verifies under the MSK");
            received.push((mtk_id, msg.mtk));
        }
        // The MTK the media side uses now is among those just sent (it is repeated every
        // 250 ms, and announced before it became current).
        let (id, mtk, _) = mtks.get("news").expect("a current MTK");
        if received.iter().any(|(i, m)| *i == id && *m == mtk) {
            found = true;
            break;
        }
    }
    assert!(found, "the current MTK was sent");
    let object = dir
        .path()
        .join("mtk")
        .join(format!("{}-0001.mikey", MskId::new(1, 1)));
    let bytes = std::fs::read(&object).expect("the first MTK object was written");
    assert!(UnverifiedMtk::parse(&bytes).is_ok());

    let _ = stop_tx.send(());
    let d = tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the driver stops")
        .expect("task")
        .expect("no error");
    assert!(d.current_mtk("news").is_some());
    assert!(metrics.pushes_sent.get() >= 6);
    assert!(metrics.mtk_messages.get() >= 3);
    for t in ue_tasks {
        t.abort();
    }
}

#[test]
fn mtk_objects_are_replaced_atomically() {
    let dir = TempDir::new("atomic");
    let path = dir.path().join("a/b/00010001-0001.mikey");
    write_atomic(&path, b"first").expect("write");
    write_atomic(&path, b"second").expect("write");
    assert_eq!(std::fs::read(&path).expect("read"), b"second");
    let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left behind");
}

#[tokio::test]
async fn a_batch_goes_out_whole_past_a_datagram_that_cannot_be_sent() {
    // 600 datagrams over several `sendmmsg` chunks, spread over 4 receivers so that no
    // receive buffer overflows.
    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut receivers = Vec::new();
    for _ in 0..4 {
        receivers.push(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
    }
    let addrs: Vec<SocketAddr> = receivers
        .iter()
        .map(|r| r.local_addr().expect("addr"))
        .collect();
    let mut batch: Vec<Datagram> = (0..600u32)
        .map(|i| Datagram {
            to: addrs[i as usize % 4],
            bytes: bytes::Bytes::from(i.to_be_bytes().to_vec()),
        })
        .collect();
    // An IPv6 destination from an IPv4 socket fails on its own.
    batch.insert(
        300,
        Datagram {
            to: "[::1]:9".parse().expect("addr"),
            bytes: bytes::Bytes::from_static(b"lost"),
        },
    );
    send_batch(&sender, &batch).await;
    for (r, receiver) in receivers.iter().enumerate() {
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let want: Vec<u32> = (0..600).filter(|i| *i as usize % 4 == r).collect();
        while got.len() < want.len() {
            let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_secs(2), receiver.recv_from(&mut buf)).await
            else {
                break;
            };
            got.push(u32::from_be_bytes(buf[..n].try_into().expect("4 octets")));
        }
        assert_eq!(got, want, "receiver {r}: every datagram, in order");
    }
}
