//! `mbms-lab bench ue-flood`: the UE load battery. Random datagrams (half pure noise, half
//! valid MTK messages with octets flipped) interleaved with valid MTK messages into one
//! [`Receiver`](mbms_keys::ue::Receiver): every valid message must come out as `MtkReady`, nothing may panic, and the
//! receiver's memory must stay flat (docs/profile.md §3: untrusted input changes nothing until its
//! MAC has verified).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use mbms_keys::crypto::{Msk, Muk, Random, Seeded};
use mbms_keys::mbms::PreparedMuk;
use mbms_keys::ue::Event;

use crate::bench::farm::proc_status_kib;

/// RSS is sampled after every this many random datagrams.
const CHECKPOINT: u64 = 100_000;

#[derive(Args)]
pub struct FloodArgs {
    /// Random datagrams per run.
    #[arg(long, default_value_t = 1_000_000)]
    random: u64,
    /// Valid MTK messages per run, spread evenly among the random ones (at most 65534).
    #[arg(long, default_value_t = 10_000)]
    valid: u32,
    /// Runs; the median time is reported, the memory of the first run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// Reproducible noise: the library's seeded generator.
struct Noise(Seeded);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0.next_u64().unwrap_or_default()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct RunResult {
    time: Duration,
    ready: u64,
    /// MtkReady events out of random datagrams: must be 0.
    noise_accepted: u64,
    panics: u64,
    datagrams: u64,
    /// VmRSS (KiB) before, after each checkpoint, after.
    rss: Vec<(String, u64)>,
}

pub fn run(args: FloodArgs) -> ExitCode {
    let valid = args.valid.clamp(1, 65_534);
    let runs = args.runs.max(1);
    let muk = Muk::from_bytes([0x42; 32]);
    let msk = Msk::from_bytes([0xb0; 16]);
    let install = crate::bench::ue::msk_message(&PreparedMuk::new(&muk), 1, 2, &msk);
    let mtks = crate::bench::ue::mtk_messages(&msk, valid);
    // Panics are counted, not printed a million times.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let results: Vec<RunResult> = (0..runs)
        .map(|k| {
            flood(
                &muk,
                &install,
                &mtks,
                args.random,
                0x9e37_79b9_7f4a_7c15 + k as u64,
            )
        })
        .collect();
    std::panic::set_hook(hook);

    let mut times: Vec<Duration> = results.iter().map(|r| r.time).collect();
    times.sort();
    let time = times[times.len() / 2];
    let first = &results[0];
    let all_ready = results.iter().all(|r| r.ready == u64::from(valid));
    let panics: u64 = results.iter().map(|r| r.panics).sum();
    let noise_accepted: u64 = results.iter().map(|r| r.noise_accepted).sum();
    let rss_values: Vec<u64> = first.rss.iter().map(|(_, v)| *v).collect();
    let rss_min = rss_values.iter().copied().min().unwrap_or(0);
    let rss_max = rss_values.iter().copied().max().unwrap_or(0);
    println!(
        "| UE load battery, one core | datagrams (random + valid) | MtkReady | noise accepted | panics | median time | datagrams/s | VmRSS before → after (max − min) | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| random + flipped-octet datagrams interleaved with valid MTK messages | {} + {valid} | {} of {valid} | {noise_accepted} | {panics} | {:.2} s | {:.0} | {} → {} KiB ({} KiB) | every valid one processed, zero panics, memory flat |",
        args.random,
        first.ready,
        time.as_secs_f64(),
        first.datagrams as f64 / time.as_secs_f64().max(1e-9),
        rss_values.first().copied().unwrap_or(0),
        rss_values.last().copied().unwrap_or(0),
        rss_max - rss_min,
    );
    println!();
    println!("| VmRSS (first run) | KiB |");
    println!("|---|---|");
    for (label, kib) in &first.rss {
        println!("| {label} | {kib} |");
    }
    println!(
        "({runs} runs; in every run all valid processed: {all_ready}; over all runs: noise accepted {noise_accepted}, panics {panics})"
    );
    if all_ready && panics == 0 && noise_accepted == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn flood(muk: &Muk, install: &[u8], mtks: &[Vec<u8>], random: u64, seed: u64) -> RunResult {
    let mut rss = vec![("before".to_owned(), proc_status_kib("VmRSS:").unwrap_or(0))];
    let mut rx = crate::bench::ue::receiver(muk);
    let now = Instant::now();
    let _ack = rx.handle_datagram(now, install);
    while rx.poll_event().is_some() {}

    let mut noise = Noise(Seeded::new(seed));
    let mut buf = Vec::with_capacity(512);
    let every = (random / mtks.len().max(1) as u64).max(1);
    let (mut ready, mut panics, mut datagrams, mut noise_accepted) = (0u64, 0u64, 0u64, 0u64);
    let mut next_valid = mtks.iter();
    let start = Instant::now();
    for i in 1..=random {
        buf.clear();
        if noise.below(2) == 0 {
            let len = noise.below(300);
            buf.extend((0..len).map(|_| noise.next() as u8));
        } else {
            let template = &mtks[noise.below(mtks.len() as u64) as usize];
            buf.extend_from_slice(template);
            // Two flips of one octet may cancel: a copy of a valid message is not noise.
            while buf == *template {
                for _ in 0..=noise.below(4) {
                    let at = noise.below(buf.len() as u64) as usize;
                    buf[at] ^= (noise.below(255) + 1) as u8;
                }
            }
            if noise.below(8) == 0 {
                buf.truncate(noise.below(buf.len() as u64) as usize);
            }
        }
        let mut feed = |d: &[u8], from_noise: bool| {
            datagrams += 1;
            let r = catch_unwind(AssertUnwindSafe(|| {
                let _ack = rx.handle_datagram(now, d);
                let mut n = 0u64;
                while let Some(e) = rx.poll_event() {
                    n += u64::from(matches!(e, Event::MtkReady { .. }));
                }
                n
            }));
            match r {
                Ok(n) if from_noise => noise_accepted += n,
                Ok(n) => ready += n,
                Err(_) => panics += 1,
            }
        };
        feed(&buf, true);
        if i.is_multiple_of(every)
            && let Some(m) = next_valid.next()
        {
            feed(m, false);
        }
        if i.is_multiple_of(CHECKPOINT) {
            rss.push((
                format!("after {i} random"),
                proc_status_kib("VmRSS:").unwrap_or(0),
            ));
        }
    }
    for m in next_valid {
        datagrams += 1;
        let _ack = rx.handle_datagram(now, m);
        while let Some(e) = rx.poll_event() {
            ready += u64::from(matches!(e, Event::MtkReady { .. }));
        }
    }
    let time = start.elapsed();
    rss.push(("after".to_owned(), proc_status_kib("VmRSS:").unwrap_or(0)));
    RunResult {
        time,
        ready,
        noise_accepted,
        panics,
        datagrams,
        rss,
    }
}
