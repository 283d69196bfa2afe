//! Group commit of registrations in the SQLite store: concurrent registrations share durable
//! commits, every waiter gets its own result, a bad registration does not fail its batch, the
//! batch's bounded wait is kept, and what was acknowledged is there after reopening.

mod common;

use common::TempDir;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use mbms_keys::bmsc::store::{GroupCommitLimits, Registration, SqliteStore, Store, StoreError};
use mbms_keys::crypto::StateKey;
use mbms_keys::gba::Btid;

fn open(dir: &TempDir, limits: GroupCommitLimits) -> SqliteStore {
    SqliteStore::open(dir.path(), StateKey::from_bytes([0x5a; 32]))
        .expect("store opens")
        .with_group_commit(limits)
        .expect("store writer starts")
}

fn btid(i: u32) -> Btid {
    format!("gc{i:08}@bsf.example.org").parse().expect("btid")
}

fn reg(i: u32) -> Registration {
    Registration {
        btid: btid(i),
        service_id: "news".to_owned(),
        ue_addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)),
        registered_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    }
}

/// A registration the store cannot represent (after year 2262): refused on its own.
fn bad_reg(i: u32) -> Registration {
    Registration {
        registered_at: SystemTime::UNIX_EPOCH + Duration::from_secs(10_000_000_000),
        ..reg(i)
    }
}

