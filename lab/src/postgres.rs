//! A real PostgreSQL server for the tests and the benches: `initdb` on a temporary directory,
//! `pg_ctl start` on a free loopback port (as the `postgres` user when run as root, since
//! `initdb` refuses root), password authentication (SCRAM) for every connection, stopped and
//! removed when the last holder drops it. Each test takes a database of its own
//! ([`PgServer::database`]).
//!
//! The binaries are looked for in `$MBMS_PG_BIN`, then `/usr/lib/postgresql/<version>/bin`,
//! then `PATH`. Without them the tests skip, or fail under `MBMS_REQUIRE_ORACLES=1`
//! ([`PgServer::start`]); a bench says why it cannot run ([`PgServer::launch`]).
//! `$MBMS_PG_OPTIONS` adds server options (`-c name=value …`), e.g. to load
//! `pg_stat_statements` while profiling a bench.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::{TempDir, free_port, oracle};

/// The superuser's password (the server is on loopback and lives for one test run).
pub const PASSWORD: &str = "pg-test-Vq7r2Lx9";

/// Environment variable of extra server options.
pub const EXTRA_OPTIONS_ENV: &str = "MBMS_PG_OPTIONS";

/// How to install the server.
pub const HINT: &str = "apt-get install postgresql";

/// A running server.
pub struct PgServer {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    as_postgres: bool,
    next_db: AtomicU32,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MBMS_PG_BIN") {
        return Some(PathBuf::from(d)).filter(|d| d.join("initdb").is_file());
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .or_else(|| oracle::find_on_path("initdb").and_then(|p| p.parent().map(Path::to_owned)))
}

/// Whether the server binaries are installed.
pub fn available() -> bool {
    find_bin().is_some()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

impl PgServer {
    /// The server shared by the tests of this process, started when none runs; `None` (after
    /// saying so, or failing under `MBMS_REQUIRE_ORACLES=1`) when PostgreSQL is not installed.
    ///
    /// # Panics
    /// When the installed server does not start.
    pub fn shared() -> Option<Arc<Self>> {
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = shared.upgrade() {
            return Some(s);
        }
        let s = Arc::new(Self::start()?);
        *shared = Arc::downgrade(&s);
        Some(s)
    }

    /// A server of its own (for tests that stop and restart it); `None` as [`PgServer::shared`].
    ///
    /// # Panics
    /// When the installed server does not start.
    pub fn start() -> Option<Self> {
        if !available() {
            oracle::missing("PostgreSQL (initdb, pg_ctl)", HINT);
            return None;
        }
        Some(Self::launch().unwrap_or_else(|e| panic!("{e}")))
    }

    /// A server of its own, or why there is none.
    ///
    /// # Errors
    /// When the binaries are missing, or `initdb` or `pg_ctl start` fails.
    pub fn launch() -> Result<Self, String> {
        let bin = find_bin().ok_or_else(|| format!("PostgreSQL not found ({HINT})"))?;
        let as_postgres = is_root();
        let dir = TempDir::try_new("pg").map_err(|e| format!("temporary directory: {e}"))?;
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!("no postgres user to run initdb as ({HINT})"));
            }
        }
        let server = Self {
            bin,
            port: free_port(),
            dir,
            as_postgres,
            next_db: AtomicU32::new(0),
        };
        let pwfile = server.dir.path().join("pw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n"))
            .map_err(|e| format!("password file: {e}"))?;
        if as_postgres {
            let _ = Command::new("chown").arg("postgres:").arg(&pwfile).status();
        }
        let data = server.data_dir();
        let init = server.try_run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "scram-sha-256",
                "--pwfile",
                &pwfile.display().to_string(),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        if !init.status.success() {
            return Err(format!("initdb: {}", stderr(&init)));
        }
        server.try_pg_ctl_start()?;
        Ok(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process ID (from `postmaster.pid`), while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Runs the server binary `program` (as `postgres` when root), to completion.
    ///
    /// # Panics
    /// When it cannot be started.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.try_run(program, args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.args(args)
            .env("PGPASSWORD", PASSWORD)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Starts (or starts again) the server on its port.
    ///
    /// # Panics
    /// When it does not start.
    pub fn pg_ctl_start(&self) {
        self.try_pg_ctl_start().unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_pg_ctl_start(&self) -> Result<(), String> {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        // More server options for a look inside a run (e.g. `-c
        // shared_preload_libraries=pg_stat_statements`); none by default.
        if let Ok(extra) = std::env::var(EXTRA_OPTIONS_ENV)
            && !extra.trim().is_empty()
        {
            opts.push(' ');
            opts.push_str(extra.trim());
        }
        let log = self.dir.path().join("log");
        let out = self.try_run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().display().to_string(),
                "-o",
                &opts,
                "-l",
                &log.display().to_string(),
                "-w",
                "start",
            ],
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start: {} {}",
                stderr(&out),
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    /// Stops the server (fast shutdown: connections are closed).
    pub fn pg_ctl_stop(&self) {
        let _ = self.try_run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// Runs `sql` with `psql` in database `db`; its standard output.
    ///
    /// # Panics
    /// When `psql` fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `sql` with `psql` in database `db`; its standard output, or what went wrong.
    ///
    /// # Errors
    /// When `psql` cannot run or the statement fails.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        let out = self.try_run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        )?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("psql {sql}: {}", stderr(&out)))
        }
    }

    /// A new, empty database of its own for one test; its name.
    ///
    /// # Panics
    /// When it cannot be created.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// The URL of database `db` (no password in it: [`PASSWORD`] goes apart).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// `pg_dump` of database `db` (schema and data, as text).
    ///
    /// # Panics
    /// When `pg_dump` fails.
    pub fn dump(&self, db: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "pg_dump",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", db],
        );
        assert!(out.status.success(), "pg_dump: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.pg_ctl_stop();
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
