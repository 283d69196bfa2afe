//! Every `mbms-lab bench` command still runs under its name, at a size that takes seconds, and
//! prints its markdown table (the figures of `benches/RESULTS.md` come from the same commands at
//! full size). `bench crash` has its own test.

use std::process::Command;

/// Runs `mbms-lab bench ARGS`; returns standard output after checking the exit status and that
/// a markdown table came out.
fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mbms-lab"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run mbms-lab");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench {args:?}:\n{stdout}\n{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("|---")),
        "bench {args:?} printed no table:\n{stdout}\n{stderr}"
    );
    stdout
}

#[test]
fn bench_ue_measures_mtk_and_msk_messages() {
    let t = bench(&["ue", "--mtk", "2000", "--msk", "1000", "--runs", "1"]);
    assert!(
        t.contains("| MTK messages") && t.contains("| MSK messages"),
        "{t}"
    );
}

#[test]
fn bench_ue_flood_processes_every_valid_message() {
    let t = bench(&[
        "ue-flood", "--random", "20000", "--valid", "500", "--runs", "1",
    ]);
    assert!(t.contains("500"), "{t}");
}

#[test]
fn bench_push_reaches_every_ue() {
    let t = bench(&["push", "--ues", "2000", "--runs", "1", "--timeout", "60"]);
    assert!(t.contains("| 2000 | 2000 / 2000 |"), "{t}");
}

#[test]
fn bench_codec_reads_a_vector_message() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto-vectors/mtk-message-download.json"
    ))
    .expect("vector");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let hex = v["message"].as_str().expect("message");
    let t = bench(&["codec", "--hex", hex, "--iterations", "2000", "--runs", "1"]);
    assert!(t.contains("MessageView::decode"), "{t}");
}

#[test]
fn bench_http_measures_the_key_request_server() {
    let t = bench(&[
        "http",
        "--clients",
        "4",
        "--requests",
        "50",
        "--runs",
        "1",
        "--rates",
        "200",
        "--paced-clients",
        "4",
        "--paced-seconds",
        "1",
    ]);
    assert!(t.contains("| BM-SC registration"), "{t}");
}

#[test]
fn bench_srtp_measures_the_protector_and_the_media_driver() {
    let t = bench(&[
        "srtp",
        "--packets",
        "2000",
        "--gst-packets",
        "2000",
        "--e2e-packets",
        "2000",
        "--rate",
        "1000",
        "--rate-seconds",
        "1",
        "--runs",
        "1",
    ]);
    assert!(t.contains("| mbms-keys `Protector::protect`"), "{t}");
    // srtpenc measured, or said not to be when GStreamer is missing.
    assert!(t.contains("| libsrtp2 via GStreamer `srtpenc`"), "{t}");
    assert!(
        t.contains("| BM-SC media driver (`run_media`), fixed rate |"),
        "{t}"
    );
    assert!(
        t.contains("| plain relay, same runtime, no protection, full load |"),
        "{t}"
    );
    assert!(t.contains("32 per system call"), "{t}");
}

#[test]
fn bench_srtp_io_batch_1_is_one_system_call_per_packet_for_the_generator_and_the_relay() {
    let t = bench(&[
        "srtp",
        "--packets",
        "1000",
        "--gst-packets",
        "1000",
        "--e2e-packets",
        "2000",
        "--rate",
        "1000",
        "--rate-seconds",
        "1",
        "--runs",
        "1",
        "--io-batch",
        "1",
    ]);
    assert!(t.contains("1 per system call"), "{t}");
    assert!(
        t.contains("| plain relay, same runtime, no protection, full load |"),
        "{t}"
    );
}

#[test]
fn bench_zn_measures_lookups_through_the_client() {
    let dir = mbms_lab::TempDir::new("bench-zn");
    let file = dir.path().join("btids");
    std::fs::write(&file, "# B-TIDs\na1@bsf.bench.test\na2@bsf.bench.test\n").expect("write");
    let t = bench(&[
        "zn",
        "--fake-bsf",
        "--btid-file",
        file.to_str().expect("utf-8 path"),
        "--requests",
        "2000",
        "--in-flight",
        "32",
        "--runs",
        "2",
    ]);
    assert!(t.contains("| median of 2 runs | 2000 | 0 | 0 |"), "{t}");
}

