//! `mbms-lab bench ibe`: the ECCSI (RFC 6507) and SAKKE (RFC 6508) operations of a KMS and its
//! clients per second on one core — key sets issued (SSK/PVT and RSK for one identity), ECCSI
//! sign and verify, SAKKE encapsulate and decapsulate — beside Debian's wolfSSL for the same
//! operations, in the same run (`tools/mcx-wolf/mcx_wolf_bench.c`, built here with make). Each
//! run times our operation and then wolfSSL's; medians of `--runs` runs.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Args;
use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::sakke::{self, SakkePublic};
use mbms_keys::ibe::{Kpak, Ksak, SakkeMaster, Ssv, eccsi};

#[derive(Args)]
pub struct IbeArgs {
    /// Seconds each operation is timed for, per run and per implementation.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The wolfSSL side: a built `mcx-wolf-bench` (default: built from tools/mcx-wolf with make
    /// next to this program).
    #[arg(long)]
    wolf: Option<PathBuf>,
    /// Measure only this implementation (no wolfSSL).
    #[arg(long)]
    ours_only: bool,
}

/// The operations, in the order both sides time and print them: our row's name, the line of
/// `mcx-wolf-bench` it is compared with, and the label.
/// Our decapsulation always uses the RSK's table of line coefficients (made on its first use);
/// wolfSSL's only when given its own RSK table, so it is timed both ways and our one rate is
/// compared with each. Our verification keeps a table per signer from the signer's second
/// message on (`ibe/p256_table.rs`); a signer's first message goes without it, so it is timed
/// both ways and each compared with wolfSSL's one verification.
const OPS: [(&str, &str, &str); 7] = [
    (
        "keyset",
        "keyset",
        "key sets issued (ECCSI SSK/PVT + SAKKE RSK)",
    ),
    ("sign", "sign", "ECCSI sign"),
    (
        "verify",
        "verify",
        "ECCSI verify (a signer's later messages)",
    ),
    (
        "verify1",
        "verify",
        "ECCSI verify (a signer's first message)",
    ),
    ("encap", "encap", "SAKKE encapsulate"),
    (
        "decap",
        "decap",
        "SAKKE decapsulate (wolfSSL without its RSK table)",
    ),
    (
        "decapt",
        "decapt",
        "SAKKE decapsulate (wolfSSL with its RSK table)",
    ),
];

