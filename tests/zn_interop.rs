//! Zn against a real BSF: Debian's freeDiameterd with our extension `tools/bsf-zn`
//! (`mbms_lab::bsf`), over loopback TCP (docs/oracles.md, "freeDiameterd as the BSF").
//!
//! - The extension alone, driven by a minimal Diameter client written here from RFC 6733 (not
//!   the project's codec, so that neither side checks itself): CER/CEA, BIR/BIA with the keys
//!   compared with the project's `gba::ks_naf` / `ks_ext_naf` / `ks_int_naf` (two independent
//!   implementations of TS 33.220 Annex B must agree), the error answers, odd requests, DWR.
//! - tshark dissects a capture of that exchange as "3GPP Zn" and shows the values sent and
//!   derived.
//!
//! Skips when freeDiameterd (or make, cc, openssl, the freeDiameter headers; tshark and dumpcap
//! for the capture) is missing; fails instead when `MBMS_REQUIRE_ORACLES=1`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mbms_keys::crypto::{Ks, KsNaf, Muk};
use mbms_keys::gba::{Btid, NafId, digest_password, ks_ext_naf, ks_int_naf, ks_naf, mrk_gba_me};
use mbms_keys::mbms::keyreq::{MIME_REGISTER, PATH_REGISTER, RegisterRequest, RegisterResponse};
use mbms_keys::mbms::{AckContext, MskUpdate, UnverifiedMsk, build_ack};
use mbms_lab::bmsc_config::{LabConfig, LabService};
use mbms_lab::bsf::{Bsf, BsfConfig, Subscriber};

const VENDOR_3GPP: u32 = 10415;
const APP_ZN: u32 = 16_777_220;
const CMD_CER: u32 = 257;
const CMD_DWR: u32 = 280;
const CMD_BI: u32 = 310;

const AVP_USER_NAME: u32 = 1;
const AVP_HOST_IP: u32 = 257;
const AVP_AUTH_APP_ID: u32 = 258;
const AVP_VSAI: u32 = 260;
const AVP_SESSION_ID: u32 = 263;
const AVP_ORIGIN_HOST: u32 = 264;
const AVP_VENDOR_ID: u32 = 266;
const AVP_RESULT_CODE: u32 = 268;
const AVP_PRODUCT_NAME: u32 = 269;
const AVP_DEST_REALM: u32 = 283;
const AVP_ORIGIN_REALM: u32 = 296;
const AVP_EXP_RESULT: u32 = 297;
const AVP_EXP_RESULT_CODE: u32 = 298;
const AVP_BTID: u32 = 401;
const AVP_NAF_ID: u32 = 402;
const AVP_KEY_EXPIRY: u32 = 404;
const AVP_ME_KEY: u32 = 405;
const AVP_UICC_KEY: u32 = 406;
const AVP_GBA_U_AWARE: u32 = 407;
const AVP_GBA_TYPE: u32 = 410;

const CLIENT_HOST: &str = "bmsc.naf.test";
const CLIENT_REALM: &str = "naf.test";
const BSF_REALM: &str = "bsf.test";
const BMSC_FQDN: &str = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";

// ---------------------------------------------------------------------------------------
// A minimal Diameter client (RFC 6733 §3, §4): enough to drive the BSF.

/// One AVP as (code, vendor, data); grouped AVPs carry their encoded children as data.
#[derive(Clone, Debug, PartialEq)]
struct Avp {
    code: u32,
    vendor: Option<u32>,
    mandatory: bool,
    data: Vec<u8>,
}

fn avp(code: u32, data: impl Into<Vec<u8>>) -> Avp {
    Avp {
        code,
        vendor: None,
        mandatory: true,
        data: data.into(),
    }
}

fn zn(code: u32, data: impl Into<Vec<u8>>) -> Avp {
    Avp {
        code,
        vendor: Some(VENDOR_3GPP),
        mandatory: true,
        data: data.into(),
    }
}

fn u32_avp(code: u32, v: u32) -> Avp {
    avp(code, v.to_be_bytes())
}

fn grouped(code: u32, children: &[Avp]) -> Avp {
    avp(code, encode_avps(children))
}

fn vsai() -> Avp {
    grouped(
        AVP_VSAI,
        &[
            u32_avp(AVP_VENDOR_ID, VENDOR_3GPP),
            u32_avp(AVP_AUTH_APP_ID, APP_ZN),
        ],
    )
}

fn encode_avps(avps: &[Avp]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in avps {
        let header = if a.vendor.is_some() { 12 } else { 8 };
        let len = header + a.data.len();
        out.extend_from_slice(&a.code.to_be_bytes());
        let flags = u8::from(a.vendor.is_some()) << 7 | u8::from(a.mandatory) << 6;
        out.push(flags);
        out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        if let Some(v) = a.vendor {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&a.data);
        out.resize(out.len().div_ceil(4) * 4, 0);
    }
    out
}

fn decode_avps(mut b: &[u8]) -> Vec<Avp> {
    let mut out = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 8, "truncated AVP header");
        let code = u32::from_be_bytes(b[0..4].try_into().unwrap());
        let flags = b[4];
        let len = u32::from_be_bytes([0, b[5], b[6], b[7]]) as usize;
        let (vendor, header) = if flags & 0x80 != 0 {
            (Some(u32::from_be_bytes(b[8..12].try_into().unwrap())), 12)
        } else {
            (None, 8)
        };
        assert!(len >= header && len <= b.len(), "AVP {code} length {len}");
        out.push(Avp {
            code,
            vendor,
            mandatory: flags & 0x40 != 0,
            data: b[header..len].to_vec(),
        });
        b = &b[len.div_ceil(4).min(b.len().div_ceil(4)) * 4..];
    }
    out
}

