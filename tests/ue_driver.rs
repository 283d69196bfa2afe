//! The UE driver over real loopback sockets: pushes in, acknowledgements
//! back to the sender, events out, state surviving a restart; and the
//! `mbms-keys ue --listen-only` command as a media client would run it.

mod ue_driver_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mbms_keys::crypto::{Mtk, ProtectionKeys, Salt};
use mbms_keys::mbms::{
    AckContext, MskDelivery, MskUpdate, MtkDelivery, MtkKeys, Streaming, UnverifiedAck, build_msk,
    build_mtk,
};
use mbms_keys::mikey::MtkId;
use mbms_keys::ue::driver::{UeClient, UeConfig};
use mbms_keys::ue::{DiscardReason, Event};
use tokio::net::UdpSocket;
use ue_driver_support::{BTID, FQDN, ks_naf, msk, muk, provider};

fn msk_delivery(counter: u32) -> MskDelivery {
    MskDelivery::new(
        "00f110".parse().unwrap(),
        "00010002".parse().unwrap(),
        counter,
        vec![counter as u8; 16],
        FQDN,
        BTID,
        MskUpdate::NewKey {
            msk: msk(),
            seql: 1,
            sequ: 100,
        },
    )
}

fn mtk_message(mtk_id: u16, counter: u32, mtk: &Mtk) -> Vec<u8> {
    mtk_message_of(mtk_id, counter, mtk, None)
}

fn mtk_message_of(
    mtk_id: u16,
    counter: u32,
    mtk: &Mtk,
    streaming: Option<(Salt, Streaming)>,
) -> Vec<u8> {
    let (salt, streaming) = streaming.unzip();
    let d = MtkDelivery {
        key_domain_id: "00f110".parse().unwrap(),
        msk_id: "00010002".parse().unwrap(),
        csb_id: 0x00010002,
        mtk_id: MtkId(mtk_id),
        counter,
        mtk: mtk.clone(),
        salt,
        streaming,
    };
    build_mtk(&MtkKeys::new(&msk(), 0x00010002), &d).unwrap()
}

async fn next(client: &mut UeClient) -> Event {
    tokio::time::timeout(Duration::from_secs(5), client.next_event())
        .await
        .expect("an event within 5 s")
        .expect("client running")
}

fn config(state: Option<std::path::PathBuf>) -> UeConfig {
    let mut c = UeConfig::new(FQDN);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.state_file = state;
    c
}

