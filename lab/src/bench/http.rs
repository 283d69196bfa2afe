//! `mbms-lab bench http`: the Key Request rate (TS 33.246 6.3.2.3, docs/profile.md §4) of the
//! in-process BM-SC, and lighttpd serving a Digest-protected file on the same machine, measured
//! by the same load generator in the same run (phases interleaved run by run).
//!
//! The load generator: C clients, each with its own B-TID and a keep-alive HTTP/1.1
//! connection (hyper), answering the first challenge and then authorizing each request
//! pre-emptively with the next nc (the `mbms_keys::mbms::digest` [`ClientSession`]), as the
//! crate's UE client does. Against the BM-SC the requests are POSTs with `qop=auth-int` and the
//! `rspauth` of every 200 is checked; lighttpd only does `qop=auth`, so its requests are GETs of
//! a static file. Both use SHA-256.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::server::Bmsc;
use mbms_keys::crypto::{KsNaf, hmac_sha256};
use mbms_keys::gba::GbaKeys;
use mbms_keys::mbms::digest::{Challenge, ClientSession, Credentials, RspauthStatus};
use mbms_keys::mbms::keyreq::{self, MskRequest, RegisterKind, RegisterRequest};
use mbms_keys::mbms::{KeyDomainId, MskId};
use mbms_keys::ue::gba_keys::UeGbaKeys;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::bench::farm::FQDN;
use crate::bmsc_config::{LabConfig, LabService, LabSubscriber};
use crate::lighttpd::{Lighttpd, Site};
use crate::{TempDir, free_port};

const SERVICE: &str = "urn:bench:http";
const LIGHTTPD_REALM: &str = "bench";
const LIGHTTPD_PATH: &str = "/protected/msk-response.xml";

#[derive(Args)]
pub struct HttpArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Requests per client per phase.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Runs (each: BM-SC registrations, BM-SC MSK requests, lighttpd); medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Fixed offered loads (requests/s, comma-separated) of MSK requests and of lighttpd, each
    /// offered for `--paced-seconds` on `--paced-clients` connections (0: none).
    #[arg(long, value_delimiter = ',', default_values_t = [2000, 5000, 10000])]
    rates: Vec<u32>,
    /// Fixed offered loads (registrations/s, comma-separated) of registrations, open loop,
    /// each offered for `--paced-seconds` on `--paced-clients` connections (0: none).
    #[arg(long, value_delimiter = ',', default_values_t = [10000])]
    register_rates: Vec<u32>,
    /// Connections of the fixed-load phases.
    #[arg(long, default_value_t = 64)]
    paced_clients: usize,
    /// Seconds each fixed load is offered.
    #[arg(long, default_value_t = 3)]
    paced_seconds: u64,
    /// Also measure registrations against a second BM-SC whose keys come over Zn (the lab's
    /// fake BSF on loopback) with a warm key cache, in the same runs as the embedded source.
    #[arg(long)]
    zn: bool,
}

/// One phase's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    /// Requests answered as expected.
    pub ok: usize,
    /// Requests that failed.
    pub failed: usize,
    /// Successful requests per second.
    pub rate: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// Whose credentials a phase's client `i` uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Users {
    /// This bench's subscribers (`httpbench<i>`, listed in the BM-SC's configuration).
    Listed,
    /// lighttpd's htdigest users.
    Lighttpd,
    /// The UEs of the fan-out benches (`bench<i>`, keys from [`SyntheticKeys`]).
    ///
    /// [`SyntheticKeys`]: crate::bench::farm::SyntheticKeys
    Synthetic,
}

/// What a phase's clients send.
#[derive(Clone)]
pub(crate) struct Target {
    users: Users,
    addr: SocketAddr,
    method: hyper::Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Bytes,
    /// Check the server's `rspauth` on every 200 (the BM-SC sends it; lighttpd does not).
    rspauth: bool,
}

