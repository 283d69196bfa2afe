//! Message build/verify throughput next to the "crypto floor": only the
//! HMAC-SHA-1 and AES-CM operations each message needs, with the same crates
//! and the same cached key states, so that message / floor is visible in one run.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mbms_keys::crypto::{Aes128Cm, HmacSha1State, Ks, Msk, Mtk, Muk, PrfKey, Salt, psk_label};
use mbms_keys::gba::{NafId, ks_naf};
use mbms_keys::mbms::{
    MskDelivery, MskUpdate, MtkDelivery, MtkKeys, PreparedMuk, UnverifiedMsk, UnverifiedMtk,
    build_msk, build_msk_prepared, build_mtk,
};
use mbms_keys::mikey::{MessageView, MtkId};

const IDI: &str = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";
const IDR: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org";

fn muk() -> Muk {
    Muk::from_bytes(std::array::from_fn(|i| 0x30 + i as u8))
}

fn msk() -> Msk {
    Msk::from_bytes(std::array::from_fn(|i| 0xb0 + i as u8))
}

fn delivery(counter: u32) -> MskDelivery {
    // A different RAND each message, as the BM-SC draws a fresh one.
    let mut rand = [0u8; 16];
    rand[..4].copy_from_slice(&counter.to_be_bytes());
    MskDelivery::new(
        "00f110".parse().unwrap(),
        "00010002".parse().unwrap(),
        counter,
        rand.to_vec(),
        IDI,
        IDR,
        MskUpdate::NewKey {
            msk: msk(),
            seql: 1,
            sequ: 0xffff,
        },
    )
}

/// The next counter, and a RAND that differs with it.
fn next_message(d: &mut MskDelivery) {
    d.counter = d.counter.wrapping_add(1);
    d.rand[..4].copy_from_slice(&d.counter.to_be_bytes());
}

fn mtk_delivery(counter: u32) -> MtkDelivery {
    MtkDelivery {
        key_domain_id: "00f110".parse().unwrap(),
        msk_id: "00010002".parse().unwrap(),
        csb_id: 0x00010002,
        mtk_id: MtkId(3),
        counter,
        mtk: Mtk::from_bytes([0xc0; 16]),
        salt: Some(Salt::from_bytes([0xd0; 14])),
        streaming: None,
    }
}

