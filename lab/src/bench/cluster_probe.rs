//! What `bench cluster` reads from outside the processes it measures: a node's admin
//! `/metrics` (Prometheus text), the CPU time of a process from `/proc/PID/stat`, the CPU time
//! of the PostgreSQL server (the postmaster and its backends), and WAL positions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::postgres::PgServer;

/// A time in clock ticks of Linux's USER_HZ (1/100 s), as /proc gives them.
fn from_ticks(t: u64) -> Duration {
    Duration::from_millis(t.saturating_mul(10))
}

/// The counter of MSK messages a node sent: every first send of an MSK message, on either
/// store (a shared fan-out's work items included; `mbms_bmsc_fanout_messages_total` counts only
/// those, and stays 0 on SQLite).
pub const SENT_COUNTERS: [&str; 1] = ["mbms_bmsc_pushes_sent_total"];

/// `GET /metrics` on a node's admin listener: the body.
pub fn scrape(admin: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(2))
        .map_err(|e| format!("admin {admin}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("admin {admin}: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("admin {admin}: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("admin {admin}: no HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "admin {admin}: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_owned())
}

/// The value of the sample `name` (no labels) in a Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The first of `names` present in `text`, with its value.
pub fn first_metric(text: &str, names: &[&'static str]) -> Option<(&'static str, f64)> {
    names.iter().find_map(|n| metric(text, n).map(|v| (*n, v)))
}

/// The fields of `/proc/PID/stat` after the command name, from the state (field 3) on.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    // The state is a letter: kept as 0 so that indices stay those of proc(5) minus 3.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

fn ticks(f: &[u64], i: usize) -> u64 {
    f.get(i).copied().unwrap_or(0)
}

/// utime + stime of process `pid` (all its threads); zero when it is gone.
pub fn process_cpu(pid: u32) -> Duration {
    stat_fields(pid).map_or(Duration::ZERO, |f| {
        from_ticks(ticks(&f, 11) + ticks(&f, 12))
    })
}

/// CPU time of the PostgreSQL server: the postmaster's utime + stime and that of its reaped
/// children (cutime + cstime: backends that ended), plus every live child's utime + stime.
pub fn server_cpu(pg: &PgServer) -> Duration {
    let Some(pm) = pg.postmaster_pid() else {
        return Duration::ZERO;
    };
    let mut total = 0u64;
    if let Some(f) = stat_fields(pm) {
        total += ticks(&f, 11) + ticks(&f, 12) + ticks(&f, 13) + ticks(&f, 14);
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(f) = stat_fields(pid)
            && u64::from(pm) == ticks(&f, 1)
        {
            total += ticks(&f, 11) + ticks(&f, 12);
        }
    }
    from_ticks(total)
}

/// The server's current WAL position, in octets.
pub fn wal_position(pg: &PgServer, db: &str) -> Result<u64, String> {
    let text = pg.try_psql(db, "SELECT pg_current_wal_lsn()")?;
    let (hi, lo) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("WAL position {text:?}"))?;
    let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|e| format!("WAL position: {e}"));
    Ok((hex(hi)? << 32) | hex(lo)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_exact_name() {
        let text = "# HELP x\nmbms_bmsc_pushes_sent_total 12\nmbms_bmsc_pushes_sent_totally 5\n\
                    mbms_bmsc_push_fanout_seconds_sum 0.25\n";
        assert_eq!(metric(text, "mbms_bmsc_pushes_sent_total"), Some(12.0));
        assert_eq!(
            metric(text, "mbms_bmsc_push_fanout_seconds_sum"),
            Some(0.25)
        );
        assert_eq!(metric(text, "mbms_bmsc_pushes"), None);
        assert_eq!(
            first_metric(text, &SENT_COUNTERS),
            Some(("mbms_bmsc_pushes_sent_total", 12.0))
        );
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(process_cpu(std::process::id()) > Duration::ZERO);
        assert_eq!(process_cpu(u32::MAX), Duration::ZERO);
    }
}