pub fn run(args: HttpArgs) -> ExitCode {
    crate::block_on_bench(bench(args))
}

fn btid(i: usize) -> String {
    format!("httpbench{i:05}@bsf.bench.example.org")
}

fn ks_naf(i: usize) -> KsNaf {
    KsNaf::from_bytes(hmac_sha256(b"mbms-keys bench http", &i.to_be_bytes()))
}

fn credentials(i: usize) -> Result<Credentials, String> {
    let keys = UeGbaKeys {
        btid: btid(i).parse().map_err(|e| format!("B-TID: {e}"))?,
        material: GbaKeys::Me { ks_naf: ks_naf(i) },
        expiry: SystemTime::now() + Duration::from_secs(86_400),
    };
    Ok(keys.digest_credentials())
}

/// The configuration of `bmsc_config` with `[gba.zn]` towards `bsf` instead of subscribers.
fn bmsc_config_zn(dir: &Path, bsf: SocketAddr) -> Result<Config, String> {
    let mut c = Config::parse(&lab_config(dir, 0).to_toml()).map_err(|e| e.to_string())?;
    let mut z = mbms_keys::gba::zn::ZnConfig::new(
        vec![bsf.to_string()],
        FQDN,
        "bench.example.org",
        crate::fake_bsf::BSF_REALM,
    );
    z.max_concurrent = 4096;
    c.gba.source = mbms_keys::bmsc::config::KeySourceConfig::Zn(z);
    Ok(c)
}

fn bmsc_config(dir: &Path, clients: usize) -> Result<Config, String> {
    Config::parse(&lab_config(dir, clients).to_toml()).map_err(|e| e.to_string())
}

fn lab_config(dir: &Path, clients: usize) -> LabConfig {
    let sink = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut c = LabConfig::new(
        FQDN,
        dir.to_path_buf(),
        free_port(),
        LabService {
            id: SERVICE.to_owned(),
            msk_lifetime: "1h",
            mtk_interval: "1h",
            mtk_resend: "1h",
            mtk_destination: sink,
        },
    );
    c.qop = Some("auth-int");
    c.algorithm = Some("SHA-256");
    c.push_retries = Some(0);
    c.subscribers = (0..clients)
        .map(|i| LabSubscriber {
            btid: btid(i),
            impi: format!("user{i}@ims.bench.example.org"),
            ks_naf: *ks_naf(i).as_bytes(),
        })
        .collect();
    c
}

