//! Reading the command line's octet arguments, one rule for all:
//!
//! - a message (`mikey decode`, `verify`, `--of`): `HEX`, `@FILE` or `-` (standard input);
//! - a key option (`--muk`, `--msk`, `--key`, `--ks-naf`, …): `HEX` or `@FILE`, also taken from
//!   the option's environment variable (`MBMS_MUK`, …; see `--help`), which `ps` does not show.
//!
//! Hex may contain white space and `:` separators (Wireshark's `aa:bb:cc`) and start with `0x`.
//! A file (or standard input) that is printable ASCII text is read as hex; anything else as the
//! octets themselves: a binary `.mikey` object, or a key's raw octets.

use std::io::Read;

use zeroize::Zeroizing;

/// Whether `bytes` is text to read as hex: printable ASCII and white space only.
/// [CHOICE] docs/profile.md §6 "command-line keys and messages".
fn is_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
}

/// Decodes hex with white space, `:` separators and an optional `0x` prefix. Errors never
/// quote the input (it may be a key).
fn hex_octets(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let trimmed = text.trim_start();
    let body = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let compact: Zeroizing<String> = Zeroizing::new(
        body.chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect(),
    );
    if !compact.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("invalid hex: only 0-9, a-f, white space and ':' may appear".into());
    }
    if !compact.len().is_multiple_of(2) {
        return Err("invalid hex: odd number of digits".into());
    }
    let mut out = Zeroizing::new(vec![0u8; compact.len() / 2]);
    hex::decode_to_slice(compact.as_bytes(), &mut out).map_err(|_| "invalid hex".to_owned())?;
    Ok(out)
}

/// The octets of file or standard-input contents: hex if text, else as is.
fn contents_octets(bytes: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, String> {
    if is_text(&bytes) {
        let text = std::str::from_utf8(&bytes).map_err(|_| "invalid hex".to_owned())?;
        hex_octets(text)
    } else {
        Ok(bytes)
    }
}

fn read_file(path: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("reading {path}: {e}"))
}

/// Reads the octets of a message argument: `HEX`, `@FILE` or `-` (module doc).
pub fn read_hex_arg(arg: &str) -> Result<Vec<u8>, String> {
    let octets = if arg == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading standard input: {e}"))?;
        contents_octets(Zeroizing::new(bytes))?
    } else if let Some(path) = arg.strip_prefix('@') {
        contents_octets(read_file(path)?)?
    } else {
        hex_octets(arg)?
    };
    Ok(octets.to_vec())
}

/// Parses hex that may contain white space and `:` separators.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    hex_octets(text).map(|o| o.to_vec())
}

/// The octets of a key option's value: `HEX` or `@FILE` (module doc), wiped after use. The
/// error names the option and never quotes the key.
pub fn key_octets(flag: &str, arg: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let octets = match arg.strip_prefix('@') {
        Some(path) => read_file(path).and_then(contents_octets),
        None => hex_octets(arg),
    };
    octets.map_err(|e| format!("{flag}: {e}"))
}

/// A typed key from a key option's value, by the type's `from_slice` (which checks the length).
pub fn key<K, E: std::fmt::Display>(
    flag: &str,
    arg: &str,
    from_slice: impl FnOnce(&[u8]) -> Result<K, E>,
) -> Result<K, String> {
    let octets = key_octets(flag, arg)?;
    from_slice(&octets).map_err(|e| format!("{flag}: {e}"))
}
