//! `mbms-lab bench crash` at CI size: kill -9 of the BM-SC during an MSK fan-out to 3000 UEs
//! with 50 UEs registering over HTTP, restart, finish; every check of its table holds.

use std::process::Command;
use std::time::Instant;

/// The cells of the table row whose name starts with `name`: (run 1, must).
fn row<'a>(table: &'a str, name: &str) -> (&'a str, &'a str) {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("| {name}")))
        .unwrap_or_else(|| panic!("no row {name:?} in\n{table}"));
    let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
    match cells.as_slice() {
        [_, run, must] => (run, must),
        _ => panic!("row {name:?} is not name | run | must: {line}"),
    }
}

#[test]
fn kill_9_during_the_fan_out_loses_no_acknowledged_registration_and_reuses_no_counter() {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mbms-lab"))
        .args(["bench", "crash", "--ues", "3000", "--extra", "50"])
        .args([
            "--batch",
            "128",
            "--kill-at",
            "0.2",
            "--clients",
            "4",
            "--timeout",
            "60",
        ])
        .output()
        .expect("run mbms-lab");
    let table = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{table}\n{stderr}");
    eprintln!("{table}(took {:.1} s)", start.elapsed().as_secs_f64());

    assert_eq!(row(&table, "checks").0, "pass");
    // Every row that must be zero is.
    let zeros = table
        .lines()
        .filter(|l| l.ends_with("| 0 |") || l.ends_with("| 0 / 0 |"));
    let mut n = 0;
    for line in zeros {
        let name = line
            .trim_start_matches("| ")
            .split(" | ")
            .next()
            .unwrap_or("");
        let (run, must) = row(&table, name);
        assert_eq!(run, must, "{line}");
        n += 1;
    }
    assert!(n >= 7, "rows that must be zero: {n}\n{table}");
    assert_eq!(
        row(&table, "extra UEs registered over HTTP").0,
        "50 / 50",
        "{table}"
    );
    assert_eq!(
        row(&table, "UEs holding the next MSK at the end").0,
        "3000 + 50 of 3000 + 50"
    );
    assert_eq!(
        row(&table, "acknowledged registrations missing from the store").0,
        "0"
    );
}
