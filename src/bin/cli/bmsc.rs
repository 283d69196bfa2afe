//! `mbms-keys bmsc serve | status`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mbms_keys::bmsc::config::{Config, LogFormat, StoreConfig};
use mbms_keys::bmsc::server;
use mbms_keys::bmsc::status;
use mbms_keys::bmsc::store::{PostgresStore, SqliteStore, Store, StoreError};

#[derive(Args)]
pub struct BmscArgs {
    #[command(subcommand)]
    cmd: BmscCmd,
}

impl BmscArgs {
    /// Whether this is `bmsc serve` (which configures its own logging).
    pub fn is_serve(&self) -> bool {
        matches!(self.cmd, BmscCmd::Serve { .. })
    }
}

#[derive(Subcommand)]
enum BmscCmd {
    /// Run the BM-SC: Key Request function (HTTP), Key Distribution function (UDP), admin
    /// listener (/metrics, /health/live, /health/ready, /health). Stops gracefully on SIGTERM
    /// or Ctrl-C; SIGHUP re-reads the file and swaps in the subscribers and service
    /// authorizations (any other change is refused and logged). Exit status: 0 after a
    /// signal, 1 when it cannot start or stops on an error, 2 for an invalid configuration,
    /// 3 when an essential task (Key Requests, key distribution, admin, media, export, ...)
    /// ended unexpectedly and the server stopped.
    Serve {
        /// The BM-SC configuration file (TOML); see examples/bmsc.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print services, current MSK/MTK IDs and registration counts from the store (never keys).
    /// Opens the store read-only beside a running BM-SC and creates nothing: without a store it
    /// says so and exits 1.
    Status {
        /// The BM-SC configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: BmscArgs) -> ExitCode {
    match args.cmd {
        BmscCmd::Serve { config } => serve_cmd(&config),
        BmscCmd::Status { config, json } => status_cmd(&config, json),
    }
}

fn serve_cmd(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => {
            crate::init_logging("info", false);
            return code;
        }
    };
    crate::init_logging("info", config.log_format == LogFormat::Json);
    for w in config.warnings(std::time::SystemTime::now()) {
        tracing::warn!(key = %w.key, "{}", w.problem);
    }
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(server::serve(config, Some(path))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ server::ServeError::TaskEnded { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(mbms_keys::bmsc::supervise::EXIT_TASK_ENDED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn status_cmd(path: &std::path::Path, json: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opened: Result<Box<dyn Store>, StoreError> = match &config.store {
        StoreConfig::Sqlite => SqliteStore::open_read_only(&config.data_dir, &config.kek_file)
            .map(|s| Box::new(s) as Box<dyn Store>),
        StoreConfig::Postgres(pg) => PostgresStore::open_read_only(pg, &config.kek_file)
            .map(|s| Box::new(s) as Box<dyn Store>),
    };
    let store = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match status::status(&config, store.as_ref()) {
        Ok(v) if json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", status::render(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
