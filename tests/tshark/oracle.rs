//! The tshark oracle: finding it, writing datagrams to a pcap with
//! `text2pcap`, and reading `-T fields` and `-T pdml` back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Ethernet (14) + IPv4 (20) + UDP (8) headers that `text2pcap -u` adds.
pub const HEADERS: usize = 42;
const MIKEY_PORT: u16 = 2269;

/// The fields compared with `-T fields` (names from `tshark -G fields`).
pub const FIELDS: &[&str] = &[
    "mikey.version",
    "mikey.type",
    "mikey.next_payload",
    "mikey.v.set",
    "mikey.prf_func",
    "mikey.csb_id",
    "mikey.cs_count",
    "mikey.cs_id_map_type",
    "mikey.srtp_id.policy_no",
    "mikey.srtp_id.ssrc",
    "mikey.srtp_id.roc",
    "mikey.ext.type",
    "mikey.ext.len",
    "mikey.ext.data",
    "mikey.t.ts_type",
    "mikey.id.type",
    "mikey.id.len",
    "mikey.id.data",
    "mikey.rand.len",
    "mikey.rand.data",
    "mikey.kemac.encr_alg",
    "mikey.kemac.key_data_len",
    "mikey.kemac.key_data",
    "mikey.kemac.mac_alg",
    "mikey.kemac.mac",
    "mikey.key.type",
    "mikey.key.kv",
    "mikey.key.data.len",
    "mikey.key.data",
    "mikey.key.salt.len",
    "mikey.key.salt",
    "mikey.key.kv.spi.len",
    "mikey.key.kv.spi",
    "mikey.key.kv.from.len",
    "mikey.key.kv.from",
    "mikey.key.kv.to.len",
    "mikey.key.kv.to",
    "mikey.sp.no",
    "mikey.sp.proto_type",
    "mikey.sp.param_len",
    "mikey.sp.param.type",
    "mikey.sp.param.len",
    "mikey.sp.patam.value",
    "mikey.sp.encr_alg",
    "mikey.sp.encr_len",
    "mikey.sp.auth_alg",
    "mikey.sp.auth_key_len",
    "mikey.sp.salt_len",
    "mikey.sp.prf",
    "mikey.sp.kd_rate",
    "mikey.sp.srtp_encr",
    "mikey.sp.srtcp_encr",
    "mikey.sp.fec",
    "mikey.sp.srtp_auth",
    "mikey.sp.auth_tag_len",
    "mikey.sp.srtp_prefix",
    "mikey.v.auth_alg",
    "mikey.v.ver_data",
    "mikey.err.no",
    "mikey.err.reserved",
    "mikey.id.role",
    "mikey.sakke.params",
    "mikey.sakke.idscheme",
    "mikey.sakke.len",
    "mikey.sakke.data",
    "mikey.sign.type",
    "mikey.sign.len",
    "mikey.sign.data",
    "_ws.malformed",
    "_ws.expert",
];

/// Writes to the real standard error, which the test harness does not
/// capture, so that the CI log shows the oracle's version or the skip.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "tshark_interop: {line}");
}

pub struct Tshark {
    dir: PathBuf,
}

