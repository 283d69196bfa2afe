//! The figures of `bench cluster` and its markdown tables: medians over the runs, ratios taken
//! run by run (each against the reference measured in the same run), the targets of the issue.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::bench::cluster::Backend;
use crate::bench::http::Phase;

/// What every configuration of a run shares.
pub struct Setup {
    pub ues: u32,
    pub url: String,
    pub pwfile: PathBuf,
    /// The KEK the PostgreSQL store was created with (copied to every node).
    pub kek: PathBuf,
    pub sqlite_template: PathBuf,
}

/// The stores after seeding.
pub struct Sizes {
    pub rows: u64,
    pub heap: u64,
    pub indexes: u64,
    /// `pg_total_relation_size('registrations')`.
    pub total: u64,
    /// WAL written while seeding.
    pub seed_wal: u64,
    pub pg_seed: Duration,
    pub sqlite_seed: Duration,
    /// The SQLite database files (with WAL) after the preload.
    pub sqlite_bytes: u64,
}

/// One node's share of a phase: messages sent or registrations answered, CPU time used.
#[derive(Debug, Clone, Default)]
pub struct NodeFigures {
    pub count: u64,
    pub cpu: Duration,
}

/// One fan-out.
#[derive(Debug, Clone, Default)]
pub struct FanoutRun {
    pub received: u64,
    pub sent: u64,
    pub verified: u64,
    pub verified_ok: u64,
    /// Trigger → last datagram.
    pub wall: Duration,
    pub nodes: Vec<NodeFigures>,
    pub pg_cpu: Duration,
}

/// One registration phase.
#[derive(Debug, Clone, Default)]
pub struct RegRun {
    pub phase: Phase,
    pub wall: Duration,
    pub nodes: Vec<NodeFigures>,
    /// Store commits (group commits) of all nodes.
    pub commits: u64,
    /// The load generator's CPU time (the lab process).
    pub gen_cpu: Duration,
    pub pg_cpu: Option<Duration>,
    /// WAL written (PostgreSQL).
    pub wal: Option<u64>,
}

fn med(v: Vec<f64>) -> f64 {
    crate::median(v).unwrap_or(0.0)
}

fn name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    }
}

fn micros_per(cpu: Duration, count: u64) -> String {
    if count == 0 {
        "–".to_owned()
    } else {
        format!("{:.2} µs", cpu.as_secs_f64() * 1e6 / count as f64)
    }
}

/// "a / b / c" of one cell per node.
fn per_node(nodes: &[NodeFigures], cell: impl Fn(&NodeFigures) -> String) -> String {
    nodes.iter().map(cell).collect::<Vec<_>>().join(" / ")
}

fn share(n: &NodeFigures, total: u64) -> String {
    format!(
        "{} ({:.0}%)",
        n.count,
        n.count as f64 * 100.0 / total.max(1) as f64
    )
}

/// Per-run ratios of `value` of configuration `k` to configuration `reference`, median.
fn ratio<T>(runs: &[Vec<T>], k: usize, reference: usize, value: impl Fn(&T) -> f64) -> f64 {
    let per_run: Vec<f64> = runs[k]
        .iter()
        .zip(&runs[reference])
        .map(|(a, b)| value(a) / value(b).max(1e-9))
        .collect();
    med(per_run)
}

