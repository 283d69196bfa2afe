//! `mbms-lab bench ...`: measurements anyone can rerun, printed as markdown tables (medians of
//! several runs; one core unless stated).

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub mod cluster;
pub mod cluster_probe;
pub mod cluster_report;
pub mod codec;
pub mod crash;
pub mod crash_bmsc;
pub mod crash_farm;
pub mod farm;
pub mod flood;
pub mod http;
pub mod ibe;
pub mod push;
pub mod sakke;
pub mod sakke_relay;
pub mod srtp;
pub mod ue;
pub mod zn;

#[derive(Args)]
/// `bench`: one of the measurements.
pub struct BenchArgs {
    #[command(subcommand)]
    cmd: BenchCmd,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// UE receiver throughput: MTK and MSK messages processed per second on one core.
    Ue {
        /// MTK messages per run (at most 65535: one MSK's MTK ID space).
        #[arg(long, default_value_t = 60_000)]
        mtk: u32,
        /// MSK messages per run.
        #[arg(long, default_value_t = 30_000)]
        msk: u32,
        /// Runs; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// MSK rekey fan-out, end to end: every registered UE gets the new MSK over loopback UDP.
    Push(push::PushArgs),
    /// kill -9 of the BM-SC during an MSK fan-out with registrations under way, restart, finish.
    Crash(crash::CrashArgs),
    /// One BM-SC on SQLite beside 1, 2, 3 nodes on one PostgreSQL (started by the bench): MSK
    /// fan-out to N seeded UEs and registrations per second, with each node's share and CPU time.
    Cluster(cluster::ClusterArgs),
    /// UE load battery: random datagrams interleaved with valid MTK messages.
    UeFlood(flood::FloodArgs),
    /// HTTP Key Request rate against the in-process BM-SC, and lighttpd side by side.
    Http(http::HttpArgs),
    /// MIKEY codec throughput on one message: decode, and decode + encode, in ns/op.
    Codec(codec::CodecArgs),
    /// SRTP sender: the protect rate against libsrtp2 (GStreamer `srtpenc`), and end to end
    /// through the media driver on loopback UDP (rate at full load, latency at a fixed rate).
    Srtp(srtp::SrtpArgs),
    /// Zn lookups per second through the Zn client (one connection, requests pipelined)
    /// against a BSF (`--peer`) or the lab's fake BSF (`--fake-bsf`).
    Zn(zn::ZnArgs),
    /// ECCSI and SAKKE: key sets issued, sign, verify, encapsulate, decapsulate per second, beside
    /// wolfSSL (`tools/mcx-wolf`) in the same run.
    Ibe(ibe::IbeArgs),
    /// MIKEY-SAKKE I_MESSAGEs built and verified per second beside wolfSSL, and key relay
    /// transfers completed per second with many under way at once.
    Sakke(sakke::SakkeArgs),
}

/// Runs one bench command.
pub fn run(args: BenchArgs) -> ExitCode {
    match args.cmd {
        BenchCmd::Ue { mtk, msk, runs } => ue::run(mtk.min(65_535), msk, runs.max(1)),
        BenchCmd::Push(args) => push::run(args),
        BenchCmd::Crash(args) => crash::run(args),
        BenchCmd::Cluster(args) => cluster::run(args),
        BenchCmd::UeFlood(args) => flood::run(args),
        BenchCmd::Http(args) => http::run(args),
        BenchCmd::Codec(args) => codec::run(args),
        BenchCmd::Srtp(args) => srtp::run(args),
        BenchCmd::Zn(args) => zn::run(args),
        BenchCmd::Ibe(args) => ibe::run(args),
        BenchCmd::Sakke(args) => sakke::run(args),
    }
}