async fn bench(args: HttpArgs) -> Result<(), String> {
    let (clients, requests, runs) = (args.clients.max(1), args.requests.max(1), args.runs.max(1));
    let tmp = TempDir::try_new("bench-http").map_err(|e| e.to_string())?;
    let dir = tmp.path().to_path_buf();

    let paced_clients = args.paced_clients.max(1);
    let users = clients.max(paced_clients);
    let bmsc = Bmsc::start_with(bmsc_config(&dir.join("bmsc"), users)?, Tuning::default())
        .await
        .map_err(|e| e.to_string())?;
    let register = register_target(bmsc.http_addr(), SERVICE, Users::Listed);
    let kd: KeyDomainId = "00f110"
        .parse()
        .map_err(|_| "key domain literal".to_owned())?;
    let msk = Target {
        path: keyreq::PATH_MSK,
        content_type: Some(keyreq::MIME_MSK),
        body: Bytes::from(MskRequest::new(&[(kd, MskId::new(1, 0))]).to_xml()),
        ..register.clone()
    };
    let (lighttpd, not_measured) = match start_lighttpd(users) {
        Ok(l) => (Some(l), String::new()),
        Err(e) => {
            eprintln!("bench http: lighttpd not measured: {e}");
            (None, e)
        }
    };
    let peer = lighttpd.as_ref().map(|l| Target {
        users: Users::Lighttpd,
        addr: l.addr,
        method: hyper::Method::GET,
        path: LIGHTTPD_PATH,
        content_type: None,
        body: Bytes::new(),
        rspauth: false,
    });

    // The Zn side: the lab BSF knows every user; one registration phase warms the cache.
    let zn = if args.zn {
        let bsf = crate::fake_bsf::FakeBsf::start()
            .await
            .map_err(|e| e.to_string())?;
        for i in 0..users {
            bsf.add(
                &btid(i),
                crate::fake_bsf::FakeSubscriber {
                    impi: format!("user{i}@ims.bench.example.org"),
                    me_key: *ks_naf(i).as_bytes(),
                    uicc_key: None,
                    expires: SystemTime::now() + Duration::from_secs(86_400),
                },
            );
        }
        let b = Bmsc::start_with(
            bmsc_config_zn(&dir.join("bmsc-zn"), bsf.addr())?,
            Tuning::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let target = Target {
            addr: b.http_addr(),
            ..register.clone()
        };
        let mut warm = Phase::default();
        for _ in 0..50 {
            warm = phase(&target, clients, 1).await?;
            if warm.failed == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if warm.failed != 0 {
            return Err("the Zn BM-SC did not serve the warm-up registrations".into());
        }
        Some((bsf, b, target))
    } else {
        None
    };
    let mut zn_regs = Vec::new();
    let (mut regs, mut msks, mut peers) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..runs {
        regs.push(phase(&register, clients, requests).await?);
        if let Some((_, _, t)) = &zn {
            zn_regs.push(phase(t, clients, requests).await?);
            eprintln!(
                "bench http: run {}: register with Zn (warm cache) {:.0}/s",
                k + 1,
                zn_regs[k].rate
            );
        }
        msks.push(phase(&msk, clients, requests).await?);
        if let Some(p) = &peer {
            peers.push(phase(p, clients, requests).await?);
        }
        eprintln!(
            "bench http: run {}: register {:.0}/s, MSK {:.0}/s, lighttpd {}",
            k + 1,
            regs[k].rate,
            msks[k].rate,
            peers
                .get(k)
                .map_or("-".to_owned(), |p| format!("{:.0}/s", p.rate))
        );
    }
    let mut paced = Vec::new();
    for &rate in args.rates.iter().filter(|r| **r > 0) {
        let load = Load {
            rate: f64::from(rate),
            clients: paced_clients,
            seconds: args.paced_seconds.max(1),
        };
        let ours = paced_phase(&msk, &load).await?;
        let theirs = match &peer {
            Some(p) => Some(paced_phase(p, &load).await?),
            None => None,
        };
        eprintln!(
            "bench http: offered {rate}/s: MSK p99 {:.2} ms",
            ours.p99.as_secs_f64() * 1e3
        );
        paced.push((rate, ours, theirs));
    }
    let mut paced_regs = Vec::new();
    for &rate in args.register_rates.iter().filter(|r| **r > 0) {
        let load = Load {
            rate: f64::from(rate),
            clients: paced_clients,
            seconds: args.paced_seconds.max(1),
        };
        let p = paced_phase(&register, &load).await?;
        eprintln!(
            "bench http: offered {rate} registrations/s: p99 {:.2} ms",
            p.p99.as_secs_f64() * 1e3
        );
        paced_regs.push((rate, p));
    }
    drop(lighttpd);
    let _ = bmsc.shutdown().await;
    let zn_birs = match zn {
        Some((bsf, b, _)) => {
            let _ = b.shutdown().await;
            Some(bsf.seen().birs.load(std::sync::atomic::Ordering::SeqCst))
        }
        None => None,
    };

    let (reg, msk) = (median(&regs), median(&msks));
    println!(
        "| HTTP Key Request, {clients} clients × {requests} requests, same machine | requests | failed | requests/s | p50 latency | p99 latency | ratio to lighttpd (same run) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let peer_med = (!peers.is_empty()).then(|| median(&peers));
    let ratio = |ours: &[Phase]| {
        if peers.is_empty() {
            return "-".to_owned();
        }
        let per_run: Vec<f64> = ours
            .iter()
            .zip(&peers)
            .map(|(a, b)| a.rate / b.rate.max(1e-9))
            .collect();
        format!("{:.2}", median_f64(per_run))
    };
    row(
        "BM-SC registration (POST, auth-int, rspauth checked)",
        &reg,
        &ratio(&regs),
    );
    row(
        "BM-SC MSK request (POST, auth-int, rspauth checked)",
        &msk,
        &ratio(&msks),
    );
    if let Some(birs) = zn_birs {
        let per_run: Vec<f64> = zn_regs
            .iter()
            .zip(&regs)
            .map(|(z, e)| z.rate / e.rate.max(1e-9))
            .collect();
        row(
            &format!(
                "BM-SC registration, Zn key source, warm cache ({birs} BIRs in all); last cell: ratio to the embedded source, same run"
            ),
            &median(&zn_regs),
            &format!("{:.2}", median_f64(per_run)),
        );
    }
    match peer_med {
        Some(l) => row("lighttpd 1.4 static file (GET, Digest auth)", &l, "1"),
        None => println!(
            "| lighttpd static file (GET, Digest auth) | not measured ({not_measured}) | | | | | |"
        ),
    }
    println!(
        "({runs} runs, medians; ratio = median over runs of BM-SC rate / lighttpd rate in the same run; load generator, BM-SC and lighttpd share the machine's cores)"
    );
    if !paced.is_empty() {
        println!();
        println!(
            "| fixed offered load, {paced_clients} connections, {} s each | BM-SC MSK requests done / failed | achieved/s | p50 | p99 | lighttpd done / failed | achieved/s | p50 | p99 |",
            args.paced_seconds.max(1)
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (rate, ours, theirs) in &paced {
            let peer_cells = theirs.as_ref().map_or("- | - | - | -".to_owned(), cells);
            println!("| {rate}/s | {} | {peer_cells} |", cells(ours));
        }
        println!(
            "(latency from each request's scheduled send time, so a server that falls behind is charged for the wait)"
        );
    }
    if !paced_regs.is_empty() {
        println!();
        println!(
            "| fixed offered load, {paced_clients} connections, {} s each | BM-SC registrations done / failed | achieved/s | p50 | p99 |",
            args.paced_seconds.max(1)
        );
        println!("|---|---|---|---|---|");
        for (rate, p) in &paced_regs {
            println!("| {rate}/s | {} |", cells(p));
        }
        println!(
            "(open loop: each registration is durable before its 200; latency from its scheduled send time)"
        );
    }
    Ok(())
}

/// The cells of a fixed-load phase: done / failed, rate, latencies.
fn cells(p: &Phase) -> String {
    format!("{} / {} | {}", p.ok, p.failed, rate_cells(p))
}

/// Rate, p50 and p99 cells of a phase.
fn rate_cells(p: &Phase) -> String {
    format!(
        "{:.0} | {:.2} ms | {:.2} ms",
        p.rate,
        p.p50.as_secs_f64() * 1e3,
        p.p99.as_secs_f64() * 1e3
    )
}

/// A fixed offered load.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// Requests per second, all connections together.
    rate: f64,
    clients: usize,
    seconds: u64,
}

/// `load` offered to `target`: each connection sends on a fixed schedule (its share of the
/// rate, the connections' schedules interleaved), whatever the answers' latency.
async fn paced_phase(target: &Target, load: &Load) -> Result<Phase, String> {
    let target = Arc::new(target.clone());
    let per_client = load.rate / load.clients as f64;
    let interval = Duration::from_secs_f64(1.0 / per_client.max(1e-3));
    let count = ((per_client * load.seconds as f64).round() as usize).max(1);
    // Connections and Digest sessions are set up before the clock starts.
    let mut ready = Vec::with_capacity(load.clients);
    for i in 0..load.clients {
        let creds = credentials_for(&target, i)?;
        let (mut conn, mut session) = (None, None);
        authorized(&mut conn, &mut session, &target, &creds).await?;
        ready.push((creds, conn, session));
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(load.clients);
    for (i, (creds, mut conn, mut session)) in ready.into_iter().enumerate() {
        let target = target.clone();
        let offset = interval.mul_f64(i as f64 / load.clients as f64);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            let mut failed = 0;
            for k in 0..count {
                let due = start + offset + interval.mul_f64(k as f64);
                tokio::time::sleep_until(due).await;
                match authorized(&mut conn, &mut session, &target, &creds).await {
                    Ok(()) => latencies.push(due.elapsed()),
                    Err(e) => {
                        failed += 1;
                        tracing::debug!("request failed: {e}");
                    }
                }
            }
            (latencies, failed)
        }));
    }
    collect(tasks, start.into_std()).await
}

/// Registrations of client `i` (of `users`) to `service` at `addr`: POSTs, auth-int, the
/// `rspauth` of every 200 checked.
pub(crate) fn register_target(addr: SocketAddr, service: &str, users: Users) -> Target {
    Target {
        users,
        addr,
        method: hyper::Method::POST,
        path: RegisterKind::Register.path(),
        content_type: Some(RegisterKind::Register.mime()),
        body: Bytes::from(
            RegisterRequest {
                kind: RegisterKind::Register,
                service_ids: vec![service.to_owned()],
            }
            .to_xml(),
        ),
        rspauth: true,
    }
}

fn credentials_for(target: &Target, i: usize) -> Result<Credentials, String> {
    match target.users {
        Users::Listed => credentials(i),
        Users::Lighttpd => Ok(Credentials::new(
            &format!("bench{i}"),
            Zeroizing::new(lighttpd_password(i)),
        )),
        Users::Synthetic => {
            let name = crate::bench::farm::btid(u32::try_from(i).unwrap_or(u32::MAX));
            let keys = UeGbaKeys {
                btid: name.parse().map_err(|e| format!("B-TID: {e}"))?,
                material: GbaKeys::Me {
                    ks_naf: crate::bench::farm::ks_naf_of(&name),
                },
                expiry: SystemTime::now() + Duration::from_secs(86_400),
            };
            Ok(keys.digest_credentials())
        }
    }
}

fn row(name: &str, p: &Phase, ratio: &str) {
    println!(
        "| {name} | {} | {} | {} | {ratio} |",
        p.ok,
        p.failed,
        rate_cells(p)
    );
}

fn median_f64(v: Vec<f64>) -> f64 {
    crate::median(v).unwrap_or(0.0)
}

/// The phase with the median rate.
fn median(phases: &[Phase]) -> Phase {
    crate::median_by(phases, |p| p.rate).unwrap_or_default()
}

/// `clients` clients, `requests` requests each, against `target`.
async fn phase(target: &Target, clients: usize, requests: usize) -> Result<Phase, String> {
    phase_over(std::slice::from_ref(target), clients, requests).await
}

/// `clients` clients, `requests` requests each, client `i` against `targets[i % targets.len()]`
/// (round robin over several servers).
pub(crate) async fn phase_over(
    targets: &[Target],
    clients: usize,
    requests: usize,
) -> Result<Phase, String> {
    let targets: Vec<Arc<Target>> = targets.iter().cloned().map(Arc::new).collect();
    if targets.is_empty() {
        return Err("no server to send to".to_owned());
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let target = targets[i % targets.len()].clone();
        let creds = credentials_for(&target, i)?;
        tasks.push(tokio::spawn(async move {
            client(&target, &creds, requests).await
        }));
    }
    collect(tasks, start).await
}

/// Joins the clients of a phase started at `start`; the rate counts successful requests.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    start: Instant,
) -> Result<Phase, String> {
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.map_err(|e| e.to_string())?;
        latencies.extend(l);
        failed += f;
    }
    let took = start.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Phase {
        ok: latencies.len(),
        failed,
        rate: latencies.len() as f64 / took.as_secs_f64().max(1e-9),
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// One request on the kept connection, reconnecting once when the server closed it.
async fn exchange(
    conn: &mut Option<Sender>,
    target: &Target,
    authorization: Option<&str>,
) -> Result<Answer, String> {
    for attempt in 0..2 {
        let usable = match conn.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            *conn = Some(connect(target.addr).await?);
        }
        let Some(sender) = conn.as_mut() else {
            return Err("no connection".to_owned());
        };
        let mut req = Request::builder()
            .method(target.method.clone())
            .uri(target.path)
            .header(HOST, target.addr.to_string());
        if let Some(ct) = target.content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        if let Some(a) = authorization {
            req = req.header(AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(target.body.clone()))
            .map_err(|e| e.to_string())?;
        match sender.send_request(req).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                return Ok(Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                });
            }
            Err(e) if attempt == 0 => {
                *conn = None;
                tracing::debug!("reconnecting: {e}");
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("no answer".to_owned())
}

/// One client: `requests` authorized requests in sequence; latencies of the successful ones
/// (a challenge round trip counts in the latency of the request it delays) and the failures.
async fn client(target: &Target, creds: &Credentials, requests: usize) -> (Vec<Duration>, usize) {
    let mut conn: Option<Sender> = None;
    let mut session: Option<ClientSession> = None;
    let mut latencies = Vec::with_capacity(requests);
    let mut failed = 0;
    for _ in 0..requests {
        let start = Instant::now();
        match authorized(&mut conn, &mut session, target, creds).await {
            Ok(()) => latencies.push(start.elapsed()),
            Err(e) => {
                failed += 1;
                tracing::debug!("request failed: {e}");
            }
        }
    }
    (latencies, failed)
}

async fn authorized(
    conn: &mut Option<Sender>,
    session: &mut Option<ClientSession>,
    target: &Target,
    creds: &Credentials,
) -> Result<(), String> {
    let method = target.method.as_str();
    for _ in 0..3 {
        let auth = match session.as_mut() {
            Some(s) => Some(
                s.authorize(creds, method, target.path, &target.body)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let answer = exchange(conn, target, auth.as_ref().map(|a| a.header_value())).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            let challenge = Challenge::select(
                answer
                    .headers
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            )
            .map_err(|e| e.to_string())?;
            *session = Some(ClientSession::new(challenge));
            continue;
        }
        if answer.status != StatusCode::OK {
            return Err(format!("status {}", answer.status));
        }
        if target.rspauth {
            let info = answer
                .headers
                .get("authentication-info")
                .and_then(|v| v.to_str().ok());
            let status = auth.as_ref().map_or(RspauthStatus::Missing, |a| {
                a.check_authentication_info(creds, info, &answer.body)
            });
            if status != RspauthStatus::Verified {
                return Err(format!("rspauth {status}"));
            }
        }
        return Ok(());
    }
    Err("credentials refused".to_owned())
}

fn lighttpd_password(i: usize) -> String {
    format!("bench-password-{i}")
}

/// lighttpd serving a Digest-protected (SHA-256) file about the size of an MSK response body,
/// to `clients` users.
fn start_lighttpd(clients: usize) -> Result<Lighttpd, String> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mbmsMskResponse>{}</mbmsMskResponse>\n",
        "<status>ok</status>".repeat(4)
    );
    let users: Vec<(String, String)> = (0..clients)
        .map(|i| (format!("bench{i}"), lighttpd_password(i)))
        .collect();
    Lighttpd::start(&Site {
        algorithm: "SHA-256",
        realm: LIGHTTPD_REALM,
        users: &users,
        protected: "/protected/",
        files: &[(LIGHTTPD_PATH, &body)],
        content_type: None,
    })
}
