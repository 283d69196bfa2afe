//! The BM-SC store on a real PostgreSQL server (`tests/common/postgres.rs`: initdb + pg_ctl on
//! a temporary directory and a loopback port): the store contract (`store_contract/`, shared
//! with SQLite), no key in clear in the database dump, the KEK check, several nodes on one database (MSK group
//! ownership, first MSK and MTK kept, counter blocks),
//! read-only opens, migrations recorded once, the password kept out of messages.
//! Skipped without PostgreSQL, failing then under `MBMS_REQUIRE_ORACLES=1`.

mod common;
mod store_contract;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use common::TempDir;
use common::postgres::{PASSWORD, PgServer};
use mbms_keys::bmsc::config::{Password, PostgresConfig};
use mbms_keys::bmsc::store::{
    CurrentMtk, FanoutProgress, ForeignAck, Lease, PostgresStore, Registration, Store, StoreError,
};
use mbms_keys::crypto::{Mtk, Salt};
use mbms_keys::mikey::MtkId;
use store_contract::*;

const KEK_OCTETS: [u8; 32] = [0x5a; 32];

/// One database of the shared server, and a directory for the KEK file.
struct Postgres {
    server: Arc<PgServer>,
    db: String,
    dir: TempDir,
}

impl Postgres {
    fn new() -> Option<Self> {
        let server = PgServer::shared()?;
        let db = server.database();
        let dir = TempDir::new("pg-store");
        write_0600(&dir.path().join("kek"), hex::encode(KEK_OCTETS).as_bytes());
        Some(Self { server, db, dir })
    }

    fn config(&self) -> PostgresConfig {
        PostgresConfig {
            url: self.server.url(&self.db),
            password_file: None,
            password: Some(Password::new(PASSWORD.to_owned())),
            pool_size: 4,
        }
    }

    fn kek_file(&self) -> PathBuf {
        self.dir.path().join("kek")
    }

    fn try_open(&self) -> Result<PostgresStore, StoreError> {
        PostgresStore::open(&self.config(), &self.kek_file())
    }
}

impl Backend for Postgres {
    type S = PostgresStore;
    fn open(&self) -> PostgresStore {
        self.try_open().expect("store opens")
    }
}