/// Prints the fan-out, registration, size and target tables.
pub fn print_tables(
    clients: usize,
    requests: usize,
    configs: &[(Backend, usize)],
    fanouts: &[Vec<FanoutRun>],
    regs: &[Vec<RegRun>],
    sizes: &Sizes,
) {
    let runs = fanouts.first().map_or(0, Vec::len);
    let sqlite = configs.iter().position(|c| c.0 == Backend::Sqlite);
    let pg1 = configs.iter().position(|c| *c == (Backend::Postgres, 1));
    let pg3 = configs.iter().position(|c| *c == (Backend::Postgres, 3));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| MSK fan-out to {} UEs, end to end | store | nodes | received / sent | verified sample | wall time (trigger → last datagram) | messages/s | wall time / SQLite's (same run) | messages sent per node (share) | CPU time per node (per message it sent) | PostgreSQL server CPU time |",
        sizes.rows.max(1)
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (k, &(backend, nodes)) in configs.iter().enumerate() {
        let Some(f) = crate::median_by(&fanouts[k], |f| f.wall.as_secs_f64()) else {
            continue;
        };
        let vs = sqlite.map_or("–".to_owned(), |s| {
            format!(
                "{:.2}×",
                ratio(fanouts, k, s, |f: &FanoutRun| f.wall.as_secs_f64())
            )
        });
        let _ = writeln!(
            out,
            "| new MSK to every registered UE | {} | {nodes} | {} / {} | {}/{} ok | {:.2} s | {:.0} | {vs} | {} | {} | {} |",
            name(backend),
            f.received,
            f.sent,
            f.verified_ok,
            f.verified,
            f.wall.as_secs_f64(),
            f.received as f64 / f.wall.as_secs_f64().max(1e-9),
            per_node(&f.nodes, |n| share(n, f.sent)),
            per_node(&f.nodes, |n| format!(
                "{:.2} s ({})",
                n.cpu.as_secs_f64(),
                micros_per(n.cpu, n.count)
            )),
            match backend {
                Backend::Postgres => format!(
                    "{:.2} s ({})",
                    f.pg_cpu.as_secs_f64(),
                    micros_per(f.pg_cpu, f.sent)
                ),
                Backend::Sqlite => "–".to_owned(),
            },
        );
    }
    let _ = writeln!(
        out,
        "({runs} runs, every configuration once per run in turn, medians (the run of median wall time); ratios are medians of per-run ratios; the share counter is each node's `mbms_bmsc_pushes_sent_total` (first sends of MSK messages); CPU time from /proc/PID/stat, 10 ms ticks)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| registrations, {clients} Digest clients (auth-int) round robin over the nodes, {requests} each | store | nodes | ok / failed | registrations/s | p50 | p99 | rate / 1 node on PostgreSQL (same run) | answered per node (share) | CPU time per node (per registration it answered) | load generator CPU time (share of all measured) | PostgreSQL server CPU time (per registration) | WAL per registration | store commits (registrations per commit) |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (k, &(backend, nodes)) in configs.iter().enumerate() {
        let Some(r) = crate::median_by(&regs[k], |r| r.phase.rate) else {
            continue;
        };
        let vs = pg1.map_or("–".to_owned(), |p| {
            format!("{:.2}×", ratio(regs, k, p, |r: &RegRun| r.phase.rate))
        });
        let ok = r.phase.ok as u64;
        let nodes_cpu: Duration = r.nodes.iter().map(|n| n.cpu).sum();
        let all = nodes_cpu + r.gen_cpu + r.pg_cpu.unwrap_or_default();
        let _ = writeln!(
            out,
            "| registration (POST, durable before the 200, rspauth checked) | {} | {nodes} | {} / {} | {:.0} | {:.2} ms | {:.2} ms | {vs} | {} | {} | {:.2} s ({:.0}%) | {} | {} | {} ({:.1}) |",
            name(backend),
            r.phase.ok,
            r.phase.failed,
            r.phase.rate,
            r.phase.p50.as_secs_f64() * 1e3,
            r.phase.p99.as_secs_f64() * 1e3,
            per_node(&r.nodes, |n| share(n, ok)),
            per_node(&r.nodes, |n| format!(
                "{:.2} s ({})",
                n.cpu.as_secs_f64(),
                micros_per(n.cpu, n.count)
            )),
            r.gen_cpu.as_secs_f64(),
            r.gen_cpu.as_secs_f64() * 100.0 / all.as_secs_f64().max(1e-9),
            r.pg_cpu.map_or("–".to_owned(), |c| format!(
                "{:.2} s ({})",
                c.as_secs_f64(),
                micros_per(c, ok)
            )),
            r.wal.map_or("–".to_owned(), |w| format!(
                "{:.0} B",
                w as f64 / ok.max(1) as f64
            )),
            r.commits,
            ok as f64 / r.commits.max(1) as f64,
        );
    }
    let _ = writeln!(
        out,
        "({runs} runs, medians (the run of median rate); each client re-registers one UE of the seeded table, so every registration is an upsert of an existing row; the load generator, the nodes and PostgreSQL share the machine's cores)"
    );
    let _ = writeln!(out);
    let n = sizes.rows.max(1) as f64;
    let _ = writeln!(
        out,
        "| store after seeding {} registrations | heap | indexes (3) | total (`pg_total_relation_size`) | per registration | WAL written by the seeding (per registration) | seeding time | SQLite database files (per registration), preload time |",
        sizes.rows
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| PostgreSQL `registrations`, seeded through `register_many` | {} B | {} B | {} B | {:.0} B | {} B ({:.0} B) | {:.1} s | {} B ({:.0} B), {:.1} s |",
        sizes.heap,
        sizes.indexes,
        sizes.total,
        sizes.total as f64 / n,
        sizes.seed_wal,
        sizes.seed_wal as f64 / n,
        sizes.pg_seed.as_secs_f64(),
        sizes.sqlite_bytes,
        sizes.sqlite_bytes as f64 / n,
        sizes.sqlite_seed.as_secs_f64(),
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "| target | measured | |");
    let _ = writeln!(out, "|---|---|---|");
    if let (Some(s), Some(p)) = (sqlite, pg1) {
        let x = ratio(fanouts, p, s, |f: &FanoutRun| f.wall.as_secs_f64());
        let _ = writeln!(
            out,
            "| fan-out wall time, 1 node on PostgreSQL ≤ 1.5 × SQLite's | {x:.2}× | {} |",
            if x <= 1.5 { "met" } else { "**not met**" }
        );
    }
    if let (Some(p1), Some(p3)) = (pg1, pg3) {
        let x = ratio(regs, p3, p1, |r: &RegRun| r.phase.rate);
        let _ = writeln!(
            out,
            "| registrations/s, 3 nodes ≥ 1.5 × 1 node (PostgreSQL) | {x:.2}× | {} |",
            if x >= 1.5 { "met" } else { "**not met**" }
        );
    }
    print!("{out}");
}
