//! `mbms-lab bench sakke`: MIKEY-SAKKE key delivery end to end — I_MESSAGEs built
//! (`mcx::build_i_message`: SAKKE encapsulation + ECCSI signature + encoding) and verified
//! (`mcx::verify_i_message`: decoding, ECCSI verification + SAKKE decapsulation) per second on
//! one core, with a 16-octet key (the SSV) and with a 32-octet key (in a KEMAC under the SSV,
//! docs/mcx.md §11.5), beside Debian's wolfSSL for the same cryptography in the same run
//! (`tools/mcx-wolf/mcx_wolf_bench.c` in its `mikey` mode, built with make), and key relay
//! transfers completed per second with `--transfers` of them under way at once
//! ([`super::sakke_relay`]). Medians of `--runs` runs.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{Ksak, SakkeMaster};
use mbms_keys::mcx::{
    DeliveryKey, Expect, KeyDelivery, KeyPurpose, Receiver, ReplayCache, Signer, build_i_message,
    ntp_timestamp, verify_i_message,
};

use super::ibe::{build_wolf, timed, wolf_rates};
use super::sakke_relay::{self, RelayRun};

#[derive(Args)]
pub struct SakkeArgs {
    /// Seconds each message operation is timed for, per run and per implementation.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Relay transfers per run, all under way at once (open → send → fetch → ack each).
    #[arg(long, default_value_t = 1000)]
    transfers: usize,
    /// Most HTTP requests in flight at once towards the relay. The source's and the target's
    /// clients each keep up to this many connections, and the relay accepts 512 at most.
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// The wolfSSL side: a built `mcx-wolf-bench` (default: built from tools/mcx-wolf with make
    /// next to this program).
    #[arg(long)]
    wolf: Option<PathBuf>,
    /// Measure only this implementation (no wolfSSL).
    #[arg(long)]
    ours_only: bool,
}

pub fn run(args: SakkeArgs) -> ExitCode {
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench sakke: {e}");
            ExitCode::FAILURE
        }
    }
}

fn median(v: &[f64]) -> f64 {
    crate::median(v.to_vec()).unwrap_or(0.0)
}

fn rounded(v: &[f64]) -> Vec<u64> {
    v.iter().map(|r| r.round() as u64).collect()
}

fn bench(args: &SakkeArgs) -> Result<(), String> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        return Err("--seconds must be positive".into());
    }
    if args.transfers == 0 || args.connections == 0 {
        return Err("--transfers and --connections must be positive".into());
    }
    let wolf = if args.ours_only {
        None
    } else {
        Some(match &args.wolf {
            Some(p) => p.clone(),
            None => build_wolf()?,
        })
    };
    let runs = args.runs.max(1);
    let budget = Duration::from_secs_f64(args.seconds);
    let (mut built, mut verified, mut w_built, mut w_opened) = (vec![], vec![], vec![], vec![]);
    let (mut built32, mut verified32) = (vec![], vec![]);
    let mut relay: Vec<RelayRun> = Vec::new();
    // The relay's envelopes, built once before any timing: the number is the relay's.
    let load = sakke_relay::Load::prepare(args.transfers)?;
    for run in 0..runs {
        let (b, v) = ours_run(budget, 16)?;
        built.push(b);
        verified.push(v);
        let (b, v) = ours_run(budget, 32)?;
        built32.push(b);
        verified32.push(v);
        if let Some(w) = &wolf {
            let (b, o) = wolf_run(w, args.seconds)?;
            w_built.push(b);
            w_opened.push(o);
        }
        relay.push(load.run(args.connections)?);
        eprintln!("run {} of {runs} done", run + 1);
    }

    println!("| I_MESSAGE operation | mbms-keys (messages/s) | wolfSSL (messages/s) | ratio |");
    println!("|---|---|---|---|");
    let none = Vec::new();
    for (label, ours, theirs) in [
        ("built (SAKKE encapsulate + ECCSI sign)", &built, &w_built),
        (
            "verified (ECCSI verify + SAKKE decapsulate)",
            &verified,
            &w_opened,
        ),
        ("built, 256-bit key (+ KEMAC)", &built32, &none),
        ("verified, 256-bit key (+ KEMAC)", &verified32, &none),
    ] {
        let o = median(ours);
        if theirs.is_empty() {
            println!("| {label} | {o:.1} | — | — |");
        } else {
            let t = median(theirs);
            println!("| {label} | {o:.1} | {t:.1} | {:.2}× |", o / t);
        }
    }
    println!();
    println!(
        "| relay transfers (open → send → fetch → ack) | under way at once | requests in flight | completed/s | seconds |"
    );
    println!("|---|---|---|---|---|");
    let rates: Vec<f64> = relay.iter().map(|r| r.rate).collect();
    let secs: Vec<f64> = relay.iter().map(|r| r.seconds).collect();
    println!(
        "| {} | {} | {} | {:.1} | {:.2} |",
        args.transfers,
        args.transfers,
        args.connections,
        median(&rates),
        median(&secs)
    );
    println!();
    println!(
        "per-run rates: built {:?} / wolfSSL {:?}; verified {:?} / wolfSSL {:?}; 256-bit built {:?}, verified {:?}; relay {:?}",
        rounded(&built),
        rounded(&w_built),
        rounded(&verified),
        rounded(&w_opened),
        rounded(&built32),
        rounded(&verified32),
        rounded(&rates)
    );
    Ok(())
}

