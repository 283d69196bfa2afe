//! `mbms-keys bench http`: the Key Request rate (TS 33.246 6.3.2.3, PROFILE.md §4) of the
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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
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

use crate::bench_lab::{FQDN, RemoveOnDrop};

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
    /// Connections of the fixed-load phases.
    #[arg(long, default_value_t = 64)]
    paced_clients: usize,
    /// Seconds each fixed load is offered.
    #[arg(long, default_value_t = 3)]
    paced_seconds: u64,
}

/// One phase's figures.
#[derive(Debug, Clone, Copy)]
struct Phase {
    ok: usize,
    failed: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// What a phase's clients send.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    method: hyper::Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Bytes,
    /// Check the server's `rspauth` on every 200 (the BM-SC sends it; lighttpd does not).
    rspauth: bool,
}

pub fn run(args: HttpArgs) -> ExitCode {
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
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

fn free_port(addr: &str) -> Result<u16, String> {
    std::net::UdpSocket::bind(addr)
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn bmsc_config(dir: &Path, clients: usize) -> Result<Config, String> {
    let ue_port = free_port("127.0.0.1:0")?;
    let sink = free_port("127.0.0.1:0")?;
    let mut t = format!(
        r#"
fqdn = "{FQDN}"
http_listen = "127.0.0.1:0"
admin_listen = "127.0.0.2:0"
ue_port = {ue_port}
data_dir = "{dir}"

[digest]
qop = "auth-int"
algorithm = "SHA-256"

[push]
retries = 0

[[services]]
id = "{SERVICE}"
key_domain = "00f110"
key_group = 1
msk_lifetime = "1h"
mtk_interval = "1h"
mtk_resend = "1h"
mtk_destination = "127.0.0.1:{sink}"
transport = "download"
authorized = "*"
"#,
        dir = dir.display()
    );
    for i in 0..clients {
        t.push_str(&format!(
            "\n[[gba.subscribers]]\nbtid = \"{}\"\nimpi = \"user{i}@ims.bench.example.org\"\nks_naf = \"{}\"\nexpires = \"2040-01-01T00:00:00Z\"\n",
            btid(i),
            hex::encode(ks_naf(i).as_bytes())
        ));
    }
    Config::parse(&t).map_err(|e| e.to_string())
}

async fn bench(args: HttpArgs) -> Result<(), String> {
    let (clients, requests, runs) = (args.clients.max(1), args.requests.max(1), args.runs.max(1));
    let dir = std::env::temp_dir().join(format!("mbms-bench-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _cleanup = RemoveOnDrop(dir.clone());

    let paced_clients = args.paced_clients.max(1);
    let users = clients.max(paced_clients);
    let bmsc = Bmsc::start_with(bmsc_config(&dir.join("bmsc"), users)?, Tuning::default())
        .await
        .map_err(|e| e.to_string())?;
    let register = Target {
        addr: bmsc.http_addr(),
        method: hyper::Method::POST,
        path: RegisterKind::Register.path(),
        content_type: Some(RegisterKind::Register.mime()),
        body: Bytes::from(
            RegisterRequest {
                kind: RegisterKind::Register,
                service_ids: vec![SERVICE.to_owned()],
            }
            .to_xml(),
        ),
        rspauth: true,
    };
    let kd: KeyDomainId = "00f110"
        .parse()
        .map_err(|_| "key domain literal".to_owned())?;
    let msk = Target {
        path: keyreq::PATH_MSK,
        content_type: Some(keyreq::MIME_MSK),
        body: Bytes::from(MskRequest::new(&[(kd, MskId::new(1, 0))]).to_xml()),
        ..register.clone()
    };
    let (lighttpd, not_measured) = match Lighttpd::start(&dir.join("lighttpd"), users) {
        Ok(l) => (Some(l), String::new()),
        Err(e) => {
            eprintln!("bench http: lighttpd not measured: {e}");
            (None, e)
        }
    };
    let peer = lighttpd.as_ref().map(|l| Target {
        addr: l.addr,
        method: hyper::Method::GET,
        path: LIGHTTPD_PATH,
        content_type: None,
        body: Bytes::new(),
        rspauth: false,
    });

    let (mut regs, mut msks, mut peers) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..runs {
        regs.push(phase(&register, clients, requests).await?);
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
    drop(lighttpd);
    let _ = bmsc.shutdown().await;

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

fn credentials_for(target: &Target, i: usize) -> Result<Credentials, String> {
    if target.rspauth {
        credentials(i)
    } else {
        Ok(Credentials::new(
            &format!("bench{i}"),
            Zeroizing::new(lighttpd_password(i)),
        ))
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

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The phase with the median rate.
fn median(phases: &[Phase]) -> Phase {
    let mut v = phases.to_vec();
    v.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    v[v.len() / 2]
}

/// `clients` clients, `requests` requests each, against `target`.
async fn phase(target: &Target, clients: usize, requests: usize) -> Result<Phase, String> {
    let target = Arc::new(target.clone());
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let creds = credentials_for(&target, i)?;
        let target = target.clone();
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

/// A lighttpd process serving a Digest-protected file; killed on drop.
struct Lighttpd {
    addr: SocketAddr,
    child: Child,
}

impl Lighttpd {
    fn start(dir: &Path, clients: usize) -> Result<Self, String> {
        let exe = [
            "/usr/sbin/lighttpd",
            "/usr/bin/lighttpd",
            "/usr/local/sbin/lighttpd",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "lighttpd not installed".to_owned())?;
        let doc = dir.join("doc").join("protected");
        std::fs::create_dir_all(&doc).map_err(|e| e.to_string())?;
        // About the size of an MSK response body.
        let file = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mbmsMskResponse>{}</mbmsMskResponse>\n",
            "<status>ok</status>".repeat(4)
        );
        std::fs::write(doc.join("msk-response.xml"), file).map_err(|e| e.to_string())?;
        let mut users = String::new();
        for i in 0..clients {
            let user = format!("bench{i}");
            let ha1 =
                sha256_hex(format!("{user}:{LIGHTTPD_REALM}:{}", lighttpd_password(i)).as_bytes());
            users.push_str(&format!("{user}:{LIGHTTPD_REALM}:{ha1}\n"));
        }
        let userfile = dir.join("htdigest");
        std::fs::write(&userfile, users).map_err(|e| e.to_string())?;
        let port = free_port("127.0.0.1:0")?;
        let conf = format!(
            r#"server.document-root = "{doc}"
server.bind = "127.0.0.1"
server.port = {port}
server.modules = ("mod_auth", "mod_authn_file")
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 60
server.errorlog = "{dir}/error.log"
auth.backend = "htdigest"
auth.backend.htdigest.userfile = "{userfile}"
auth.require = ("/protected/" => ("method" => "digest", "algorithm" => "SHA-256", "realm" => "{LIGHTTPD_REALM}", "require" => "valid-user"))
"#,
            doc = dir.join("doc").display(),
            dir = dir.display(),
            userfile = userfile.display()
        );
        let conf_path = dir.join("lighttpd.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .arg("-D")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting lighttpd: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let this = Self { addr, child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(this);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("lighttpd did not start listening".to_owned())
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SHA-256 in hex (the htdigest HA1 of lighttpd's SHA-256 Digest).
fn sha256_hex(data: &[u8]) -> String {
    mbms_keys::mbms::digest::Algorithm::Sha256.hash_hex(data)
}
