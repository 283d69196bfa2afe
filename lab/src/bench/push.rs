//! `mbms-lab bench push`: the MSK rekey fan-out, end to end (TS 33.246 6.3.2.1A).
//!
//! N UEs are registered in a real SQLite store (synthetic GBA keys: Ks_NAF is an HMAC of
//! the B-TID, so no configuration lists them). Each run is a child process, so its memory
//! figures start from an empty process: it copies the preloaded store, creates the
//! [`Distributor`] with a configuration whose lead time equals the MSK lifetime (the next MSK is
//! due at once), then starts the real driver ([`run_distribution`]): its first timeout creates
//! the next MSK and fans it out to every registered UE over UDP with `sendmmsg`. That start is
//! the trigger. A UE farm — one UDP socket on `0.0.0.0:ue_port` receiving for every UE address
//! `127.x.y.z` — counts the MIKEY datagrams; every 1000th is verified afterwards under its
//! UE's MUK. Acknowledgements are not sent: the pushes stay pending, which is part of the
//! memory figure.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::{Distributor, Tuning, os_rng};
use mbms_keys::bmsc::metrics::Metrics;
use mbms_keys::bmsc::store::Store;
use mbms_keys::bmsc::udp::run_distribution;

use crate::TempDir;
use crate::bench::farm::{
    LabSockets, SyntheticKeys, big_buffers, config_text, copy_dir, cpu_time, cpu_time_of,
    open_store, preload, proc_status_kib, verify,
};

/// Every this many received datagrams, one is kept and verified.
const SAMPLE_EVERY: u64 = 1000;

