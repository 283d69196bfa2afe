//! `mbms-lab bench zn`: Zn lookups (Bootstrapping-Info-Request → Answer) per second through the
//! crate's Zn client on one connection, `--in-flight` requests pipelined, against a BSF given
//! with `--peer` (freeDiameterd with a Zn extension, for instance) or, with `--fake-bsf`, the
//! lab's scripted BSF started in-process on loopback. Medians of `--runs` runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use mbms_keys::gba::NafId;
use mbms_keys::gba::zn::{ZnClient, ZnConfig, ZnError};

use crate::fake_bsf::{BSF_REALM, FakeBsf, FakeSubscriber};

#[derive(Args)]
pub struct ZnArgs {
    /// The BSF, host:port (repeat for more peers; the first open one is used).
    #[arg(long)]
    peer: Vec<String>,
    /// Start the lab's scripted BSF in-process and measure against it (instead of `--peer`).
    #[arg(long)]
    fake_bsf: bool,
    /// Origin-Host of the client.
    #[arg(long, default_value = "bmsc.bench.test")]
    origin_host: String,
    /// Origin-Realm of the client (default: the realm of `--origin-host` after its first label).
    #[arg(long)]
    origin_realm: Option<String>,
    /// The BSF realm (Destination-Realm).
    #[arg(long, default_value = BSF_REALM)]
    realm: String,
    /// The NAF FQDN whose NAF-Id is sent.
    #[arg(long, default_value = "bmsc.bench.test")]
    naf: String,
    /// B-TIDs, one per line, asked round robin (with `--fake-bsf`: also its subscribers).
    #[arg(long)]
    btid_file: Option<PathBuf>,
    /// Requests per run.
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Per-request timeout.
    #[arg(long, default_value = "5s")]
    request_timeout: String,
}

pub fn run(args: ZnArgs) -> ExitCode {
    crate::block_on_bench(bench(args))
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    ok: usize,
    refused: usize,
    failed: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn btids(args: &ZnArgs) -> Result<Vec<String>, String> {
    let list: Vec<String> = match &args.btid_file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| format!("{}: {e}", f.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        None => (0..1000)
            .map(|i| format!("znbench{i:05}@bsf.bench.test"))
            .collect(),
    };
    if list.is_empty() {
        return Err("no B-TID to ask for".into());
    }
    Ok(list)
}

async fn bench(args: ZnArgs) -> Result<(), String> {
    let btids = Arc::new(btids(&args)?);
    let fake = if args.fake_bsf {
        let f = FakeBsf::start().await.map_err(|e| e.to_string())?;
        for (i, b) in btids.iter().enumerate() {
            f.add(
                b,
                FakeSubscriber {
                    impi: format!("user{i}@ims.bench.test"),
                    me_key: [i as u8; 32],
                    uicc_key: None,
                    expires: SystemTime::now() + Duration::from_secs(86_400),
                },
            );
        }
        Some(f)
    } else {
        None
    };
    let mut peers = args.peer.clone();
    if let Some(f) = &fake {
        peers.insert(0, f.addr().to_string());
    }
    if peers.is_empty() {
        return Err("give --peer HOST:PORT or --fake-bsf".into());
    }
    let origin_realm = args.origin_realm.clone().unwrap_or_else(|| {
        args.origin_host
            .split_once('.')
            .map_or(args.origin_host.clone(), |(_, r)| r.to_owned())
    });
    let mut cfg = ZnConfig::new(peers.clone(), &args.origin_host, &origin_realm, &args.realm);
    cfg.request_timeout =
        mbms_keys::duration::parse(&args.request_timeout).map_err(|e| e.to_string())?;
    let client = ZnClient::start(cfg);
    if !client.wait_open(Duration::from_secs(10)).await {
        client.shutdown().await;
        return Err(format!("no peer of {peers:?} opened within 10 s"));
    }
    let naf = NafId::mbms(&args.naf);
    let (requests, in_flight) = (args.requests.max(1), args.in_flight.max(1));
    let mut runs = Vec::new();
    for k in 0..args.runs.max(1) {
        let r = one_run(&client, &naf, &btids, requests, in_flight).await;
        eprintln!(
            "bench zn: run {}: {:.0} lookups/s ({} ok, {} refused by the BSF, {} failed)",
            k + 1,
            r.rate,
            r.ok,
            r.refused,
            r.failed
        );
        runs.push(r);
    }
    client.shutdown().await;
    let against = if fake.is_some() {
        "lab fake BSF"
    } else {
        "--peer"
    };
    drop(fake);
    let med = |f: fn(&Run) -> f64| crate::median(runs.iter().map(f).collect()).unwrap_or(0.0);
    let last = runs.last().copied().ok_or("no run")?;
    println!(
        "| Zn lookups (BIR/BIA), one connection, {in_flight} in flight, {requests} per run, peer {} | answered | refused (54xx) | failed | lookups/s | p50 | p99 |",
        against
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| median of {} runs | {} | {} | {} | {:.0} | {:.3} ms | {:.3} ms |",
        runs.len(),
        last.ok,
        last.refused,
        last.failed,
        med(|r| r.rate),
        med(|r| r.p50.as_secs_f64()) * 1e3,
        med(|r| r.p99.as_secs_f64()) * 1e3,
    );
    Ok(())
}

async fn one_run(
    client: &ZnClient,
    naf: &NafId,
    btids: &Arc<Vec<String>>,
    requests: usize,
    in_flight: usize,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let (c, n, b, naf) = (client.clone(), next.clone(), btids.clone(), naf.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused, mut failed, mut lat) = (0, 0, 0, Vec::new());
            loop {
                let i = n.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let btid = &b[i % b.len()];
                let t = Instant::now();
                match c.bootstrapping_info(btid, &naf).await {
                    Ok(_) => ok += 1,
                    Err(ZnError::UnknownBtid(_) | ZnError::NotAuthorized) => refused += 1,
                    Err(_) => failed += 1,
                }
                lat.push(t.elapsed());
            }
            (ok, refused, failed, lat)
        }));
    }
    let (mut ok, mut refused, mut failed, mut lat) = (0, 0, 0, Vec::with_capacity(requests));
    for t in tasks {
        if let Ok((o, r, f, l)) = t.await {
            ok += o;
            refused += r;
            failed += f;
            lat.extend(l);
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Run {
        ok,
        refused,
        failed,
        rate: (ok + refused) as f64 / secs,
        p50: pct(0.5),
        p99: pct(0.99),
    }
}
