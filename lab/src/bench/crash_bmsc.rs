//! The two sides of `bench crash` that are not the UE farm: the BM-SC child process (the
//! in-process [`Bmsc`] with the synthetic key source, on the configuration the parent wrote)
//! and the extra UEs registering to it over HTTP Digest while its fan-out runs.
//!
//! The child says `ADMIN <admin address>` and `READY <http address>` on standard output once
//! it listens, `FANOUT-DONE` when the MSK fan-out finished, and stops gracefully when its
//! standard input closes, saying `STOPPED <pushes sent>`. `bench cluster` runs its nodes with
//! it too.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime};

use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::server::Bmsc;
use mbms_keys::gba::GbaKeys;
use mbms_keys::ue::gba_keys::{StaticGbaKeys, UeGbaKeys};
use mbms_keys::ue::http::{ClientConfig, KeyRequestClient};

use crate::bench::crash_farm::Progress;
use crate::bench::farm::{SERVICE, SyntheticKeys, btid, ks_naf_of, ue_addr};

/// How often the child looks at its fan-out metric.
const CHILD_POLL: Duration = Duration::from_millis(10);
/// Pause between two attempts of a registration that got no answer.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The child: runs the BM-SC on `config` (fan-out steps of `batch`) until its standard input
/// closes.
pub fn child(config: &Path, batch: usize) -> ExitCode {
    let config = match std::fs::read_to_string(config)
        .map_err(|e| e.to_string())
        .and_then(|t| Config::parse(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let tuning = Tuning {
        batch_size: batch.max(1),
        ..Tuning::default()
    };
    match rt.block_on(serve(config, tuning)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: Config, tuning: Tuning) -> Result<(), String> {
    let bmsc = Bmsc::start_with_keys(config, tuning, Arc::new(SyntheticKeys))
        .await
        .map_err(|e| e.to_string())?;
    println!("ADMIN {}", bmsc.admin_addr());
    println!("READY {}", bmsc.http_addr());
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed_tx.send(());
    });
    let mut fanout_done = false;
    loop {
        tokio::select! {
            _ = &mut closed => break,
            () = tokio::time::sleep(CHILD_POLL) => {
                if !fanout_done && bmsc.metrics().push_fanout_latency.count() >= 1 {
                    fanout_done = true;
                    println!("FANOUT-DONE");
                }
            }
        }
    }
    let sent = bmsc.metrics().pushes_sent.get();
    bmsc.shutdown().await.map_err(|e| e.to_string())?;
    println!("STOPPED {sent}");
    Ok(())
}

/// A BM-SC child process; killed (if still running) on drop.
pub struct BmscProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl BmscProcess {
    pub fn spawn(exe: &Path, config: &Path, batch: usize) -> Result<Self, String> {
        let mut child = Command::new(exe)
            .args(["bench", "crash", "--batch", &batch.to_string(), "--child"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the BM-SC: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The rest of the first line starting with `prefix`, if it came.
    pub fn line(&mut self, prefix: &str) -> Option<String> {
        self.seen.extend(self.lines.try_iter());
        self.seen
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|r| r.trim().to_owned())
    }

    /// Waits for the line starting with `prefix`.
    pub fn wait_line(&mut self, prefix: &str, deadline: Instant) -> Result<String, String> {
        loop {
            if let Some(rest) = self.line(prefix) {
                return Ok(rest);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.seen.extend(self.lines.try_iter());
                return self
                    .line(prefix)
                    .ok_or(format!("the BM-SC exited ({status}) before {prefix}"));
            }
            if Instant::now() > deadline {
                return Err(format!("timeout waiting for the BM-SC's {prefix}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGKILL, then reaps the process.
    pub fn kill_9(&mut self) -> Result<(), String> {
        self.child.kill().map_err(|e| format!("kill -9: {e}"))?;
        self.child.wait().map(drop).map_err(|e| e.to_string())
    }

    /// Closes standard input (the child shuts down gracefully) and returns the pushes it
    /// sent, from its last line.
    pub fn stop(mut self, deadline: Instant) -> Result<u64, String> {
        drop(self.stdin.take());
        let sent = self.wait_line("STOPPED", deadline)?;
        while self.child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                return Err("the BM-SC did not exit".to_owned());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        sent.parse().map_err(|_| format!("STOPPED {sent}"))
    }
}

impl Drop for BmscProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where the run stands, for the registering UEs.
#[derive(Default)]
pub struct Flags {
    /// kill -9 was sent: registrations are no longer paced by the fan-out.
    pub killed: AtomicBool,
    /// The restarted BM-SC is ready: a request sent from now on is answered by it.
    pub restarted: AtomicBool,
    /// Registrations acknowledged so far.
    pub acked: AtomicU64,
}

/// The extra UEs: `preloaded .. preloaded + count`.
pub struct Extras {
    pub base_url: String,
    pub preloaded: u32,
    pub count: u32,
    pub clients: usize,
    /// Registration `k` waits until the farm received `k / count` of twice this many pushes (so
    /// half of them go before the kill), or the kill.
    pub kill_threshold: u64,
    pub deadline: Instant,
}

/// What the registering UEs got.
#[derive(Debug, Default)]
pub struct Registered {
    /// (UE, whether the request was sent after the restart) of every 200.
    pub acked: Vec<(u32, bool)>,
    /// Final answers other than 200.
    pub refused: u64,
    /// Attempts without an answer (the BM-SC was down), each retried.
    pub retries: u64,
}

/// Registers the extra UEs with `clients` concurrent Digest (auth-int) clients, each UE from its
/// own address, retrying until a final answer or the deadline.
pub fn register_extras(x: Extras, progress: Arc<Progress>, flags: Arc<Flags>) -> Registered {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: registration runtime: {e}");
            return Registered::default();
        }
    };
    let x = Arc::new(x);
    let next = Arc::new(AtomicU32::new(0));
    let out = Arc::new(Mutex::new(Registered::default()));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..x.clients.max(1) {
            let (x, next, out) = (x.clone(), next.clone(), out.clone());
            let (progress, flags) = (progress.clone(), flags.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= x.count {
                        break;
                    }
                    let gate = x.kill_threshold * 2 * u64::from(k) / u64::from(x.count.max(1));
                    while !flags.killed.load(Ordering::Relaxed)
                        && progress.received(0) < gate
                        && Instant::now() < x.deadline
                    {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    register_one(&x, x.preloaded + k, &flags, &out).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
    std::mem::take(&mut *out)
}

async fn register_one(x: &Extras, ue: u32, flags: &Flags, out: &Mutex<Registered>) {
    let name = btid(ue);
    let Ok(parsed) = name.parse() else {
        return;
    };
    let keys = UeGbaKeys {
        btid: parsed,
        material: GbaKeys::Me {
            ks_naf: ks_naf_of(&name),
        },
        expiry: SystemTime::now() + Duration::from_secs(86_400),
    };
    let config = ClientConfig {
        local_addr: Some(ue_addr(ue)),
        request_timeout: Duration::from_secs(2),
        overall_timeout: Duration::from_secs(4),
        ..ClientConfig::default()
    };
    let Ok(client) =
        KeyRequestClient::with_config(&x.base_url, Arc::new(StaticGbaKeys::new(keys)), config)
    else {
        return;
    };
    let record = |f: &mut dyn FnMut(&mut Registered)| {
        f(&mut out.lock().unwrap_or_else(PoisonError::into_inner));
    };
    while Instant::now() < x.deadline {
        let after_restart = flags.restarted.load(Ordering::Relaxed);
        match client.register(&[SERVICE.to_owned()]).await {
            Ok(r) if r.statuses.first().is_some_and(|s| s.code == 200) => {
                flags.acked.fetch_add(1, Ordering::Relaxed);
                record(&mut |o| o.acked.push((ue, after_restart)));
                return;
            }
            Ok(_) => {
                record(&mut |o| o.refused += 1);
                return;
            }
            Err(e) => {
                tracing::debug!(ue, "registration not answered: {e}");
                record(&mut |o| o.retries += 1);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
