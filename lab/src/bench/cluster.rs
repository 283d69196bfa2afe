//! `mbms-lab bench cluster`: the MSK fan-out to N UEs and the registration rate of one BM-SC on
//! SQLite and of 1, 2, 3 BM-SC nodes on one PostgreSQL server (docs/cluster.md), measured in
//! the same run on the same machine.
//!
//! The bench starts its own PostgreSQL ([`PgServer::launch`]) and seeds N registrations once,
//! through the store API (`register_many`, UEs as `bench push` makes them: synthetic GBA keys,
//! so the UE farm can verify what it gets under each UE's MUK); the SQLite store is preloaded
//! the same way. Each node is a child process (`bench crash`'s: the in-process BM-SC with the
//! synthetic key source) with its own admin listener. The next MSK is due [`START_DELAY`] after
//! the first node starts, once every node runs; its fan-out goes to a UE farm on loopback (one
//! UDP socket for every UE address, every 1000th datagram verified). Then the registrations:
//! Digest (auth-int) clients spread round robin over the nodes, with `bench http`'s client.
//!
//! Per node: messages sent (its admin `/metrics`: the fan-out counter, or the MSK first sends
//! where there is none), registrations answered, CPU time (`/proc/PID/stat`, before and after).
//! The trigger is each node's fan-out end, seen by polling `/metrics`, minus the fan-out
//! duration it reports (`push_fanout_seconds`): the wall time runs from it to the last datagram.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use mbms_keys::bmsc::config::PostgresConfig;
use mbms_keys::bmsc::distribution::Tuning;
use mbms_keys::bmsc::store::{PostgresStore, Registration, Store};

use crate::TempDir;
use crate::bench::cluster_probe::{
    SENT_COUNTERS, first_metric, metric, process_cpu, scrape, server_cpu, wal_position,
};
use crate::bench::cluster_report::{FanoutRun, NodeFigures, RegRun, Setup, Sizes, print_tables};
use crate::bench::crash_bmsc::BmscProcess;
use crate::bench::farm::{LabSockets, SERVICE, btid, copy_dir, preload, ue_addr, verify};
use crate::bench::http::{Users, phase_over, register_target};
use crate::bench::push::{Farm, receive};
use crate::bmsc_config::{LabConfig, LabService};
use crate::postgres::{PASSWORD, PgServer};

/// The next MSK is due this long after the owner's start (`mtk_resend` below): every node
/// of a run starts within it.
pub const START_DELAY: Duration = Duration::from_secs(5);
/// `mtk_resend` of the bench service: an hour (the MSK lifetime and MTK interval) minus
/// [`START_DELAY`], which makes the lead time of the next MSK all but those 5 s.
const MTK_RESEND: &str = "3595s";
/// Registrations per `register_many` call while seeding PostgreSQL.
const SEED_CHUNK: usize = 100_000;
/// How often the nodes' metrics are read during a fan-out.
const POLL: Duration = Duration::from_millis(20);
/// The database of the run.
const DB: &str = "bench";

