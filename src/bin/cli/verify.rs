//! `mbms-keys mikey verify --key HEX|@FILE [--of HEX|@FILE|-] <HEX|@FILE|->`

use std::process::ExitCode;

use clap::Args;
use mbms_keys::mbms::inspect::{Kind, Report, inspect, interval};
use serde_json::{Value, json};

use crate::input::{key_octets, read_hex_arg};

#[derive(Args)]
pub struct VerifyArgs {
    /// The key protecting the message: the MUK for MSK messages and
    /// acknowledgements, the MSK for MTK messages.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_KEY",
        hide_env_values = true
    )]
    key: String,
    /// For an acknowledgement (required): the MSK message it acknowledges (hex, @FILE or -).
    #[arg(long)]
    of: Option<String>,
    /// The message: hex (white space and `:` allowed), @FILE (hex text or binary), or - for
    /// standard input.
    message: String,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

fn report_json(r: &Report) -> Value {
    let key_data = r.key_data.as_ref().map(|kd| {
        let (from, to) = interval(kd);
        json!({
            "type": kd.key_type.name().unwrap_or("Unknown"),
            "key": hex::encode(&kd.key),
            "salt": kd.salt.as_ref().map(hex::encode),
            "kv_from": from.map(hex::encode),
            "kv_to": to.map(hex::encode),
        })
    });
    json!({
        "mac_ok": r.mac_ok,
        "kind": r.kind.as_str(),
        "csb_id": r.csb_id,
        "counter": r.counter,
        "key_domain_id": r.key_domain_id.map(|i| i.to_string()),
        "msk_id": r.msk_id.map(|i| i.to_string()),
        "mtk_id": r.mtk_id.map(|i| i.0),
        "v_flag": r.v_flag,
        "key_data": key_data,
        "profile_error": r.profile_error,
    })
}

pub fn run(a: VerifyArgs) -> ExitCode {
    let key = match key_octets("--key", &a.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let of = match a.of.as_deref().map(read_hex_arg).transpose() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: --of: {e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match read_hex_arg(&a.message) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match inspect(&bytes, &key, of.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("malformed MIKEY message: {e}");
            return ExitCode::from(2);
        }
    };
    if report.kind == Kind::MskAck && of.is_none() {
        // No MAC was checked: a usage error, not a failed verification.
        eprintln!(
            "error: the message is an acknowledgement: give the MSK message it acknowledges \
             with --of HEX|@FILE|- (its MAC key is derived from that message)"
        );
        return ExitCode::from(2);
    }
    let v = report_json(&report);
    if a.json {
        println!("{v}");
    } else if let Value::Object(o) = &v {
        for (k, val) in o {
            println!("{k}: {val}");
        }
    }
    if let Some(e) = &report.profile_error {
        eprintln!("note: {e}");
    }
    if report.mac_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
