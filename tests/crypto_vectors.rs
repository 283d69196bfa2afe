//! The crypto layer against the independent vectors of `proto-vectors/` (see its README for
//! provenance) and the values recorded in docs/spec-notes.md §5 and docs/oracles.md §1.3, §3.4.

use std::fs;
use std::path::Path;

use serde_json::Value;

use mbms_keys::crypto::Ks;
use mbms_keys::crypto::{
    MAC_LEN, PSK_AUTH_CONST, PSK_ENCR_CONST, PSK_SALT_CONST, ProtectionKeys, kdf_input, mikey_prf,
    psk_label,
};
use mbms_keys::gba::{
    Btid, GbaKeys, NafId, UA_ID_MBMS, digest_password, ks_ext_naf, ks_int_naf, ks_naf, mrk_gba_me,
    mrk_gba_u, muk_gba_me, muk_gba_u,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto-vectors/");

fn load(name: &str) -> Value {
    let path = Path::new(DIR).join(format!("{name}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names of the vector files starting with `prefix`, sorted.
fn names(prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(DIR)
        .expect("proto-vectors/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .map(|n| n.trim_end_matches(".json").to_owned())
        .collect();
    out.sort();
    out
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        cur = cur.get(key).unwrap_or_else(|| panic!("missing {path:?}"));
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn hx(v: &Value, path: &[&str]) -> Vec<u8> {
    hex::decode(s(v, path)).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn h(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex literal")
}

fn rand16(v: &Value, path: &[&str]) -> [u8; 16] {
    hx(v, path).try_into().expect("16-octet RAND")
}

fn prf(inkey: &[u8], label: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    mikey_prf(inkey, label, &mut out);
    out
}

/// The counter as the 64-bit T of the IV (zero-extended, docs/spec-notes.md §1.14).
fn t64(counter: &[u8]) -> u64 {
    counter
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

fn u32_of(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("4 octets"))
}

#[test]
fn mikey_prf_vectors_reproduce_bit_exactly() {
    let files = names("mikey-prf-");
    assert_eq!(files.len(), 11, "{files:?}");
    for name in &files {
        let v = load(name);
        let len = v["inputs"]["outkey_len"].as_u64().expect("outkey_len") as usize;
        let out = prf(
            &hx(&v, &["inputs", "inkey"]),
            &hx(&v, &["inputs", "label"]),
            len,
        );
        assert_eq!(hex::encode(out), s(&v, &["expected", "outkey"]), "{name}");
    }
}

fn check_ks_naf_file(name: &str) {
    let v = load(name);
    let ck = hx(&v, &["inputs", "ck"]);
    let ik = hx(&v, &["inputs", "ik"]);
    let ks = Ks::from_slice(&[ck, ik].concat()).expect("CK||IK");
    assert_eq!(
        ks.as_bytes().to_vec(),
        hx(&v, &["intermediates", "ks"]),
        "{name}"
    );
    assert_eq!(hx(&v, &["inputs", "ua_id"]), UA_ID_MBMS, "{name}");
    let naf = NafId::mbms(s(&v, &["inputs", "naf_fqdn"]));
    assert_eq!(
        naf.as_bytes(),
        hx(&v, &["intermediates", "naf_id"]),
        "{name}"
    );
    let rand = rand16(&v, &["inputs", "rand"]);
    let impi = s(&v, &["inputs", "impi"]);
    let p0: &[u8] = if v["kind"] == "ks-int-naf" {
        b"gba-u"
    } else {
        b"gba-me"
    };
    let sx = kdf_input(0x01, &[p0, &rand, impi.as_bytes(), naf.as_bytes()]).expect("short");
    assert_eq!(hex::encode(sx), s(&v, &["intermediates", "s"]), "{name}");
    if v["kind"] == "ks-int-naf" {
        let k = ks_int_naf(&ks, &rand, impi, &naf).expect("kdf");
        assert_eq!(
            hex::encode(k.as_bytes()),
            s(&v, &["expected", "ks_int_naf"]),
            "{name}"
        );
    } else {
        let k = ks_naf(&ks, &rand, impi, &naf).expect("kdf");
        assert_eq!(
            hex::encode(k.as_bytes()),
            s(&v, &["expected", "ks_naf"]),
            "{name}"
        );
        let ext = ks_ext_naf(&ks, &rand, impi, &naf).expect("kdf");
        assert_eq!(ext.as_bytes(), k.as_bytes(), "{name}: Ks_ext_NAF = Ks_NAF");
    }
}

#[test]
fn ks_naf_01_ts33220_b3() {
    check_ks_naf_file("ks-naf-01");
}

/// ks-naf-02 is the docs/oracles.md §3.4 vector (TS 35.208 CK/IK; Go `bag` = Python).
#[test]
fn ks_naf_02_oracles_3_4() {
    check_ks_naf_file("ks-naf-02");
}

#[test]
fn ks_int_naf_01_ts33220_b3() {
    check_ks_naf_file("ks-int-naf-01");
}

#[test]
fn oracles_3_4_ks_naf_literal() {
    let ks = Ks::from_hex("b40ba9a3c58b2a05bbf0d987b21bf8cbf769bcd751044604127672711c6d3441")
        .expect("hex");
    let rand: [u8; 16] = h("23553cbe9637a89d218ae64dae47bf35")
        .try_into()
        .expect("16");
    let naf = NafId::mbms("bmsc.mnc001.mcc001.pub.3gppnetwork.org");
    let k = ks_naf(
        &ks,
        &rand,
        "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
        &naf,
    )
    .expect("kdf");
    assert_eq!(
        hex::encode(k.as_bytes()),
        "4f6866b88702e0c609131cad6715a3dc5519e2ba5c17deab68ce066cda2057fd"
    );
}

#[test]
fn spec_notes_5_2_btid_example() {
    let rand: [u8; 16] = h("202122232425262728292a2b2c2d2e2f")
        .try_into()
        .expect("16");
    let btid = Btid::from_rand(&rand, "bsf.mnc001.mcc001.pub.3gppnetwork.org");
    assert_eq!(
        btid.as_str(),
        "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org"
    );
    assert_eq!(btid.to_string().parse::<Btid>().expect("valid"), btid);
}

#[test]
fn mrk_01_muk_mrk_and_digest_password() {
    let v = load("mrk-01");
    let ks = Ks::from_slice(&[hx(&v, &["inputs", "ck"]), hx(&v, &["inputs", "ik"])].concat())
        .expect("CK||IK");
    let naf = NafId::mbms(s(&v, &["inputs", "naf_fqdn"]));
    assert_eq!(naf.as_bytes(), hx(&v, &["intermediates", "naf_id"]));
    let rand = rand16(&v, &["inputs", "rand"]);
    let impi = s(&v, &["inputs", "impi"]);
    let params = |p0: &'static [u8]| kdf_input(0x01, &[p0, &rand, impi.as_bytes(), naf.as_bytes()]);
    assert_eq!(
        hex::encode(params(b"gba-me").expect("s")),
        s(&v, &["intermediates", "s_gba_me"])
    );
    assert_eq!(
        hex::encode(params(b"gba-u").expect("s")),
        s(&v, &["intermediates", "s_gba_u"])
    );
    assert_eq!(
        hex::encode(kdf_input(0x01, &[b"mbms-mrk"]).expect("s")),
        s(&v, &["intermediates", "mrk_s"])
    );

    let k_naf = ks_naf(&ks, &rand, impi, &naf).expect("kdf");
    let k_ext = ks_ext_naf(&ks, &rand, impi, &naf).expect("kdf");
    let k_int = ks_int_naf(&ks, &rand, impi, &naf).expect("kdf");
    assert_eq!(
        hex::encode(k_naf.as_bytes()),
        s(&v, &["intermediates", "ks_naf"])
    );
    assert_eq!(
        hex::encode(k_int.as_bytes()),
        s(&v, &["intermediates", "ks_int_naf"])
    );

    let me = &v["expected"]["gba_me"];
    assert_eq!(hex::encode(muk_gba_me(&k_naf).as_bytes()), s(me, &["muk"]));
    assert_eq!(hex::encode(mrk_gba_me(&k_naf).as_bytes()), s(me, &["mrk"]));
    assert_eq!(
        digest_password(&mrk_gba_me(&k_naf)).as_str(),
        s(me, &["digest_password"])
    );

    let u = &v["expected"]["gba_u"];
    assert_eq!(hex::encode(muk_gba_u(&k_int).as_bytes()), s(u, &["muk"]));
    assert_eq!(hex::encode(mrk_gba_u(&k_ext).as_bytes()), s(u, &["mrk"]));
    assert_eq!(
        digest_password(&mrk_gba_u(&k_ext)).as_str(),
        s(u, &["digest_password"])
    );

    for (keys, exp) in [
        (GbaKeys::derive_me(&ks, &rand, impi, &naf).expect("kdf"), me),
        (GbaKeys::derive_u(&ks, &rand, impi, &naf).expect("kdf"), u),
    ] {
        assert_eq!(hex::encode(keys.muk().as_bytes()), s(exp, &["muk"]));
        assert_eq!(hex::encode(keys.mrk().as_bytes()), s(exp, &["mrk"]));
        assert_eq!(
            digest_password(&keys.mrk()).as_str(),
            s(exp, &["digest_password"])
        );
    }
}

/// RFC 3830 §4.1.4 keys, §4.2.3 IV and AES-CM, §5.2 MAC of every profile message vector.
#[test]
fn message_vectors_keys_iv_encr_data_and_mac() {
    let mut files = names("msk-message-");
    files.extend(names("mtk-message-"));
    assert_eq!(files.len(), 6, "{files:?}");
    for name in &files {
        let v = load(name);
        let i = &v["intermediates"];
        let key = if v["message_type"] == "msk" {
            hx(&v, &["inputs", "muk"])
        } else {
            hx(&v, &["inputs", "msk"])
        };
        let csb_bytes = hx(&v, &["inputs", "csb_id"]);
        let csb = u32_of(&csb_bytes);
        let rand = hx(i, &["derivation_rand"]);
        if v["message_type"] == "mtk" {
            assert!(
                rand.is_empty(),
                "{name}: MTK messages derive with an empty RAND"
            );
        }
        assert_eq!(
            psk_label(PSK_ENCR_CONST, csb, &rand),
            hx(i, &["label_enc"]),
            "{name}"
        );
        assert_eq!(
            psk_label(PSK_SALT_CONST, csb, &rand),
            hx(i, &["label_salt"]),
            "{name}"
        );
        assert_eq!(
            psk_label(PSK_AUTH_CONST, csb, &rand),
            hx(i, &["label_auth"]),
            "{name}"
        );

        let keys = ProtectionKeys::derive(&key, csb, &rand);
        assert_eq!(
            keys.enc_key().as_bytes().to_vec(),
            hx(i, &["enc_key"]),
            "{name}"
        );
        assert_eq!(
            keys.salt_key().as_bytes().to_vec(),
            hx(i, &["salt"]),
            "{name}"
        );
        assert_eq!(
            keys.auth_key().as_bytes().to_vec(),
            hx(i, &["auth_key"]),
            "{name}"
        );

        let counter = hx(&v, &["inputs", "counter"]);
        let t = t64(&counter);
        assert_eq!(t.to_be_bytes().to_vec(), hx(i, &["t64"]), "{name}");
        assert_eq!(keys.iv(csb, t).to_vec(), hx(i, &["iv"]), "{name}");

        let mut data = hx(i, &["key_data_plain"]);
        keys.apply_keystream(csb, t, &mut data);
        assert_eq!(hex::encode(&data), s(i, &["encr_data"]), "{name}");
        keys.apply_keystream(csb, t, &mut data);
        assert_eq!(data, hx(i, &["key_data_plain"]), "{name}: decrypt");

        let mac_input = hx(i, &["mac_input"]);
        let mac = hx(i, &["mac"]);
        assert_eq!(keys.mac(&[&mac_input]).to_vec(), mac, "{name}");
        assert!(keys.verify_mac(&[&mac_input], &mac), "{name}");
        let message = hx(&v, &["message"]);
        assert_eq!(
            [mac_input.as_slice(), &mac].concat(),
            message,
            "{name}: MAC is the tail"
        );
        let (body, tag) = message.split_at(message.len() - MAC_LEN);
        assert!(keys.verify_mac(&[body], tag), "{name}");
        let mut forged = tag.to_vec();
        forged[0] ^= 1;
        assert!(!keys.verify_mac(&[body], &forged), "{name}: forged MAC");
    }
}

/// docs/profile.md §2.2: the acknowledgement MAC under the auth key of the acknowledged message.
#[test]
fn msk_ack_verification_mac() {
    let v = load("msk-ack");
    let i = &v["intermediates"];
    let inputs = &v["inputs"];
    let csb = u32_of(&hx(inputs, &["csb_id"]));
    let keys = ProtectionKeys::derive(&hx(inputs, &["muk"]), csb, &hx(inputs, &["rand"]));
    assert_eq!(keys.enc_key().as_bytes().to_vec(), hx(i, &["enc_key"]));
    assert_eq!(keys.salt_key().as_bytes().to_vec(), hx(i, &["salt"]));
    assert_eq!(keys.auth_key().as_bytes().to_vec(), hx(i, &["auth_key"]));

    let without = hx(i, &["ack_without_mac"]);
    let idi = s(inputs, &["idi"]).as_bytes().to_vec();
    let idr = s(inputs, &["idr"]).as_bytes().to_vec();
    let ts = hx(inputs, &["ts_value"]);
    let parts: [&[u8]; 4] = [&without, &idi, &idr, &ts];
    assert_eq!(parts.concat(), hx(i, &["mac_input"]));
    let mac = hx(i, &["mac"]);
    assert_eq!(keys.mac(&parts).to_vec(), mac);
    assert_eq!(keys.mac(&[&hx(i, &["mac_input"])]).to_vec(), mac);
    assert!(keys.verify_mac(&parts, &mac));
    assert_eq!([without, mac].concat(), hx(&v, &["message"]));
}

/// docs/spec-notes.md §5.4 V1 (generic RFC 3830 PSK init) intermediates and MAC.
#[test]
fn spec_notes_5_4_v1_intermediates() {
    let keys = ProtectionKeys::derive(
        &h("000102030405060708090a0b0c0d0e0f"),
        0x0102_0304,
        &h("101112131415161718191a1b1c1d1e1f"),
    );
    assert_eq!(
        hex::encode(keys.enc_key().as_bytes()),
        "d0fe800a31aa671a9fda5009c60a1114"
    );
    assert_eq!(
        hex::encode(keys.salt_key().as_bytes()),
        "4eacad003f487312d9d8d8e6c513"
    );
    assert_eq!(
        hex::encode(keys.auth_key().as_bytes()),
        "5128fbd4045393bd34d9ffca7e877700781330e8"
    );
    let t = 0xe4c2_a8b0_0000_0000;
    assert_eq!(
        hex::encode(keys.iv(0x0102_0304, t)),
        "4eacac023c4c97d07168d8e6c5130000"
    );
    let mut data = h("00000010a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    keys.apply_keystream(0x0102_0304, t, &mut data);
    assert_eq!(
        hex::encode(&data),
        "b1287b7aee49eeadcbc11767b97b9ac86c044f07"
    );
    let message = h(concat!(
        "010005800102030401000011223344000000000b00e4c2a8b0000000000610101112131415161718191a1b1c1d1e1f",
        "06000026626d73632e6d6e633030312e6d63633030312e7075622e336770706e6574776f726b2e6f7267",
        "0100003e494345694979516c4a69636f4b536f724c4330754c773d3d406273662e6d6e633030312e6d63633030312e",
        "7075622e336770706e6574776f726b2e6f7267",
        "00010014b1287b7aee49eeadcbc11767b97b9ac86c044f0701",
        "80b8b09283bcdbbffba5052ccc4fd1f2a83a8ac9",
    ));
    assert_eq!(message.len(), 200);
    let (body, tag) = message.split_at(200 - MAC_LEN);
    assert_eq!(hex::encode(keys.mac(&[body])), hex::encode(tag));

    // V1-ack: HMAC over ack-without-MAC ‖ IDi ‖ IDr ‖ TS (8 octets).
    let ack = h("010105000102030401000011223344000000000900e4c2a8b0000000000001");
    let idi = b"bmsc.mnc001.mcc001.pub.3gppnetwork.org";
    let idr = b"ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org";
    let ts = h("e4c2a8b000000000");
    assert_eq!(
        hex::encode(keys.mac(&[&ack, idi, idr, &ts])),
        "18ff38469cdd0f2961596b3334cc50134aeb65c3"
    );
}

/// docs/oracles.md §1.3: the mykey sample run (PSK 00..1f, CSB 1, RAND 00112233..ff, COUNTER 7).
#[test]
fn oracles_1_3_mykey_sample() {
    let psk: Vec<u8> = (0u8..32).collect();
    let rand = h("00112233445566778899aabbccddeeff");
    let keys = ProtectionKeys::derive(&psk, 1, &rand);
    assert_eq!(
        hex::encode(keys.enc_key().as_bytes()),
        "3cf5336dd8ffe7de0f8ca735f779b6f7"
    );
    assert_eq!(
        hex::encode(keys.salt_key().as_bytes()),
        "394e76023d6963e3bc0f415abb6a"
    );
    assert_eq!(
        hex::encode(keys.auth_key().as_bytes()),
        "421e457155d5e9bf1f47edc92a1e5d5f855acbdc"
    );
    assert_eq!(
        hex::encode(keys.iv(1, 7)),
        "394e76023d6863e3bc0f415abb6d0000"
    );
}

/// docs/spec-notes.md §5.5: the MTK keys with an empty RAND, as docs/profile.md §2.3 chose.
#[test]
fn spec_notes_5_5_empty_rand_mtk_keys() {
    let msk = h("b0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
    let label = psk_label(PSK_ENCR_CONST, 0x0001_0002, &[]);
    assert_eq!(hex::encode(&label), "150533e1ff00010002");
    assert_eq!(
        hex::encode(prf(&msk, &label, 16)),
        "543943a22e7ad1433a3cd7e088d8b230"
    );
}