/// The tshark oracle, or `None` (after saying why) when it is absent and not
/// required.
pub fn tshark() -> Option<&'static Tshark> {
    static ORACLE: OnceLock<Option<Tshark>> = OnceLock::new();
    ORACLE
        .get_or_init(|| {
            let version = Command::new("tshark").arg("--version").output();
            let t2p = Command::new("text2pcap").arg("-v").output();
            match (&version, &t2p) {
                (Ok(v), Ok(_)) if v.status.success() => {
                    let text = String::from_utf8_lossy(&v.stdout);
                    say(&format!(
                        "oracle: {}",
                        text.lines().next().unwrap_or("tshark")
                    ));
                }
                _ => {
                    mbms_lab::oracle::missing("tshark or text2pcap", "Debian package `tshark`");
                    return None;
                }
            }
            let dir = std::env::temp_dir().join(format!("mbms-keys-tshark-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Some(Tshark { dir })
        })
        .as_ref()
}

/// One dissected datagram.
pub struct Dissection {
    /// `-T fields` values, by field name, occurrences joined by ','.
    pub fields: BTreeMap<String, String>,
    /// PDML fields of the MIKEY protocol tree, in tree order.
    pub pdml: Vec<PdmlField>,
    pub frame_len: usize,
}

#[derive(Debug, Clone)]
pub struct PdmlField {
    pub name: String,
    /// Depth below the `mikey` protocol element (payloads are at 0).
    pub depth: usize,
    pub pos: usize,
    pub size: usize,
    pub show: String,
    pub value: String,
}

impl Tshark {
    /// Writes each datagram as one UDP frame to port 2269 and dissects them.
    pub fn dissect(&self, name: &str, datagrams: &[Vec<u8>]) -> Vec<Dissection> {
        let txt = self.dir.join(format!("{name}.txt"));
        let pcap = self.dir.join(format!("{name}.pcap"));
        let mut dump = String::new();
        for d in datagrams {
            dump.push_str(&hexdump(d));
        }
        std::fs::write(&txt, dump).expect("write hex dump");
        let udp = format!("40000,{MIKEY_PORT}");
        run(Command::new("text2pcap")
            .args(["-q", "-u", &udp])
            .arg(&txt)
            .arg(&pcap));

        let mut cmd = Command::new("tshark");
        cmd.arg("-r").arg(&pcap).args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "frame.len",
        ]);
        for f in FIELDS {
            cmd.args(["-e", f]);
        }
        let text = run(&mut cmd);
        let rows: Vec<BTreeMap<String, String>> = text
            .lines()
            .map(|line| {
                let cols: Vec<&str> = line.split('|').collect();
                assert_eq!(cols.len(), FIELDS.len() + 1, "tshark row: {line}");
                std::iter::once("frame.len")
                    .chain(FIELDS.iter().copied())
                    .zip(cols)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect();
        let pdml = parse_pdml(&run(Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args(["-T", "pdml"])));
        assert_eq!(
            rows.len(),
            datagrams.len(),
            "tshark -T fields: one row per frame"
        );
        assert_eq!(
            pdml.len(),
            datagrams.len(),
            "tshark -T pdml: one packet per frame"
        );
        rows.into_iter()
            .zip(pdml)
            .map(|(mut fields, pdml)| {
                let frame_len = fields
                    .remove("frame.len")
                    .and_then(|l| l.parse().ok())
                    .expect("frame.len");
                Dissection {
                    fields,
                    pdml,
                    frame_len,
                }
            })
            .collect()
    }

    /// Removes a dissection's files once its checks passed (kept on failure).
    pub fn forget(&self, name: &str) {
        for ext in ["txt", "pcap"] {
            let _ = std::fs::remove_file(self.dir.join(format!("{name}.{ext}")));
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The `text2pcap` input for one packet: offset, then the octets.
fn hexdump(d: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in d.chunks(16).enumerate() {
        s.push_str(&format!("{:06x} ", i * 16));
        for b in chunk {
            s.push_str(&format!(" {b:02x}"));
        }
        s.push('\n');
    }
    s
}

/// Reads the `mikey` protocol tree of every packet of a PDML document.
fn parse_pdml(xml: &str) -> Vec<Vec<PdmlField>> {
    let mut packets = Vec::new();
    let mut fields = Vec::new();
    let mut in_mikey = false;
    let mut depth = 0usize;
    for line in xml.lines().map(str::trim) {
        if line.starts_with("<packet") {
            fields = Vec::new();
        } else if line.starts_with("</packet") {
            packets.push(std::mem::take(&mut fields));
        } else if line.starts_with("<proto ") {
            in_mikey = attr(line, "name") == Some("mikey".into());
            depth = 0;
        } else if line.starts_with("</proto") {
            in_mikey = false;
        } else if in_mikey && line.starts_with("<field ") {
            let num = |k| attr(line, k).and_then(|v| v.parse().ok()).unwrap_or(0);
            fields.push(PdmlField {
                name: attr(line, "name").unwrap_or_default(),
                depth,
                pos: num("pos"),
                size: num("size"),
                show: attr(line, "show").unwrap_or_default(),
                value: attr(line, "value").unwrap_or_default(),
            });
            if !line.ends_with("/>") {
                depth += 1;
            }
        } else if in_mikey && line.starts_with("</field") {
            depth = depth.saturating_sub(1);
        }
    }
    packets
}

fn attr(line: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=\"");
    let start = line.find(&pat)? + pat.len();
    let len = line.get(start..)?.find('"')?;
    let raw = line.get(start..start + len)?;
    Some(
        raw.replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