#[derive(Debug)]
struct Message {
    flags: u8,
    code: u32,
    app: u32,
    hbh: u32,
    e2e: u32,
    avps: Vec<Avp>,
}

impl Message {
    fn get(&self, code: u32) -> Option<&Avp> {
        self.avps.iter().find(|a| a.code == code)
    }

    fn u32(&self, code: u32) -> Option<u32> {
        self.get(code)
            .and_then(|a| a.data.as_slice().try_into().ok())
            .map(u32::from_be_bytes)
    }

    /// Result-Code, or the Experimental-Result-Code of vendor 10415.
    fn result(&self) -> Option<u32> {
        if let Some(r) = self.u32(AVP_RESULT_CODE) {
            return Some(r);
        }
        let group = decode_avps(&self.get(AVP_EXP_RESULT)?.data);
        let vendor = group.iter().find(|a| a.code == AVP_VENDOR_ID)?;
        assert_eq!(vendor.data, VENDOR_3GPP.to_be_bytes());
        let code = group.iter().find(|a| a.code == AVP_EXP_RESULT_CODE)?;
        Some(u32::from_be_bytes(code.data.as_slice().try_into().ok()?))
    }
}

fn encode_message(flags: u8, code: u32, app: u32, hbh: u32, avps: &[Avp]) -> Vec<u8> {
    let body = encode_avps(avps);
    let len = 20 + body.len();
    let mut out = vec![1];
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(flags);
    out.extend_from_slice(&code.to_be_bytes()[1..]);
    out.extend_from_slice(&app.to_be_bytes());
    out.extend_from_slice(&hbh.to_be_bytes());
    out.extend_from_slice(&(0x5a00_0000 | hbh).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

struct Client {
    stream: TcpStream,
    hbh: u32,
}

impl Client {
    /// Connects and runs CER/CEA; the CEA must say 2001 and support Zn.
    fn connect(bsf: &Bsf) -> Self {
        let stream = TcpStream::connect(bsf.addr()).expect("connect to freeDiameterd");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = Self { stream, hbh: 0 };
        let cea = c.request(
            0x80,
            CMD_CER,
            0,
            &[
                avp(AVP_ORIGIN_HOST, CLIENT_HOST),
                avp(AVP_ORIGIN_REALM, CLIENT_REALM),
                avp(AVP_HOST_IP, [0, 1, 127, 0, 0, 1]),
                u32_avp(AVP_VENDOR_ID, 0),
                avp(AVP_PRODUCT_NAME, "zn_interop"),
                vsai(),
            ],
        );
        assert_eq!(cea.result(), Some(2001), "CEA: {cea:?}");
        let vsais: Vec<_> = cea
            .avps
            .iter()
            .filter(|a| a.code == AVP_VSAI)
            .map(|a| decode_avps(&a.data))
            .collect();
        assert!(
            vsais
                .iter()
                .any(|g| g.contains(&u32_avp(AVP_VENDOR_ID, VENDOR_3GPP))
                    && g.contains(&u32_avp(AVP_AUTH_APP_ID, APP_ZN))),
            "the CEA advertises Vendor-Specific-Application-Id {{10415, 16777220}}: {cea:?}"
        );
        c
    }

    fn send(&mut self, flags: u8, code: u32, app: u32, avps: &[Avp]) -> u32 {
        self.hbh += 1;
        let bytes = encode_message(flags, code, app, self.hbh, avps);
        self.stream.write_all(&bytes).expect("send");
        self.hbh
    }

    fn receive(&mut self) -> Message {
        let mut header = [0u8; 20];
        self.stream.read_exact(&mut header).expect("answer header");
        assert_eq!(header[0], 1, "Diameter version");
        let len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        assert!((20..1 << 20).contains(&len), "message length {len}");
        let mut body = vec![0; len - 20];
        self.stream.read_exact(&mut body).expect("answer body");
        Message {
            flags: header[4],
            code: u32::from_be_bytes([0, header[5], header[6], header[7]]),
            app: u32::from_be_bytes(header[8..12].try_into().unwrap()),
            hbh: u32::from_be_bytes(header[12..16].try_into().unwrap()),
            e2e: u32::from_be_bytes(header[16..20].try_into().unwrap()),
            avps: decode_avps(&body),
        }
    }

    /// Sends a request and returns its answer (requests from the BSF, none expected, fail).
    fn request(&mut self, flags: u8, code: u32, app: u32, avps: &[Avp]) -> Message {
        let hbh = self.send(flags, code, app, avps);
        let answer = self.receive();
        assert_eq!(
            answer.flags & 0x80,
            0,
            "an answer, not a request: {answer:?}"
        );
        assert_eq!((answer.code, answer.app, answer.hbh), (code, app, hbh));
        assert_eq!(answer.e2e, 0x5a00_0000 | hbh, "end-to-end id echoed");
        answer
    }

    fn bir_avps(session: u32, btid: &[u8], naf_id: Option<&[u8]>, gba_u_aware: bool) -> Vec<Avp> {
        let mut avps = vec![
            avp(AVP_SESSION_ID, format!("{CLIENT_HOST};1;{session}")),
            vsai(),
            avp(AVP_ORIGIN_HOST, CLIENT_HOST),
            avp(AVP_ORIGIN_REALM, CLIENT_REALM),
            avp(AVP_DEST_REALM, BSF_REALM),
            zn(AVP_BTID, btid),
        ];
        if let Some(n) = naf_id {
            avps.push(zn(AVP_NAF_ID, n));
        }
        if gba_u_aware {
            avps.push(zn(AVP_GBA_U_AWARE, 1u32.to_be_bytes()));
        }
        avps
    }

    fn bir(&mut self, btid: &[u8], naf_id: Option<&[u8]>, gba_u_aware: bool) -> Message {
        let session = self.hbh + 1;
        let avps = Self::bir_avps(session, btid, naf_id, gba_u_aware);
        let bia = self.request(0xc0, CMD_BI, APP_ZN, &avps);
        assert_eq!(bia.flags & 0xc0, 0x40, "BIA: P set, R clear");
        assert_eq!(
            bia.avps.first().map(|a| (a.code, a.data.clone())),
            Some((
                AVP_SESSION_ID,
                format!("{CLIENT_HOST};1;{session}").into_bytes()
            )),
            "the Session-Id is echoed first"
        );
        bia
    }
}

// ---------------------------------------------------------------------------------------
// Subscribers

fn counting<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// The reference vector: Ks = 00..1f, RAND = 20..2f.
fn vector_subscriber() -> Subscriber {
    Subscriber::me(
        "ICEiIyQlJicoKSorLC0uLw==@bsf.test",
        "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
        counting(0),
        counting(0x20),
    )
}

fn subscribers() -> Vec<Subscriber> {
    let mut gba_u = Subscriber::me(
        "gba-u-user@bsf.test",
        "001010000000002@ims.mnc001.mcc001.3gppnetwork.org",
        counting(0x40),
        counting(0x60),
    );
    gba_u.gba_u = true;
    gba_u.expires = Some(4_000_000_000);
    let mut denied = Subscriber::me(
        "denied@bsf.test",
        "001010000000003@ims.mnc001.mcc001.3gppnetwork.org",
        counting(0x80),
        counting(0x90),
    );
    denied.not_authorized = true;
    vec![vector_subscriber(), gba_u, denied]
}

fn start_bsf() -> Option<Bsf> {
    if !mbms_lab::bsf::available() {
        return None;
    }
    let config = BsfConfig::new(BSF_REALM, CLIENT_REALM, subscribers());
    Some(Bsf::start(&config).unwrap_or_else(|e| panic!("{e}")))
}

fn ntp_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2_208_988_800
}

// ---------------------------------------------------------------------------------------
// The extension

#[test]
fn freediameterd_answers_bir_with_the_keys_of_the_projects_kdf() {
    let Some(bsf) = start_bsf() else { return };
    let mut c = Client::connect(&bsf);
    let naf = NafId::mbms(BMSC_FQDN);

    // GBA_ME: ME-Key-Material = Ks_NAF, equal to the project's and to the published vector
    let s = vector_subscriber();
    let bia = c.bir(s.btid.as_bytes(), Some(naf.as_bytes()), false);
    assert_eq!(bia.result(), Some(2001), "{bia:?}");
    let me = bia.get(AVP_ME_KEY).expect("ME-Key-Material");
    assert_eq!((me.vendor, me.mandatory), (Some(VENDOR_3GPP), true));
    let expected = ks_naf(&Ks::from_bytes(s.ks), &s.rand, &s.impi, &naf).unwrap();
    assert_eq!(me.data, expected.as_bytes());
    assert_eq!(
        hex::encode(&me.data),
        "7075e981aa34117f3600ea992ce645560ad808a80205590fa662094da10d7b3a"
    );
    assert!(bia.get(AVP_UICC_KEY).is_none(), "no UICC key for GBA_ME");
    assert_eq!(
        bia.get(AVP_USER_NAME).map(|a| a.data.clone()),
        Some(s.impi.clone().into_bytes())
    );
    assert_eq!(bia.u32(AVP_GBA_TYPE), Some(0), "3G GBA");
    // default lifetime 3600 s from the load
    let expiry = u64::from(bia.u32(AVP_KEY_EXPIRY).expect("Key-ExpiryTime"));
    let now = ntp_now();
    assert!(
        (now + 3000..=now + 3700).contains(&expiry),
        "Key-ExpiryTime {expiry} vs now {now}"
    );

    // another NAF_Id gives another key: the NAF-Id of the request is what is derived from
    let other = NafId::new(BMSC_FQDN, [1, 0, 0, 0, 3]);
    let bia = c.bir(s.btid.as_bytes(), Some(other.as_bytes()), false);
    let expected = ks_naf(&Ks::from_bytes(s.ks), &s.rand, &s.impi, &other).unwrap();
    assert_eq!(bia.get(AVP_ME_KEY).unwrap().data, expected.as_bytes());

    // GBA_U, GBA_U-aware NAF: ME = Ks_ext_NAF, UICC = Ks_int_NAF, expiry from the file
    let u = &subscribers()[1];
    let bia = c.bir(u.btid.as_bytes(), Some(naf.as_bytes()), true);
    assert_eq!(bia.result(), Some(2001));
    let ks = Ks::from_bytes(u.ks);
    assert_eq!(
        bia.get(AVP_ME_KEY).unwrap().data,
        ks_ext_naf(&ks, &u.rand, &u.impi, &naf).unwrap().as_bytes()
    );
    assert_eq!(
        bia.get(AVP_UICC_KEY).expect("UICC-Key-Material").data,
        ks_int_naf(&ks, &u.rand, &u.impi, &naf).unwrap().as_bytes()
    );
    assert_eq!(
        bia.u32(AVP_KEY_EXPIRY).map(u64::from),
        Some(4_000_000_000 + 2_208_988_800 - (1 << 32))
    );
    // the same subscriber for a NAF that is not GBA_U aware: Ks_ext_NAF only
    let bia = c.bir(u.btid.as_bytes(), Some(naf.as_bytes()), false);
    assert!(bia.get(AVP_UICC_KEY).is_none());
    assert_eq!(
        bia.get(AVP_ME_KEY).unwrap().data,
        ks_ext_naf(&ks, &u.rand, &u.impi, &naf).unwrap().as_bytes()
    );

    // unknown B-TID → 5403, not authorized → 5402, neither carries keys
    for (btid, code) in [
        (&b"nobody@bsf.test"[..], 5403),
        (b"denied@bsf.test", 5402),
        (b"ICEiIyQlJicoKSorLC0uLw==@bsf.tes", 5403),
        (b"ICEiIyQlJicoKSorLC0uLw==@bsf.test ", 5403),
    ] {
        let bia = c.bir(btid, Some(naf.as_bytes()), true);
        assert_eq!(bia.result(), Some(code), "{btid:?}");
        assert!(
            bia.u32(AVP_RESULT_CODE).is_none(),
            "no Result-Code with Experimental-Result"
        );
        assert!(bia.get(AVP_ME_KEY).is_none() && bia.get(AVP_UICC_KEY).is_none());
        assert!(bia.get(AVP_ORIGIN_HOST).is_some());
    }
}

#[test]
fn freediameterd_bsf_survives_odd_requests() {
    let Some(bsf) = start_bsf() else { return };
    let mut c = Client::connect(&bsf);
    let naf = NafId::mbms(BMSC_FQDN);
    let s = vector_subscriber();

    // missing NAF-Id, missing B-TID → 5005 DIAMETER_MISSING_AVP
    let bia = c.bir(s.btid.as_bytes(), None, false);
    assert_eq!(bia.result(), Some(5005));
    let mut avps = Client::bir_avps(900, b"", Some(naf.as_bytes()), false);
    avps.retain(|a| a.code != AVP_BTID);
    let bia = c.request(0xc0, CMD_BI, APP_ZN, &avps);
    assert_eq!(bia.result(), Some(5005));
    // empty or oversized values → 5004 DIAMETER_INVALID_AVP_VALUE
    for (btid, naf_id) in [
        (Vec::new(), naf.as_bytes().to_vec()),
        (vec![b'a'; 256], naf.as_bytes().to_vec()),
        (s.btid.clone().into_bytes(), Vec::new()),
        (s.btid.clone().into_bytes(), vec![b'n'; 1025]),
        // (freeDiameter drops connections carrying messages over 64 KiB itself)
        (vec![0xff; 20_000], vec![0; 20_000]),
    ] {
        let bia = c.bir(&btid, Some(&naf_id), false);
        assert_eq!(bia.result(), Some(5004), "{} {}", btid.len(), naf_id.len());
        assert!(bia.get(AVP_ME_KEY).is_none());
    }
    // the longest accepted NAF-Id still derives
    let long = vec![b'x'; 1024];
    let bia = c.bir(s.btid.as_bytes(), Some(&long), false);
    assert_eq!(bia.result(), Some(2001));
    // a repeated B-TID AVP: the first one counts
    let mut avps = Client::bir_avps(901, s.btid.as_bytes(), Some(naf.as_bytes()), false);
    avps.push(zn(AVP_BTID, "nobody@bsf.test"));
    let bia = c.request(0xc0, CMD_BI, APP_ZN, &avps);
    assert_eq!(bia.result(), Some(2001));
    // GBA_U-Awareness-Indicator of the wrong size: the daemon refuses the message itself
    let mut avps = Client::bir_avps(902, s.btid.as_bytes(), Some(naf.as_bytes()), false);
    avps.push(zn(AVP_GBA_U_AWARE, [1]));
    let bia = c.request(0xc0, CMD_BI, APP_ZN, &avps);
    assert_ne!(bia.result(), Some(2001), "{bia:?}");
    assert!(bia.get(AVP_ME_KEY).is_none());

    // the watchdog is answered, and after all that, a plain BIR is still served
    let dwa = c.request(
        0x80,
        CMD_DWR,
        0,
        &[
            avp(AVP_ORIGIN_HOST, CLIENT_HOST),
            avp(AVP_ORIGIN_REALM, CLIENT_REALM),
        ],
    );
    assert_eq!(dwa.result(), Some(2001));
    let bia = c.bir(s.btid.as_bytes(), Some(naf.as_bytes()), false);
    assert_eq!(bia.result(), Some(2001));
    assert!(bsf.pid().is_some());

    // many requests in flight on one connection, answered one for one
    let n = 200;
    for i in 0..n {
        let avps = Client::bir_avps(1000 + i, s.btid.as_bytes(), Some(naf.as_bytes()), false);
        c.send(0xc0, CMD_BI, APP_ZN, &avps);
    }
    let first = c.hbh - n + 1;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..n {
        let bia = c.receive();
        assert_eq!(bia.result(), Some(2001));
        assert!(seen.insert(bia.hbh));
    }
    assert_eq!(seen, (first..=c.hbh).collect());
}

#[test]
fn a_bad_subscriber_file_stops_the_daemon_at_start_with_the_line_number() {
    if !mbms_lab::bsf::available() {
        return;
    }
    let good = vector_subscriber().line();
    let ks = hex::encode(counting::<32>(0));
    let rand = hex::encode(counting::<16>(0x20));
    let cases = [
        format!("short@bsf.test impi {} {rand}", &ks[..62]),
        format!("nonhex@bsf.test impi {}zz {rand}", &ks[..62]),
        format!("norand@bsf.test impi {ks}"),
        format!("opt@bsf.test impi {ks} {rand} gba_x"),
        format!("exp@bsf.test impi {ks} {rand} expires=-1"),
        format!("{} impi {ks} {rand}", "b".repeat(256)),
        format!("long@bsf.test {} {ks} {rand}", "i".repeat(256)),
        format!("huge@bsf.test impi {ks} {rand} {}", "x".repeat(3000)),
        "@lifetime soon".to_owned(),
        good.clone(),
    ];
    for (i, bad) in cases.iter().enumerate() {
        let mut config = BsfConfig::new(BSF_REALM, CLIENT_REALM, vec![vector_subscriber()]);
        config.raw_lines.push(bad.clone());
        let err = match Bsf::start(&config) {
            Ok(_) => panic!("case {i} accepted: {bad}"),
            Err(e) => e,
        };
        // line 1 is the comment, 2 the good subscriber, 3 the bad line
        let needle = if bad == &good {
            "appears twice".to_owned()
        } else {
            "subscribers.conf:3:".to_owned()
        };
        assert!(err.contains(&needle), "case {i}: {err}");
        // an orderly exit (status 255 after freeDiameter's own clean-up); under load that
        // clean-up sometimes trips freeDiameter 1.2.1's own assertion in libfdproto/fifo.c
        // (`fd_fifo_del: Assertion '++loops < 20'`, SIGABRT), after our extension has returned
        // its error: reproduced with any bad line, so it is accepted, and nothing else is
        let orderly = err.contains("exited with exit status: 255");
        let fd_teardown = err.contains("SIGABRT") && err.contains("fd_fifo_del: Assertion");
        assert!(orderly || fd_teardown, "case {i}: {err}");
    }
}

#[test]
fn freediameterd_bsf_restarts_on_the_same_port() {
    let Some(mut bsf) = start_bsf() else { return };
    let naf = NafId::mbms(BMSC_FQDN);
    let s = vector_subscriber();
    let port = bsf.port;
    // SIGTERM: the daemon says goodbye with a DPR (RFC 6733 §5.4), which we answer
    let mut c = Client::connect(&bsf);
    std::thread::scope(|scope| {
        let stopping = scope.spawn(|| bsf.stop());
        let dpr = c.receive();
        assert_eq!((dpr.code, dpr.flags & 0x80), (282, 0x80), "DPR: {dpr:?}");
        let cause = dpr.u32(273).expect("Disconnect-Cause");
        assert!(cause <= 2, "Disconnect-Cause {cause}");
        let dpa = encode_message(
            0,
            282,
            0,
            dpr.hbh,
            &[
                u32_avp(AVP_RESULT_CODE, 2001),
                avp(AVP_ORIGIN_HOST, CLIENT_HOST),
                avp(AVP_ORIGIN_REALM, CLIENT_REALM),
            ],
        );
        c.stream.write_all(&dpa).expect("DPA");
        stopping.join().unwrap();
    });
    assert!(TcpStream::connect(bsf.addr()).is_err(), "stopped: refused");
    bsf.restart().unwrap();
    assert_eq!(bsf.port, port);
    c = Client::connect(&bsf);
    assert_eq!(
        c.bir(s.btid.as_bytes(), Some(naf.as_bytes()), false)
            .result(),
        Some(2001)
    );

    // frozen: connected, but no answer within a second; thawed: the answer comes
    bsf.freeze().unwrap();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    c.send(
        0xc0,
        CMD_BI,
        APP_ZN,
        &Client::bir_avps(7, s.btid.as_bytes(), Some(naf.as_bytes()), false),
    );
    let mut byte = [0u8; 1];
    let t = Instant::now();
    assert!(c.stream.peek(&mut byte).is_err(), "no answer while frozen");
    assert!(t.elapsed() >= Duration::from_millis(900));
    bsf.thaw().unwrap();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(c.receive().result(), Some(2001));
}

// ---------------------------------------------------------------------------------------
// tshark

/// Runs `tshark -r pcap -d tcp.port==P,diameter <args>` and returns its standard output.
fn tshark(pcap: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .arg("-d")
        .arg(format!("tcp.port=={port},diameter"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tshark output is UTF-8")
}

/// dumpcap capturing `tcp port P` on `lo` into a pcapng file of its own directory.
struct Capture {
    child: std::process::Child,
    dir: mbms_lab::TempDir,
}

impl Capture {
    fn start(dumpcap: &Path, port: u16) -> Self {
        let dir = mbms_lab::TempDir::new("zn-pcap");
        let mut child = Command::new(dumpcap)
            .args(["-q", "-i", "lo", "-f"])
            .arg(format!("tcp port {port}"))
            .arg("-w")
            .arg(dir.path().join("zn.pcapng"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dumpcap");
        // dumpcap says "File: ..." on standard error once it captures
        let mut err = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&seen).contains("File:") {
            assert!(Instant::now() < deadline, "dumpcap did not start: {seen:?}");
            let mut b = [0u8; 256];
            let n = err.read(&mut b).expect("dumpcap stderr");
            assert!(n > 0, "dumpcap exited: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&b[..n]);
        }
        Self { child, dir }
    }

    /// Stops the capture (SIGTERM, so that dumpcap writes everything) and returns the
    /// directory holding `zn.pcapng`.
    fn finish(mut self) -> mbms_lab::TempDir {
        std::thread::sleep(Duration::from_millis(500));
        mbms_lab::bsf::terminate(&mut self.child, Duration::from_secs(5));
        self.dir
    }
}

#[test]
fn tshark_decodes_the_bir_and_bia_as_3gpp_zn() {
    let Some(_) = mbms_lab::oracle("tshark", &[], "apt-get install tshark") else {
        return;
    };
    let Some(dumpcap) = mbms_lab::oracle("dumpcap", &[], "apt-get install tshark") else {
        return;
    };
    let Some(bsf) = start_bsf() else { return };
    let capture = Capture::start(&dumpcap, bsf.port);

    let naf = NafId::mbms(BMSC_FQDN);
    let s = vector_subscriber();
    let mut c = Client::connect(&bsf);
    let ok = c.bir(s.btid.as_bytes(), Some(naf.as_bytes()), false);
    let unknown = c.bir(b"nobody@bsf.test", Some(naf.as_bytes()), false);
    assert_eq!((ok.result(), unknown.result()), (Some(2001), Some(5403)));
    drop(c);
    let pcap = capture.finish();
    let pcap = pcap.path().join("zn.pcapng");

    let port = bsf.port;
    let verbose = tshark(&pcap, port, &["-V", "-Y", "diameter.cmd.code == 310"]);
    assert_eq!(
        verbose.matches("ApplicationId: 3GPP Zn (16777220)").count(),
        4,
        "two BIRs and two BIAs decode as 3GPP Zn:\n{verbose}"
    );
    assert!(!verbose.contains("Malformed"), "{verbose}");

    let requests = tshark(
        &pcap,
        port,
        &[
            "-Y",
            "diameter.cmd.code == 310 && diameter.flags.request == 1",
            "-T",
            "fields",
            "-e",
            "diameter.Transaction-Identifier",
            "-e",
            "diameter.NAF-Hostname",
            "-e",
            "diameter.Destination-Realm",
        ],
    );
    let lines: Vec<&str> = requests.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{}\t{}\t{BSF_REALM}",
                hex::encode(&s.btid),
                hex::encode(naf.as_bytes())
            ),
            format!(
                "{}\t{}\t{BSF_REALM}",
                hex::encode("nobody@bsf.test"),
                hex::encode(naf.as_bytes())
            ),
        ]
    );
    assert!(
        lines[0].contains("0100000001\t"),
        "NAF-Id ends in the MBMS Ua id"
    );

    let answers = tshark(
        &pcap,
        port,
        &[
            "-Y",
            "diameter.cmd.code == 310 && diameter.flags.request == 0",
            "-T",
            "fields",
            "-e",
            "diameter.ME-Key-Material",
            "-e",
            "diameter.Result-Code",
            "-e",
            "diameter.Experimental-Result-Code",
            "-e",
            "diameter.User-Name",
        ],
    );
    let expected = ks_naf(&Ks::from_bytes(s.ks), &s.rand, &s.impi, &naf).unwrap();
    assert_eq!(
        answers.lines().collect::<Vec<_>>(),
        [
            format!("{}\t2001\t\t{}", hex::encode(expected.as_bytes()), s.impi),
            "\t\t5403\t".to_owned(),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// The whole BM-SC (`bmsc serve`) with `[gba.zn]` against freeDiameterd

const SERVICE: &str = "urn:lab:zn:news";

/// UE `i` of the end-to-end tests: known to the BSF(s), never to the BM-SC's configuration.
fn ue(i: u8) -> Subscriber {
    let rand: [u8; 16] = counting(i.wrapping_mul(13));
    Subscriber::me(
        Btid::from_rand(&rand, "bsf.test").as_str(),
        &format!("00101000000{i:04}@ims.mnc001.mcc001.3gppnetwork.org"),
        counting(i.wrapping_mul(7)),
        rand,
    )
}

/// The UE's Ks_NAF, derived by the project from what only the BSF was given.
fn ue_ks_naf(s: &Subscriber) -> KsNaf {
    ks_naf(
        &Ks::from_bytes(s.ks),
        &s.rand,
        &s.impi,
        &NafId::mbms(BMSC_FQDN),
    )
    .unwrap()
}

/// A running `mbms-keys bmsc serve` whose key source is Zn.
struct Bmsc {
    child: std::process::Child,
    dir: mbms_lab::TempDir,
    http: u16,
    admin: u16,
    /// The UE's socket: pushes come to 127.0.0.1:ue_port (curl connects from 127.0.0.1).
    ue: std::net::UdpSocket,
}

impl Bmsc {
    fn start(peers: &[&Bsf], zn_extra: &str) -> Self {
        let dir = mbms_lab::TempDir::new("zn-bmsc");
        let (http, admin) = (mbms_lab::free_port(), mbms_lab::free_port());
        let ue_port = mbms_lab::free_port();
        let ue = std::net::UdpSocket::bind(("127.0.0.1", ue_port)).expect("UE socket");
        ue.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut config = LabConfig::new(
            BMSC_FQDN,
            dir.path().join("data"),
            ue_port,
            LabService {
                id: SERVICE.to_owned(),
                msk_lifetime: "1h",
                mtk_interval: "10s",
                mtk_resend: "1s",
                mtk_destination: format!("127.0.0.1:{}", mbms_lab::free_port())
                    .parse()
                    .unwrap(),
            },
        );
        config.http_port = http;
        // curl answers qop "auth" only (the default asks for auth-int)
        config.qop = Some("auth");
        let peers: Vec<String> = peers
            .iter()
            .map(|b| format!("\"127.0.0.1:{}\"", b.port))
            .collect();
        let text = config
            .to_toml()
            .replace("127.0.0.2:0", &format!("127.0.0.1:{admin}"))
            + &format!(
                "\n[gba.zn]\npeers = [{}]\norigin_host = \"{CLIENT_HOST}\"\n\
                 origin_realm = \"{CLIENT_REALM}\"\ndestination_realm = \"{BSF_REALM}\"\n{zn_extra}",
                peers.join(", ")
            );
        let path = dir.path().join("bmsc.toml");
        std::fs::write(&path, &text).unwrap();
        let log = std::fs::File::create(dir.path().join("bmsc.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
            .args(["bmsc", "serve", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bmsc serve");
        let mut this = Self {
            child,
            dir,
            http,
            admin,
            ue,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", http)).is_err() {
            if let Ok(Some(status)) = this.child.try_wait() {
                panic!("bmsc serve exited with {status}:\n{text}\n{}", this.log());
            }
            assert!(Instant::now() < deadline, "bmsc serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        this
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bmsc.log")).unwrap_or_default()
    }

    /// `curl --digest` registers `btid` for the service: (HTTP status, headers and body).
    fn register(&self, btid: &str, password: &str) -> (u16, String) {
        let body = self.dir.path().join("register.xml");
        std::fs::write(
            &body,
            RegisterRequest::register(&[SERVICE.to_owned()]).to_xml(),
        )
        .unwrap();
        let out = Command::new("curl")
            .args(["-s", "-S", "-i", "--max-time", "20", "--digest", "-u"])
            .arg(format!("{btid}:{password}"))
            .args(["-H", &format!("Content-Type: {MIME_REGISTER}")])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .args(["-w", "\nstatus %{http_code}\n"])
            .arg(format!("http://127.0.0.1:{}{PATH_REGISTER}", self.http))
            .stdin(Stdio::null())
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text
            .rsplit("\nstatus ")
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("curl: {text} {}", String::from_utf8_lossy(&out.stderr)));
        (status, text)
    }

    /// Registers UE `s` with the password derived from the Ks_NAF the project computes.
    fn register_ue(&self, s: &Subscriber) -> (u16, String) {
        let password = digest_password(&mrk_gba_me(&ue_ks_naf(s)));
        self.register(&s.btid, &password)
    }

    /// Receives the MSK push for `s`, verifies it under its MUK (Ks_NAF) and acknowledges it.
    fn verify_push(&self, s: &Subscriber) {
        let mut buf = [0u8; 4096];
        let (n, from) = self.ue.recv_from(&mut buf).expect("MSK push within 10 s");
        let un = UnverifiedMsk::parse(&buf[..n]).expect("an MSK message of the profile");
        assert_eq!(un.idr(), s.btid.as_bytes());
        let msg = un
            .verify(&Muk::from_bytes(*ue_ks_naf(s).as_bytes()))
            .expect("the MSK message verifies under the Ks_NAF the BSF derived");
        assert!(matches!(msg.update, MskUpdate::NewKey { .. }));
        let ack = build_ack(&AckContext::of(&msg)).unwrap();
        self.ue.send_to(&ack, from).unwrap();
    }

    fn metrics(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin)).expect("admin endpoint");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// The value of the metric line starting with `name` (labels included), 0 when absent.
    fn metric(&self, name: &str) -> f64 {
        let m = self.metrics();
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until `f` holds, for at most `within`.
    fn wait_until(&self, within: Duration, what: &str, mut f: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + within;
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "{what} within {within:?}:\n{}\n{}",
                self.metrics(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Bmsc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("bmsc serve log:\n{}", self.log());
        }
        mbms_lab::bsf::terminate(&mut self.child, Duration::from_secs(5));
    }
}

fn e2e_bsf(n: u8) -> Option<Vec<Bsf>> {
    if !mbms_lab::bsf::available() {
        return None;
    }
    mbms_lab::oracle("curl", &[], "apt-get install curl")?;
    let subs: Vec<Subscriber> = (1..=8).map(ue).collect();
    Some(
        (0..n)
            .map(|_| {
                Bsf::start(&BsfConfig::new(BSF_REALM, CLIENT_REALM, subs.clone()))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect(),
    )
}

#[test]
fn curl_registers_a_ue_whose_keys_only_freediameterd_knows() {
    let Some(bsfs) = e2e_bsf(1) else { return };
    let bmsc = Bmsc::start(&[&bsfs[0]], "");
    let u = ue(1);
    let (status, text) = bmsc.register_ue(&u);
    assert_eq!(status, 200, "{text}");
    let xml = text
        .split("\r\n\r\n")
        .last()
        .unwrap()
        .split("\nstatus")
        .next()
        .unwrap();
    let r = RegisterResponse::parse(xml.trim().as_bytes()).expect("register response");
    assert_eq!(r.statuses[0].code, 200, "{xml}");
    bmsc.verify_push(&u);
    assert_eq!(
        bmsc.metric("mbms_bmsc_zn_answers_total{result=\"success\"}"),
        1.0
    );

    // a B-TID the BSF does not know → 401, the UE must bootstrap again
    let (status, text) = bmsc.register("bm9ib2R5@bsf.test", "whatever");
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: digest"),
        "{text}"
    );
    assert_eq!(
        bmsc.metric("mbms_bmsc_zn_answers_total{result=\"unknown_btid\"}"),
        1.0
    );

    // the wrong password for a known B-TID → 401 too, after one more BSF answer at most
    let (status, _) = bmsc.register(&ue(2).btid, "not-the-password");
    assert_eq!(status, 401);

    // registering UE 1 again asks the BSF nothing: its keys are cached
    let before = bmsc.metric("mbms_bmsc_zn_requests_total");
    let (status, _) = bmsc.register_ue(&u);
    assert_eq!(status, 200);
    assert_eq!(bmsc.metric("mbms_bmsc_zn_requests_total"), before);
}

#[test]
fn bsf_stopped_gives_503_with_retry_after_and_service_resumes_when_it_restarts() {
    let Some(mut bsfs) = e2e_bsf(1) else { return };
    let bmsc = Bmsc::start(&[&bsfs[0]], "request_timeout = \"2s\"\n");
    let (warm, cold) = (ue(3), ue(4));
    assert_eq!(bmsc.register_ue(&warm).0, 200);
    bmsc.verify_push(&warm);

    bsfs[0].stop();
    let (status, text) = bmsc.register_ue(&cold);
    assert_eq!(status, 503, "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    // what is already registered is not lost: the cached UE still registers
    assert_eq!(bmsc.register_ue(&warm).0, 200);
    bmsc.verify_push(&warm);

    bsfs[0].restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, text) = bmsc.register_ue(&cold);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{text}");
        assert!(
            Instant::now() < deadline,
            "no 200 within 60 s of the restart:\n{}",
            bmsc.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    bmsc.verify_push(&cold);
}

#[test]
fn a_stopped_first_bsf_fails_over_to_the_second() {
    let Some(mut bsfs) = e2e_bsf(2) else { return };
    let bmsc = Bmsc::start(&[&bsfs[0], &bsfs[1]], "request_timeout = \"2s\"\n");
    assert_eq!(bmsc.register_ue(&ue(5)).0, 200);
    bmsc.verify_push(&ue(5));
    bsfs[0].stop();
    for i in [6, 7] {
        let (status, text) = bmsc.register_ue(&ue(i));
        assert_eq!(status, 200, "UE {i} via the second BSF: {text}");
        bmsc.verify_push(&ue(i));
    }
    assert_eq!(
        bmsc.metric("mbms_bmsc_zn_answers_total{result=\"success\"}"),
        3.0
    );
}

#[test]
fn a_frozen_bsf_is_detected_by_the_watchdog_and_the_client_fails_over() {
    let Some(mut bsfs) = e2e_bsf(2) else { return };
    let bmsc = Bmsc::start(
        &[&bsfs[0], &bsfs[1]],
        "request_timeout = \"2s\"\nwatchdog = \"1s\"\n",
    );
    let first = format!(
        "mbms_bmsc_zn_peer_state{{peer=\"127.0.0.1:{}\"}}",
        bsfs[0].port
    );
    bmsc.wait_until(Duration::from_secs(10), "the first peer open", |b| {
        b.metric(&first) == 2.0
    });
    assert_eq!(bmsc.register_ue(&ue(1)).0, 200);
    bmsc.verify_push(&ue(1));

    bsfs[0].freeze().unwrap();
    // silent: the watchdog marks it suspect (3) or closes it (0, 1) within a few Tw
    bmsc.wait_until(Duration::from_secs(10), "the frozen peer detected", |b| {
        b.metric(&first) != 2.0
    });
    for i in [2, 3] {
        let (status, text) = bmsc.register_ue(&ue(i));
        assert_eq!(status, 200, "UE {i} via the second BSF: {text}");
        bmsc.verify_push(&ue(i));
    }
    bsfs[0].thaw().unwrap();
}

#[test]
fn tshark_decodes_the_bmscs_own_zn_requests() {
    let Some(_) = mbms_lab::oracle("tshark", &[], "apt-get install tshark") else {
        return;
    };
    let Some(dumpcap) = mbms_lab::oracle("dumpcap", &[], "apt-get install tshark") else {
        return;
    };
    let Some(bsfs) = e2e_bsf(1) else { return };
    let capture = Capture::start(&dumpcap, bsfs[0].port);
    let bmsc = Bmsc::start(&[&bsfs[0]], "");
    let u = ue(8);
    assert_eq!(bmsc.register_ue(&u).0, 200);
    bmsc.verify_push(&u);
    assert_eq!(bmsc.register("bm9ib2R5@bsf.test", "x").0, 401);
    drop(bmsc); // DPR on shutdown
    let dir = capture.finish();
    let pcap = dir.path().join("zn.pcapng");
    let port = bsfs[0].port;

    let verbose = tshark(&pcap, port, &["-V", "-Y", "diameter"]);
    assert!(!verbose.contains("Malformed"), "{verbose}");
    assert_eq!(
        verbose.matches("ApplicationId: 3GPP Zn (16777220)").count(),
        4,
        "the BM-SC's two BIRs and their BIAs decode as 3GPP Zn:\n{verbose}"
    );
    let naf = NafId::mbms(BMSC_FQDN);
    let requests = tshark(
        &pcap,
        port,
        &[
            "-Y",
            "diameter.cmd.code == 310 && diameter.flags.request == 1",
            "-T",
            "fields",
            "-e",
            "diameter.Transaction-Identifier",
            "-e",
            "diameter.NAF-Hostname",
            "-e",
            "diameter.Origin-Host",
            "-e",
            "diameter.Destination-Realm",
            "-e",
            "diameter.flags.proxyable",
        ],
    );
    assert_eq!(
        requests.lines().collect::<Vec<_>>(),
        [
            format!(
                "{}\t{}\t{CLIENT_HOST}\t{BSF_REALM}\t1",
                hex::encode(&u.btid),
                hex::encode(naf.as_bytes())
            ),
            format!(
                "{}\t{}\t{CLIENT_HOST}\t{BSF_REALM}\t1",
                hex::encode("bm9ib2R5@bsf.test"),
                hex::encode(naf.as_bytes())
            ),
        ]
    );
    let answers = tshark(
        &pcap,
        port,
        &[
            "-Y",
            "diameter.cmd.code == 310 && diameter.flags.request == 0",
            "-T",
            "fields",
            "-e",
            "diameter.ME-Key-Material",
            "-e",
            "diameter.Experimental-Result-Code",
        ],
    );
    assert_eq!(
        answers.lines().collect::<Vec<_>>(),
        [
            format!("{}\t", hex::encode(ue_ks_naf(&u).as_bytes())),
            "\t5403".to_owned(),
        ]
    );
    // the client's capabilities exchange and its goodbye are in the capture too
    let base = tshark(
        &pcap,
        port,
        &[
            "-Y",
            "diameter.flags.request == 1 && diameter.Origin-Host == \"bmsc.naf.test\"",
            "-T",
            "fields",
            "-e",
            "diameter.cmd.code",
        ],
    );
    let codes: Vec<&str> = base.lines().collect();
    assert_eq!(codes.first(), Some(&"257"), "CER first: {codes:?}");
    assert_eq!(
        codes.last(),
        Some(&"282"),
        "DPR last on shutdown: {codes:?}"
    );
}
