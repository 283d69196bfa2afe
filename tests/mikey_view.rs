//! The borrowed reading (`MessageView`, `KeyDataChain`) against the owned
//! decode on the vectors: every message, every proper prefix, and every
//! message with one octet changed (to each of the 256 values), removed or
//! inserted; the same for the plaintext Key data chains of the vectors.
//! Both must accept the same inputs, fail with the same error, and agree
//! on every field (`mikey::fuzzing::view_matches_owned`).

mod common;

use mbms_keys::mikey::MessageView;
use mbms_keys::mikey::fuzzing::{key_data_view_matches_owned, view_matches_owned};

/// Inserted octets: the value of every next-payload type and length edge.
const INSERTED: [u8; 8] = [0x00, 0x01, 0x05, 0x0a, 0x14, 0x15, 0x80, 0xff];

/// Runs `check` on `bytes`, its proper prefixes and its one-octet
/// mutations; returns the number of inputs checked.
fn around(bytes: &[u8], check: fn(&[u8])) -> usize {
    let mut n = 0;
    let mut run = |b: &[u8]| {
        check(b);
        n += 1;
    };
    run(bytes);
    for len in 0..bytes.len() {
        run(&bytes[..len]);
    }
    for i in 0..bytes.len() {
        let mut b = bytes.to_vec();
        for v in 0..=0xff {
            b[i] = v;
            run(&b);
        }
        let mut removed = bytes.to_vec();
        removed.remove(i);
        run(&removed);
    }
    for i in 0..=bytes.len() {
        for v in INSERTED {
            let mut b = bytes.to_vec();
            b.insert(i, v);
            run(&b);
        }
    }
    n
}

#[test]
fn view_agrees_with_owned_around_every_vector_message() {
    let mut total = 0;
    for (name, bytes) in common::all_messages() {
        let view = MessageView::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(view.bytes(), &bytes[..], "{name}");
        let n = around(&bytes, view_matches_owned);
        eprintln!("{name}: {n} inputs");
        total += n;
    }
    eprintln!("view vs owned decode: {total} inputs around the vector messages");
    assert!(total > 300_000, "{total}");
}

#[test]
fn key_data_view_agrees_with_owned_around_every_vector_plaintext() {
    let mut total = 0;
    for (name, v) in common::load_all() {
        if v["intermediates"].get("key_data_plain").is_none() {
            continue;
        }
        let plain = common::hex_field(&v, &["intermediates", "key_data_plain"]);
        total += around(&plain, key_data_view_matches_owned);
        eprintln!("{name}: Key data chain of {} octets", plain.len());
    }
    eprintln!("view vs owned Key data chain: {total} inputs around the vector plaintexts");
    assert!(total > 10_000, "{total}");
}