fn messages(c: &mut Criterion) {
    let muk = muk();
    let prepared = PreparedMuk::new(&muk);
    let mut g = c.benchmark_group("message");
    // The inputs are made once; each message gets the next counter and a RAND of its own, so
    // the figure is the build alone (as the floor is the crypto alone).
    let mut d = delivery(0);
    g.bench_function("msk_build", |b| {
        b.iter(|| {
            next_message(&mut d);
            black_box(build_msk(&muk, &d).unwrap())
        })
    });
    g.bench_function("msk_build_prepared_muk", |b| {
        b.iter(|| {
            next_message(&mut d);
            black_box(build_msk_prepared(&prepared, &d).unwrap())
        })
    });
    let msk_msg = build_msk(&muk, &delivery(5)).unwrap();
    g.bench_function("msk_verify", |b| {
        b.iter(|| {
            black_box(
                UnverifiedMsk::parse(&msk_msg)
                    .unwrap()
                    .verify(&muk)
                    .unwrap(),
            )
        })
    });
    g.bench_function("msk_verify_prepared_muk", |b| {
        b.iter(|| {
            black_box(
                UnverifiedMsk::parse(&msk_msg)
                    .unwrap()
                    .verify_prepared(&prepared)
                    .unwrap(),
            )
        })
    });
    let keys = MtkKeys::new(&msk(), 0x00010002);
    let mut m = mtk_delivery(0);
    g.bench_function("mtk_build", |b| {
        b.iter(|| {
            m.counter = m.counter.wrapping_add(1);
            black_box(build_mtk(&keys, &m).unwrap())
        })
    });
    let mtk_msg = build_mtk(&keys, &mtk_delivery(7)).unwrap();
    g.bench_function("mtk_verify_cached", |b| {
        b.iter(|| {
            black_box(
                UnverifiedMtk::parse(&mtk_msg)
                    .unwrap()
                    .verify(&keys)
                    .unwrap(),
            )
        })
    });
    // The receive path's share that is not crypto: reading the datagram in
    // place, and that plus the structure check of the profile.
    g.bench_function("mtk_view_decode", |b| {
        b.iter(|| black_box(MessageView::decode(black_box(&mtk_msg)).unwrap()))
    });
    g.bench_function("mtk_parse", |b| {
        b.iter(|| black_box(UnverifiedMtk::parse(black_box(&mtk_msg)).unwrap()))
    });
    g.bench_function("mtk_verify_uncached", |b| {
        b.iter(|| {
            let keys = MtkKeys::new(&msk(), 0x00010002);
            black_box(
                UnverifiedMtk::parse(&mtk_msg)
                    .unwrap()
                    .verify(&keys)
                    .unwrap(),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("gba");
    let ks = Ks::from_bytes(std::array::from_fn(|i| i as u8));
    let naf = NafId::mbms(IDI);
    g.bench_function("ks_naf", |b| {
        b.iter(|| {
            black_box(
                ks_naf(
                    &ks,
                    &[0x20; 16],
                    "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
                    &naf,
                )
                .unwrap(),
            )
        })
    });
    g.finish();
}

/// The crypto each message needs and nothing else.
fn floor(c: &mut Criterion) {
    let muk = muk();
    let prf = PrfKey::new(muk.as_bytes());
    let msk_len = build_msk(&muk, &delivery(1)).unwrap().len();
    let keys = MtkKeys::new(&msk(), 0x00010002);
    let mtk_len = build_mtk(&keys, &mtk_delivery(1)).unwrap().len();
    let mut g = c.benchmark_group("floor");
    let mut n = 0u32;
    // MSK build with a prepared MUK: 3 PRF derivations (2 HMACs each, from the
    // kept MUK state), AES key schedule + keystream over the 26-octet key data,
    // HMAC keying with the auth key + HMAC over the message.
    g.bench_function("msk_build", |b| {
        let mut msg = vec![0x5a; msk_len - 20];
        b.iter(|| {
            n = n.wrapping_add(1);
            let mut rand = [0u8; 16];
            rand[..4].copy_from_slice(&n.to_be_bytes());
            let mut label = psk_label(0x1505_33E1, 0x00010002, &rand);
            let mut enc = [0u8; 16];
            prf.prf(&label, &mut enc);
            label[0] ^= 1;
            let mut salt = [0u8; 14];
            prf.prf(&label, &mut salt);
            label[0] ^= 2;
            let mut auth = [0u8; 20];
            prf.prf(&label, &mut auth);
            let cipher = Aes128Cm::new(&mbms_keys::crypto::EncKey::from_bytes(enc));
            let mut iv = [0u8; 16];
            iv[..14].copy_from_slice(&salt);
            cipher.apply(&iv, &mut msg[..26]);
            black_box(HmacSha1State::new(&auth).mac(&[&msg]))
        })
    });
    // MTK verify with the per-MSK cache: HMAC over the message from the kept
    // auth-key state, AES-CM over the 36-octet key data with the kept schedule.
    let hmac = HmacSha1State::new(&[7u8; 20]);
    let cipher = Aes128Cm::new(&mbms_keys::crypto::EncKey::from_bytes([9; 16]));
    g.bench_function("mtk_verify_cached", |b| {
        let msg = vec![0x5a; mtk_len - 20];
        let tag = [0u8; 20];
        b.iter(|| {
            let ok = hmac.verify(&[&msg], &tag);
            let mut kd = [0u8; 36];
            cipher.apply(&[3; 16], &mut kd);
            black_box((ok, kd))
        })
    });
    g.bench_function("mtk_build", |b| {
        let mut msg = vec![0x5a; mtk_len - 20];
        b.iter(|| {
            cipher.apply(&[3; 16], &mut msg[..36]);
            black_box(hmac.mac(&[&msg]))
        })
    });
    g.finish();
}

criterion_group!(benches, messages, floor);
criterion_main!(benches);
