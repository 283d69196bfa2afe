//! Opening the SQLite store: read-write (locked, creating, migrating) or read-only.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::checkpoint::Checkpointer;
use super::writer::registration_writer;
use super::{READERS, SqliteStore, db, schema};
use crate::bmsc::store::batch::{GroupCommit, GroupCommitLimits};
use crate::bmsc::store::kek::{load_or_create_kek, read_kek};
use crate::bmsc::store::{Registration, StoreError, StoreLock};
use crate::crypto::StateKey;

pub(super) fn configure(conn: &Connection, reader: bool) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(db)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "cannot use WAL journal mode (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db)?;
    // Without the query planner stability guarantee, this build of SQLite (STAT4) re-prepares
    // a cached statement whenever a bound value changes, i.e. on nearly every call.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(db)?;
    if reader {
        conn.pragma_update(None, "query_only", true).map_err(db)?;
    } else {
        // The checkpoint runs on its own thread (`checkpoint.rs`), not inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(db)?;
    }
    Ok(())
}

fn wrong_kek(store: &Path, kek_file: Option<&Path>) -> impl Fn() -> StoreError + use<> {
    let (store, kek_file) = (store.to_owned(), kek_file.map(Path::to_owned));
    move || StoreError::WrongKek {
        store: store.clone(),
        kek_file: kek_file.clone(),
    }
}

/// The KEK of an existing store: a missing file is [`StoreError::KekMissing`], never created.
fn read_existing_kek(kek_file: &Path, store: &Path) -> Result<StateKey, StoreError> {
    read_kek(kek_file).map_err(|e| match e {
        StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            StoreError::KekMissing {
                path: kek_file.to_owned(),
                store: store.to_owned(),
            }
        }
        other => other,
    })
}

impl SqliteStore {
    /// Opens (creating when needed) the store in `data_dir`, with the KEK read from
    /// `kek_file` — or created there when the database is new and empty, and only then.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another BM-SC holds the store, [`StoreError::KekMissing`]
    /// when the store exists and the KEK file does not, [`StoreError::WrongKek`] when the KEK
    /// does not open the store, [`StoreError::KekPermissions`], and as [`SqliteStore::open`].
    pub fn open_with_kek_file(data_dir: &Path, kek_file: &Path) -> Result<Self, StoreError> {
        let (lock, path, writer) = Self::create_and_lock(data_dir)?;
        let kek = if schema::is_empty(&writer)? {
            load_or_create_kek(kek_file)?
        } else {
            read_existing_kek(kek_file, &path)?
        };
        Self::finish_open(lock, path, writer, kek, Some(kek_file))
    }

    /// Opens (creating when needed, directory mode 0700) the store in `data_dir`, taking its
    /// lock for the store's life, migrating the schema to the latest version and checking
    /// `kek` against the store's check value (recorded when missing).
    ///
    /// # Errors
    /// [`StoreError::Locked`], [`StoreError::WrongKek`], [`StoreError`] for an unusable
    /// directory or database, [`StoreError::SchemaTooNew`].
    pub fn open(data_dir: &Path, kek: StateKey) -> Result<Self, StoreError> {
        let (lock, path, writer) = Self::create_and_lock(data_dir)?;
        Self::finish_open(lock, path, writer, kek, None)
    }

    /// Opens an existing store without changing anything: no directory, database or KEK is
    /// created, no lock taken, no migration run; the connections are read-only, so every write
    /// fails. What `bmsc status` reads through, beside a running BM-SC. (SQLite may open the
    /// WAL index files `bmsc.sqlite-wal` and `-shm` of a stopped store; it writes nothing.)
    ///
    /// # Errors
    /// [`StoreError::NoStore`] when there is no database, [`StoreError::KekMissing`],
    /// [`StoreError::WrongKek`], [`StoreError::KekPermissions`], [`StoreError::SchemaTooNew`].
    pub fn open_read_only(data_dir: &Path, kek_file: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(Self::FILE_NAME);
        match std::fs::metadata(&path) {
            Ok(_) => {}
            // [CHOICE] docs/profile.md §6 "`bmsc status` without a store".
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoStore { path });
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        }
        let kek = read_existing_kek(kek_file, &path)?;
        let file = path.clone();
        let connect = move || -> Result<Connection, StoreError> {
            let c = Connection::open_with_flags(
                &file,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(db)?;
            c.busy_timeout(Duration::from_secs(30)).map_err(db)?;
            c.pragma_update(None, "query_only", true).map_err(db)?;
            Ok(c)
        };
        let writer = connect()?;
        let wrong = wrong_kek(&path, Some(kek_file));
        schema::check_read_only(&writer, &kek, &path, &wrong)?;
        let readers = (0..READERS)
            .map(|_| connect().map(Mutex::new))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self::assemble(
            path,
            Arc::new(Mutex::new(writer)),
            readers,
            kek,
            None,
            None,
            None,
        ))
    }

    /// The store over its opened connections; `checkpointer` and `lock` are `None` for a
    /// read-only open.
    fn assemble(
        path: PathBuf,
        writer: Arc<Mutex<Connection>>,
        readers: Vec<Mutex<Connection>>,
        kek: StateKey,
        checkpointer: Option<Checkpointer>,
        registrations: Option<GroupCommit<Registration, ()>>,
        lock: Option<StoreLock>,
    ) -> Self {
        Self {
            path,
            writer,
            readers,
            next_reader: AtomicUsize::new(0),
            kek,
            _lock: lock,
            registrations,
            checkpointer,
        }
    }

    fn create_and_lock(data_dir: &Path) -> Result<(StoreLock, PathBuf, Connection), StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|source| StoreError::Io {
                path: data_dir.to_owned(),
                source,
            })?;
        // Before the database is touched: a second BM-SC changes nothing.
        let lock = StoreLock::acquire(data_dir)?;
        let path = data_dir.join(Self::FILE_NAME);
        let writer = Connection::open(&path).map_err(db)?;
        Ok((lock, path, writer))
    }

    fn finish_open(
        lock: StoreLock,
        path: PathBuf,
        mut writer: Connection,
        kek: StateKey,
        kek_file: Option<&Path>,
    ) -> Result<Self, StoreError> {
        configure(&writer, false)?;
        schema::migrate(&mut writer, &kek, &wrong_kek(&path, kek_file))?;
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open(&path).map_err(db)?;
                configure(&c, true)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let writer = Arc::new(Mutex::new(writer));
        let checkpointer = Checkpointer::start(&path, Arc::clone(&writer))?;
        let registrations = registration_writer(&writer, GroupCommitLimits::default())?;
        Ok(Self::assemble(
            path,
            writer,
            readers,
            kek,
            Some(checkpointer),
            Some(registrations),
            Some(lock),
        ))
    }
}
