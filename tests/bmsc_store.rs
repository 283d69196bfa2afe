//! The BM-SC store on SQLite: the store contract (`store_contract/`, shared with PostgreSQL),
//! durability across reopen and `kill -9`, the KEK file (created only with a new store,
//! refused when missing, wrong or open to group or others), read-only opens, key material
//! sealed at rest and bound to its row.

mod common;
mod store_contract;

use common::TempDir;
use mbms_lab::listing;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mbms_keys::bmsc::store::{
    CurrentMtk, MskState, SqliteStore, Store, StoreError, load_or_create_kek, members_of_service,
};
use mbms_keys::crypto::{Mtk, Salt, StateKey};
use mbms_keys::mikey::{MskId, MtkId};

use store_contract::*;

fn kek() -> StateKey {
    StateKey::from_bytes([0x5a; 32])
}

fn open(dir: &TempDir) -> SqliteStore {
    SqliteStore::open(dir.path(), kek()).expect("store opens")
}

/// The SQLite backend of the contract tests: a store in a directory of its own.
struct Sqlite(TempDir);

impl Backend for Sqlite {
    type S = SqliteStore;
    fn open(&self) -> SqliteStore {
        open(&self.0)
    }
}

contract_tests!(Some(Sqlite(TempDir::new("contract"))));

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file of the database (main, WAL, shared memory) that exists.
fn write_0600(path: &Path, content: &[u8]) {
    std::fs::write(path, content).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn kek_check_rows(dir: &TempDir) -> i64 {
    rusqlite::Connection::open(dir.path().join("bmsc.sqlite"))
        .expect("raw")
        .query_row("SELECT count(*) FROM kek_check", [], |r| r.get(0))
        .expect("count")
}

fn db_files(dir: &TempDir) -> Vec<(PathBuf, Vec<u8>)> {
    ["bmsc.sqlite", "bmsc.sqlite-wal", "bmsc.sqlite-shm"]
        .iter()
        .map(|f| dir.path().join(f))
        .filter(|p| p.exists())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read db file");
            (p, bytes)
        })
        .collect()
}

#[test]
fn everything_acknowledged_survives_a_reopen() {
    let dir = TempDir::new("reopen");
    let mut msk = msk_record(1, MSK_OCTETS);
    msk.current_mtk = Some(CurrentMtk {
        id: MtkId(5),
        mtk: Mtk::from_bytes(MTK_OCTETS),
        salt: None,
    });
    {
        let store = open(&dir);
        store.register(&reg(1, "news")).expect("register");
        store.put_msk(&msk).expect("put");
        store.raise_counter_ceiling(10_000).expect("raise");
        store
            .cache_keys(&gba_keys("a@bsf", at(2_000_000_000)))
            .expect("cache");
        assert_eq!(store.schema_version().expect("version"), 2);
    }
    let store = open(&dir);
    assert_eq!(
        store.registrations_of_btid(&btid(1)).expect("list"),
        vec![reg(1, "news")]
    );
    assert_eq!(store.msk(KD, msk.msk_id).expect("read"), Some(msk));
    assert_eq!(store.counter_ceiling().expect("ceiling"), 10_000);
    assert!(
        store
            .cached_keys("a@bsf", at(1_900_000_000))
            .expect("cache")
            .is_some()
    );
    assert_eq!(store.schema_version().expect("version"), 2);
}

/// The child half of [`acknowledged_writes_survive_kill_9`]: does nothing unless started by it.
#[test]
fn kill_9_child() {
    let Some(dir) = std::env::var_os("MBMS_STORE_KILL_CHILD_DIR") else {
        return;
    };
    let store = SqliteStore::open(Path::new(&dir), kek()).expect("child opens");
    let mut out = std::io::stdout();
    for i in 0..200 {
        store.register(&reg(i, "news")).expect("register");
        store.raise_counter_ceiling((i + 1) * 100).expect("raise");
        // Acknowledged only after the call returned.
        writeln!(out, "acked {i}").expect("stdout");
        out.flush().expect("flush");
    }
    // Keep writing until killed, so the kill lands mid-transaction; give up after a minute
    // should the parent be gone.
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        store.register(&reg(999_999, "tv")).expect("register");
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = TempDir::new("kill9");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "kill_9_child", "--nocapture", "--test-threads=1"])
        .env("MBMS_STORE_KILL_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("pipe");
    let mut last = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("acked ") {
            last = Some(n.parse::<u32>().expect("number"));
            if last == Some(199) {
                break;
            }
        }
    }
    // SIGKILL: no destructor, no flush, no checkpoint.
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    assert_eq!(last, Some(199), "the child acknowledged every write");
    let store = open(&dir);
    assert_eq!(
        store
            .count_registrations_by_service()
            .expect("count")
            .get("news"),
        Some(&200)
    );
    assert_eq!(store.counter_ceiling().expect("ceiling"), 200 * 100);
}

