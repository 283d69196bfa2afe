//! `mbms-keys relay serve | send | fetch | status`: the asynchronous key relay and its device
//! side (docs/relay.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use mbms_keys::relay::Purpose;
use mbms_keys::relay::client::RelayClient;
use mbms_keys::relay::config::RelayConfig;
use mbms_keys::relay::server;
use serde_json::{Value, json};

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
    /// for another target or not signed by the source, 429 too many open transfers. Stops on SIGTERM or Ctrl-C. Exit
    /// status: 0 after a signal, 1 when it cannot start, 2 for an invalid configuration.
    Serve(ServeArgs),
    /// Open a transfer to --to and post the I_MESSAGE; prints the relay's JSON {id, ...}.
    ///
    /// The message is the MIKEY-SAKKE I_MESSAGE built for the target's UID (printed as
    /// target_uid) and signed with the sender's ECCSI key.
    Send(SendArgs),
    /// Print the envelopes waiting for the token's identities as JSON lines {id, envelope}
    /// (hex); --ack acknowledges each one printed.
    Fetch(FetchArgs),
    /// Print the state of a transfer (JSON).
    Status(StatusArgs),
}

#[derive(Args)]
pub struct Conn {
    /// The relay's base URL (http://HOST:PORT).
    #[arg(long, value_name = "URL")]
    relay: String,
    /// The access token: the JWT, or @FILE holding it.
    #[arg(long, value_name = "TOKEN|@FILE")]
    token: String,
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    conn: Conn,
    /// The target identity (URI).
    #[arg(long, value_name = "URI")]
    to: String,
    /// What the message carries: gmk, pck or csk.
    #[arg(long, value_name = "P")]
    purpose: String,
    /// The I_MESSAGE: HEX, @FILE or - (standard input).
    #[arg(long, value_name = "HEX|@FILE")]
    message: String,
}

#[derive(Args)]
pub struct FetchArgs {
    #[command(flatten)]
    conn: Conn,
    /// Wait up to S seconds (at most 60) for a transfer.
    #[arg(long, value_name = "S", default_value_t = 0)]
    wait: u64,
    /// Acknowledge each envelope printed (the relay deletes it).
    #[arg(long)]
    ack: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: Conn,
    /// The transfer id.
    #[arg(long, value_name = "ID")]
    id: String,
}

#[derive(Args)]
pub struct ServeArgs {
    /// The relay configuration file (TOML); see examples/relay.toml.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub fn run(args: RelayArgs) -> ExitCode {
    match &args.cmd {
        RelayCommand::Serve(a) => serve_cmd(a),
        RelayCommand::Send(a) => device(&a.conn, |c| async move { send(&c, a).await }),
        RelayCommand::Fetch(a) => device(&a.conn, |c| async move { fetch(&c, a).await }),
        RelayCommand::Status(a) => device(&a.conn, |c| async move {
            c.status(&a.id).await.map_err(|e| e.to_string())
        }),
    }
}

/// Runs one device-side call and prints its JSON; exit 1 with the reason on failure.
fn device<F, Fut>(conn: &Conn, call: F) -> ExitCode
where
    F: FnOnce(RelayClient) -> Fut,
    Fut: std::future::Future<Output = Result<Value, String>>,
{
    let token = match conn.token.strip_prefix('@') {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => zeroize::Zeroizing::new(t),
            Err(e) => {
                eprintln!("error: reading {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => zeroize::Zeroizing::new(conn.token.clone()),
    };
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let out = runtime.block_on(async { call(RelayClient::new(&conn.relay, &token)).await });
    match out {
        Ok(Value::Null) => ExitCode::SUCCESS,
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn send(c: &RelayClient, a: &SendArgs) -> Result<Value, String> {
    let purpose = Purpose::parse(&a.purpose).ok_or("--purpose must be gmk, pck or csk")?;
    let message = crate::input::read_hex_arg(&a.message)?;
    let mut opened = c.open(&a.to, purpose).await.map_err(|e| e.to_string())?;
    let id = opened["id"]
        .as_str()
        .ok_or("no id in the answer")?
        .to_owned();
    let posted = c.post(&id, &message).await.map_err(|e| e.to_string())?;
    opened["state"] = posted["state"].clone();
    Ok(opened)
}

async fn fetch(c: &RelayClient, a: &FetchArgs) -> Result<Value, String> {
    let ids = c.inbox(a.wait).await.map_err(|e| e.to_string())?;
    for id in ids {
        let envelope = c.fetch(&id).await.map_err(|e| e.to_string())?;
        if a.ack {
            c.ack(&id).await.map_err(|e| e.to_string())?;
        }
        println!(
            "{}",
            json!({"id": id, "envelope": hex::encode(envelope), "acked": a.ack})
        );
    }
    Ok(Value::Null)
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
