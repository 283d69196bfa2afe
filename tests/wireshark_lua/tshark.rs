//! tshark with `tools/wireshark/mbms_mikey.lua` loaded: captures written by
//! `text2pcap`, `-T fields` read back one row per frame.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{TempDir, oracle};

/// The fields read back, in this order.
pub const FIELDS: &[&str] = &[
    "frame.number",
    "mbms_mikey.key_domain",
    "mbms_mikey.msk_id",
    "mbms_mikey.key_group",
    "mbms_mikey.key_number",
    "mbms_mikey.mtk_id",
    "mbms_mikey.key_id.type",
    "mbms_mikey.key_id.value",
    "mbms_mikey.ext.type",
    "mbms_mikey.cs_id_map_type",
    "mbms_mikey.idr.role",
    "mbms_mikey.key_params",
    "mbms_mikey.summary",
    "mbms_mikey.truncated",
    "mbms_mikey.bad_length",
    "mbms_mikey.trailing",
    "mbms_mikey.unknown",
    "mbms_mikey.internal",
    "_ws.lua.error",
    "_ws.col.Info",
    "http.content_type",
];

/// The expert infos of the dissector.
pub const EXPERTS: &[&str] = &[
    "mbms_mikey.truncated",
    "mbms_mikey.bad_length",
    "mbms_mikey.trailing",
    "mbms_mikey.unknown",
    "mbms_mikey.internal",
];

/// One frame: field name → values, occurrences joined by ','.
pub type Row = BTreeMap<&'static str, String>;

/// Writes to the real standard error (not captured by the harness), so the
/// CI log shows what was checked or why the test skipped.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "wireshark_lua: {line}");
}

pub struct Tshark {
    dir: TempDir,
    script: PathBuf,
}

/// tshark (built with Lua) and text2pcap, or `None` (after saying why) when
/// either is absent and oracles are not required.
pub fn tshark() -> Option<Tshark> {
    oracle::oracle("tshark", &[], "Debian package `tshark`")?;
    oracle::oracle(
        "text2pcap",
        &[],
        "Debian package `wireshark-common`, with `tshark`",
    )?;
    let version = Command::new("tshark").arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&version.stdout);
    // A build without Lua ignores `-X lua_script:`.
    if !version.contains("with Lua") {
        oracle::missing("tshark with Lua", "Debian's `tshark` is built with Lua 5.2");
        return None;
    }
    say(version.lines().next().unwrap_or("tshark"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/wireshark/mbms_mikey.lua");
    assert!(script.is_file(), "{} is missing", script.display());
    Some(Tshark {
        dir: TempDir::new("wireshark-lua"),
        script,
    })
}

/// The `text2pcap` input: each packet as offset-prefixed lines of 16 octets.
fn hexdump(packets: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for p in packets {
        for (i, line) in p.chunks(16).enumerate() {
            let _ = write!(out, "{:06x} ", i * 16);
            for b in line {
                let _ = write!(out, " {b:02x}");
            }
            out.push('\n');
        }
    }
    out
}

impl Tshark {
    fn run(&self, cmd: &mut Command) -> (String, String) {
        let out = cmd.output().expect("program runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{cmd:?}: {stderr}");
        (stdout, stderr)
    }

    /// Writes `packets` to a capture with the `text2pcap` header option
    /// `headers` (e.g. `-u 40000,2269`).
    fn pcap(&self, name: &str, headers: &[&str], packets: &[Vec<u8>]) -> PathBuf {
        let txt = self.dir.path().join(format!("{name}.txt"));
        let pcap = self.dir.path().join(format!("{name}.pcap"));
        std::fs::write(&txt, hexdump(packets)).expect("write hex dump");
        self.run(
            Command::new("text2pcap")
                .arg("-q")
                .args(headers)
                .arg(&txt)
                .arg(&pcap),
        );
        pcap
    }

    /// Dissects a capture with the script loaded; asserts that Lua reported
    /// no error (loading or per frame) and returns one row per frame.
    fn fields(&self, pcap: &Path) -> Vec<Row> {
        let mut cmd = Command::new("tshark");
        // A home of its own: no personal plugin (a second copy of the script)
        // or preference from the account running the test.
        cmd.env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path())
            .arg("-r")
            .arg(pcap)
            .arg("-X")
            .arg(format!("lua_script:{}", self.script.display()))
            .args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"])
            .args(["-E", "aggregator=,"]);
        for f in FIELDS {
            cmd.args(["-e", f]);
        }
        let (stdout, stderr) = self.run(&mut cmd);
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains("Lua: ") && !text.contains("Lua Error"),
                "the script raised an error:\n{stderr}\n{stdout}"
            );
        }
        stdout
            .lines()
            .map(|line| {
                let values: Vec<&str> = line.split('\t').collect();
                assert_eq!(values.len(), FIELDS.len(), "{line}");
                let row: Row = FIELDS
                    .iter()
                    .zip(values)
                    .map(|(f, v)| (*f, v.to_owned()))
                    .collect();
                for f in ["_ws.lua.error", "mbms_mikey.internal"] {
                    assert_eq!(row[f], "", "{f} in frame {}", row["frame.number"]);
                }
                row
            })
            .collect()
    }

    /// Each datagram as one UDP frame to port 2269, dissected.
    pub fn udp(&self, name: &str, datagrams: &[Vec<u8>]) -> Vec<Row> {
        let pcap = self.pcap(name, &["-u", "40000,2269"], datagrams);
        let rows = self.fields(&pcap);
        assert_eq!(rows.len(), datagrams.len(), "{name}: one row per frame");
        rows
    }

    /// `body` as the body of one HTTP response (`Content-Type:
    /// application/mikey`) in one TCP segment from port 80, dissected.
    pub fn http_response(&self, name: &str, body: &[u8]) -> Row {
        self.http_response_of_type(name, "application/mikey", body)
    }

    /// `body` of type `content_type` as one HTTP response, dissected.
    pub fn http_response_of_type(&self, name: &str, content_type: &str, body: &[u8]) -> Row {
        let mut segment = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        segment.extend_from_slice(body);
        let pcap = self.pcap(name, &["-T", "80,40000"], &[segment]);
        let mut rows = self.fields(&pcap);
        assert_eq!(rows.len(), 1, "{name}: one frame");
        rows.remove(0)
    }
}
