//! `mbms-lab bench codec`: MIKEY codec throughput on one message, decode and
//! decode + encode, in ns per message (medians of several runs, one core):
//! the owned decode (`Message::decode`) and the borrowed one
//! (`MessageView::decode`). `benches/codec-vs-gstreamer.sh` runs it next to
//! GStreamer's gstmikey.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use mbms_keys::mikey::{Message, MessageView};

use crate::read_hex_arg;

#[derive(Args)]
pub struct CodecArgs {
    /// The message: hex (white space allowed), @FILE holding hex, or - for standard input.
    #[arg(long)]
    hex: String,
    /// Messages decoded per run (and again decoded and encoded per run).
    #[arg(long, default_value_t = 200_000)]
    iterations: u32,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

fn median(v: Vec<Duration>) -> Duration {
    crate::median(v).unwrap_or_default()
}

/// Decodes `bytes` `n` times; each decoded message is dropped before the next.
fn decode_loop(bytes: &[u8], n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let received = Message::decode(black_box(bytes));
        black_box(&received);
    }
    start.elapsed()
}

/// Reads `bytes` in place `n` times.
fn view_loop(bytes: &[u8], n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let view = MessageView::decode(black_box(bytes));
        black_box(&view);
    }
    start.elapsed()
}

/// Decodes and re-encodes `bytes` `n` times.
fn decode_encode_loop(bytes: &[u8], n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let encoded = Message::decode(black_box(bytes))
            .ok()
            .and_then(|r| r.message().encode().ok());
        black_box(&encoded);
    }
    start.elapsed()
}

pub fn run(args: CodecArgs) -> ExitCode {
    let bytes = match read_hex_arg(&args.hex) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: --hex: {e}");
            return ExitCode::from(2);
        }
    };
    let (n, runs) = (args.iterations.max(1), args.runs.max(1));
    // Round trip once: the message must decode and re-encode to the same octets.
    match Message::decode(&bytes).map(|r| r.message().encode()) {
        Ok(Ok(encoded)) if encoded == bytes => {}
        Ok(Ok(encoded)) => {
            eprintln!(
                "error: re-encoding differs from the input: {}",
                hex::encode(encoded)
            );
            return ExitCode::from(1);
        }
        Ok(Err(e)) => {
            eprintln!("error: encode: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: decode: {e}");
            return ExitCode::from(1);
        }
    }
    // Warm-up.
    let _ = decode_encode_loop(&bytes, n / 10 + 1);

    let mut decode_times = Vec::with_capacity(runs);
    let mut both_times = Vec::with_capacity(runs);
    let mut view_times = Vec::with_capacity(runs);
    for _ in 0..runs {
        decode_times.push(decode_loop(&bytes, n));
        both_times.push(decode_encode_loop(&bytes, n));
        view_times.push(view_loop(&bytes, n));
    }
    let ns = |t: Duration| t.as_secs_f64() * 1e9 / f64::from(n);
    println!(
        "| MIKEY codec, one core | octets | iterations | decode ns/op | decode+encode ns/op |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| mbms-keys `Message::decode` / `.message().encode()` | {} | {n} | {:.1} | {:.1} |",
        bytes.len(),
        ns(median(decode_times)),
        ns(median(both_times)),
    );
    println!(
        "| mbms-keys `MessageView::decode` (borrowed, no allocation) | {} | {n} | {:.1} | — |",
        bytes.len(),
        ns(median(view_times)),
    );
    println!("({runs} runs, medians; each decoded message is dropped before the next)");
    ExitCode::SUCCESS
}