#[test]
fn the_kek_file_is_created_0600_and_reused() {
    let dir = TempDir::new("kek");
    let kek_path = dir.path().join("secrets/kek");
    let data = dir.path().join("data");
    {
        let store = SqliteStore::open_with_kek_file(&data, &kek_path).expect("open");
        store.put_msk(&msk_record(1, MSK_OCTETS)).expect("put");
    }
    let meta = std::fs::metadata(&kek_path).expect("kek exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&kek_path).expect("read");
    assert_eq!(text.trim_end().len(), 64);
    assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        std::fs::metadata(&data)
            .expect("data dir")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    // Reopened with the same file: the same key opens the MSK, and the file is unchanged.
    let store = SqliteStore::open_with_kek_file(&data, &kek_path).expect("reopen");
    assert_eq!(
        store.msk(KD, MskId::new(1, 1)).expect("read"),
        Some(msk_record(1, MSK_OCTETS))
    );
    assert_eq!(std::fs::read_to_string(&kek_path).expect("read"), text);
    assert_eq!(
        load_or_create_kek(&kek_path).expect("load"),
        StateKey::from_hex(text.trim_end()).expect("hex")
    );
}

#[test]
fn kek_files_given_by_the_operator_may_be_raw_or_hex_but_not_garbage() {
    let dir = TempDir::new("kek-forms");
    let raw = dir.path().join("raw");
    write_0600(&raw, &[0x42; 32]);
    assert_eq!(
        load_or_create_kek(&raw).expect("raw"),
        StateKey::from_bytes([0x42; 32])
    );
    let hex = dir.path().join("hex");
    write_0600(&hex, format!("{}\r\n", "42".repeat(32)).as_bytes());
    assert_eq!(
        load_or_create_kek(&hex).expect("hex"),
        StateKey::from_bytes([0x42; 32])
    );
    let bad = dir.path().join("bad");
    write_0600(&bad, b"not a key");
    let err = load_or_create_kek(&bad).expect_err("garbage");
    assert!(matches!(err, StoreError::Kek { .. }), "{err}");
    assert!(!err.to_string().contains("not a key\""));
}

#[test]
fn a_wrong_kek_opens_no_key() {
    let dir = TempDir::new("wrong-kek");
    open(&dir).put_msk(&msk_record(1, MSK_OCTETS)).expect("put");
    // Refused at open, by the check value recorded when the store was created.
    let err = SqliteStore::open(dir.path(), StateKey::from_bytes([0x5b; 32])).expect_err("open");
    assert!(
        matches!(&err, StoreError::WrongKek { kek_file: None, .. }),
        "{err}"
    );
    // Without the check value (removed by hand), the sealed MSK itself refuses the key, and
    // nothing is recorded under it.
    {
        let conn = rusqlite::Connection::open(dir.path().join("bmsc.sqlite")).expect("raw");
        conn.execute("DELETE FROM kek_check", []).expect("delete");
    }
    let err = SqliteStore::open(dir.path(), StateKey::from_bytes([0x5b; 32])).expect_err("open");
    assert!(matches!(&err, StoreError::WrongKek { .. }), "{err}");
    assert_eq!(kek_check_rows(&dir), 0);
    // The right key still opens everything.
    assert_eq!(
        open(&dir).msk(KD, MskId::new(1, 1)).expect("read"),
        Some(msk_record(1, MSK_OCTETS))
    );
}

#[test]
fn the_database_files_hold_no_key_octets() {
    let dir = TempDir::new("grep");
    let mut msk = msk_record(1, MSK_OCTETS);
    msk.current_mtk = Some(CurrentMtk {
        id: MtkId(1),
        mtk: Mtk::from_bytes(MTK_OCTETS),
        salt: Some(Salt::from_bytes(SALT_OCTETS)),
    });
    let check = |when: &str| {
        let files = db_files(&dir);
        assert!(!files.is_empty());
        for (path, bytes) in files {
            for (name, secret) in [
                ("MSK", &MSK_OCTETS[..]),
                ("MTK", &MTK_OCTETS[..]),
                ("salt", &SALT_OCTETS[..]),
                ("Ks_NAF", &KS_NAF_OCTETS[..]),
                ("KEK", &[0x5a; 32][..]),
            ] {
                assert!(
                    !contains(&bytes, secret),
                    "{when}: {name} in clear in {}",
                    path.display()
                );
                // Also no hex rendering of them.
                assert!(
                    !contains(&bytes, hex::encode(secret).as_bytes()),
                    "{when}: {name} as hex in {}",
                    path.display()
                );
            }
        }
    };
    {
        let store = open(&dir);
        store.put_msk(&msk).expect("put");
        store
            .cache_keys(&gba_keys("a@bsf", at(2_000_000_000)))
            .expect("cache");
        // The WAL holds the pages now.
        let wal = dir.path().join("bmsc.sqlite-wal");
        assert!(
            std::fs::metadata(&wal)
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        );
        check("while open");
        assert_eq!(store.msk(KD, msk.msk_id).expect("read"), Some(msk.clone()));
    }
    check("after close");
}

#[test]
fn a_sealed_msk_moved_to_another_row_does_not_open() {
    let dir = TempDir::new("move-msk");
    {
        let store = open(&dir);
        store.put_msk(&msk_record(1, MSK_OCTETS)).expect("put");
        store.put_msk(&msk_record(2, [7; 16])).expect("put");
    }
    {
        let conn = rusqlite::Connection::open(dir.path().join("bmsc.sqlite")).expect("raw");
        conn.execute(
            "UPDATE msks SET sealed = (SELECT sealed FROM msks WHERE msk_id = ?1) WHERE msk_id = ?2",
            [MskId::new(1, 1).to_u32(), MskId::new(1, 2).to_u32()],
        )
        .expect("move");
    }
    let store = open(&dir);
    assert_eq!(
        store.msk(KD, MskId::new(1, 1)).expect("untouched"),
        Some(msk_record(1, MSK_OCTETS))
    );
    let err = store.msk(KD, MskId::new(1, 2)).expect_err("moved");
    assert!(matches!(err, StoreError::Corrupt { what: "MSK", .. }));
    assert!(err.to_string().contains("00f110/00010002"), "{err}");
    assert!(store.msks_of_group(KD, 1).is_err());
}

#[test]
fn sealed_gba_keys_are_bound_to_their_btid_and_expiry() {
    let dir = TempDir::new("move-gba");
    {
        let store = open(&dir);
        store
            .cache_keys(&gba_keys("a@bsf", at(1_000)))
            .expect("cache");
        store
            .cache_keys(&gba_keys("b@bsf", at(1_000)))
            .expect("cache");
    }
    {
        let conn = rusqlite::Connection::open(dir.path().join("bmsc.sqlite")).expect("raw");
        conn.execute(
            "UPDATE gba_key_cache SET sealed = (SELECT sealed FROM gba_key_cache WHERE btid = 'a@bsf') \
             WHERE btid = 'b@bsf'",
            [],
        )
        .expect("move");
        // Extending the lifetime in the database alone is detected too.
        conn.execute(
            "UPDATE gba_key_cache SET expires_at = expires_at * 2 WHERE btid = 'a@bsf'",
            [],
        )
        .expect("extend");
    }
    let store = open(&dir);
    assert!(matches!(
        store.cached_keys("b@bsf", at(0)),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.cached_keys("a@bsf", at(0)),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn a_database_from_a_newer_program_is_refused() {
    let dir = TempDir::new("schema");
    drop(open(&dir));
    {
        let conn = rusqlite::Connection::open(dir.path().join("bmsc.sqlite")).expect("raw");
        conn.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (99, 0)",
            [],
        )
        .expect("bump");
    }
    match SqliteStore::open(dir.path(), kek()) {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported: 2,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn the_database_runs_in_wal_mode_with_full_sync() {
    let dir = TempDir::new("pragmas");
    let store = open(&dir);
    store.register(&reg(1, "news")).expect("register");
    let conn = rusqlite::Connection::open(store.path()).expect("raw");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
}

#[test]
fn store_errors_carry_no_key_material() {
    let dir = TempDir::new("errors");
    let store = open(&dir);
    store.put_msk(&msk_record(1, MSK_OCTETS)).expect("put");
    drop(store);
    let wrong = StateKey::from_bytes([1; 32]);
    let err = SqliteStore::open(dir.path(), wrong).expect_err("wrong kek");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&hex::encode(MSK_OCTETS)));
    assert!(!text.contains(&hex::encode([1u8; 32])), "{text}");
    assert!(!text.contains("195, 94, 145"), "{text}");
}

/// A store with one MSK, created through its KEK file `<dir>/secrets/kek`; the data dir.
fn store_with_kek_file(dir: &TempDir) -> (PathBuf, PathBuf) {
    let (data, kek_path) = (dir.path().join("data"), dir.path().join("secrets/kek"));
    SqliteStore::open_with_kek_file(&data, &kek_path)
        .expect("create")
        .put_msk(&msk_record(1, MSK_OCTETS))
        .expect("put");
    (data, kek_path)
}

#[test]
fn a_missing_kek_for_an_existing_store_is_refused_and_not_created() {
    let dir = TempDir::new("kek-missing");
    let (data, _) = store_with_kek_file(&dir);
    // A wrong MBMS_KEK_FILE: a path where there is no key.
    let elsewhere = dir.path().join("typo/kek");
    let err = SqliteStore::open_with_kek_file(&data, &elsewhere).expect_err("refused");
    match &err {
        StoreError::KekMissing { path, store } => {
            assert_eq!(path, &elsewhere);
            assert_eq!(store, &data.join("bmsc.sqlite"));
        }
        other => panic!("expected KekMissing, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&elsewhere.display().to_string()),
        "{err}"
    );
    assert!(
        !elsewhere.exists(),
        "a KEK was created for an existing store"
    );
    assert!(!dir.path().join("typo").exists());
}

#[test]
fn a_kek_is_created_with_a_new_database_only() {
    let dir = TempDir::new("kek-new");
    let (data, kek_path) = (dir.path().join("data"), dir.path().join("kek"));
    // A new store: the KEK is created with it.
    drop(SqliteStore::open_with_kek_file(&data, &kek_path).expect("create"));
    assert!(kek_path.exists());
    // An empty database file (a start that stopped before creating the schema) is still new.
    let data2 = dir.path().join("data2");
    std::fs::create_dir(&data2).expect("mkdir");
    std::fs::write(data2.join("bmsc.sqlite"), b"").expect("empty db");
    let kek2 = dir.path().join("kek2");
    drop(SqliteStore::open_with_kek_file(&data2, &kek2).expect("create"));
    assert!(kek2.exists());
    // An existing store without any MSK yet is not new: its KEK is not replaced either.
    std::fs::remove_file(&kek2).expect("remove");
    let err = SqliteStore::open_with_kek_file(&data2, &kek2).expect_err("refused");
    assert!(matches!(err, StoreError::KekMissing { .. }), "{err}");
    assert!(!kek2.exists());
}

#[test]
fn a_kek_that_does_not_open_the_store_is_refused() {
    let dir = TempDir::new("kek-wrong-file");
    let (data, kek_path) = store_with_kek_file(&dir);
    let other = dir.path().join("other-kek");
    write_0600(&other, "5b".repeat(32).as_bytes());
    let err = SqliteStore::open_with_kek_file(&data, &other).expect_err("refused");
    match &err {
        StoreError::WrongKek { kek_file, .. } => assert_eq!(kek_file.as_ref(), Some(&other)),
        other => panic!("expected WrongKek, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&other.display().to_string()),
        "{err}"
    );
    // The right one still opens it.
    assert!(
        SqliteStore::open_with_kek_file(&data, &kek_path)
            .expect("reopen")
            .msk(KD, MskId::new(1, 1))
            .expect("read")
            .is_some()
    );
}

#[test]
fn a_kek_open_to_group_or_others_is_refused() {
    let dir = TempDir::new("kek-mode");
    let (data, kek_path) = store_with_kek_file(&dir);
    for mode in [0o640, 0o604, 0o620, 0o644] {
        std::fs::set_permissions(&kek_path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let err = SqliteStore::open_with_kek_file(&data, &kek_path).expect_err("refused");
        match &err {
            StoreError::KekPermissions { path, mode: m } => {
                assert_eq!(path, &kek_path);
                assert_eq!(*m, mode);
            }
            other => panic!("expected KekPermissions, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("chmod 600") && text.contains(&format!("mode {mode:04o}")),
            "{text}"
        );
        assert!(matches!(
            mbms_keys::bmsc::store::kek::read_kek(&kek_path),
            Err(StoreError::KekPermissions { .. })
        ));
    }
    // 0400 (a read-only secret mount) is accepted.
    std::fs::set_permissions(&kek_path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    drop(SqliteStore::open_with_kek_file(&data, &kek_path).expect("0400 opens"));
}

#[test]
fn a_store_from_before_the_check_value_records_it_once_its_keys_open() {
    let dir = TempDir::new("kek-migrate");
    open(&dir).put_msk(&msk_record(1, MSK_OCTETS)).expect("put");
    // Back to schema version 1: no check value.
    {
        let conn = rusqlite::Connection::open(dir.path().join("bmsc.sqlite")).expect("raw");
        conn.execute_batch("DROP TABLE kek_check; DELETE FROM schema_version WHERE version = 2;")
            .expect("downgrade");
    }
    let wrong = StateKey::from_bytes([0x5b; 32]);
    let err = SqliteStore::open(dir.path(), wrong.clone()).expect_err("wrong key");
    assert!(matches!(err, StoreError::WrongKek { .. }), "{err}");
    // Refused in the migration's transaction: still version 1, no check value.
    let version: i64 = rusqlite::Connection::open(dir.path().join("bmsc.sqlite"))
        .expect("raw")
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 1);
    // The right key migrates and records the check value; the wrong one is then refused by it.
    assert_eq!(open(&dir).schema_version().expect("version"), 2);
    assert_eq!(kek_check_rows(&dir), 1);
    {
        let conn = rusqlite::Connection::open(dir.path().join("bmsc.sqlite")).expect("raw");
        conn.execute("DELETE FROM msks", []).expect("empty");
    }
    let err = SqliteStore::open(dir.path(), wrong).expect_err("check value");
    assert!(matches!(err, StoreError::WrongKek { .. }), "{err}");
}

#[test]
fn a_read_only_open_creates_nothing() {
    let dir = TempDir::new("ro-fresh");
    let (data, kek_path) = (dir.path().join("data"), dir.path().join("data/kek"));
    let err = SqliteStore::open_read_only(&data, &kek_path).expect_err("no store");
    match &err {
        StoreError::NoStore { path } => assert_eq!(path, &data.join("bmsc.sqlite")),
        other => panic!("expected NoStore, got {other:?}"),
    }
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // An existing store whose KEK file is missing: refused, no KEK created.
    let (data, kek_path) = store_with_kek_file(&dir);
    let elsewhere = dir.path().join("nokek");
    let err = SqliteStore::open_read_only(&data, &elsewhere).expect_err("no kek");
    assert!(matches!(err, StoreError::KekMissing { .. }), "{err}");
    assert!(!elsewhere.exists());

    // An existing store: read, never written. SQLite may open its WAL index files (-wal,
    // -shm) beside the database, but writes nothing to them, and nothing else appears.
    let wal_files = |l: BTreeSet<(PathBuf, u64)>| -> BTreeSet<(PathBuf, u64)> {
        l.into_iter()
            .filter(|(p, _)| !p.to_string_lossy().ends_with("-shm"))
            .filter(|(p, len)| !(p.to_string_lossy().ends_with("-wal") && *len == 0))
            .collect()
    };
    let before = listing(dir.path());
    let db_before = std::fs::read(data.join("bmsc.sqlite")).expect("db");
    let store = SqliteStore::open_read_only(&data, &kek_path).expect("read-only");
    assert!(store.msk(KD, MskId::new(1, 1)).expect("read").is_some());
    assert!(store.register(&reg(1, "news")).is_err());
    assert!(store.raise_counter_ceiling(5).is_err());
    drop(store);
    assert_eq!(wal_files(listing(dir.path())), wal_files(before));
    assert_eq!(
        std::fs::read(data.join("bmsc.sqlite")).expect("db"),
        db_before
    );
}

#[test]
fn a_read_only_open_refuses_a_wrong_kek_and_does_not_migrate() {
    let dir = TempDir::new("ro-old");
    let (data, kek_path) = store_with_kek_file(&dir);
    let db = data.join("bmsc.sqlite");
    let other = dir.path().join("other-kek");
    write_0600(&other, "5b".repeat(32).as_bytes());
    let err = SqliteStore::open_read_only(&data, &other).expect_err("wrong");
    assert!(matches!(err, StoreError::WrongKek { .. }), "{err}");
    {
        let conn = rusqlite::Connection::open(&db).expect("raw");
        conn.execute_batch("DROP TABLE kek_check; DELETE FROM schema_version WHERE version = 2;")
            .expect("downgrade");
    }
    // A version 1 store is read as it is, still checked against its sealed MSK.
    let store = SqliteStore::open_read_only(&data, &kek_path).expect("read-only");
    assert!(store.msk(KD, MskId::new(1, 1)).expect("read").is_some());
    assert_eq!(store.schema_version().expect("version"), 1);
    drop(store);
    assert!(matches!(
        SqliteStore::open_read_only(&data, &other),
        Err(StoreError::WrongKek { .. })
    ));
}

/// Run with `cargo test --release --test bmsc_store -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: one million registrations"]
fn one_million_registrations_insert_and_stream() {
    const N: u32 = 1_000_000;
    let dir = TempDir::new("million");
    let store = open(&dir);
    let regs: Vec<_> = (0..N).map(|i| reg(i, "news")).collect();
    let t = Instant::now();
    store.register_many(&regs).expect("bulk");
    let insert = t.elapsed();
    drop(regs);
    let t = Instant::now();
    let mut n = 0u32;
    for m in members_of_service(&store, "news", 10_000) {
        m.expect("row");
        n += 1;
    }
    let stream = t.elapsed();
    assert_eq!(n, N);
    let t = Instant::now();
    let count = store.count_registrations_by_service().expect("count");
    let count_time = t.elapsed();
    assert_eq!(count.get("news"), Some(&u64::from(N)));
    let size: u64 = db_files(&dir).iter().map(|(_, b)| b.len() as u64).sum();
    eprintln!(
        "1,000,000 registrations: register_many {insert:?}, stream (pages of 10,000) {stream:?}, \
         count {count_time:?}, database files {} MB",
        size / 1_000_000
    );
}

#[test]
fn msk_states_of_group_match_the_records_without_opening_keys() {
    let dir = TempDir::new("msk-states");
    let store = open(&dir);
    let mut current = msk_record(2, MSK_OCTETS);
    current.state = MskState::Current;
    let mut retired = msk_record(1, MSK_OCTETS);
    retired.state = MskState::Retired;
    let mut other_group = msk_record(3, MSK_OCTETS);
    other_group.msk_id = MskId::new(2, 3);
    for r in [&msk_record(3, MSK_OCTETS), &current, &retired, &other_group] {
        store.put_msk(r).expect("put");
    }
    let states = store.msk_states_of_group(KD, 1).expect("states");
    assert_eq!(
        states,
        vec![
            (MskId::new(1, 1), MskState::Retired),
            (MskId::new(1, 2), MskState::Current),
            (MskId::new(1, 3), MskState::Next),
        ]
    );
    let from_records: Vec<_> = store
        .msks_of_group(KD, 1)
        .expect("records")
        .into_iter()
        .map(|m| (m.msk_id, m.state))
        .collect();
    assert_eq!(states, from_records);
    // With the sealed keys made unreadable, the records no longer open but the states still
    // read: the states never open a key.
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("bmsc.sqlite")).expect("raw");
    conn.execute("UPDATE msks SET sealed = x'00'", [])
        .expect("corrupt the sealed keys");
    drop(conn);
    let reopened = SqliteStore::open(dir.path(), kek()).expect("open");
    assert!(reopened.msks_of_group(KD, 1).is_err());
    assert_eq!(reopened.msk_states_of_group(KD, 1).expect("states"), states);
}
