//! `mbms-lab bench cluster` at CI size: one BM-SC on SQLite beside one and two nodes on a real
//! PostgreSQL (started by the bench), 200 seeded UEs, 4 registering clients. Every UE gets the
//! fan-out, the verified sample verifies, the registrations are spread over the nodes, and the
//! tables (sizes, targets) come out. Skipped without PostgreSQL, failing then under
//! `MBMS_REQUIRE_ORACLES=1`.

use std::process::Command;

/// The cells of the rows of `table` whose store and nodes cells are `store` and `nodes`.
fn row<'a>(table: &'a str, first: &str, store: &str, nodes: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| {
            let c: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            l.starts_with(&format!("| {first}"))
                && c.get(1) == Some(&store)
                && c.get(2) == Some(&nodes)
        })
        .unwrap_or_else(|| panic!("no row {first:?} {store} × {nodes} in\n{table}"));
    line.trim_matches('|').split(" | ").map(str::trim).collect()
}

#[test]
fn bench_cluster_measures_sqlite_and_postgresql_nodes_side_by_side() {
    if !mbms_lab::postgres::available() {
        mbms_lab::oracle::missing("PostgreSQL (initdb, pg_ctl)", mbms_lab::postgres::HINT);
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mbms-lab"))
        .args(["bench", "cluster", "--ues", "200", "--runs", "1"])
        .args(["--nodes", "1,2", "--clients", "4", "--requests", "20"])
        .args(["--timeout", "120"])
        .output()
        .expect("run mbms-lab");
    let table = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{table}\n{stderr}");
    assert!(out.status.success(), "{table}\n{stderr}");

    for (store, nodes) in [("SQLite", "1"), ("PostgreSQL", "1"), ("PostgreSQL", "2")] {
        let f = row(&table, "new MSK to every registered UE", store, nodes);
        assert_eq!(f[3], "200 / 200", "{store} × {nodes}: {f:?}");
        assert_eq!(f[4], "1/1 ok", "{store} × {nodes}: {f:?}");
        let r = row(&table, "registration", store, nodes);
        assert_eq!(r[3], "80 / 0", "{store} × {nodes}: {r:?}");
    }
    // One owner sends the fan-out today (docs/cluster.md): the shares add up to every UE.
    let f = row(&table, "new MSK to every registered UE", "PostgreSQL", "2");
    let shares: u64 = f[8]
        .split(" / ")
        .map(|c| {
            c.split(' ')
                .next()
                .unwrap_or("")
                .parse::<u64>()
                .expect("count")
        })
        .sum();
    assert_eq!(shares, 200, "{f:?}");
    // Round robin: each of the two nodes answered half the registrations.
    let r = row(&table, "registration", "PostgreSQL", "2");
    assert_eq!(r[8], "40 (50%) / 40 (50%)", "{r:?}");
    assert!(r[12].ends_with(" B"), "WAL per registration: {r:?}");
    assert!(
        table.contains("| PostgreSQL `registrations`, seeded through `register_many` |"),
        "{table}"
    );
    assert!(
        table.contains("| fan-out wall time, 1 node on PostgreSQL ≤ 1.5 × SQLite's |"),
        "{table}"
    );
}
