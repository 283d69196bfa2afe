//! Independent Digest clients: curl (qop auth) and Apache HttpClient 4.5 (qop auth-int).

use super::*;

use crate::common::{oracle, run_blocking as run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_digest_registers_with_qop_auth() {
    let Some(curl) = oracle("curl", &[], "apt-get install curl") else {
        return;
    };
    for algorithm in ["SHA-256", "MD5"] {
        let mut s = start(config("auth", algorithm)).await;
        let dir = TempDir::new("curl");
        let body_file = dir.path().join("body.xml");
        std::fs::write(&body_file, register_body(&[OPEN, VIP])).expect("write");
        let headers_file = dir.path().join("headers");
        let out_file = dir.path().join("out");
        let mut cmd = Command::new(&curl);
        cmd.arg("-sS")
            .args(["--max-time", "10", "--digest", "-u"])
            .arg(format!("{ALICE}:{}", lab::password(0x10).as_str()))
            .args(["-H", &format!("Content-Type: {MIME_REGISTER}")])
            .arg("--data-binary")
            .arg(format!("@{}", body_file.display()))
            .arg("-D")
            .arg(&headers_file)
            .arg("-o")
            .arg(&out_file)
            .args(["-w", "%{http_code}"])
            .arg(format!("{}{PATH_REGISTER}", s.url()));
        let out = run(cmd).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.trim(),
            "200",
            "{algorithm}: curl stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = std::fs::read(&out_file).expect("body");
        let r = RegisterResponse::parse(&body).expect("register response");
        assert_eq!(codes(&r), vec![(OPEN.into(), 200), (VIP.into(), 403)]);
        let headers = std::fs::read_to_string(&headers_file).expect("headers");
        let last = headers.rsplit("HTTP/1.1 ").next().expect("final response");
        assert!(last.starts_with("200"), "{headers}");
        assert!(
            last.to_ascii_lowercase()
                .contains("authentication-info: rspauth="),
            "{headers}"
        );
        assert!(headers.contains(&format!("realm=\"{REALM}\"")));
        assert_eq!(
            s.next_event().await,
            KeyRequestEvent::Registered {
                btid: ALICE.parse().expect("btid"),
                ue_addr: LOCALHOST,
                service_ids: ids(&[OPEN]),
            }
        );
        s.stop().await;
    }
}

const HTTPCLIENT_JARS: [&str; 4] = [
    "/usr/share/java/httpclient.jar",
    "/usr/share/java/httpcore.jar",
    "/usr/share/java/commons-logging.jar",
    "/usr/share/java/commons-codec.jar",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_httpclient_registers_with_qop_auth_int() {
    let Some(java) = oracle(
        "java",
        &HTTPCLIENT_JARS,
        "apt-get install --no-install-recommends default-jre-headless libhttpclient-java",
    ) else {
        return;
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/DigestClient.java");
    for algorithm in ["SHA-256", "MD5"] {
        let mut s = start(config("auth-int", algorithm)).await;
        let dir = TempDir::new("java");
        let body_file = dir.path().join("body.xml");
        std::fs::write(&body_file, register_body(&[OPEN, VIP, OPEN2])).expect("write");
        let mut cmd = Command::new(&java);
        cmd.arg("-cp")
            .arg(HTTPCLIENT_JARS.join(":"))
            .arg(&source)
            .arg(format!("{}{PATH_REGISTER}", s.url()))
            .arg(MIME_REGISTER)
            .arg(&body_file)
            .arg(ALICE)
            .arg(lab::password(0x10).as_str());
        let out = run(cmd).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{algorithm}: {stdout}\n{stderr}");
        let (head, body) = stdout.split_once("body:\n").expect("body marker");
        for line in [
            "status 200",
            "authorization-qop auth-int",
            &format!("algorithm {algorithm}"),
            "rspauth verified",
        ] {
            assert!(
                head.lines().any(|l| l.trim() == line),
                "{algorithm}: missing {line:?} in\n{stdout}\n{stderr}"
            );
        }
        let r = RegisterResponse::parse(body.as_bytes()).expect("register response");
        assert_eq!(
            codes(&r),
            vec![(OPEN.into(), 200), (VIP.into(), 403), (OPEN2.into(), 200)]
        );
        assert_eq!(
            s.next_event().await,
            KeyRequestEvent::Registered {
                btid: ALICE.parse().expect("btid"),
                ue_addr: LOCALHOST,
                service_ids: ids(&[OPEN, OPEN2]),
            }
        );
        assert_eq!(s.metrics.digest_failures.get(), 0);
        s.stop().await;
    }
}