fn write_0600(path: &std::path::Path, content: &[u8]) {
    std::fs::write(path, content).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

contract_tests!(Postgres::new());

#[test]
fn the_database_dump_holds_no_key_in_clear() {
    let Some(b) = Postgres::new() else { return };
    let store = b.open();
    let mut msk = msk_record(1, MSK_OCTETS);
    msk.current_mtk = Some(CurrentMtk {
        id: MtkId(3),
        mtk: Mtk::from_bytes(MTK_OCTETS),
        salt: Some(Salt::from_bytes(SALT_OCTETS)),
    });
    store.put_msk(&msk).expect("put");
    store
        .cache_keys(&gba_keys("a@bsf", at(4_000_000_000)))
        .expect("cache");
    store.register(&reg(1, "news")).expect("register");
    drop(store);
    let dump = b.server.dump(&b.db);
    // The dump did capture the rows: the registration in clear, the sealed values as bytea.
    assert!(dump.contains("btid00000001@bsf.example.org"), "{dump}");
    assert!(dump.contains("a@bsf"), "{dump}");
    let lower = dump.to_ascii_lowercase();
    for (what, octets) in [
        ("MSK", &MSK_OCTETS[..]),
        ("MTK", &MTK_OCTETS[..]),
        ("salt", &SALT_OCTETS[..]),
        ("Ks_NAF", &KS_NAF_OCTETS[..]),
        ("KEK", &KEK_OCTETS[..]),
    ] {
        assert!(!lower.contains(&hex::encode(octets)), "{what} in clear");
        assert!(
            !dump.as_bytes().windows(octets.len()).any(|w| w == octets),
            "{what} raw"
        );
    }
    // And the keys come back through the store.
    assert_eq!(b.open().msk(KD, msk.msk_id).expect("read"), Some(msk));
}

#[test]
fn a_wrong_kek_is_refused_and_changes_nothing() {
    let Some(b) = Postgres::new() else { return };
    drop(b.open());
    write_0600(&b.kek_file(), hex::encode([0x11u8; 32]).as_bytes());
    let err = b.try_open().expect_err("wrong KEK");
    assert!(matches!(err, StoreError::WrongKek { .. }), "{err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&hex::encode([0x11u8; 32])), "{text}");
    assert_eq!(
        b.server.psql(&b.db, "SELECT count(*) FROM kek_check"),
        "1\n"
    );
    write_0600(&b.kek_file(), hex::encode(KEK_OCTETS).as_bytes());
    drop(b.open());
}

#[test]
fn a_missing_kek_for_an_existing_store_is_refused_and_not_created() {
    let Some(b) = Postgres::new() else { return };
    drop(b.open());
    std::fs::remove_file(b.kek_file()).expect("remove");
    let err = b.try_open().expect_err("no KEK");
    assert!(matches!(err, StoreError::KekMissing { .. }), "{err}");
    assert!(!b.kek_file().exists(), "a new KEK would not open the store");
}

#[test]
fn a_kek_is_created_with_a_new_database_only() {
    let Some(b) = Postgres::new() else { return };
    std::fs::remove_file(b.kek_file()).expect("remove");
    let store = b.open();
    let mode = std::fs::metadata(b.kek_file())
        .expect("created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    store.put_msk(&msk_record(1, MSK_OCTETS)).expect("put");
    drop(store);
    assert_eq!(
        b.open()
            .msk(KD, msk_record(1, MSK_OCTETS).msk_id)
            .expect("read"),
        Some(msk_record(1, MSK_OCTETS))
    );
}

#[test]
fn nodes_share_a_database_with_one_owner_per_msk_group() {
    let Some(b) = Postgres::new() else { return };
    let groups = ["00f110/0001".to_owned(), "00f110/0002".to_owned()];
    let first = b.open();
    let second = b.try_open().expect("a second node opens the same database");
    assert!(first.is_shared() && second.is_shared());
    assert_eq!(first.claim_ownership(&groups).expect("claim"), [true, true]);
    assert_eq!(
        second.claim_ownership(&groups).expect("claim"),
        [false, false]
    );
    // Kept by its holder round after round.
    assert_eq!(first.claim_ownership(&groups).expect("claim"), [true, true]);
    drop(first);
    // Released with the first node's connection: the second takes both over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = second.claim_ownership(&groups).expect("claim");
        if got == [true, true] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never taken over: {got:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_lost_ownership_connection_is_noticed_and_the_groups_move() {
    let Some(b) = Postgres::new() else { return };
    let groups = ["00f110/0001".to_owned()];
    let first = b.open();
    let second = b.open();
    assert_eq!(first.claim_ownership(&groups).expect("claim"), [true]);
    // The server ends the first node's ownership connection (the one holding the lock).
    let killed = b.server.psql(
        &b.db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' \
         AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    assert_eq!(killed.trim(), "1", "one connection held the lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while second.claim_ownership(&groups).expect("claim") != [true] {
        assert!(std::time::Instant::now() < deadline, "not taken over");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The first node notices at its next round (it reconnects) and does not claim it still.
    assert_eq!(
        first.claim_ownership(&groups).expect("reconnected"),
        [false]
    );
    drop(second);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while first.claim_ownership(&groups).expect("claim") != [true] {
        assert!(std::time::Instant::now() < deadline, "not taken back");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_msk_id_and_an_mtk_id_keep_the_first_key_made_for_them() {
    let Some(b) = Postgres::new() else { return };
    let first = b.open();
    let second = b.open();
    let mine = msk_record(7, MSK_OCTETS);
    let mut theirs = msk_record(7, [0x11; 16]);
    theirs.state = mbms_keys::bmsc::store::MskState::Next;
    assert_eq!(first.create_msk(&mine).expect("create"), mine);
    // The second node made another MSK under the same ID: it gets the stored one.
    assert_eq!(second.create_msk(&theirs).expect("adopt"), mine);
    assert_eq!(
        second.msk(KD, mine.msk_id).expect("read"),
        Some(mine.clone())
    );

    let one = CurrentMtk {
        id: MtkId(4),
        mtk: Mtk::from_bytes(MTK_OCTETS),
        salt: Some(Salt::from_bytes(SALT_OCTETS)),
    };
    let other = CurrentMtk {
        id: MtkId(4),
        mtk: Mtk::from_bytes([0x22; 16]),
        salt: None,
    };
    assert_eq!(first.claim_mtk(KD, mine.msk_id, &one).expect("claim"), one);
    assert_eq!(
        second.claim_mtk(KD, mine.msk_id, &other).expect("adopt"),
        one
    );
    let next = CurrentMtk {
        id: MtkId(5),
        ..other.clone()
    };
    assert_eq!(
        second.claim_mtk(KD, mine.msk_id, &next).expect("claim"),
        next
    );
    // Sealed at rest like the MSKs: the dump holds neither MTK in clear.
    let dump = b.server.dump(&b.db);
    assert!(!dump.contains(&hex::encode(MTK_OCTETS)), "MTK in clear");
    assert!(!dump.contains(&hex::encode([0x22u8; 16])), "MTK in clear");
    // Deleting the MSK deletes its claimed MTKs.
    assert!(first.delete_msk(KD, mine.msk_id).expect("delete"));
    assert_eq!(
        b.server.psql(&b.db, "SELECT count(*) FROM mtks").trim(),
        "0"
    );
}

#[test]
fn counter_blocks_of_several_nodes_never_overlap_and_increase() {
    let Some(b) = Postgres::new() else { return };
    let nodes: Vec<Arc<PostgresStore>> = (0..3).map(|_| Arc::new(b.open())).collect();
    let floor = 1_000_000u32;
    let threads: Vec<_> = nodes
        .iter()
        .map(|n| {
            let n = n.clone();
            std::thread::spawn(move || {
                (1..=40u32)
                    .map(|i| {
                        let len = i % 7 + 1;
                        let first = n
                            .reserve_counters(floor, len)
                            .expect("reserve")
                            .expect("shared");
                        (first, len)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        let blocks = t.join().expect("thread");
        // Each node's blocks increase.
        for w in blocks.windows(2) {
            assert!(w[1].0 >= w[0].0 + w[0].1, "{w:?}");
        }
        all.extend(blocks);
    }
    all.sort_unstable();
    assert!(all[0].0 >= floor);
    for w in all.windows(2) {
        assert!(w[1].0 >= w[0].0 + w[0].1, "overlap {w:?}");
    }
    // The stored ceiling is past every value handed out.
    let (last, len) = all[all.len() - 1];
    assert_eq!(nodes[0].counter_ceiling().expect("ceiling"), last + len);
}

#[test]
fn foreign_acknowledgements_are_recorded_in_range_read_by_counter_and_pruned() {
    let Some(b) = Postgres::new() else { return };
    let (a, c) = (b.open(), b.open());
    let first = c
        .reserve_counters(10_000_000, 8)
        .expect("reserve")
        .expect("shared");
    let ceiling = c.counter_ceiling().expect("ceiling");
    let from: std::net::SocketAddr = "192.0.2.7:4000".parse().expect("addr");
    let ack = |counter: u32, len: usize| ForeignAck {
        counter,
        from,
        bytes: vec![0x5a; len],
    };
    // In range; too old (below the recent counter blocks); not reserved yet; oversized.
    let acks = [
        ack(first + 1, 60),
        ack(5, 60),
        ack(ceiling + 10, 60),
        ack(first + 2, 200),
    ];
    let retain = std::time::Duration::from_secs(60);
    a.record_foreign_acks(&acks, retain).expect("record");
    assert_eq!(
        b.server
            .psql(&b.db, "SELECT count(*) FROM fanout_foreign_acks")
            .trim(),
        "1"
    );
    // Read by the other node by counter, as written.
    let asked = [first, first + 1, first + 2, 5, ceiling + 10];
    assert_eq!(
        c.foreign_acks(&asked).expect("read"),
        vec![ack(first + 1, 60)]
    );
    assert!(c.foreign_acks(&[first]).expect("read").is_empty());
    // Whoever flushes prunes the rows older than the bound.
    std::thread::sleep(std::time::Duration::from_millis(30));
    a.record_foreign_acks(&[], std::time::Duration::from_millis(10))
        .expect("prune");
    assert!(c.foreign_acks(&asked).expect("read").is_empty());
}

#[test]
fn fanout_work_items_are_claimed_once_leased_renewed_taken_over_and_closed() {
    let Some(b) = Postgres::new() else { return };
    let (a, c) = (b.open(), b.open());
    let msk = msk_record(9, MSK_OCTETS);
    a.create_msk(&msk).expect("MSK");
    let regs: Vec<Registration> = (1..=10).map(|i| reg(i, "svc")).collect();
    a.register_many(&regs).expect("register");
    let services = ["svc".to_owned()];
    let made = a
        .create_fanout_items(KD, msk.msk_id, &services, 3)
        .expect("items")
        .expect("shared");
    // B-TIDs 1-3, 4-6, 7-9, 10 and after: ranges, not one row per UE.
    assert_eq!(
        made,
        FanoutProgress {
            items: 4,
            unsent: 4,
            open: 4
        }
    );
    // A second writer (a takeover) finds the items and writes none.
    assert_eq!(
        c.create_fanout_items(KD, msk.msk_id, &services, 2)
            .expect("items")
            .expect("shared")
            .items,
        4
    );
    let msks = [(KD, msk.msk_id)];
    let long = std::time::Duration::from_secs(30);
    let short = std::time::Duration::from_millis(200);
    let la = Lease {
        node: "a",
        duration: long,
    };
    let lc = Lease {
        node: "c",
        duration: short,
    };
    let first = a
        .claim_fanout_item(la, &msks)
        .expect("claim")
        .expect("item");
    let second = c
        .claim_fanout_item(lc, &msks)
        .expect("claim")
        .expect("item");
    assert_ne!(first.item, second.item, "an item is claimed by one node");
    assert_eq!((first.claims, second.claims), (1, 1));
    assert_eq!(first.after, None);
    assert_eq!(first.until, Some(btid(3)));
    assert_eq!(second.after, Some(btid(3)));
    // Items of MSKs a node does not know are not offered to it.
    let other = [(KD, msk_record(10, MSK_OCTETS).msk_id)];
    assert_eq!(a.claim_fanout_item(la, &other).expect("claim"), None);
    // Node c stops renewing: its lease runs out and node a takes its item over.
    std::thread::sleep(short * 2);
    let mut taken = Vec::new();
    while let Some(item) = a.claim_fanout_item(la, &msks).expect("claim") {
        taken.push(item);
    }
    assert_eq!(taken.len(), 3, "{taken:?}");
    let over = taken
        .iter()
        .find(|i| i.item == second.item)
        .expect("the expired item");
    assert_eq!(
        over.claims, 2,
        "a second claim: acknowledged UEs are skipped"
    );
    assert!(c.renew_fanout_items(lc).expect("renew").is_empty());
    assert_eq!(a.renew_fanout_items(la).expect("renew").len(), 4);
    // Node c can no longer mark what it lost; node a marks sent, then done.
    c.mark_fanout_item("c", &second, true).expect("mark");
    assert_eq!(a.fanout_progress(KD, msk.msk_id).expect("progress").open, 4);
    a.mark_fanout_item("a", &first, false).expect("sent");
    assert_eq!(
        a.fanout_progress(KD, msk.msk_id).expect("progress"),
        FanoutProgress {
            items: 4,
            unsent: 3,
            open: 4
        }
    );
    for item in std::iter::once(&first).chain(&taken) {
        a.mark_fanout_item("a", item, true).expect("done");
    }
    assert_eq!(
        a.fanout_progress(KD, msk.msk_id).expect("progress"),
        FanoutProgress {
            items: 4,
            unsent: 0,
            open: 0
        }
    );
    assert_eq!(a.claim_fanout_item(la, &msks).expect("claim"), None);
    // Acknowledgements recorded by one node, seen by the other; one statement for many.
    let acks: Vec<_> = (1..=3)
        .map(|i| (KD, msk.msk_id, btid(i).as_str().to_owned()))
        .collect();
    a.record_acks(&acks).expect("record");
    a.record_acks(&acks).expect("recorded twice: kept once");
    let asked = [btid(2), btid(4)];
    let asked: Vec<&str> = asked.iter().map(|b| b.as_str()).collect();
    assert_eq!(
        c.acked(KD, msk.msk_id, &asked).expect("acked"),
        vec![btid(2).as_str().to_owned()]
    );
    // The items and acknowledgements go with their MSK.
    a.delete_msk(KD, msk.msk_id).expect("delete");
    assert_eq!(
        b.server
            .psql(&b.db, "SELECT count(*) FROM fanout_items")
            .trim(),
        "0"
    );
    assert_eq!(
        b.server
            .psql(&b.db, "SELECT count(*) FROM fanout_acks")
            .trim(),
        "0"
    );
}

#[test]
fn migrations_are_recorded_once_and_a_newer_schema_is_refused() {
    let Some(b) = Postgres::new() else { return };
    drop(b.open());
    drop(b.open());
    assert_eq!(
        b.server.psql(&b.db, "SELECT count(*) FROM schema_version"),
        "4\n"
    );
    assert_eq!(b.open().schema_version().expect("version"), 4);
    b.server.psql(
        &b.db,
        "INSERT INTO schema_version (version, applied_at) VALUES (99, 0)",
    );
    let err = b.try_open().expect_err("newer");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn a_read_only_open_reads_and_refuses_writes() {
    let Some(b) = Postgres::new() else { return };
    let err = PostgresStore::open_read_only(&b.config(), &b.kek_file()).expect_err("empty");
    assert!(matches!(err, StoreError::NoStore { .. }), "{err}");
    let store = b.open();
    store.register(&reg(1, "news")).expect("register");
    // Beside the read-write store (no lock taken).
    let ro = PostgresStore::open_read_only(&b.config(), &b.kek_file()).expect("read-only");
    assert_eq!(
        ro.count_registrations_by_service()
            .expect("count")
            .get("news"),
        Some(&1)
    );
    assert!(ro.register(&reg(2, "news")).is_err());
    assert!(ro.raise_counter_ceiling(5).is_err());
    assert!(ro.register_many(&[reg(3, "news")]).is_err());
    assert!(ro.deregister(&btid(1), "news").is_err());
    assert_eq!(
        store.registrations_of_btid(&btid(1)).expect("list").len(),
        1
    );
}

#[test]
fn the_password_comes_from_its_file_and_stays_out_of_messages() {
    let Some(b) = Postgres::new() else { return };
    let mut config = b.config();
    assert!(!format!("{config:?}").contains(PASSWORD));
    // From a file (0600), when the environment gives none.
    let file = b.dir.path().join("pgpass");
    write_0600(&file, format!("{PASSWORD}\n").as_bytes());
    config.password = None;
    config.password_file = Some(file.clone());
    drop(PostgresStore::open(&config, &b.kek_file()).expect("opens with the file's password"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let err = PostgresStore::open(&config, &b.kek_file()).expect_err("open to group");
    assert!(matches!(err, StoreError::PasswordFile { .. }), "{err}");
    // A wrong password: refused by the server, and neither password in the message.
    config.password_file = None;
    config.password = Some(Password::new("wrong-Hx81".to_owned()));
    let err = PostgresStore::open(&config, &b.kek_file()).expect_err("wrong password");
    let text = format!("{err} {err:?}");
    assert!(text.contains("password"), "{text}");
    assert!(
        !text.contains("wrong-Hx81") && !text.contains(PASSWORD),
        "{text}"
    );
}

#[test]
fn registrations_written_in_one_batch_keep_their_own_results() {
    let Some(b) = Postgres::new() else { return };
    let store = Arc::new(b.open());
    // A time the store cannot hold fails alone; the others of its batch are written.
    let mut bad = reg(7, "news");
    bad.registered_at =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(400 * 365 * 86_400);
    let mut receivers: Vec<_> = (0..7)
        .map(|i| store.register_queued(reg(i, "news")))
        .collect();
    receivers.push(store.register_queued(bad));
    let results: Vec<_> = receivers
        .into_iter()
        .map(|rx| rx.blocking_recv().expect("answered"))
        .collect();
    assert!(results[..7].iter().all(Result::is_ok), "{results:?}");
    assert!(matches!(results[7], Err(StoreError::TimeOutOfRange)));
    let rows: Vec<Registration> = (0..7)
        .flat_map(|i| store.registrations_of_btid(&btid(i)).expect("list"))
        .collect();
    assert_eq!(rows.len(), 7);
    assert!(store.commit_stats().jobs() >= 8);
}

#[test]
fn a_registration_is_awaited_on_a_one_thread_runtime_and_the_store_drops_there() {
    let Some(b) = Postgres::new() else { return };
    let store = b.open();
    // Reads cross the network: the Key Request driver keeps them off its runtime.
    assert!(store.reads_may_block());
    assert!(store.queues_registrations());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        // The store's client runs on a runtime of its own: awaiting here, on the only thread
        // of this one, completes (a client on this runtime would never get to run).
        let commits: Vec<_> = (0..3)
            .map(|i| store.register_queued(reg(i, "news")))
            .collect();
        for c in commits {
            c.await.expect("answered").expect("durable");
        }
        // Dropped on an async thread: its runtime shuts down without blocking (no panic).
        drop(store);
    });
    assert_eq!(
        b.open()
            .count_registrations_by_service()
            .expect("count")
            .get("news"),
        Some(&3)
    );
}

#[test]
fn the_store_fails_while_postgresql_is_down_and_resumes_by_itself() {
    let Some(server) = PgServer::start() else {
        return;
    };
    let b = Postgres {
        db: server.database(),
        server: Arc::new(server),
        dir: TempDir::new("pg-restart"),
    };
    write_0600(&b.kek_file(), hex::encode(KEK_OCTETS).as_bytes());
    let store = b.open();
    store.register(&reg(1, "news")).expect("register");
    b.server.pg_ctl_stop();
    let started = std::time::Instant::now();
    assert!(matches!(
        store.registrations_of_btid(&btid(1)),
        Err(StoreError::Unavailable(_))
    ));
    assert!(store.register(&reg(2, "news")).is_err(), "not acknowledged");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    b.server.pg_ctl_start();
    // The pool replaces its dead connections: no restart of the store.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let regs = loop {
        match store.registrations_of_btid(&btid(1)) {
            Ok(r) => break r,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "not resumed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    };
    assert_eq!(regs, vec![reg(1, "news")]);
    store
        .register(&reg(2, "news"))
        .expect("register after the restart");
    assert_eq!(
        store.registrations_of_btid(&btid(2)).expect("read").len(),
        1
    );
}
