//! Crash test: `kill -9` the BM-SC process during an MSK rotation with
//! pushes in flight, restart it, and check that no registration is lost, no
//! counter is reused (UEs that received messages before the crash accept
//! the next ones and reject replays), and the MSKs stay consistent.

mod common;
mod bmsc_e2e {
    pub mod lab;
}

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bmsc_e2e::lab::{self, Relay, SERVICE, TempDir, start_ue, wait_for};
use mbms_keys::ue::{DiscardReason, Event};

const UES: u8 = 12;

/// The server process, killed when the test ends (also on panic).
struct Server(Child);

impl Server {
    fn kill_9(&mut self) {
        self.0.kill().expect("kill -9");
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_server(config: &std::path::Path) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
            .args(["bmsc", "serve", "--config"])
            .arg(config)
            .env("MBMS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server starts"),
    )
}

async fn wait_listening(addr: std::net::SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server not listening on {addr}");
}

fn status(config: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
        .args(["bmsc", "status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("status runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_rotation_then_restart_loses_nothing_and_reuses_no_counter() {
    let dir = TempDir::new("crash");
    let relay = Relay::start().await;
    let ue_port = lab::free_udp_port();
    // Checked free for TCP too, outside the ephemeral range.
    let http_port = lab::free_udp_port();
    let text = lab::config_text(
        dir.path(),
        ue_port,
        relay.addr,
        &(1..=UES).collect::<Vec<_>>(),
        "6s",
        6,
    )
    .replace(
        "http_listen = \"127.0.0.1:0\"",
        &format!("http_listen = \"127.0.0.1:{http_port}\""),
    );
    let config = dir.path().join("bmsc.toml");
    std::fs::write(&config, text).unwrap();
    let http: std::net::SocketAddr = ([127, 0, 0, 1], http_port).into();

    let mut server = spawn_server(&config);
    wait_listening(http).await;
    let mut ues = Vec::new();
    let mut seen = vec![Vec::new(); usize::from(UES)];
    for i in 1..=UES {
        let state = dir.path().join(format!("ue{i}.state"));
        let ue = start_ue(i, ue_port, http, Some(state)).await;
        let r = ue
            .register(&[SERVICE.to_string()])
            .await
            .expect("registration");
        assert_eq!(r.statuses[0].code, 200);
        ues.push(ue);
    }
    // Everyone holds the first MSK; keep one MSK message of UE 1 to replay later.
    let mut first = None;
    for (i, ue) in ues.iter_mut().enumerate() {
        let e = wait_for(
            ue,
            &mut seen[i],
            Duration::from_secs(10),
            "first MSK",
            |e| matches!(e, Event::MskInstalled { .. }),
        )
        .await;
        if let Event::MskInstalled { msk_id, .. } = e {
            first.get_or_insert(msk_id);
        }
        // The MTK stream reaches a UE once it holds the MSK (an MTK message before the
        // registration's push would be discarded for an unknown MSK).
        relay.targets.lock().unwrap().push(ue.local_addr());
    }
    let first = first.unwrap();
    // Crash as soon as the rotation's fan-out has reached the first UE:
    // the pushes to the others are in flight (or not yet sent).
    wait_for(
        &mut ues[0],
        &mut seen[0],
        Duration::from_secs(15),
        "next MSK at UE 1",
        |e| matches!(e, Event::MskInstalled { msk_id, .. } if *msk_id != first),
    )
    .await;
    server.kill_9();
    let got_next_before: usize = seen
        .iter()
        .filter(|s| {
            s.iter()
                .any(|e| matches!(e, Event::MskInstalled { msk_id, .. } if *msk_id != first))
        })
        .count();

    // Restart. Registrations are all there.
    let st = status(&config);
    let svc = &st["services"][0];
    assert_eq!(svc["registrations"], u64::from(UES), "{st}");
    let server = spawn_server(&config);
    wait_listening(http).await;

    // Every UE ends up with an MSK newer than the first and MTKs under it:
    // messages sent after the restart carry counters its receiver accepts.
    let mut next_ids = Vec::new();
    for (i, ue) in ues.iter_mut().enumerate() {
        let already = seen[i].iter().find_map(|e| match e {
            Event::MskInstalled { msk_id, .. } if *msk_id != first => Some(*msk_id),
            _ => None,
        });
        let next = match already {
            Some(id) => id,
            None => match wait_for(
                ue,
                &mut seen[i],
                Duration::from_secs(20),
                "next MSK after restart",
                |e| matches!(e, Event::MskInstalled { msk_id, .. } if *msk_id != first),
            )
            .await
            {
                Event::MskInstalled { msk_id, .. } => msk_id,
                _ => unreachable!(),
            },
        };
        next_ids.push(next);
        let start = seen[i].len();
        wait_for(
            ue,
            &mut seen[i],
            Duration::from_secs(20),
            "MTK after restart",
            |e| matches!(e, Event::MtkReady { msk_id, .. } if msk_id.key_number >= next.key_number),
        )
        .await;
        let _ = start;
    }
    // MSKs consistent: every UE holds the same next MSK, and the store holds
    // it too (as the next or, after the switch-over, the current MSK).
    assert!(next_ids.windows(2).all(|w| w[0] == w[1]), "{next_ids:?}");
    let st = status(&config);
    let held = next_ids[0].to_string();
    let stored = st["services"][0]["msks"]
        .as_array()
        .expect("msks")
        .iter()
        .find(|m| m["msk_id"] == held.as_str())
        .unwrap_or_else(|| panic!("the UEs' MSK {held} is not in the store: {st}"));
    assert!(
        matches!(stored["state"].as_str(), Some("next" | "current")),
        "{st}"
    );
    // Messages from before the crash, replayed to UE 1 after the restart, are rejected.
    let old: Vec<Vec<u8>> = relay
        .history
        .lock()
        .unwrap()
        .iter()
        .take(3)
        .cloned()
        .collect();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for m in &old {
        sock.send_to(m, ues[0].local_addr()).await.unwrap();
        let e = wait_for(
            &mut ues[0],
            &mut seen[0],
            Duration::from_secs(5),
            "discard of the replay",
            |e| matches!(e, Event::Discarded { .. }),
        )
        .await;
        assert!(
            matches!(
                e,
                Event::Discarded {
                    reason: DiscardReason::Replay
                        | DiscardReason::MtkIdNotNewer
                        | DiscardReason::UnknownMsk
                }
            ),
            "{e:?}"
        );
    }
    eprintln!(
        "crash test: {} pre-crash MTK messages replayed after the restart, all rejected",
        old.len()
    );
    let replays: u64 = seen
        .iter()
        .flatten()
        .filter(|e| {
            matches!(
                e,
                Event::Discarded {
                    reason: DiscardReason::Replay
                }
            )
        })
        .count() as u64;
    let others: Vec<&Event> = seen
        .iter()
        .flatten()
        .filter(|e| {
            matches!(e, Event::Discarded { reason }
                if !matches!(reason, DiscardReason::Replay | DiscardReason::MtkIdNotNewer))
        })
        .collect();
    let bad = others.len();
    eprintln!(
        "crash test: {UES} UEs, {got_next_before} had the next MSK before kill -9, all {UES} after the restart; registrations after restart {}; discards: {replays} replays (repeated MTK messages), {bad} other",
        svc["registrations"]
    );
    assert_eq!(
        bad, 0,
        "no discard other than repeated or replayed MTK messages: {others:?}"
    );

    drop(server);
    for ue in ues {
        ue.shutdown().await;
    }
}