pub fn run(args: IbeArgs) -> ExitCode {
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench ibe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &IbeArgs) -> Result<(), String> {
    let seconds = if args.seconds.is_finite() && args.seconds > 0.0 {
        args.seconds
    } else {
        return Err("--seconds must be positive".into());
    };
    let wolf = if args.ours_only {
        None
    } else {
        Some(match &args.wolf {
            Some(p) => p.clone(),
            None => build_wolf()?,
        })
    };
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); OPS.len()];
    let mut theirs: Vec<Vec<f64>> = vec![Vec::new(); OPS.len()];
    for run in 0..args.runs.max(1) {
        let rates = ours_run(Duration::from_secs_f64(seconds))?;
        for (i, r) in rates.into_iter().enumerate() {
            ours[i].push(r);
        }
        if let Some(w) = &wolf {
            let rates = wolf_run(w, seconds)?;
            for (i, r) in rates.into_iter().enumerate() {
                theirs[i].push(r);
            }
        }
        eprintln!("run {} of {} done", run + 1, args.runs.max(1));
    }
    println!("| operation | mbms-keys (ops/s) | wolfSSL (ops/s) | ratio |");
    println!("|---|---|---|---|");
    for (i, (_, _, label)) in OPS.iter().enumerate() {
        let o = median(&ours[i]);
        match median_opt(&theirs[i]) {
            Some(t) => println!("| {label} | {o:.1} | {t:.1} | {:.2}× |", o / t),
            None => println!("| {label} | {o:.1} | — | — |"),
        }
    }
    println!();
    println!(
        "per-run rates (ours / wolfSSL): {}",
        OPS.iter()
            .enumerate()
            .map(|(i, (name, _, _))| format!(
                "{name} {:?} / {:?}",
                rounded(&ours[i]),
                rounded(&theirs[i])
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}

fn rounded(v: &[f64]) -> Vec<u64> {
    v.iter().map(|r| r.round() as u64).collect()
}

fn median(v: &[f64]) -> f64 {
    median_opt(v).unwrap_or(0.0)
}

fn median_opt(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Calls `op` until `budget` has passed (at least three calls); operations per second.
pub(super) fn timed(
    budget: Duration,
    mut op: impl FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        op()?;
        n += 1;
        let took = start.elapsed();
        if took >= budget && n >= 3 {
            return Ok(n as f64 / took.as_secs_f64());
        }
    }
}

/// One run of our five operations, with a fresh KMS key, for one 32-octet identity.
fn ours_run(budget: Duration) -> Result<Vec<f64>, String> {
    let e = |e: mbms_keys::ibe::IbeError| e.to_string();
    let mut rng = OsRandom;
    let id = [0x5au8; 32];
    let msg = [0x33u8; 64];
    let ksak = Ksak::generate(&mut rng).map_err(e)?;
    let kpak: Kpak = ksak.kpak().map_err(e)?;
    let master = SakkeMaster::generate(&mut rng).map_err(e)?;
    let z: SakkePublic = master.public().map_err(e)?;

    let keyset = timed(budget, || {
        let pair = ksak.issue(black_box(&id), &mut rng).map_err(e)?;
        let rsk = master.issue_rsk(black_box(&id)).map_err(e)?;
        black_box((&pair, &rsk));
        Ok(())
    })?;
    let pair = ksak.issue(&id, &mut rng).map_err(e)?;
    let rsk = master.issue_rsk(&id).map_err(e)?;

    let mut sig = [0u8; mbms_keys::ibe::ECCSI_SIG_LEN];
    let sign = timed(budget, || {
        sig =
            eccsi::sign(&kpak, &id, &pair.ssk, &pair.pvt, black_box(&msg), &mut rng).map_err(e)?;
        Ok(())
    })?;
    let verify = timed(budget, || {
        eccsi::verify(&kpak, &id, black_box(&msg), &sig).map_err(e)
    })?;
    let verify_first = timed(budget, || {
        eccsi::verify_first(&kpak, &id, black_box(&msg), &sig).map_err(e)
    })?;

    let ssv = Ssv::generate(&mut rng).map_err(e)?;
    let mut data = [0u8; mbms_keys::ibe::SAKKE_ENCAP_LEN];
    let encap = timed(budget, || {
        data = sakke::encapsulate(&z, black_box(&id), &ssv).map_err(e)?;
        Ok(())
    })?;
    let decap = timed(budget, || {
        let got = sakke::decapsulate(&z, &id, &rsk, black_box(&data)).map_err(e)?;
        if got == ssv {
            Ok(())
        } else {
            Err("the decapsulated SSV is not the one encapsulated".into())
        }
    })?;
    // The same rate for both decapsulation rows (see OPS).
    Ok(vec![
        keyset,
        sign,
        verify,
        verify_first,
        encap,
        decap,
        decap,
    ])
}

/// One run of wolfSSL's five operations, the decapsulation timed twice (without and with its
/// RSK table): `mcx-wolf-bench SECONDS` prints `NAME OPS SECONDS`.
fn wolf_run(wolf: &Path, seconds: f64) -> Result<Vec<f64>, String> {
    let names: Vec<&str> = OPS.iter().map(|(_, wolf, _)| *wolf).collect();
    wolf_rates(wolf, &[&format!("{seconds}")], &names)
}

/// Runs `mcx-wolf-bench ARGS…` and reads the rate of each named line `NAME OPS SECONDS`.
pub(super) fn wolf_rates(wolf: &Path, args: &[&str], names: &[&str]) -> Result<Vec<f64>, String> {
    let out = Command::new(wolf)
        .args(args)
        .output()
        .map_err(|e| format!("running {}: {e}", wolf.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            wolf.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    names
        .iter()
        .map(|name| {
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(*name))
                .ok_or_else(|| format!("mcx-wolf-bench printed no {name} line"))?;
            let mut f = line.split_whitespace().skip(1);
            let ops: f64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let took: f64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            if ops > 0.0 && took > 0.0 {
                Ok(ops / took)
            } else {
                Err(format!("mcx-wolf-bench: unreadable line {line:?}"))
            }
        })
        .collect()
}

/// Builds `mcx-wolf-bench` with make next to this program.
pub(super) fn build_wolf() -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/mcx-wolf");
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("mcx-wolf")))
        .ok_or("no directory for the wolfSSL harness")?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = Command::new("make")
        .arg("-C")
        .arg(&src)
        .arg(format!("O={}", dir.display()))
        .arg(dir.join("mcx-wolf-bench"))
        .output()
        .map_err(|e| format!("running make (apt-get install libwolfssl-dev gcc make): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building tools/mcx-wolf failed (apt-get install libwolfssl-dev gcc make): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(dir.join("mcx-wolf-bench"))
}
