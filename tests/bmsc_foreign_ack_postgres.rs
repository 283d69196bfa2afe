//! Acknowledgements that reach another node of a cluster (docs/cluster.md "Acknowledgements at
//! another node"): two distributors, sans-IO in virtual time, on one real PostgreSQL
//! (`tests/common/postgres.rs`). Node A pushes MSKs to two UEs; each acknowledgement is handed
//! to node B instead. B records them unverified; A, before retransmitting, verifies them with
//! its own push contexts: the true one closes its push, the forged one does not.
//! Skipped without PostgreSQL, failing then under `MBMS_REQUIRE_ORACLES=1`.

mod common;
#[allow(dead_code)]
#[path = "bmsc_distribution/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use common::postgres::{PASSWORD, PgServer};
use harness::{
    Bmsc, FQDN, Log, TempDir, UE_PORT, at, btid, config, download, drain, run, start_on, t0,
    tuning, ue_ip, vt,
};
use mbms_keys::bmsc::config::{Config, Password, PostgresConfig};
use mbms_keys::bmsc::store::PostgresStore;
use mbms_keys::crypto::Fixed;
use mbms_keys::mbms::{AckContext, MukId, PreparedMuk, UnverifiedMsk, build_ack};
use mbms_keys::ue::{Receiver, ReceiverConfig};

const DEST: &str = "239.1.1.1:5000";

/// A distributor on its own connection to the shared database.
fn node(config: &Config, pg: &PostgresConfig, kek: &std::path::Path, seed: u64) -> Bmsc {
    let store = Arc::new(PostgresStore::open(pg, kek).expect("store opens"));
    start_on(store, config, seed, t0(), tuning())
}

fn ue_addr(i: u32) -> SocketAddr {
    SocketAddr::new(ue_ip(i), UE_PORT)
}

#[test]
fn an_acknowledgement_received_by_another_node_closes_the_push_and_a_forged_one_does_not() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.database();
    let dir = TempDir::new("foreign-ack");
    let kek = dir.path().join("kek");
    std::fs::write(&kek, hex::encode([0x5a; 32])).expect("kek");
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let pg = PostgresConfig {
        url: server.url(&db),
        password_file: None,
        password: Some(Password::new(PASSWORD.to_owned())),
        pool_size: 2,
    };
    let services = download("a", 1, "600s", "60s", DEST, dir.path());
    let conf = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).expect("dir");
        config(&d, 2, &[], &services)
    };
    // A starts first and owns the MSK group; B follows it.
    let mut a = node(&conf("a"), &pg, &kek, 1);
    let mut b = node(&conf("b"), &pg, &kek, 2);
    let (mut log_a, mut log_b) = (Log::default(), Log::default());
    drain(&mut a.d, t0(), &mut [], &mut log_a);
    drain(&mut b.d, t0(), &mut [], &mut log_b);

    a.register(0, &["a"], t0());
    a.register(1, &["a"], t0());
    drain(&mut a.d, t0(), &mut [], &mut log_a);
    let first0 = log_a.to(ue_addr(0));
    let first1 = log_a.to(ue_addr(1));
    assert_eq!((first0.len(), first1.len()), (1, 1), "one push each");

    // UE 0 acknowledges truly; UE 1's acknowledgement is forged (UE 0's MUK).
    let mut rx = Receiver::new(ReceiverConfig::default(), Box::new(Fixed(0)));
    rx.set_muk(MukId::new(FQDN.as_bytes(), btid(0).as_bytes()), a.muk(0));
    let true_ack = rx
        .handle_datagram(std::time::Instant::now(), &first0[0].1)
        .expect("UE 0 acknowledges");
    let un = UnverifiedMsk::parse(&first1[0].1).expect("MSK message");
    let wrong = PreparedMuk::new(&a.muk(0));
    let keys = wrong.keys(un.csb_id(), un.view().rand().expect("rand"));
    let forged = build_ack(&AckContext::new(
        keys,
        un.csb_id(),
        un.counter(),
        FQDN.as_bytes(),
        un.idr(),
    ))
    .expect("forged ack");

    // Both reach B, which sent neither push: recorded unverified with its next flush.
    b.d.on_datagram(ue_addr(0), &true_ack, vt(t0()));
    b.d.on_datagram(ue_addr(1), &forged, vt(t0()));
    run(
        &mut b.d,
        t0(),
        t0() + Duration::from_millis(500),
        &mut [],
        &mut log_b,
    );
    assert_eq!(b.metrics.fanout_foreign_acks_recorded.get(), 2);
    assert_eq!(b.metrics.pushes_acked.get(), 0, "B verifies nothing");

    // A's retransmission time (initial_backoff 1 s): the true one closes UE 0's push, the
    // forged one is refused and UE 1's push goes on.
    run(&mut a.d, t0(), at(10), &mut [], &mut log_a);
    assert_eq!(
        log_a.to(ue_addr(0)).len(),
        1,
        "UE 0's push not retransmitted"
    );
    assert!(
        log_a.to(ue_addr(1)).len() >= 2,
        "UE 1's push retransmitted: {}",
        log_a.to(ue_addr(1)).len()
    );
    assert_eq!(a.metrics.fanout_foreign_acks_verified.get(), 1);
    assert!(a.metrics.fanout_foreign_acks_dropped.get() >= 1);
    assert_eq!(a.metrics.pushes_acked.get(), 1);
}
