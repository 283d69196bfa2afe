//! `mbms-keys bmsc serve | status`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mbms_keys::bmsc::config::Config;
use mbms_keys::bmsc::status;
use mbms_keys::bmsc::store::SqliteStore;

#[derive(Args)]
pub struct BmscArgs {
    #[command(subcommand)]
    cmd: BmscCmd,
}

#[derive(Subcommand)]
enum BmscCmd {
    /// Print services, current MSK/MTK IDs and registration counts from the store (never keys).
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
        BmscCmd::Status { config, json } => status_cmd(&config, json),
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
    let store = match SqliteStore::open_with_kek_file(&config.data_dir, &config.kek_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match status::status(&config, &store) {
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
