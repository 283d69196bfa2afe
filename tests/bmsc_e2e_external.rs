//! Real external clients against the whole BM-SC: `curl --digest` (qop
//! auth) and Apache HttpClient (qop auth-int) register, and a plain UDP
//! socket standing in for their UE receives the pushed MSK message and
//! verifies it with the crate's verifier (then acknowledges it).

mod common;
mod bmsc_e2e {
    pub mod lab;
}

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bmsc_e2e::lab::{self, Relay, SERVICE, TempDir, http_get, metric, subscriber};
use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::server::Bmsc;
use mbms_keys::crypto::Muk;
use mbms_keys::gba::{digest_password, mrk_gba_me};
use mbms_keys::mbms::keyreq::{MIME_REGISTER, PATH_REGISTER, RegisterRequest, RegisterResponse};
use mbms_keys::mbms::{AckContext, MskUpdate, UnverifiedMsk, build_ack};
use tokio::net::UdpSocket;

const HTTPCLIENT_JARS: [&str; 4] = [
    "/usr/share/java/httpclient.jar",
    "/usr/share/java/httpcore.jar",
    "/usr/share/java/commons-logging.jar",
    "/usr/share/java/commons-codec.jar",
];

fn password(i: u8) -> String {
    let (_, _, ks_naf) = subscriber(i);
    digest_password(&mrk_gba_me(&ks_naf)).to_string()
}

/// Receives the MSK push for subscriber `i`, verifies it under its MUK
/// (GBA_ME: Ks_NAF) and acknowledges it.
async fn receive_and_verify_push(ue: &UdpSocket, i: u8) {
    let (btid, _, ks_naf) = subscriber(i);
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(10), ue.recv_from(&mut buf))
        .await
        .expect("MSK push within 10 s")
        .expect("recv");
    let un = UnverifiedMsk::parse(&buf[..n]).expect("an MSK message of the profile");
    assert_eq!(un.idi(), lab::FQDN.as_bytes());
    assert_eq!(un.idr(), btid.as_bytes());
    assert!(un.v(), "the BM-SC asks for an acknowledgement");
    let msg = un
        .verify(&Muk::from_bytes(*ks_naf.as_bytes()))
        .expect("MAC verifies under the MUK");
    assert!(
        matches!(msg.update, MskUpdate::NewKey { .. }),
        "{:?}",
        msg.update
    );
    let ack = build_ack(&AckContext::of(&msg)).expect("ack");
    ue.send_to(&ack, from).await.expect("ack sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_apache_httpclient_register_and_the_pushed_msk_verifies() {
    let curl = common::oracle("curl", &[], "apt-get install curl");
    let java = common::oracle(
        "java",
        &HTTPCLIENT_JARS,
        "apt-get install --no-install-recommends libhttpclient-java (Java 17 on the machine)",
    );
    if curl.is_none() && java.is_none() {
        return;
    }
    let dir = TempDir::new("external");
    let relay = Relay::start().await;
    let ue_port = lab::free_udp_port();
    let text = lab::config_text(dir.path(), ue_port, relay.addr, &[7, 8], "1h", 4);
    let bmsc = Bmsc::start(Config::parse(&text).expect("config"))
        .await
        .expect("BM-SC");
    // curl and java connect from 127.0.0.1: the pushes come to 127.0.0.1:ue_port.
    let ue = UdpSocket::bind(("127.0.0.1", ue_port))
        .await
        .expect("UE socket");
    let body = dir.path().join("register.xml");
    std::fs::write(
        &body,
        RegisterRequest::register(&[SERVICE.to_string()]).to_xml(),
    )
    .unwrap();
    let url = format!("http://{}{PATH_REGISTER}", bmsc.http_addr());
    let mut acked = 0;

    if let Some(curl) = curl {
        let (btid, _, _) = subscriber(7);
        let mut cmd = Command::new(curl);
        cmd.args(["-s", "-S", "--digest", "-u"])
            .arg(format!("{btid}:{}", password(7)))
            .args([
                "-H",
                &format!("Content-Type: {MIME_REGISTER}"),
                "--data-binary",
            ])
            .arg(format!("@{}", body.display()))
            .args(["-w", "\nstatus %{http_code}\n", &url]);
        let out = common::run_blocking(cmd).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            stdout.contains("status 200"),
            "curl: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let xml = stdout.split("\nstatus").next().unwrap();
        let r = RegisterResponse::parse(xml.as_bytes()).expect("register response");
        assert_eq!(r.statuses[0].code, 200);
        receive_and_verify_push(&ue, 7).await;
        acked += 1;
        eprintln!("curl --digest (qop auth): registered, MSK push verified and acknowledged");
    }

    if let Some(java) = java {
        let (btid, _, _) = subscriber(8);
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/DigestClient.java");
        let mut cmd = Command::new(java);
        cmd.arg("-cp")
            .arg(HTTPCLIENT_JARS.join(":"))
            .arg(&source)
            .arg(&url)
            .arg(MIME_REGISTER)
            .arg(&body)
            .arg(&btid)
            .arg(password(8));
        let out = common::run_blocking(cmd).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "java: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in [
            "status 200",
            "authorization-qop auth-int",
            "rspauth verified",
        ] {
            assert!(
                stdout.lines().any(|l| l.trim() == line),
                "missing {line:?}: {stdout}"
            );
        }
        receive_and_verify_push(&ue, 8).await;
        acked += 1;
        eprintln!(
            "Apache HttpClient (qop auth-int): registered, MSK push verified and acknowledged"
        );
    }

    // The BM-SC saw the verified acknowledgements.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = http_get(bmsc.admin_addr(), "/metrics").await;
        if metric(&m, "mbms_bmsc_pushes_acked_total") >= acked {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "acks not counted: {m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bmsc.shutdown().await.expect("shutdown");
}

/// `mbms-keys ue` against the BM-SC: registers, prints the MSK event, and on
/// SIGTERM deregisters before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ue_command_registers_and_deregisters_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("ue-cmd");
    let relay = Relay::start().await;
    let ue_port = lab::free_udp_port();
    let text = lab::config_text(dir.path(), ue_port, relay.addr, &[9], "1h", 4);
    let bmsc = Bmsc::start(Config::parse(&text).expect("config"))
        .await
        .expect("BM-SC");
    let (btid, _, ks_naf) = subscriber(9);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
        .args(["ue", "--bmsc", &format!("http://{}", bmsc.http_addr())])
        .args(["--idi", lab::FQDN, "--btid", &btid, "--service", SERVICE])
        .args(["--ks-naf", &hex::encode(ks_naf.as_bytes())])
        .args(["--listen", &format!("127.0.0.1:{ue_port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("ue runs");
    let stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let lines = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            let v: serde_json::Value =
                serde_json::from_str(&line).expect("one JSON object per line");
            let event = v["event"].as_str().unwrap_or_default().to_string();
            out.push(event.clone());
            if event == "MskInstalled" {
                // Ask the UE to stop: it must deregister first.
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        out
    });
    let lines = tokio::time::timeout(Duration::from_secs(20), lines)
        .await
        .expect("the UE stops within 20 s")
        .expect("join");
    let status = child.wait().expect("exit status");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        lines,
        ["Listening", "Registered", "MskInstalled", "Deregistered"],
        "{lines:?}"
    );
    let m = http_get(bmsc.admin_addr(), "/metrics").await;
    assert_eq!(metric(&m, "mbms_bmsc_deregistrations_total"), 1);
    bmsc.shutdown().await.expect("shutdown");
}