#[test]
fn bench_http_compares_the_zn_source_with_a_warm_cache() {
    let t = bench(&[
        "http",
        "--clients",
        "4",
        "--requests",
        "30",
        "--runs",
        "1",
        "--rates",
        "0",
        "--zn",
    ]);
    // 4 clients: 4 BIRs, all in the warm-up; the measured registrations use the cache.
    assert!(
        t.contains("| BM-SC registration, Zn key source, warm cache (4 BIRs in all)"),
        "{t}"
    );
}

#[test]
fn bench_ibe_measures_eccsi_and_sakke_beside_wolfssl() {
    // wolfSSL's side needs libwolfssl-dev, gcc and make (installed by .ci/run, which also sets
    // MBMS_REQUIRE_ORACLES=1); without them only our side is measured.
    let wolf = std::env::var("MBMS_REQUIRE_ORACLES").as_deref() == Ok("1")
        || std::path::Path::new("/usr/include/wolfssl/wolfcrypt/sakke.h").exists();
    let mut args = vec!["ibe", "--seconds", "0.01", "--runs", "1"];
    if !wolf {
        eprintln!("libwolfssl-dev missing: measuring our side only");
        args.push("--ours-only");
    }
    let t = bench(&args);
    for label in [
        "| key sets issued (ECCSI SSK/PVT + SAKKE RSK) |",
        "| ECCSI sign |",
        "| ECCSI verify (a signer's later messages) |",
        "| ECCSI verify (a signer's first message) |",
        "| SAKKE encapsulate |",
        "| SAKKE decapsulate (wolfSSL without its RSK table) |",
        "| SAKKE decapsulate (wolfSSL with its RSK table) |",
    ] {
        let row = t
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no row {label}:\n{t}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let ours: f64 = cells[2].parse().unwrap_or_else(|_| panic!("{row}"));
        assert!(ours > 0.0, "{row}");
        if wolf {
            let theirs: f64 = cells[3].parse().unwrap_or_else(|_| panic!("{row}"));
            assert!(theirs > 0.0, "{row}");
            assert!(cells[4].ends_with('×'), "{row}");
        }
    }
}

#[test]
fn bench_sakke_measures_messages_beside_wolfssl_and_relay_transfers() {
    // As bench ibe: wolfSSL's side when libwolfssl-dev is there (required under
    // MBMS_REQUIRE_ORACLES=1), else our side only.
    let wolf = std::env::var("MBMS_REQUIRE_ORACLES").as_deref() == Ok("1")
        || std::path::Path::new("/usr/include/wolfssl/wolfcrypt/sakke.h").exists();
    let mut args = vec![
        "sakke",
        "--seconds",
        "0.01",
        "--runs",
        "1",
        "--transfers",
        "40",
        "--connections",
        "8",
    ];
    if !wolf {
        eprintln!("libwolfssl-dev missing: measuring our side only");
        args.push("--ours-only");
    }
    let t = bench(&args);
    for label in [
        "| built (SAKKE encapsulate + ECCSI sign) |",
        "| verified (ECCSI verify + SAKKE decapsulate) |",
    ] {
        let row = t
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no row {label}:\n{t}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let ours: f64 = cells[2].parse().unwrap_or_else(|_| panic!("{row}"));
        assert!(ours > 0.0, "{row}");
        if wolf {
            let theirs: f64 = cells[3].parse().unwrap_or_else(|_| panic!("{row}"));
            assert!(theirs > 0.0, "{row}");
            assert!(cells[4].ends_with('×'), "{row}");
        }
    }
    // Every one of the 40 transfers completed (a failed one fails the command).
    let row = t
        .lines()
        .find(|l| l.starts_with("| 40 | 40 | 8 |"))
        .unwrap_or_else(|| panic!("no relay row:\n{t}"));
    let rate: f64 = row
        .split('|')
        .map(str::trim)
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "{row}");
}
