//! `mbms-keys mikey decode <HEX | @FILE | ->`

use std::process::ExitCode;

use clap::Args;
use mbms_keys::mikey::{Message, describe};

use crate::input::read_hex_arg;

#[derive(Args)]
pub struct DecodeArgs {
    /// The message: hex (white space, `:` separators as in aa:bb:cc, and a 0x prefix allowed),
    /// @FILE holding hex text or the binary message (e.g. a BM-SC `.mikey` object), or - for
    /// standard input (hex or binary).
    message: String,
    /// Print the decoded message as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DecodeArgs) -> ExitCode {
    let bytes = match read_hex_arg(&args.message) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match Message::decode(&bytes) {
        Ok(rx) => {
            let desc = describe::describe(&rx);
            if args.json {
                println!("{desc}");
            } else {
                print!("{}", describe::render_text(&desc));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("malformed MIKEY message: {e}");
            ExitCode::from(2)
        }
    }
}
