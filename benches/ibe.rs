//! ECCSI and SAKKE rates (docs/mcx.md): a KMS's key set issue (SSK/PVT and RSK for one UID),
//! ECCSI sign and verify, SAKKE encapsulate and decapsulate, and the client's validations.
//! Keys from a fixed seed; the identifier is a UID format 2.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mbms_keys::crypto::Seeded;
use mbms_keys::ibe::{Ksak, SakkeMaster, Ssv, eccsi, sakke, uid_format2};

fn ibe(c: &mut Criterion) {
    let mut rng = Seeded::new(0x1be);
    let uid = uid_format2(
        "sip:alice@example.org",
        "kms.example.org",
        2_592_000,
        0,
        625,
    )
    .unwrap();
    let ksak = Ksak::generate(&mut rng).unwrap();
    let kpak = ksak.kpak().unwrap();
    let z = SakkeMaster::generate(&mut rng).unwrap();
    let zs = z.public().unwrap();
    let pair = ksak.issue(&uid, &mut rng).unwrap();
    let rsk = z.issue_rsk(&uid).unwrap();
    let msg = [0x5au8; 100];
    let sig = eccsi::sign(&kpak, &uid, &pair.ssk, &pair.pvt, &msg, &mut rng).unwrap();
    let ssv = Ssv::generate(&mut rng).unwrap();
    let data = sakke::encapsulate(&zs, &uid, &ssv).unwrap();

    let mut g = c.benchmark_group("ibe");
    g.sample_size(20);
    g.bench_function("kms_key_set_issue", |b| {
        b.iter(|| {
            let p = ksak.issue(black_box(&uid), &mut rng).unwrap();
            let r = z.issue_rsk(black_box(&uid)).unwrap();
            (p, r)
        });
    });
    g.bench_function("eccsi_sign", |b| {
        b.iter(|| eccsi::sign(&kpak, &uid, &pair.ssk, &pair.pvt, black_box(&msg), &mut rng))
    });
    g.bench_function("eccsi_verify", |b| {
        b.iter(|| eccsi::verify(&kpak, &uid, black_box(&msg), black_box(&sig)))
    });
    g.bench_function("eccsi_validate", |b| {
        b.iter(|| eccsi::validate(&kpak, black_box(&uid), &pair.ssk, &pair.pvt))
    });
    g.bench_function("sakke_encapsulate", |b| {
        b.iter(|| sakke::encapsulate(&zs, black_box(&uid), &ssv))
    });
    g.bench_function("sakke_decapsulate", |b| {
        b.iter(|| sakke::decapsulate(&zs, black_box(&uid), &rsk, black_box(&data)))
    });
    g.bench_function("sakke_validate_rsk", |b| {
        b.iter(|| sakke::validate_rsk(&zs, black_box(&uid), &rsk))
    });
    g.finish();
}

criterion_group!(benches, ibe);
criterion_main!(benches);
