//! Reading a message argument: `HEX`, `@FILE` or `-` (standard input); hex
//! may contain white space.

use std::io::Read;

/// Reads the octets named by `arg`.
pub fn read_hex_arg(arg: &str) -> Result<Vec<u8>, String> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading standard input: {e}"))?;
        s
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?
    } else {
        arg.to_string()
    };
    parse_hex(&text)
}

/// Parses hex that may contain white space.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&compact).map_err(|e| format!("invalid hex: {e}"))
}
