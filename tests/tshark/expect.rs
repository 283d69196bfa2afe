//! What tshark should show for a typed message, and the check of one
//! dissection against it.

use std::collections::BTreeMap;

use mbms_keys::mikey::{
    CsIdMap, EncrAlg, Extension, KeyData, KeyIdEntry, KeyValidity, Message, Payload, SrtpParam,
    Timestamp,
};

use super::oracle::{Dissection, FIELDS, HEADERS, PdmlField};

/// The tshark field name of each payload's subtree.
pub fn subtree(p: &Payload) -> &'static str {
    match p {
        Payload::Kemac(_) => "mikey.kemac",
        Payload::Pke(_) => "mikey.pke",
        Payload::Dh(_) => "mikey.dh",
        Payload::Sign(_) => "mikey.sign",
        Payload::T(_) => "mikey.t",
        Payload::Id(_) => "mikey.id",
        Payload::Cert(_) => "mikey.cert",
        Payload::Chash(_) => "mikey.chash",
        Payload::V(_) => "mikey.v",
        Payload::Sp(_) => "mikey.sp",
        Payload::Rand(_) => "mikey.rand",
        Payload::Err(_) => "mikey.err",
        Payload::Ext(_) => "mikey.ext",
        Payload::Idr(_) => "mikey.idr",
        Payload::Sakke(_) => "mikey.sakke",
    }
}

#[derive(Default)]
struct Expected(BTreeMap<String, Vec<String>>);

impl Expected {
    fn push(&mut self, field: &str, value: impl ToString) {
        self.0
            .entry(field.to_string())
            .or_default()
            .push(value.to_string());
    }

    fn key_data(&mut self, kd: &KeyData) {
        self.push("mikey.key.type", kd.key_type.0);
        self.push("mikey.key.kv", kd.validity.kv_type().0);
        self.push("mikey.key.data.len", kd.key.len());
        self.push("mikey.key.data", hex::encode(&kd.key));
        if let Some(salt) = &kd.salt {
            self.push("mikey.key.salt.len", salt.len());
            self.push("mikey.key.salt", hex::encode(salt));
        }
        match &kd.validity {
            KeyValidity::Null => {}
            KeyValidity::Spi(spi) => {
                self.push("mikey.key.kv.spi.len", spi.len());
                self.push("mikey.key.kv.spi", hex::encode(spi));
            }
            KeyValidity::Interval { from, to } => {
                self.push("mikey.key.kv.from.len", from.len());
                self.push("mikey.key.kv.from", hex::encode(from));
                self.push("mikey.key.kv.to.len", to.len());
                self.push("mikey.key.kv.to", hex::encode(to));
            }
        }
    }

