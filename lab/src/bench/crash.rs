//! `mbms-lab bench crash`: `kill -9` of the BM-SC during an MSK rotation to N UEs, restart,
//! finish (TS 33.246 6.3.2.1A; docs/profile.md §2.1, §3).
//!
//! N UEs are preloaded in a real SQLite store (synthetic GBA keys, as `bench push`). A child
//! process runs the BM-SC on it (HTTP Key Request server on 127.0.0.1 and the distribution
//! driver), configured so that the next MSK is due at once: its fan-out to every registered UE
//! starts right away. Meanwhile extra UEs register over HTTP Digest (auth-int), each from its
//! own loopback address; every 200 is an acknowledged registration. The UE farm (one UDP
//! socket on the UE port) logs, per UE, the counters and MSK IDs of the MSK messages it gets.
//! Once the farm has received `--kill-at` of the N pushes, the parent sends SIGKILL, reaps the
//! child, lets the farm read what was already queued, and starts a new child on the same data
//! directory and ports; the restarted BM-SC pushes the MSK still in state Next to every
//! registered UE again. The run ends when every UE holds the next MSK (or at `--timeout`).
//!
//! Checks: no acknowledged registration missing from the store or from the fan-out after the
//! restart; no counter reuse as the UEs see it (two different messages with one counter, or a
//! counter not newer, RFC 1982, than the UE's previous one, in particular after the restart);
//! a sample of messages (every extra UE's, the first of each phase, every `--verify-every`th)
//! verified under the UE's MUK, each MSK ID carrying one key, the store's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::store::Store;

use crate::TempDir;
use crate::bench::crash_bmsc::{BmscProcess, Extras, Flags, Registered, register_extras};
use crate::bench::crash_farm::{
    Farm, Progress, Report, SAMPLE_FIRST, Verified, digest, verify_samples,
};
use crate::bench::farm::{LabSockets, SERVICE, btid, config_text, copy_dir, open_store, preload};

/// After the restarted fan-out, the farm waits this long without a datagram before it stops.
const SETTLE: Duration = Duration::from_millis(200);