#[tokio::test]
async fn push_acknowledge_and_mtk_over_loopback_then_restart_rejects_replays() {
    let dir = std::env::temp_dir().join(format!("mbms-ue-driver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("ue-state.bin");
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(dir.join("ue-state.bin.key"));

    let mut ue = UeClient::start(config(Some(state.clone())), provider())
        .await
        .unwrap();
    let bmsc = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let d = msk_delivery(5);
    let msk_msg = build_msk(&muk(), &d).unwrap();
    bmsc.send_to(&msk_msg, ue.local_addr()).await.unwrap();
    assert!(matches!(
        next(&mut ue).await,
        Event::MskInstalled {
            seql: 1,
            sequ: 100,
            ..
        }
    ));

    // The acknowledgement comes back to the sender's address and verifies.
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), bmsc.recv_from(&mut buf))
        .await
        .expect("ack within 5 s")
        .unwrap();
    assert_eq!(from, ue.local_addr());
    let keys = ProtectionKeys::derive(muk().as_bytes(), d.csb_id, &d.rand);
    let ctx = AckContext::new(keys, d.csb_id, 5, FQDN.as_bytes(), BTID.as_bytes());
    UnverifiedAck::parse(&buf[..n])
        .unwrap()
        .verify(&ctx)
        .unwrap();

    let mtk = Mtk::from_bytes([0xc3; 16]);
    let mtk_msg = mtk_message(2, 1, &mtk);
    bmsc.send_to(&mtk_msg, ue.local_addr()).await.unwrap();
    match next(&mut ue).await {
        Event::MtkReady {
            mtk_id, mtk: got, ..
        } => {
            assert_eq!(mtk_id, MtkId(2));
            assert_eq!(got, mtk);
        }
        other => panic!("{other:?}"),
    }
    ue.shutdown().await;
    assert!(state.exists());
    let key_mode = std::fs::metadata(dir.join("ue-state.bin.key")).unwrap();
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );
    let sealed = std::fs::read(&state).unwrap();
    assert!(
        !sealed.windows(16).any(|w| w == msk().as_bytes()),
        "state file reveals the MSK"
    );

    // Restart from the state file: both messages are replays now.
    let mut ue = UeClient::start(config(Some(state.clone())), provider())
        .await
        .unwrap();
    bmsc.send_to(&msk_msg, ue.local_addr()).await.unwrap();
    assert_eq!(
        next(&mut ue).await,
        Event::Discarded {
            reason: DiscardReason::Replay
        }
    );
    bmsc.send_to(&mtk_msg, ue.local_addr()).await.unwrap();
    assert!(matches!(next(&mut ue).await, Event::Discarded { .. }));
    // The next MTK is accepted.
    let mtk2 = Mtk::from_bytes([0xc4; 16]);
    bmsc.send_to(&mtk_message(3, 2, &mtk2), ue.local_addr())
        .await
        .unwrap();
    assert!(matches!(
        next(&mut ue).await,
        Event::MtkReady {
            mtk_id: MtkId(3),
            ..
        }
    ));
    // No acknowledgement is ever sent for an MTK message or a discard.
    let quiet = tokio::time::timeout(Duration::from_millis(300), bmsc.recv_from(&mut buf)).await;
    assert!(quiet.is_err(), "unexpected datagram back");
    ue.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ue_command_prints_one_json_line_per_event() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
        .args([
            "ue",
            "--listen-only",
            "--idi",
            FQDN,
            "--btid",
            BTID,
            "--ks-naf",
            &hex::encode(ks_naf().as_bytes()),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "Listening");
    let addr: std::net::SocketAddr = first["addr"].as_str().unwrap().parse().unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&build_msk(&muk(), &msk_delivery(9)).unwrap(), addr)
        .unwrap();
    let l: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(l["event"], "MskInstalled");
    assert_eq!(l["msk_id"], "00010002");
    sock.send_to(b"not mikey", addr).unwrap();
    let mtk = Mtk::from_bytes([0x5c; 16]);
    sock.send_to(&mtk_message(7, 1, &mtk), addr).unwrap();
    let l: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        l["event"], "MtkReady",
        "the garbage datagram must not produce a stdout line"
    );
    assert_eq!(l["mtk_id"], 7);
    assert_eq!(l["mki"], "000100020007", "MSK ID ‖ MTK ID");
    assert_eq!(l["mtk"], hex::encode([0x5c; 16]));
    assert!(l["salt"].is_null() && l["policy"].is_null(), "{l}");
    assert_eq!(l["srtp_ids"], serde_json::json!([]));
    // A streaming MTK: the SRTP policy and the crypto sessions for the media client.
    let streaming = (
        Salt::from_bytes([0x5d; 14]),
        Streaming::srtp_default(0xdead_beef, 3),
    );
    sock.send_to(&mtk_message_of(8, 2, &mtk, Some(streaming)), addr)
        .unwrap();
    let l: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(l["event"], "MtkReady");
    assert_eq!(l["mki"], "000100020008");
    assert_eq!(l["salt"], hex::encode([0x5d; 14]));
    assert_eq!(
        l["srtp_ids"],
        serde_json::json!([{"policy_no": 0, "ssrc": 0xdead_beef_u32, "roc": 3}])
    );
    let p = &l["policy"];
    assert_eq!(p["suite"], "AES_CM_128_HMAC_SHA1_80", "{p}");
    assert_eq!(
        (&p["cipher"], &p["auth"]),
        (&"AES-CM".into(), &"HMAC-SHA-1".into())
    );
    assert_eq!(
        (&p["cipher_key_len"], &p["auth_tag_len"]),
        (&16.into(), &10.into())
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("malformed"),
        "discard logged on stderr: {stderr}"
    );
    assert!(
        !stderr.contains(&hex::encode([0x5c; 16])),
        "MTK leaked to stderr"
    );
}