    /// The `-T fields` values tshark should print for `m`.
    fn of(m: &Message) -> BTreeMap<String, String> {
        let mut e = Expected::default();
        let h = &m.hdr;
        e.push("mikey.version", h.version);
        e.push("mikey.type", h.data_type.0);
        e.push(
            "mikey.next_payload",
            m.payloads.first().map_or(0, |p| p.payload_type().0),
        );
        e.push("mikey.v.set", u8::from(h.v));
        e.push("mikey.prf_func", h.prf_func.0);
        e.push("mikey.csb_id", format!("0x{:08x}", h.csb_id));
        e.push("mikey.cs_count", h.cs_count);
        e.push("mikey.cs_id_map_type", h.cs_id_map.map_type().0);
        if let CsIdMap::SrtpId(entries) = &h.cs_id_map {
            for s in entries {
                e.push("mikey.srtp_id.policy_no", s.policy_no);
                e.push("mikey.srtp_id.ssrc", format!("0x{:08x}", s.ssrc));
                e.push("mikey.srtp_id.roc", format!("0x{:08x}", s.roc));
            }
        }
        for (i, p) in m.payloads.iter().enumerate() {
            if !matches!(p, Payload::Sign(_)) {
                let next = m.payloads.get(i + 1).map_or(0, |n| n.payload_type().0);
                e.push("mikey.next_payload", next);
            }
            match p {
                Payload::Ext(ext) => {
                    // RFC 4563 §4, written out here rather than by the codec.
                    let data: Vec<u8> = match ext {
                        Extension::KeyId(entries) => entries
                            .iter()
                            .flat_map(|k| {
                                let value = match k {
                                    KeyIdEntry::KeyDomain(d) => d.0.to_vec(),
                                    KeyIdEntry::Msk(msk) => msk.to_u32().to_be_bytes().to_vec(),
                                    KeyIdEntry::Mtk(mtk) => mtk.0.to_be_bytes().to_vec(),
                                    KeyIdEntry::Other { value, .. } => value.clone(),
                                };
                                [k.id_type().0, value.len() as u8].into_iter().chain(value)
                            })
                            .collect(),
                        Extension::Other { data, .. } => data.clone(),
                    };
                    e.push("mikey.ext.type", ext.ext_type().0);
                    e.push("mikey.ext.len", data.len());
                    e.push("mikey.ext.data", hex::encode(&data));
                }
                Payload::T(t) => e.push("mikey.t.ts_type", t.ts_type().0),
                Payload::Id(id) => {
                    e.push("mikey.id.type", id.id_type.0);
                    e.push("mikey.id.len", id.data.len());
                    e.push(
                        "mikey.id.data",
                        String::from_utf8(id.data.clone()).expect("text ID"),
                    );
                }
                Payload::Rand(r) => {
                    e.push("mikey.rand.len", r.len());
                    e.push("mikey.rand.data", hex::encode(r));
                }
                Payload::Kemac(k) => {
                    e.push("mikey.kemac.encr_alg", k.encr_alg.0);
                    e.push("mikey.kemac.key_data_len", k.encr_data.len());
                    if k.encr_alg == EncrAlg::NULL {
                        // tshark 4.0 dissects the plaintext as one Key data
                        // sub-payload: the first, without its next-payload
                        // octet; the rest of the chain is not shown.
                        let chain = KeyData::decode_chain(&k.encr_data).expect("plaintext chain");
                        if let Some(kd) = chain.first() {
                            e.key_data(kd);
                        }
                    } else {
                        e.push("mikey.kemac.key_data", hex::encode(&k.encr_data));
                    }
                    e.push("mikey.kemac.mac_alg", k.mac_alg.0);
                    if k.mac.is_empty() {
                        // tshark's rendering of a MAC field of length 0.
                        e.push("mikey.kemac.mac", "<MISSING>");
                    } else {
                        e.push("mikey.kemac.mac", hex::encode(&k.mac));
                    }
                }
                Payload::Sp(sp) => {
                    e.push("mikey.sp.no", sp.policy_no);
                    e.push("mikey.sp.proto_type", sp.prot_type.0);
                    let len: usize = sp.params.iter().map(|p| 2 + p.value.len()).sum();
                    e.push("mikey.sp.param_len", len);
                    for p in &sp.params {
                        e.push("mikey.sp.param.type", p.param_type);
                        e.push("mikey.sp.param.len", p.value.len());
                        e.push("mikey.sp.patam.value", hex::encode(&p.value));
                        // Known SRTP parameters are also shown by name (RFC 3830 §6.10.1).
                        let [v] = p.value[..] else {
                            panic!("no expectation written for a multi-octet SRTP param");
                        };
                        e.push(srtp_param_field(p.param_type), v);
                    }
                }
                Payload::V(v) => {
                    e.push("mikey.v.auth_alg", v.auth_alg.0);
                    e.push("mikey.v.ver_data", hex::encode(&v.ver_data));
                }
                Payload::Idr(idr) => {
                    // tshark 4.0 shows the IDR with the ID payload's fields
                    // and the role.
                    e.push("mikey.id.role", idr.role.0);
                    e.push("mikey.id.type", idr.id_type.0);
                    e.push("mikey.id.len", idr.data.len());
                    e.push("mikey.id.data", id_text(&idr.data));
                }
                Payload::Sakke(sk) => {
                    e.push("mikey.sakke.params", sk.params.0);
                    e.push("mikey.sakke.idscheme", sk.id_scheme.0);
                    e.push("mikey.sakke.len", sk.data.len());
                    e.push("mikey.sakke.data", hex::encode(&sk.data));
                }
                Payload::Sign(sign) => {
                    e.push("mikey.sign.type", sign.sign_type.0);
                    e.push("mikey.sign.len", sign.signature.len());
                    e.push("mikey.sign.data", hex::encode(&sign.signature));
                }
                Payload::Err(err) => {
                    e.push("mikey.err.no", err.err_no.0);
                    e.push(
                        "mikey.err.reserved",
                        hex::encode(err.reserved.to_be_bytes()),
                    );
                }
                _ => panic!("no expectation written for {p:?}"),
            }
        }
        let mut out: BTreeMap<String, String> = FIELDS
            .iter()
            .map(|f| (f.to_string(), String::new()))
            .collect();
        for (k, v) in e.0 {
            assert!(out.contains_key(&k), "{k} is not in FIELDS");
            out.insert(k, v.join(","));
        }
        out
    }
}

/// How `-T fields` prints an ID: its octets as they are (control
/// characters included). Only UTF-8 IDs have an expectation written.
fn id_text(data: &[u8]) -> String {
    String::from_utf8(data.to_vec()).expect("no expectation written for a non-UTF-8 ID")
}