#[derive(Args)]
pub struct CrashArgs {
    /// Registered UEs preloaded in the store.
    #[arg(long, default_value_t = 100_000)]
    ues: u32,
    /// UEs registering over HTTP (Digest, auth-int) during the rotation.
    #[arg(long, default_value_t = 300)]
    extra: u32,
    /// Concurrent registering clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// kill -9 once the UE farm has received this fraction of the N pushes.
    #[arg(long, default_value_t = 0.33)]
    kill_at: f64,
    /// Besides every extra UE's messages and the first of each phase, every this many
    /// datagrams one is verified under its UE's MUK.
    #[arg(long, default_value_t = 64)]
    verify_every: u64,
    /// Registrations read and MSK messages built per fan-out step of the BM-SC (a small value
    /// spreads a small fan-out over several steps).
    #[arg(long, default_value_t = Tuning::default().batch_size)]
    batch: usize,
    /// Runs, each on a fresh copy of the preloaded store.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Internal: run the BM-SC on this configuration file.
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

pub fn run(args: CrashArgs) -> ExitCode {
    if let Some(config) = &args.child {
        return crate::bench::crash_bmsc::child(config, args.batch);
    }
    let tmp = match TempDir::try_new("bench-crash") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: temporary directory: {e}");
            return ExitCode::from(1);
        }
    };
    let base = tmp.path().to_path_buf();
    let template = base.join("template");
    let t = Instant::now();
    if let Err(e) = preload(&template, args.ues) {
        eprintln!("error: preload: {e}");
        return ExitCode::from(1);
    }
    let preload_time = t.elapsed();
    eprintln!(
        "bench crash: {} UEs preloaded in {:.1} s",
        args.ues,
        preload_time.as_secs_f64()
    );
    let mut runs = Vec::new();
    for k in 0..args.runs.max(1) {
        let dir = base.join(format!("run-{k}"));
        match copy_dir(&template, &dir).and_then(|()| run_once(&args, &dir)) {
            Ok(o) => {
                eprintln!(
                    "bench crash: run {}: {}",
                    k + 1,
                    if o.failures().is_empty() {
                        "all checks pass".to_owned()
                    } else {
                        format!("FAILED: {}", o.failures().join(", "))
                    }
                );
                runs.push(o);
            }
            Err(e) => {
                eprintln!("error: run {}: {e}", k + 1);
                return ExitCode::from(1);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    print_table(&args, &runs, preload_time);
    if runs.iter().all(|o| o.failures().is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Wall times of one run, from the start of the first BM-SC process.
#[derive(Debug, Default)]
struct Times {
    first_push: Duration,
    kill: Duration,
    restarted: Duration,
    all_next: Duration,
}

/// One run's figures.
struct Outcome {
    ues: u32,
    extra: u32,
    kill_threshold: u64,
    registered: Registered,
    before_kill: u64,
    after_restart: u64,
    sent_after_restart: u64,
    preloaded_next_at_kill: u64,
    report: Report,
    stored: u64,
    acked_missing: u64,
    verified: Verified,
    /// Verified MSK IDs whose key is not the store's.
    store_mismatch: u64,
    times: Times,
}

impl Outcome {
    fn acked(&self) -> u64 {
        self.registered.acked.len() as u64
    }

    fn acked_after_restart(&self) -> impl Iterator<Item = u32> + '_ {
        self.registered.acked.iter().filter(|a| a.1).map(|a| a.0)
    }

    fn acked_with_next(&self) -> u64 {
        let acked = self.registered.acked.iter();
        acked.filter(|a| self.report.has_next(a.0)).count() as u64
    }

    /// Registered UEs (preloaded and acknowledged) the restarted BM-SC sent a message to.
    fn reached_after_restart(&self) -> u64 {
        let acked = self.registered.acked.iter();
        self.report.preloaded_reached_after_restart(self.ues)
            + acked
                .filter(|a| self.report.reached_after_restart(a.0))
                .count() as u64
    }

    /// UEs acknowledged (before the restart, or after it) that got the current MSK too.
    fn with_current(&self, after_restart: bool) -> (u64, u64) {
        let acked = self
            .registered
            .acked
            .iter()
            .filter(|a| a.1 == after_restart);
        let (mut with, mut all) = (0, 0);
        for (ue, _) in acked {
            all += 1;
            with += u64::from(self.report.has_other(*ue));
        }
        (with, all)
    }

    /// The checks that failed.
    fn failures(&self) -> Vec<&'static str> {
        let c = &self.report.counts;
        let n = u64::from(self.ues);
        let checks = [
            (
                self.acked() == u64::from(self.extra),
                "registrations acknowledged",
            ),
            (self.preloaded_next_at_kill < n, "kill during the fan-out"),
            (
                self.report.preloaded_with_next(self.ues) == n,
                "preloaded UEs with the next MSK",
            ),
            (
                self.acked_with_next() == self.acked(),
                "acknowledged UEs with the next MSK",
            ),
            (
                self.reached_after_restart() == n + self.acked(),
                "registered UEs reached after the restart",
            ),
            (
                self.with_current(true).0 == self.with_current(true).1,
                "current MSK pushed on registration",
            ),
            (
                self.with_current(false).0 == self.with_current(false).1,
                "current MSK pushed again after the restart to registrations acknowledged before",
            ),
            (
                self.acked_missing == 0,
                "acknowledged registrations in the store",
            ),
            (
                self.stored >= n + self.acked(),
                "registrations in the store",
            ),
            (c.reused_same_ue == 0, "counter reuse (same UE)"),
            (c.not_newer == 0, "counter not newer"),
            (
                c.not_newer_after_restart == 0,
                "counter not newer after the restart",
            ),
            (self.report.reused_any_ue == 0, "counter reuse (any UEs)"),
            (c.other_msk_to_preloaded == 0, "one MSK in the fan-out"),
            (c.msk_overflow == 0, "at most current and next MSK per UE"),
            (c.malformed + c.unknown_ue == 0, "malformed datagrams"),
            (c.misaddressed == 0, "pushes to the UE's address"),
            (self.verified.ok == self.verified.checked, "verified sample"),
            (self.verified.conflicts == 0, "one key per MSK ID"),
            (self.store_mismatch == 0, "UEs' MSK = store's MSK"),
        ];
        checks.iter().filter(|c| !c.0).map(|c| c.1).collect()
    }
}

/// One run on the preloaded store in `dir`.
fn run_once(args: &CrashArgs, dir: &Path) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let LabSockets {
        farm: farm_socket,
        ue_port,
        mtk_sink,
        sink_addr,
    } = LabSockets::bind(Duration::from_millis(10))?;
    // The first BM-SC takes any HTTP port; the restarted one takes the same.
    let config = dir.join("bmsc.toml");
    let write_config = |http_port: u16| {
        std::fs::write(&config, config_text(dir, ue_port, sink_addr, http_port))
            .map_err(|e| e.to_string())
    };
    write_config(0)?;

    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout);
    let progress = Arc::new(Progress::default());
    let farm_thread = {
        let farm = Farm::new(args.ues, args.extra, args.verify_every);
        let p = progress.clone();
        std::thread::spawn(move || farm.run(&farm_socket, &p, start))
    };
    let mut bmsc = BmscProcess::spawn(&exe, &config, args.batch)?;
    let http_addr = bmsc.wait_line("READY", deadline)?;
    let http_port = http_addr
        .parse::<SocketAddr>()
        .map_err(|_| format!("READY {http_addr}"))?
        .port();
    write_config(http_port)?;

    let kill_threshold = ((args.kill_at.clamp(0.0, 1.0) * f64::from(args.ues)) as u64).max(1);
    let flags = Arc::new(Flags::default());
    let regs_thread = {
        let extras = Extras {
            base_url: format!("http://127.0.0.1:{http_port}"),
            preloaded: args.ues,
            count: args.extra,
            clients: args.clients,
            kill_threshold,
            deadline,
        };
        let (p, f) = (progress.clone(), flags.clone());
        std::thread::spawn(move || register_extras(extras, p, f))
    };

    while progress.received(0) < kill_threshold {
        if Instant::now() > deadline {
            return Err(format!(
                "timeout before the kill: {} of {kill_threshold} pushes received",
                progress.received(0)
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    bmsc.kill_9()?;
    let killed_at = start.elapsed();
    flags.killed.store(true, Ordering::Relaxed);
    drop(bmsc);
    progress.switch_phase(deadline)?;
    let preloaded_next_at_kill = progress.preloaded_with_next();
    let before_kill = progress.received(0);
    eprintln!(
        "bench crash: kill -9 after {before_kill} pushes ({preloaded_next_at_kill} of {} preloaded UEs had the next MSK)",
        args.ues
    );

    let mut bmsc = BmscProcess::spawn(&exe, &config, args.batch)?;
    bmsc.wait_line("READY", deadline)?;
    let restarted_at = start.elapsed();
    flags.restarted.store(true, Ordering::Relaxed);
    loop {
        let settled = start.elapsed().saturating_sub(progress.last_at()) >= SETTLE;
        let done = regs_thread.is_finished()
            && bmsc.line("FANOUT-DONE").is_some()
            && progress.preloaded_with_next() >= u64::from(args.ues)
            && progress.extra_with_next() >= flags.acked.load(Ordering::Relaxed);
        if (done && settled) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent_after_restart = bmsc.stop(Instant::now() + Duration::from_secs(30))?;
    progress.stop();
    let registered = regs_thread
        .join()
        .map_err(|_| "the registering UEs panicked".to_owned())?;
    let report = farm_thread
        .join()
        .map_err(|_| "the UE farm panicked".to_owned())?;
    drop(mtk_sink);

    let store = open_store(dir)?;
    let stored = store
        .count_registrations_by_service()
        .map_err(|e| e.to_string())?
        .get(SERVICE)
        .copied()
        .unwrap_or(0);
    let mut acked_missing = 0;
    for (ue, _) in &registered.acked {
        let b = btid(*ue).parse().map_err(|e| format!("B-TID: {e}"))?;
        let regs = store.registrations_of_btid(&b).map_err(|e| e.to_string())?;
        if !regs.iter().any(|r| r.service_id == SERVICE) {
            acked_missing += 1;
        }
    }
    let verified = verify_samples(&report.samples);
    let msks = store.msks().map_err(|e| e.to_string())?;
    let store_mismatch = verified
        .keys
        .iter()
        .filter(|(id, key)| {
            !msks
                .iter()
                .any(|r| r.msk_id.to_u32() == **id && digest(r.msk.as_bytes()) == **key)
        })
        .count() as u64;
    Ok(Outcome {
        ues: args.ues,
        extra: args.extra,
        kill_threshold,
        before_kill,
        after_restart: progress.received(1),
        sent_after_restart,
        preloaded_next_at_kill,
        stored,
        acked_missing,
        store_mismatch,
        verified,
        times: Times {
            first_push: progress.first_at(),
            kill: killed_at,
            restarted: restarted_at,
            all_next: progress.last_next_at(),
        },
        registered,
        report,
    })
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn print_table(args: &CrashArgs, runs: &[Outcome], preload_time: Duration) {
    let row = |name: &str, must: &str, cell: &dyn Fn(&Outcome) -> String| {
        let cells: Vec<String> = runs.iter().map(cell).collect();
        println!("| {name} | {} | {must} |", cells.join(" | "));
    };
    let heads: Vec<String> = (1..=runs.len()).map(|k| format!("run {k}")).collect();
    println!(
        "| kill -9 during the MSK fan-out to {} UEs, restart, finish | {} | must |",
        args.ues,
        heads.join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(runs.len()));
    row("UEs preloaded in the store", "", &|o| o.ues.to_string());
    row(
        "extra UEs registered over HTTP Digest (auth-int): acknowledged (200) / attempted",
        "all",
        &|o| format!("{} / {}", o.acked(), o.extra),
    );
    row(
        "… of which sent before the restart / after it",
        "",
        &|o| {
            let after = o.acked_after_restart().count();
            format!("{} / {after}", o.acked() as usize - after)
        },
    );
    row(
        "… attempts unanswered while the BM-SC was down (retried) / refused",
        "",
        &|o| format!("{} / {}", o.registered.retries, o.registered.refused),
    );
    row("MSK pushes received before kill -9 (kill at)", "", &|o| {
        format!("{} ({})", o.before_kill, o.kill_threshold)
    });
    row(
        "preloaded UEs holding the next MSK at the kill",
        "< all",
        &|o| o.preloaded_next_at_kill.to_string(),
    );
    row(
        "MSK pushes received after the restart / sent by the restarted BM-SC",
        "",
        &|o| format!("{} / {}", o.after_restart, o.sent_after_restart),
    );
    row(
        "UEs holding the next MSK at the end: preloaded + acknowledged",
        "all",
        &|o| {
            format!(
                "{} + {} of {} + {}",
                o.report.preloaded_with_next(o.ues),
                o.acked_with_next(),
                o.ues,
                o.acked()
            )
        },
    );
    row(
        "registered UEs the restarted BM-SC sent a message to (preloaded + acknowledged)",
        "all",
        &|o| {
            format!(
                "{} of {}",
                o.reached_after_restart(),
                u64::from(o.ues) + o.acked()
            )
        },
    );
    row(
        "UEs acknowledged after the restart that got the current MSK too (push on registration)",
        "all",
        &|o| format!("{} of {}", o.with_current(true).0, o.with_current(true).1),
    );
    row(
        "UEs acknowledged before the restart that got the current MSK too (the restart pushes again to recent registrations)",
        "all",
        &|o| format!("{} of {}", o.with_current(false).0, o.with_current(false).1),
    );
    row(
        "registrations in the store after the restart (preloaded + acknowledged)",
        "≥",
        &|o| format!("{} ({})", o.stored, u64::from(o.ues) + o.acked()),
    );
    row(
        "acknowledged registrations missing from the store",
        "0",
        &|o| o.acked_missing.to_string(),
    );
    row(
        "counter reuse: two different messages, one counter, same UE",
        "0",
        &|o| o.report.counts.reused_same_ue.to_string(),
    );
    row(
        "counter not newer than the UE's previous one (a UE discards it as a replay)",
        "0",
        &|o| o.report.counts.not_newer.to_string(),
    );
    row(
        "after the restart, counter not newer than every counter the UE got before the kill",
        "0",
        &|o| o.report.counts.not_newer_after_restart.to_string(),
    );
    row(
        "two different messages sharing a counter, any UEs",
        "0",
        &|o| o.report.reused_any_ue.to_string(),
    );
    row(
        "fan-out messages to preloaded UEs with another MSK ID / messages bringing a UE a 4th MSK ID",
        "0 / 0",
        &|o| {
            let c = &o.report.counts;
            format!("{} / {}", c.other_msk_to_preloaded, c.msk_overflow)
        },
    );
    row(
        "messages not received on their UE's address / malformed or for no UE",
        "0 / 0",
        &|o| {
            let c = &o.report.counts;
            format!("{} / {}", c.misaddressed, c.malformed + c.unknown_ue)
        },
    );
    row(
        "verified sample under the UE's MUK: ok / checked",
        "all",
        &|o| format!("{} / {}", o.verified.ok, o.verified.checked),
    );
    row(
        "MSK IDs with two different keys / with a key other than the store's",
        "0 / 0",
        &|o| format!("{} / {}", o.verified.conflicts, o.store_mismatch),
    );
    row("time: BM-SC process start → first push", "", &|o| {
        secs(o.times.first_push)
    });
    row("time: first push → kill -9", "", &|o| {
        secs(o.times.kill.saturating_sub(o.times.first_push))
    });
    row(
        "time: kill -9 → restarted BM-SC ready (reap, farm drained, new process)",
        "",
        &|o| secs(o.times.restarted.saturating_sub(o.times.kill)),
    );
    row("time: restart → every UE holds the next MSK", "", &|o| {
        secs(o.times.all_next.saturating_sub(o.times.restarted))
    });
    row("checks", "pass", &|o| {
        let f = o.failures();
        if f.is_empty() {
            "pass".to_owned()
        } else {
            format!("FAIL: {}", f.join(", "))
        }
    });
    println!(
        "(preload of {} UEs: {:.1} s; {} concurrent registering clients; every extra UE's messages, the first {} of each phase and every {}th datagram verified)",
        args.ues,
        preload_time.as_secs_f64(),
        args.clients,
        SAMPLE_FIRST,
        args.verify_every
    );
}