#[derive(Args)]
pub struct PushArgs {
    /// Registered UEs, comma-separated for several sizes.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000u32, 1_000_000])]
    ues: Vec<u32>,
    /// Runs per size; the medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Internal: run one measurement on a copy of this preloaded store and print it.
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

pub fn run(args: PushArgs) -> ExitCode {
    if let Some(template) = &args.child {
        return match child(template, Duration::from_secs(args.timeout)) {
            Ok(r) => {
                println!("{}", r.to_line());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    let runs = args.runs.max(1);
    let mut rows = Vec::new();
    for &n in &args.ues {
        match measure(n, runs, args.timeout) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("error: {n} UEs: {e}");
                return ExitCode::from(1);
            }
        }
    }
    println!(
        "| MSK fan-out, end to end | UEs | received / sent | verified sample | wall time (trigger → last datagram) | messages/s | CPU time (of which UE farm) | peak RSS | RSS above empty, per UE | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (n, r) in &rows {
        println!(
            "| new MSK to every registered UE | {n} | {} / {} | {}/{} ok | {:.2} s | {:.0} | {:.2} s ({:.2} s) | {:.0} MiB | {:.0} B | 1,000,000 UEs ≤ 5 s; ≤ 512 B/UE |",
            r.received,
            r.sent,
            r.verified_ok,
            r.verified,
            r.wall.as_secs_f64(),
            r.received as f64 / r.wall.as_secs_f64().max(1e-9),
            r.cpu.as_secs_f64(),
            r.farm_cpu.as_secs_f64(),
            r.hwm_kib as f64 / 1024.0,
            per_ue(r, *n),
        );
    }
    println!(
        "({runs} runs per size, each a fresh process; medians of wall time, CPU time and memory; CPU time and RSS are the whole process: BM-SC driver and UE farm)"
    );
    ExitCode::SUCCESS
}

fn per_ue(r: &RunResult, n: u32) -> f64 {
    r.rss_after_kib.saturating_sub(r.rss_empty_kib) as f64 * 1024.0 / f64::from(n.max(1))
}

/// One run's figures.
#[derive(Debug, Clone, Default)]
struct RunResult {
    wall: Duration,
    cpu: Duration,
    farm_cpu: Duration,
    received: u64,
    sent: u64,
    verified: u64,
    verified_ok: u64,
    rss_empty_kib: u64,
    rss_after_kib: u64,
    hwm_kib: u64,
}

impl RunResult {
    fn to_line(&self) -> String {
        format!(
            "PUSH-RESULT {} {} {} {} {} {} {} {} {} {}",
            self.wall.as_nanos(),
            self.cpu.as_nanos(),
            self.farm_cpu.as_nanos(),
            self.received,
            self.sent,
            self.verified,
            self.verified_ok,
            self.rss_empty_kib,
            self.rss_after_kib,
            self.hwm_kib
        )
    }

    fn from_line(line: &str) -> Option<Self> {
        let mut it = line.strip_prefix("PUSH-RESULT ")?.split(' ');
        let mut next = || it.next()?.parse::<u64>().ok();
        Some(Self {
            wall: Duration::from_nanos(next()?),
            cpu: Duration::from_nanos(next()?),
            farm_cpu: Duration::from_nanos(next()?),
            received: next()?,
            sent: next()?,
            verified: next()?,
            verified_ok: next()?,
            rss_empty_kib: next()?,
            rss_after_kib: next()?,
            hwm_kib: next()?,
        })
    }
}

/// Preloads a template store with `n` UEs, then runs `runs` child processes on copies of it.
fn measure(n: u32, runs: usize, timeout: u64) -> Result<(u32, RunResult), String> {
    let tmp = TempDir::try_new(&format!("bench-push-{n}")).map_err(|e| e.to_string())?;
    let base = tmp.path().to_path_buf();
    let template = base.join("template");
    let t = Instant::now();
    preload(&template, n)?;
    eprintln!(
        "bench push: {n} UEs preloaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for k in 0..runs {
        let out = Command::new(&exe)
            .args(["bench", "push", "--ues", &n.to_string()])
            .args(["--timeout", &timeout.to_string(), "--child"])
            .arg(&template)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let r = text.lines().find_map(RunResult::from_line).ok_or_else(|| {
            format!(
                "run {k}: no result: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        eprintln!(
            "bench push: {n} UEs, run {}: {}/{} received in {:.2} s, CPU {:.2} s, RSS +{} KiB",
            k + 1,
            r.received,
            r.sent,
            r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            r.rss_after_kib.saturating_sub(r.rss_empty_kib)
        );
        results.push(r);
    }
    Ok((n, medians(&results)))
}

/// The median of each figure, taken separately.
fn medians(rs: &[RunResult]) -> RunResult {
    fn med<T: PartialOrd + Copy + Default>(v: Vec<T>) -> T {
        crate::median(v).unwrap_or_default()
    }
    let by_wall = crate::median_by(rs, |r| r.wall.as_secs_f64()).unwrap_or_default();
    RunResult {
        wall: by_wall.wall,
        cpu: med(rs.iter().map(|r| r.cpu).collect()),
        farm_cpu: med(rs.iter().map(|r| r.farm_cpu).collect()),
        rss_empty_kib: med(rs.iter().map(|r| r.rss_empty_kib).collect()),
        rss_after_kib: med(rs.iter().map(|r| r.rss_after_kib).collect()),
        hwm_kib: med(rs.iter().map(|r| r.hwm_kib).collect()),
        ..by_wall
    }
}

/// What the UE farm saw.
#[derive(Default)]
pub(crate) struct Farm {
    pub(crate) received: AtomicU64,
    /// Nanoseconds after the trigger of the last datagram.
    pub(crate) last_ns: AtomicU64,
    /// CPU time of the farm thread, at its end.
    pub(crate) cpu_ns: AtomicU64,
}

/// One measured run, in this (child) process.
fn child(template: &Path, timeout: Duration) -> Result<RunResult, String> {
    let rss_empty_kib = proc_status_kib("VmRSS:").unwrap_or(0);
    let dir = template
        .parent()
        .unwrap_or(template)
        .join(format!("run-{}", std::process::id()));
    let _cleanup = TempDir::at(dir.clone()).map_err(|e| e.to_string())?;
    copy_dir(template, &dir)?;

    let LabSockets {
        farm: farm_socket,
        ue_port,
        mtk_sink,
        sink_addr,
    } = LabSockets::bind(Duration::from_millis(50))?;
    let config =
        Config::parse(&config_text(&dir, ue_port, sink_addr, 0)).map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = Arc::new(open_store(&dir)?);
    let metrics = Arc::new(Metrics::default());
    let distributor = Distributor::with_tuning(
        &config,
        store,
        Arc::new(SyntheticKeys),
        metrics.clone(),
        os_rng(),
        mbms_keys::bmsc::udp::clocks(),
        Tuning::default(),
    )
    .map_err(|e| e.to_string())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let farm = Arc::new(Farm::default());
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu_time();
    let trigger = Instant::now();
    let farm_thread = {
        let (farm, stop) = (farm.clone(), stop.clone());
        std::thread::spawn(move || receive(&farm_socket, &farm, &stop, trigger))
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let driver = rt.spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        big_buffers(&socket);
        let (_events_tx, events_rx) = tokio::sync::mpsc::channel(1);
        let shutdown = async {
            let _ = stop_rx.await;
        };
        run_distribution(distributor, socket, events_rx, shutdown)
            .await
            .map_err(std::io::Error::other)
    });

    // Done when the fan-out finished and the farm has every datagram sent, or nothing came
    // for a second after the fan-out finished (the rest was dropped).
    let deadline = trigger + timeout;
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let done = metrics.push_fanout_latency.count() >= 1;
        let sent = metrics.pushes_sent.get();
        let received = farm.received.load(Ordering::Relaxed);
        let idle = trigger
            .elapsed()
            .saturating_sub(Duration::from_nanos(farm.last_ns.load(Ordering::Relaxed)));
        if done && (received >= sent || idle > Duration::from_secs(1)) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timeout: {received} of {sent} received, fan-out done: {done}"
            ));
        }
    }
    let cpu = cpu_time().saturating_sub(cpu_before);
    let rss_after_kib = proc_status_kib("VmRSS:").unwrap_or(0);
    let hwm_kib = proc_status_kib("VmHWM:").unwrap_or(0);
    let sent = metrics.pushes_sent.get();
    stop.store(true, Ordering::Relaxed);
    let samples = farm_thread
        .join()
        .map_err(|_| "UE farm panicked".to_owned())?;
    let _ = stop_tx.send(());
    match rt.block_on(driver) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("driver: {e}")),
        Err(e) => return Err(format!("driver: {e}")),
    }
    drop(mtk_sink);

    let verified_ok = samples.iter().filter(|m| verify(m)).count() as u64;
    Ok(RunResult {
        wall: Duration::from_nanos(farm.last_ns.load(Ordering::Relaxed)),
        cpu,
        farm_cpu: Duration::from_nanos(farm.cpu_ns.load(Ordering::Relaxed)),
        received: farm.received.load(Ordering::Relaxed),
        sent,
        verified: samples.len() as u64,
        verified_ok,
        rss_empty_kib,
        rss_after_kib,
        hwm_kib,
    })
}

/// The UE farm: counts datagrams until `stop`, keeping every [`SAMPLE_EVERY`]th.
pub(crate) fn receive(
    socket: &UdpSocket,
    farm: &Farm,
    stop: &AtomicBool,
    trigger: Instant,
) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let mut samples = Vec::new();
    let mut count = 0u64;
    loop {
        match socket.recv_from(&mut buf) {
            Ok((len, _)) => {
                if count.is_multiple_of(SAMPLE_EVERY) {
                    samples.push(buf.get(..len).unwrap_or_default().to_vec());
                }
                count += 1;
                farm.received.store(count, Ordering::Relaxed);
                let at = u64::try_from(trigger.elapsed().as_nanos()).unwrap_or(u64::MAX);
                farm.last_ns.store(at, Ordering::Relaxed);
            }
            Err(_) => {
                if stop.load(Ordering::Relaxed) {
                    let cpu = u64::try_from(cpu_time_of("/proc/thread-self/stat").as_nanos());
                    farm.cpu_ns.store(cpu.unwrap_or(0), Ordering::Relaxed);
                    return samples;
                }
            }
        }
    }
}