/// `n` threads released together, each registering `make(i)`; their results in order.
fn register_together(
    store: &Arc<SqliteStore>,
    n: u32,
    make: impl Fn(u32) -> Registration,
) -> Vec<Result<(), StoreError>> {
    let barrier = Arc::new(Barrier::new(n as usize));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (store, barrier, r) = (Arc::clone(store), Arc::clone(&barrier), make(i));
            std::thread::spawn(move || {
                barrier.wait();
                store.register(&r)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

fn stored(store: &SqliteStore, i: u32) -> bool {
    !store
        .registrations_of_btid(&btid(i))
        .expect("read")
        .is_empty()
}

#[test]
fn concurrent_registrations_share_commits_and_survive_reopen() {
    let dir = TempDir::new("gc-share");
    let n = 48;
    {
        let store = Arc::new(open(&dir, GroupCommitLimits::default()));
        let results = register_together(&store, n, reg);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let stats = store.commit_stats();
        assert_eq!(stats.jobs(), u64::from(n));
        assert!(
            stats.commits() < u64::from(n),
            "{n} concurrent registrations took {} commits",
            stats.commits()
        );
    }
    let store = open(&dir, GroupCommitLimits::default());
    assert!((0..n).all(|i| stored(&store, i)));
}

#[test]
fn a_full_batch_is_one_commit_and_a_bad_registration_fails_alone() {
    let dir = TempDir::new("gc-batch");
    let n = 16;
    let store = Arc::new(open(
        &dir,
        GroupCommitLimits {
            max_batch: n as usize,
            max_wait: Duration::from_secs(10),
        },
    ));
    let started = Instant::now();
    let results = register_together(&store, n, |i| if i == 5 { bad_reg(i) } else { reg(i) });
    // The batch filled: no lingering for the 10 s.
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(store.commit_stats().commits(), 1);
    for (i, r) in (0..n).zip(&results) {
        if i == 5 {
            assert!(matches!(r, Err(StoreError::TimeOutOfRange)), "{r:?}");
            assert!(!stored(&store, i));
        } else {
            assert!(r.is_ok(), "registration {i}: {r:?}");
            assert!(stored(&store, i), "registration {i} not stored");
        }
    }
}

#[test]
fn the_batch_wait_is_bounded() {
    let dir = TempDir::new("gc-wait");
    let wait = Duration::from_millis(300);
    let store = open(
        &dir,
        GroupCommitLimits {
            max_batch: 64,
            max_wait: wait,
        },
    );
    let started = Instant::now();
    store.register(&reg(1)).expect("register");
    let took = started.elapsed();
    // A lone registration waits for company at most `max_wait`, then commits alone.
    assert!(took >= wait, "committed after {took:?}");
    assert!(took < wait * 10, "committed after {took:?}");
    assert_eq!(store.commit_stats().commits(), 1);
    assert!(stored(&store, 1));
}

#[test]
fn batches_are_capped_at_max_batch() {
    let dir = TempDir::new("gc-cap");
    let store = Arc::new(open(
        &dir,
        GroupCommitLimits {
            max_batch: 4,
            max_wait: Duration::from_millis(200),
        },
    ));
    let results = register_together(&store, 12, reg);
    assert!(results.iter().all(Result::is_ok));
    let stats = store.commit_stats();
    assert_eq!(stats.jobs(), 12);
    assert!(stats.commits() >= 3, "{} commits", stats.commits());
}

/// The WAL is checkpointed by the store's own thread, not inside commits: while many commits
/// are made it stays bounded, once they stop it is emptied (SQLite's automatic checkpoint
/// never empties the file), and every registration is there after reopening.
#[test]
fn the_wal_is_checkpointed_in_the_background_and_emptied_when_idle() {
    let dir = TempDir::new("gc-wal");
    let wal = dir.path().join(format!("{}-wal", SqliteStore::FILE_NAME));
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let per = 20u32;
    let mut batches = 0u32;
    {
        let store = open(&dir, GroupCommitLimits::default());
        let stats = store
            .checkpoint_stats()
            .expect("a read-write store checkpoints");
        let mut largest = 0;
        // Commits without a pause, until the WAL has been started over a few times.
        let until = Instant::now() + Duration::from_secs(30);
        while stats.under_writer_lock.load(Ordering::Relaxed) < 3 || batches < 400 {
            assert!(Instant::now() < until, "the WAL was never started over");
            let batch: Vec<_> = (0..per).map(|i| reg(batches * per + i)).collect();
            store.register_many(&batch).expect("register");
            largest = largest.max(wal_len());
            batches += 1;
        }
        assert!(
            stats.complete.load(Ordering::Relaxed) > 0,
            "no complete checkpoint while writing"
        );
        assert!(
            largest < 64 << 20,
            "the WAL grew to {largest} octets in {batches} commits"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while wal_len() > 0 || stats.truncated.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "the WAL of an idle store is still {} octets",
                wal_len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(stored(&store, 0) && stored(&store, batches * per - 1));
    }
    let store = open(&dir, GroupCommitLimits::default());
    assert!((0..batches * per).all(|i| stored(&store, i)));
}

/// `register_queued` returns at once: one thread queues a whole batch, which commits as one
/// transaction; every completion then reports success and the rows survive reopening.
#[test]
fn queued_registrations_complete_without_a_thread_each() {
    let dir = TempDir::new("gc-queued");
    let n = 12;
    {
        let store = open(
            &dir,
            GroupCommitLimits {
                max_batch: n as usize,
                max_wait: Duration::from_secs(10),
            },
        );
        assert!(store.queues_registrations());
        let started = Instant::now();
        let pending: Vec<_> = (0..n)
            .map(|i| store.register_queued(if i == 4 { bad_reg(i) } else { reg(i) }))
            .collect();
        for (i, rx) in (0..n).zip(pending) {
            let r = rx.blocking_recv().expect("completed");
            if i == 4 {
                assert!(matches!(r, Err(StoreError::TimeOutOfRange)), "{r:?}");
            } else {
                assert!(r.is_ok(), "registration {i}: {r:?}");
            }
        }
        // The batch filled from one thread: no lingering for the 10 s, one commit.
        assert!(started.elapsed() < Duration::from_secs(8));
        assert_eq!(store.commit_stats().commits(), 1);
    }
    let store = open(&dir, GroupCommitLimits::default());
    assert!((0..n).all(|i| (i == 4) != stored(&store, i)));
}
