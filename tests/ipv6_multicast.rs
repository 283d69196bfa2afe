//! IPv6 multicast end to end: IPv6 groups do not work on `lo`, so this test makes a network
//! namespace of its own with a veth pair (`unshare -n`, `ip link add v0 type veth peer name v1`;
//! nothing leaves the machine) and runs its inner half there: a BM-SC whose Key Requests listen
//! on [::] sends the MTK messages of its service to the group ff15::… through `v0`
//! (`multicast_interface`), and a UE registered over HTTP on [::1] that joined the group on `v0`
//! (`Join` with the interface index) gets the MSK pushed by unicast and the MTKs by multicast.
//! Needs root for the namespace: without it (or without `unshare`/`ip`) the test skips, and
//! fails under `MBMS_REQUIRE_ORACLES=1`.

mod common;
mod bmsc_e2e {
    pub mod lab;
}

use std::process::Command;
use std::time::Duration;

use bmsc_e2e::lab::{SERVICE, TempDir, subscriber, wait_for};
use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::server::Bmsc;
use mbms_keys::ue::Event;

const INNER: &str = "MBMS_IPV6_NETNS_IFINDEX";

#[test]
fn an_mtk_message_reaches_a_ue_over_an_ipv6_group_in_a_network_namespace() {
    let root = Command::new("id").arg("-u").output().ok();
    let is_root = root.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root
        || mbms_lab::find_on_path("unshare").is_none()
        || mbms_lab::find_on_path("ip").is_none()
    {
        mbms_lab::oracle::missing(
            "a network namespace (root, unshare, ip)",
            "run as root with util-linux and iproute2",
        );
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    // The veth pair gets its link-local addresses after duplicate address detection.
    let script = "ip link set lo up && ip link add v0 type veth peer name v1 && \
                  ip link set v0 up && ip link set v1 up && sleep 3 && \
                  export MBMS_IPV6_NETNS_IFINDEX=$(ip -o link show v0 | cut -d: -f1) && \
                  exec \"$0\" --exact inner_half --ignored --nocapture";
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .arg(&exe)
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the inner half did not run:\n{stdout}\n{stderr}"
    );
}

/// The half that runs inside the namespace (`INNER` names the index of `v0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run inside its own network namespace by the test above"]
async fn inner_half() {
    let ifindex: u32 = std::env::var(INNER)
        .expect("run by the outer test")
        .trim()
        .parse()
        .expect("interface index");
    let dir = TempDir::new("ipv6");
    // Nothing else listens in the namespace: any ports will do.
    let (ue_port, admin) = (bmsc_e2e::lab::free_udp_port(), common::free_port());
    let group = format!("[ff15::{:x}]:{ue_port}", 0x1000 + ue_port);
    let (btid, impi, ks_naf) = subscriber(1);
    let text = format!(
        r#"fqdn = "{fqdn}"
http_listen = "[::]:0"
admin_listen = "[::1]:{admin}"
ue_port = {ue_port}
data_dir = "{dir}"
multicast_interface = "{ifindex}"

[[services]]
id = "{SERVICE}"
key_domain = "00f110"
key_group = 1
msk_lifetime = "1h"
mtk_interval = "1s"
mtk_resend = "300ms"
mtk_destination = "{group}"
transport = "download"
authorized = "*"

[[gba.subscribers]]
btid = "{btid}"
impi = "{impi}"
ks_naf = "{ks}"
expires = "2040-01-01T00:00:00Z"
"#,
        fqdn = bmsc_e2e::lab::FQDN,
        dir = dir.path().display(),
        ks = hex::encode(ks_naf.as_bytes()),
    );
    let config = Config::parse(&text).expect("configuration");
    let bmsc = Bmsc::start_with(config, Tuning::default())
        .await
        .expect("BM-SC starts");

    let join = format!("{group}%{ifindex}").parse().expect("join");
    // The BM-SC listens on [::] (its MIKEY socket too: a datagram from ::1 may not leave by v0).
    let http = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, bmsc.http_addr().port()));
    let mut ue = start_ue_v6(ue_port, http, join).await;
    let r = ue
        .register(&[SERVICE.to_string()])
        .await
        .expect("registers");
    assert_eq!(r.statuses.first().map(|s| s.code), Some(200));
    let mut seen = Vec::new();
    wait_for(
        &mut ue,
        &mut seen,
        Duration::from_secs(10),
        "MskInstalled",
        |e| matches!(e, Event::MskInstalled { .. }),
    )
    .await;
    wait_for(
        &mut ue,
        &mut seen,
        Duration::from_secs(10),
        "MtkReady",
        |e| matches!(e, Event::MtkReady { .. }),
    )
    .await;
    ue.shutdown().await;
}

/// UE 1 of the lab, listening on [::1] and joined to `join` (the lab's `start_ue` is IPv4).
async fn start_ue_v6(
    ue_port: u16,
    http: std::net::SocketAddr,
    join: mbms_keys::ue::multicast::Join,
) -> mbms_keys::ue::driver::UeClient {
    let (btid, _, ks_naf) = subscriber(1);
    let keys = mbms_keys::ue::gba_keys::UeGbaKeys {
        btid: btid.parse().expect("btid"),
        material: mbms_keys::gba::GbaKeys::Me { ks_naf },
        expiry: std::time::SystemTime::now() + Duration::from_secs(3600),
    };
    let mut c = mbms_keys::ue::driver::UeConfig::new(bmsc_e2e::lab::FQDN);
    c.listen = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, ue_port));
    c.bmsc_url = Some(format!("http://{http}"));
    c.join = vec![join];
    mbms_keys::ue::driver::UeClient::start(
        c,
        std::sync::Arc::new(mbms_keys::ue::gba_keys::StaticGbaKeys::new(keys)),
    )
    .await
    .expect("UE starts")
}
