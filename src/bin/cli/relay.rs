//! `mbms-keys relay serve`: the asynchronous key relay (docs/relay.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use mbms_keys::relay::config::RelayConfig;
use mbms_keys::relay::server;

#[derive(Args)]
pub struct RelayArgs {
    #[command(subcommand)]
    cmd: RelayCommand,
}

impl RelayArgs {
    /// Whether this is `relay serve` (which configures its own logging).
    pub fn is_serve(&self) -> bool {
        matches!(self.cmd, RelayCommand::Serve(_))
    }
}

/// The `relay` subcommands.
#[derive(Subcommand)]
pub enum RelayCommand {
    /// Run the key relay over HTTP (see examples/relay.toml and docs/relay.md).
    ///
    /// POST /relay/v1/transfers, PUT and GET /relay/v1/transfers/ID/envelope, POST
    /// /relay/v1/transfers/ID/ack, DELETE and GET /relay/v1/transfers/ID, GET
    /// /relay/v1/inbox?wait=S. Envelopes are sealed at rest in <data_dir>/relay.sqlite under
    /// the KEK. Statuses: 400 malformed, 401 token missing or refused, 403 wrong identity or no
    /// policy, 404, 405, 409 replay or wrong state, 410 revoked or expired, 413, 422 envelope
    /// for another target or not signed by the source. Stops on SIGTERM or Ctrl-C. Exit
    /// status: 0 after a signal, 1 when it cannot start, 2 for an invalid configuration.
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// The relay configuration file (TOML); see examples/relay.toml.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub fn run(args: RelayArgs) -> ExitCode {
    match args.cmd {
        RelayCommand::Serve(a) => serve_cmd(&a),
    }
}

fn serve_cmd(a: &ServeArgs) -> ExitCode {
    crate::init_logging("info", false);
    let config = match RelayConfig::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", a.config.display());
            return ExitCode::from(2);
        }
    };
    let service = match server::build_service(&config) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let listener = match server::bind(&config).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        server::serve(listener, service, crate::kms::stop_signal()).await;
        tracing::info!("relay stopped");
        ExitCode::SUCCESS
    })
}
