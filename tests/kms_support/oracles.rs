//! The Python oracles the KMS tests share (docs/mcx.md §5): the `xmlschema` validation and the
//! `python3-xmlsec` decryption scripts, and running them.

use std::process::{Command, Output};

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("oracle runs")
}

pub fn ok(out: &Output) -> bool {
    out.status.success()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Validates each file of `argv[2:]` against the schema `argv[1]`; prints
/// `valid N invalid M`, exits 1 when any is invalid.
pub const VALIDATE: &str = r#"
import sys, xmlschema
schema = xmlschema.XMLSchema(sys.argv[1])
bad = 0
for f in sys.argv[2:]:
    errors = list(schema.iter_errors(f))
    for e in errors[:3]:
        print(f, str(e).splitlines()[0:3])
    bad += bool(errors)
print("valid", len(sys.argv) - 2 - bad, "invalid", bad)
sys.exit(1 if bad else 0)
"#;

/// Decrypts every `xenc:EncryptedKey` of the file `argv[1]` under the TrK `argv[2]` (hex);
/// prints `<key element> <hex>` per key.
pub const DECRYPT: &str = r#"
import sys, xmlsec
from lxml import etree
doc = etree.parse(sys.argv[1])
trk = bytes.fromhex(sys.argv[2])
ns = {"xenc": "http://www.w3.org/2001/04/xmlenc#"}
for ek in doc.getroot().iterfind(".//xenc:EncryptedKey", ns):
    ctx = xmlsec.EncryptionContext(xmlsec.KeysManager())
    ctx.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataAes, trk)
    key = ctx.decrypt(ek)
    print(etree.QName(ek.getparent()).localname, key.hex())
"#;
