//! End to end over loopback: a BM-SC and several UE clients of this crate,
//! each on its own 127.0.0.x address and `ue_port`: register, receive the
//! MSK, acknowledge, receive MTKs, rotate the MSK, deregister and receive
//! the invalidation; then the metrics scraped at the end.

mod common;
mod bmsc_e2e {
    pub mod lab;
}

use std::time::Duration;

use bmsc_e2e::lab::{self, Relay, SERVICE, TempDir, http_get, metric, start_ue, wait_for};
use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::server::Bmsc;
use mbms_keys::ue::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_ues_register_receive_keys_through_a_rotation_and_deregister() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("mbms_keys::bmsc::keyreq=debug,mbms_keys::ue::http=debug")
        .try_init();
    let dir = TempDir::new("main");
    let relay = Relay::start().await;
    let ue_port = lab::free_udp_port();
    let text = lab::config_text(dir.path(), ue_port, relay.addr, &[1, 2, 3], "8s", 4);
    let config = Config::parse(&text).expect("lab config");
    let tuning = Tuning {
        max_lead: std::time::Duration::from_secs(3),
        ..Tuning::default()
    };
    let bmsc = Bmsc::start_with(config, tuning)
        .await
        .expect("BM-SC starts");

    let mut ues = Vec::new();
    let mut seen = vec![Vec::new(); 3];
    for i in 1..=3u8 {
        let ue = start_ue(i, ue_port, bmsc.http_addr(), None).await;
        relay.targets.lock().unwrap().push(ue.local_addr());
        let r = ue
            .register(&[SERVICE.to_string()])
            .await
            .expect("registration");
        assert_eq!(r.statuses.len(), 1);
        assert_eq!(r.statuses[0].code, 200, "UE {i}");
        ues.push(ue);
    }
    // Every UE installs the current MSK and gets MTKs under it.
    let mut first_msk = None;
    for (i, ue) in ues.iter_mut().enumerate() {
        let e = wait_for(
            ue,
            &mut seen[i],
            Duration::from_secs(10),
            "MskInstalled",
            |e| matches!(e, Event::MskInstalled { .. }),
        )
        .await;
        if let Event::MskInstalled { msk_id, .. } = e {
            first_msk.get_or_insert(msk_id);
        }
        wait_for(ue, &mut seen[i], Duration::from_secs(10), "MtkReady", |e| {
            matches!(e, Event::MtkReady { .. })
        })
        .await;
    }
    let first_msk = first_msk.expect("an MSK");
    // The UEs' MTK is the one the media encryption side gets from the BM-SC:
    // once UE 1 holds the BM-SC's current MTK ID, it holds the same key. (A UE
    // that joined late may get the next MTK, announced ahead, before the
    // current one: it then waits for the switch.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (mtk_id, mtk, _) = bmsc.current_mtks().get(SERVICE).expect("current MTK");
        let held = seen[0].iter().find_map(|e| match e {
            Event::MtkReady {
                mtk_id: id, mtk: m, ..
            } if *id == mtk_id => Some(*m == mtk),
            _ => None,
        });
        match held {
            Some(same) => {
                assert!(same, "UE 1 holds MTK {mtk_id:?} with another key");
                break;
            }
            None => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "UE 1 never held the current MTK"
                );
                if let Ok(Some(e)) =
                    tokio::time::timeout(Duration::from_millis(300), ues[0].next_event()).await
                {
                    seen[0].push(e);
                }
            }
        }
    }

    // Rotation: the next MSK (Key Number + 1) reaches every UE, then MTKs under it.
    for (i, ue) in ues.iter_mut().enumerate() {
        let e = wait_for(
            ue,
            &mut seen[i],
            Duration::from_secs(20),
            "next MSK",
            |e| matches!(e, Event::MskInstalled { msk_id, .. } if *msk_id != first_msk),
        )
        .await;
        let Event::MskInstalled { msk_id: next, .. } = e else {
            unreachable!()
        };
        assert_eq!(next.key_group, first_msk.key_group);
        assert_eq!(next.key_number, first_msk.key_number + 1);
        wait_for(
            ue,
            &mut seen[i],
            Duration::from_secs(20),
            "MTK under the next MSK",
            |e| matches!(e, Event::MtkReady { msk_id, .. } if *msk_id == next),
        )
        .await;
    }

    // Deregistration of UE 1: its MSKs are invalidated.
    let r = ues[0]
        .deregister(&[SERVICE.to_string()])
        .await
        .expect("deregistration");
    assert_eq!(r.statuses[0].code, 200);
    wait_for(
        &mut ues[0],
        &mut seen[0],
        Duration::from_secs(10),
        "MskInvalidated",
        |e| matches!(e, Event::MskInvalidated { .. }),
    )
    .await;

    // Give the last acknowledgements a moment, then scrape the metrics. MTKs under the next MSK
    // are announced ahead of its switch, so the switch (the rotation metric) may still be due:
    // scrape again until it is counted, for as long as one MSK lifetime.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let response = loop {
        let response = http_get(bmsc.admin_addr(), "/metrics").await;
        let (_, text) = response.split_once("\r\n\r\n").expect("metrics body");
        if metric(text, "mbms_bmsc_msk_rotations_total") >= 1
            || tokio::time::Instant::now() >= deadline
        {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, text) = response.split_once("\r\n\r\n").expect("metrics body");
    let interesting: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("mbms_bmsc_") && !l.contains("_bucket"))
        .collect();
    eprintln!(
        "metrics at the end of the e2e test:\n{}",
        interesting.join("\n")
    );
    let discards: usize = seen
        .iter()
        .flatten()
        .filter(|e| matches!(e, Event::Discarded { .. }))
        .count();
    let mtks: usize = seen
        .iter()
        .flatten()
        .filter(|e| matches!(e, Event::MtkReady { .. }))
        .count();
    eprintln!(
        "UE events: {} in all, {mtks} MtkReady, {discards} discards (repeated MTK messages), relay forwarded {} MTK messages",
        seen.iter().map(Vec::len).sum::<usize>(),
        relay.forwarded.lock().unwrap()
    );
    assert_eq!(metric(text, "mbms_bmsc_registrations_accepted_total"), 3);
    assert_eq!(
        metric(text, "mbms_bmsc_registrations"),
        2,
        "stored after one deregistration"
    );
    assert_eq!(metric(text, "mbms_bmsc_deregistrations_total"), 1);
    // The three registrations went through the store's group commit: at most one commit each.
    assert_eq!(metric(text, "mbms_bmsc_store_batch_size_sum"), 3);
    let commits = metric(text, "mbms_bmsc_store_commits_total");
    assert!((1..=3).contains(&commits), "{commits} commits");
    // 3 first MSKs + 3 next MSKs + 1 invalidation (or 2, current and next) at least.
    assert!(metric(text, "mbms_bmsc_pushes_sent_total") >= 7);
    assert!(metric(text, "mbms_bmsc_pushes_acked_total") >= 6);
    assert_eq!(metric(text, "mbms_bmsc_pushes_failed_total"), 0);
    assert!(metric(text, "mbms_bmsc_msk_rotations_total") >= 1);
    assert!(metric(text, "mbms_bmsc_mtk_messages_total") >= 4);
    assert!(metric(text, "mbms_bmsc_invalidations_sent_total") >= 1);
    assert_eq!(metric(text, "mbms_bmsc_digest_failures_total"), 0);
    let health = http_get(bmsc.admin_addr(), "/health").await;
    assert!(
        health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.0 200"),
        "{health}"
    );

    for ue in ues {
        ue.shutdown().await;
    }
    bmsc.shutdown().await.expect("graceful shutdown");
}