/// One run of ours with a random key of `key_len` octets (16 or 32): messages built per second,
/// then messages verified per second (a fresh replay cache for each, so that each is verified
/// in full), with a fresh KMS key.
fn ours_run(budget: Duration, key_len: usize) -> Result<(f64, f64), String> {
    let e = |e: mbms_keys::ibe::IbeError| e.to_string();
    let mut rng = OsRandom;
    let (from_uid, to_uid) = ([0x5au8; 32], [0xa5u8; 32]);
    let ksak = Ksak::generate(&mut rng).map_err(e)?;
    let kpak = ksak.kpak().map_err(e)?;
    let master = SakkeMaster::generate(&mut rng).map_err(e)?;
    let z = master.public().map_err(e)?;
    let pair = ksak.issue(&from_uid, &mut rng).map_err(e)?;
    let rsk = master.issue_rsk(&to_uid).map_err(e)?;
    let mut octets = zeroize::Zeroizing::new([0u8; 32]);
    let octets = octets.get_mut(..key_len).ok_or("key length")?;
    mbms_keys::crypto::Random::fill(&mut rng, octets).map_err(|_| "no randomness")?;
    let key = DeliveryKey::from_slice(octets).map_err(|e| e.to_string())?;
    let now = SystemTime::now();
    let d = KeyDelivery {
        key: &key,
        key_id: 0x1000_0001,
        purpose: KeyPurpose::Pck,
        to_uid: &to_uid,
        to_uri: None,
        kms_uri: Some("kms.example.org"),
        time: ntp_timestamp(now).ok_or("the clock is before 1900")?,
        key_params: None,
    };
    let signer = Signer {
        uid: &from_uid,
        ssk: &pair.ssk,
        pvt: &pair.pvt,
        kpak: &kpak,
    };
    let mut msg = Vec::new();
    let built = timed(budget, || {
        msg = build_i_message(black_box(&d), &z, &signer, &mut rng).map_err(|e| e.to_string())?;
        Ok(())
    })?;
    let rx = Receiver {
        uid: &to_uid,
        uri: None,
        rsk: &rsk,
        z: &z,
    };
    let expect = Expect {
        from_uid: &from_uid,
        kpak: &kpak,
        purpose: Some(KeyPurpose::Pck),
        at: now,
        window: mbms_keys::mcx::profile::FRESHNESS_WINDOW,
    };
    let verified = timed(budget, || {
        let mut replay = ReplayCache::new();
        let got = verify_i_message(black_box(&msg), &rx, &expect, &mut replay)
            .map_err(|e| e.to_string())?;
        if got.key == key {
            Ok(())
        } else {
            Err("the verified key is not the one sent".into())
        }
    })?;
    Ok((built, verified))
}

/// One run of wolfSSL: `mcx-wolf-bench SECONDS mikey` prints `build OPS SECONDS` and
/// `open OPS SECONDS`.
fn wolf_run(wolf: &Path, seconds: f64) -> Result<(f64, f64), String> {
    let rates = wolf_rates(wolf, &[&format!("{seconds}"), "mikey"], &["build", "open"])?;
    Ok((rates[0], rates[1]))
}