/// tshark's field for an SRTP policy parameter type (RFC 3830 Table 6.10.1.a).
fn srtp_param_field(t: u8) -> &'static str {
    match SrtpParam(t) {
        SrtpParam::ENCR_ALG => "mikey.sp.encr_alg",
        SrtpParam::ENCR_KEY_LEN => "mikey.sp.encr_len",
        SrtpParam::AUTH_ALG => "mikey.sp.auth_alg",
        SrtpParam::AUTH_KEY_LEN => "mikey.sp.auth_key_len",
        SrtpParam::SALT_KEY_LEN => "mikey.sp.salt_len",
        SrtpParam::SRTP_PRF => "mikey.sp.prf",
        SrtpParam::KEY_DERIVATION_RATE => "mikey.sp.kd_rate",
        SrtpParam::SRTP_ENCRYPTION => "mikey.sp.srtp_encr",
        SrtpParam::SRTCP_ENCRYPTION => "mikey.sp.srtcp_encr",
        SrtpParam::FEC_ORDER => "mikey.sp.fec",
        SrtpParam::SRTP_AUTHENTICATION => "mikey.sp.srtp_auth",
        SrtpParam::AUTH_TAG_LEN => "mikey.sp.auth_tag_len",
        SrtpParam::SRTP_PREFIX_LEN => "mikey.sp.srtp_prefix",
        _ => panic!("no expectation written for SRTP param {t}"),
    }
}

/// Fields whose PDML position tshark 4.0 gets wrong (the SP parameter
/// Type/Length items are placed at twice their offset); their values are
/// right and compared through `-T fields`.
fn position_is_reliable(f: &PdmlField) -> bool {
    !matches!(
        f.name.as_str(),
        "mikey.sp.param.type" | "mikey.sp.param.len"
    )
}

/// Checks one dissection against the typed message and its encoding.
pub fn check(name: &str, m: &Message, d: &Dissection) {
    let bytes = m.encode().unwrap_or_else(|e| panic!("{name}: {e}"));
    let ctx = format!("{name}: {}", hex::encode(&bytes));
    let rx = Message::decode(&bytes).unwrap_or_else(|e| panic!("{ctx}: {e}"));

    // Every compared field as the typed value; nothing malformed.
    let expected = Expected::of(m);
    for (k, want) in &expected {
        let got = d.fields.get(k).map_or("", String::as_str);
        assert_eq!(got, want, "{ctx}: field {k}");
    }
    assert_eq!(
        d.fields.get("_ws.malformed").map_or("", String::as_str),
        "",
        "{ctx}"
    );

    // The datagram is all MIKEY.
    assert_eq!(d.frame_len, HEADERS + bytes.len(), "{ctx}: frame length");

    // tshark's payloads in the codec's order and at the codec's offsets.
    let tops: Vec<&PdmlField> = d.pdml.iter().filter(|f| f.depth == 0).collect();
    let want_names: Vec<&str> = std::iter::once("mikey.hdr")
        .chain(m.payloads.iter().map(subtree))
        .collect();
    let got_names: Vec<&str> = tops.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(got_names, want_names, "{ctx}: payload sequence");
    let mut starts = vec![0];
    starts.extend((0..m.payloads.len()).map(|i| rx.payload_offset(i).expect("offset")));
    starts.push(bytes.len());
    for (i, f) in tops.iter().enumerate() {
        assert_eq!(
            (f.pos - HEADERS, f.size),
            (starts[i], starts[i + 1] - starts[i]),
            "{ctx}: {} (payload {i}) position and size",
            f.name
        );
    }

    // The last MIKEY field ends at the UDP payload's end, not before.
    let placed = d.pdml.iter().filter(|f| position_is_reliable(f));
    let end = placed.map(|f| f.pos + f.size).max().unwrap_or(0);
    assert_eq!(
        end,
        HEADERS + bytes.len(),
        "{ctx}: end of the last MIKEY field"
    );

    // Fields seen only in PDML: the NTP timestamp octets.
    for (p, f) in m
        .payloads
        .iter()
        .filter(|p| matches!(p, Payload::T(_)))
        .zip(d.pdml.iter().filter(|f| f.name == "mikey.t").map(|t| t.pos))
    {
        let Payload::T(t) = p else { unreachable!() };
        let ntp = d
            .pdml
            .iter()
            .find(|x| x.name == "mikey.t.ntp" && x.pos == f + 2);
        match t {
            Timestamp::Counter(_) => assert!(ntp.is_none(), "{ctx}: COUNTER has no field"),
            Timestamp::Ntp(_) | Timestamp::NtpUtc(_) => {
                let ntp = ntp.unwrap_or_else(|| panic!("{ctx}: no mikey.t.ntp"));
                assert_eq!(ntp.value, hex::encode(t.value_bytes()), "{ctx}: NTP octets");
                assert_eq!(ntp.size, 8, "{ctx}");
                assert_eq!(ntp.show, ntp_show(t.t64()), "{ctx}: NTP time");
            }
        }
    }
}

/// tshark's rendering of a 64-bit NTP timestamp (RFC 5905 §6: seconds since
/// 1900 ‖ binary fraction) in UTC, e.g. `Aug 12, 2022 19:40:44.250000000 UTC`.
/// Exact for fractions that are whole nanoseconds.
fn ntp_show(ntp: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let unix = (ntp >> 32) as i64 - 2_208_988_800;
    let nanos = ((ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {:2}, {year} {:02}:{:02}:{:02}.{nanos:09} UTC",
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