#[derive(Args)]
pub struct ClusterArgs {
    /// Registered UEs (seeded before the timing).
    #[arg(long, default_value_t = 1_000_000)]
    ues: u32,
    /// Runs; each runs every configuration once, in turn. Medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Node counts on PostgreSQL, comma-separated (the one SQLite node always runs).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 3])]
    nodes: Vec<usize>,
    /// Concurrent registering clients, spread round robin over the nodes.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Registrations per client per configuration.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Give up on a fan-out after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// Where a configuration keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn run(args: ClusterArgs) -> ExitCode {
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn bench(args: &ClusterArgs) -> Result<(), String> {
    let n = args.ues.max(1);
    let tmp = TempDir::try_new("bench-cluster").map_err(|e| e.to_string())?;
    let base = tmp.path().to_path_buf();
    let pg = PgServer::launch()?;
    pg.try_psql("postgres", &format!("CREATE DATABASE {DB}"))?;
    let pwfile = base.join("pg-password");
    std::fs::write(&pwfile, format!("{PASSWORD}\n")).map_err(|e| e.to_string())?;
    set_mode(&pwfile, 0o600)?;
    let setup = Setup {
        ues: n,
        url: pg.url(DB),
        pwfile,
        kek: base.join("pg-kek").join("kek"),
        sqlite_template: base.join("sqlite-template"),
    };

    let t = Instant::now();
    preload(&setup.sqlite_template, n)?;
    let sqlite_seed = t.elapsed();
    eprintln!(
        "bench cluster: {n} UEs preloaded in SQLite in {:.1} s",
        sqlite_seed.as_secs_f64()
    );
    let sizes = seed_postgres(&pg, &setup, sqlite_seed)?;
    eprintln!(
        "bench cluster: {n} UEs seeded in PostgreSQL in {:.1} s ({} octets per registration)",
        sizes.pg_seed.as_secs_f64(),
        sizes.total / u64::from(n)
    );

    let mut configs = vec![(Backend::Sqlite, 1)];
    let mut counts: Vec<usize> = args.nodes.iter().map(|c| (*c).clamp(1, 16)).collect();
    counts.sort_unstable();
    counts.dedup();
    configs.extend(counts.into_iter().map(|c| (Backend::Postgres, c)));
    let rt = crate::runtime().map_err(|_| "no runtime".to_owned())?;
    let mut fanouts: Vec<Vec<FanoutRun>> = vec![Vec::new(); configs.len()];
    let mut regs: Vec<Vec<RegRun>> = vec![Vec::new(); configs.len()];
    for run in 0..args.runs.max(1) {
        for (k, &(backend, nodes)) in configs.iter().enumerate() {
            let (f, r) = measure(args, &setup, &pg, &rt, backend, nodes, &base)?;
            eprintln!(
                "bench cluster: run {}: {backend:?} × {nodes}: fan-out {}/{} in {:.2} s, registrations {:.0}/s",
                run + 1,
                f.received,
                f.sent,
                f.wall.as_secs_f64(),
                r.phase.rate
            );
            fanouts[k].push(f);
            regs[k].push(r);
        }
    }
    print_tables(
        args.clients,
        args.requests,
        &configs,
        &fanouts,
        &regs,
        &sizes,
    );
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn pg_config(setup: &Setup) -> PostgresConfig {
    PostgresConfig {
        url: setup.url.clone(),
        password_file: Some(setup.pwfile.clone()),
        password: None,
        pool_size: mbms_keys::bmsc::config::DEFAULT_POOL_SIZE,
    }
}

/// The N registrations into PostgreSQL through the store (which creates the schema and the
/// KEK); the table's size and the WAL the seeding wrote.
fn seed_postgres(pg: &PgServer, setup: &Setup, sqlite_seed: Duration) -> Result<Sizes, String> {
    let dir = setup.kek.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    set_mode(dir, 0o700)?;
    let t = Instant::now();
    let store = PostgresStore::open(&pg_config(setup), &setup.kek).map_err(|e| e.to_string())?;
    let wal_before = wal_position(pg, DB)?;
    let at = SystemTime::now()
        .checked_sub(Duration::from_secs(24 * 3600))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut chunk = Vec::with_capacity(SEED_CHUNK);
    for i in 0..setup.ues {
        chunk.push(Registration {
            btid: btid(i).parse().map_err(|e| format!("B-TID: {e}"))?,
            service_id: SERVICE.to_owned(),
            ue_addr: ue_addr(i),
            registered_at: at,
        });
        if chunk.len() == SEED_CHUNK || i + 1 == setup.ues {
            store.register_many(&chunk).map_err(|e| e.to_string())?;
            chunk.clear();
        }
    }
    let pg_seed = t.elapsed();
    let seed_wal = wal_position(pg, DB)?.saturating_sub(wal_before);
    drop(store);
    pg.try_psql(DB, "VACUUM ANALYZE registrations")?;
    pg.try_psql(DB, "CHECKPOINT")?;
    let row = pg.try_psql(
        DB,
        "SELECT count(*), pg_relation_size('registrations'), pg_indexes_size('registrations'), \
         pg_total_relation_size('registrations') FROM registrations",
    )?;
    let v: Vec<u64> = row
        .trim()
        .split('|')
        .map(|c| c.parse().unwrap_or(0))
        .collect();
    let sqlite_bytes = std::fs::read_dir(&setup.sqlite_template)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            name.to_string_lossy()
                .starts_with(mbms_keys::bmsc::store::SqliteStore::FILE_NAME)
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(Sizes {
        rows: v.first().copied().unwrap_or(0),
        heap: v.get(1).copied().unwrap_or(0),
        indexes: v.get(2).copied().unwrap_or(0),
        total: v.get(3).copied().unwrap_or(0),
        seed_wal,
        pg_seed,
        sqlite_seed,
        sqlite_bytes,
    })
}

/// The configuration file of node `k` of a run in `dir`.
fn node_config(
    setup: &Setup,
    backend: Backend,
    dir: &Path,
    ue_port: u16,
    sink: std::net::SocketAddr,
) -> Result<PathBuf, String> {
    let mut c = LabConfig::new(
        crate::bench::farm::FQDN,
        dir.to_path_buf(),
        ue_port,
        LabService {
            id: SERVICE.to_owned(),
            msk_lifetime: "1h",
            mtk_interval: "1h",
            mtk_resend: MTK_RESEND,
            mtk_destination: sink,
        },
    );
    // Retransmissions are an hour away: what is counted is the first push to each UE.
    c.push_backoff = Some(("1h", "1h"));
    let mut text = c.to_toml();
    if backend == Backend::Postgres {
        text.push_str(&format!(
            "\n[store]\nurl = \"{}\"\npassword_file = \"{}\"\n\n[cluster]\ntakeover_after = \"10s\"\nfollow_interval = \"1s\"\n",
            setup.url,
            setup.pwfile.display()
        ));
    }
    let path = dir.join("bmsc.toml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

/// A started node: its process and listeners.
struct Node {
    process: BmscProcess,
    admin: std::net::SocketAddr,
    http: std::net::SocketAddr,
}

impl Node {
    fn sent(&self) -> Result<u64, String> {
        let text = scrape(self.admin)?;
        Ok(first_metric(&text, &SENT_COUNTERS).map_or(0, |(_, v)| v as u64))
    }
}

/// One configuration, once: the fan-out, then the registrations, on the same nodes.
#[allow(clippy::too_many_arguments)]
fn measure(
    args: &ClusterArgs,
    setup: &Setup,
    pg: &PgServer,
    rt: &tokio::runtime::Runtime,
    backend: Backend,
    nodes: usize,
    base: &Path,
) -> Result<(FanoutRun, RegRun), String> {
    let run_dir = base.join(format!("run-{backend:?}-{nodes}"));
    let _cleanup = TempDir::at(run_dir.clone()).map_err(|e| e.to_string())?;
    let mut dirs = Vec::new();
    for k in 0..nodes {
        let d = run_dir.join(format!("node{k}"));
        match backend {
            Backend::Sqlite => copy_dir(&setup.sqlite_template, &d)?,
            Backend::Postgres => {
                std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
                set_mode(&d, 0o700)?;
                std::fs::copy(&setup.kek, d.join("kek")).map_err(|e| e.to_string())?;
                set_mode(&d.join("kek"), 0o600)?;
            }
        }
        dirs.push(d);
    }
    if backend == Backend::Postgres {
        // A fresh MSK group for every run: the first node makes the first MSK. The UEs that
        // registered in the previous run are put back a day ago: a start would otherwise push
        // to them as to registrations whose push may be outstanding.
        pg.try_psql(
            DB,
            "DELETE FROM mtks; DELETE FROM msks; \
             UPDATE registrations SET registered_at = (SELECT min(registered_at) FROM registrations) \
             WHERE registered_at > (SELECT min(registered_at) FROM registrations)",
        )?;
    }
    let LabSockets {
        farm: farm_socket,
        ue_port,
        mtk_sink,
        sink_addr,
    } = LabSockets::bind(Duration::from_millis(50))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout);
    let farm = Arc::new(Farm::default());
    let stop = Arc::new(AtomicBool::new(false));
    let farm_thread = {
        let (farm, stop) = (farm.clone(), stop.clone());
        std::thread::spawn(move || receive(&farm_socket, &farm, &stop, start))
    };
    let batch = Tuning::default().batch_size;
    let mut running = Vec::new();
    for d in &dirs {
        let config = node_config(setup, backend, d, ue_port, sink_addr)?;
        let mut process = BmscProcess::spawn(&exe, &config, batch)?;
        let http = process.wait_line("READY", deadline)?;
        let admin = process.wait_line("ADMIN", deadline)?;
        running.push(Node {
            process,
            admin: admin.parse().map_err(|_| format!("ADMIN {admin}"))?,
            http: http.parse().map_err(|_| format!("READY {http}"))?,
        });
    }
    let ready_at = start.elapsed();
    let cpu_before: Vec<Duration> = running
        .iter()
        .map(|n| process_cpu(n.process.pid()))
        .collect();
    let pg_before = server_cpu(pg);

    // Until a fan-out ended and the farm has what was sent (or nothing came for a second).
    let mut done: Vec<Option<(Duration, f64)>> = vec![None; nodes];
    loop {
        std::thread::sleep(POLL);
        let mut sent = 0;
        for (k, node) in running.iter().enumerate() {
            let text = scrape(node.admin)?;
            sent += first_metric(&text, &SENT_COUNTERS).map_or(0, |(_, v)| v as u64);
            let count = metric(&text, "mbms_bmsc_push_fanout_seconds_count").unwrap_or(0.0);
            if done[k].is_none() && count >= 1.0 {
                let took = metric(&text, "mbms_bmsc_push_fanout_seconds_sum").unwrap_or(0.0);
                done[k] = Some((start.elapsed(), took));
            }
        }
        let received = farm.received.load(Ordering::Relaxed);
        let last = Duration::from_nanos(farm.last_ns.load(Ordering::Relaxed));
        let idle = start.elapsed().saturating_sub(last);
        if done.iter().any(Option::is_some) && (received >= sent || idle > Duration::from_secs(1)) {
            break;
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            return Err(format!(
                "{backend:?} × {nodes}: timeout: {received} of {sent} received"
            ));
        }
    }
    let cpu_mid: Vec<Duration> = running
        .iter()
        .map(|n| process_cpu(n.process.pid()))
        .collect();
    let pg_mid = server_cpu(pg);
    let sent: Vec<u64> = running.iter().map(Node::sent).collect::<Result<_, _>>()?;
    stop.store(true, Ordering::Relaxed);
    let samples = farm_thread
        .join()
        .map_err(|_| "UE farm panicked".to_owned())?;
    drop(mtk_sink);
    let trigger = done
        .iter()
        .flatten()
        .map(|(seen, took)| seen.saturating_sub(Duration::from_secs_f64(*took)))
        .min()
        .unwrap_or_default();
    if trigger + Duration::from_millis(100) < ready_at {
        return Err(format!(
            "{backend:?} × {nodes}: the fan-out began {:.2} s after the first start, before every node was ready ({:.2} s): raise START_DELAY",
            trigger.as_secs_f64(),
            ready_at.as_secs_f64()
        ));
    }
    let last = Duration::from_nanos(farm.last_ns.load(Ordering::Relaxed));
    eprintln!(
        "bench cluster: {backend:?} × {nodes}: nodes ready at {:.2} s, fan-out from {:.2} s, last datagram at {:.2} s",
        ready_at.as_secs_f64(),
        trigger.as_secs_f64(),
        last.as_secs_f64()
    );
    let fanout = FanoutRun {
        received: farm.received.load(Ordering::Relaxed),
        sent: sent.iter().sum(),
        verified: samples.len() as u64,
        verified_ok: samples.iter().filter(|m| verify(m)).count() as u64,
        wall: last.saturating_sub(trigger),
        nodes: sent
            .iter()
            .zip(cpu_mid.iter().zip(&cpu_before))
            .map(|(s, (after, before))| NodeFigures {
                count: *s,
                cpu: after.saturating_sub(*before),
            })
            .collect(),
        pg_cpu: pg_mid.saturating_sub(pg_before),
    };

    let regs = registrations(args, pg, rt, backend, &running)?;
    for node in running {
        node.process
            .stop(Instant::now() + Duration::from_secs(30))?;
    }
    Ok((fanout, regs))
}

/// The registrations of one configuration on its running nodes.
fn registrations(
    args: &ClusterArgs,
    pg: &PgServer,
    rt: &tokio::runtime::Runtime,
    backend: Backend,
    nodes: &[Node],
) -> Result<RegRun, String> {
    let counters = |name: &str| -> Result<Vec<u64>, String> {
        nodes
            .iter()
            .map(|n| Ok(metric(&scrape(n.admin)?, name).unwrap_or(0.0) as u64))
            .collect()
    };
    let accepted = "mbms_bmsc_registrations_accepted_total";
    let commits = "mbms_bmsc_store_commits_total";
    let targets: Vec<_> = nodes
        .iter()
        .map(|n| register_target(n.http, SERVICE, Users::Synthetic))
        .collect();
    let (acc_before, commits_before) = (counters(accepted)?, counters(commits)?);
    let wal_before = match backend {
        Backend::Postgres => Some(wal_position(pg, DB)?),
        Backend::Sqlite => None,
    };
    let cpu_before: Vec<Duration> = nodes.iter().map(|n| process_cpu(n.process.pid())).collect();
    let pg_before = server_cpu(pg);
    let gen_before = process_cpu(std::process::id());
    let t = Instant::now();
    let phase = rt.block_on(phase_over(
        &targets,
        args.clients.max(1),
        args.requests.max(1),
    ))?;
    let wall = t.elapsed();
    let gen_cpu = process_cpu(std::process::id()).saturating_sub(gen_before);
    let pg_cpu = server_cpu(pg).saturating_sub(pg_before);
    let cpu_after: Vec<Duration> = nodes.iter().map(|n| process_cpu(n.process.pid())).collect();
    let wal = match wal_before {
        Some(b) => Some(wal_position(pg, DB)?.saturating_sub(b)),
        None => None,
    };
    let (acc_after, commits_after) = (counters(accepted)?, counters(commits)?);
    Ok(RegRun {
        phase,
        wall,
        nodes: acc_after
            .iter()
            .zip(&acc_before)
            .zip(cpu_after.iter().zip(&cpu_before))
            .map(|((a, b), (ca, cb))| NodeFigures {
                count: a.saturating_sub(*b),
                cpu: ca.saturating_sub(*cb),
            })
            .collect(),
        commits: commits_after
            .iter()
            .zip(&commits_before)
            .map(|(a, b)| a.saturating_sub(*b))
            .sum(),
        gen_cpu,
        pg_cpu: (backend == Backend::Postgres).then_some(pg_cpu),
        wal,
    })
}
