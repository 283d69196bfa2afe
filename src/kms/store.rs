//! The KMS store (docs/mcx.md §9.2): an embedded SQLite database `<data_dir>/kms.sqlite` with
//! the KMS master secrets (the ECCSI KSAK and the SAKKE z), made on first start, and the
//! registered clients (client-id, user URIs, TrK-ID and TrK, InK-ID and InK, mode).
//!
//! Every secret is sealed at rest with [`crate::crypto::at_rest::seal_with`] under the
//! deployment's key-encryption key, the same KEK file and format as the BM-SC store
//! ([`crate::bmsc::store::kek`]): created with a new store, and only then; for an existing store
//! a missing file is refused. The associated data names the format and the row (`ksak`, `z`,
//! `trk:<client-id>`, `ink:<client-id>`, and `new-trk:<client-id>`, `new-ink:<client-id>` for
//! keys staged by `kms rotate-client`), so a sealed value moved to another row does not open.
//!
//! The server and `kms add-client` may use the store at the same time (SQLite WAL, busy
//! timeout): a client added is served at its first request, with no restart.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use super::transport::{Mode, TransportKeys};
use super::{KeyId, Secret};
use crate::bmsc::store::StoreError;
use crate::bmsc::store::kek::{load_or_create_kek, read_kek};
use crate::crypto::StateKey;
use crate::crypto::at_rest::{open_with, seal_with};
use crate::ibe::{Ksak, SakkeMaster};

/// The database file's name inside `data_dir`.
pub const FILE_NAME: &str = "kms.sqlite";
/// The format label bound into every sealed value.
const AD_LABEL: &str = "mbms-keys kms-store v1";
/// Most user URIs one client may be registered for.
pub const MAX_USERS: usize = 64;

/// Why the store refused.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum KmsStoreError {
    /// The KEK file (missing, unreadable, open to others, not a key).
    #[error(transparent)]
    Kek(#[from] StoreError),
    /// The KEK does not open the store's master secrets.
    #[error("the key-encryption key {kek_file} does not open the store {store}")]
    WrongKek {
        /// The database.
        store: PathBuf,
        /// The KEK file.
        kek_file: PathBuf,
    },
    /// The database or its directory.
    #[error("KMS store: {0}")]
    Backend(String),
    /// A client-id or TrK-ID/InK-ID already registered.
    #[error("already registered: {0}")]
    Duplicate(String),
    /// A client registration that cannot be stored.
    #[error("invalid client: {0}")]
    InvalidClient(String),
    /// A stored value that does not decode.
    #[error("corrupt KMS store: {0}")]
    Corrupt(String),
    /// No randomness.
    #[error("no randomness available")]
    Random,
}

/// Opens (creating) `<data_dir>/<file_name>` as a database only its owner reads: the directory
/// mode 0700, the file 0600 (SQLite gives its WAL files the same mode), WAL with full sync, a
/// 30 s busy timeout. Sealed or not, the store is the service's alone. Shared by the KMS store and
/// the key relay's (`relay::store`).
pub(crate) fn open_private_db(data_dir: &Path, file_name: &str) -> Result<Connection, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let path = data_dir.join(file_name);
    let conn = Connection::open(&path).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

fn db(e: rusqlite::Error) -> KmsStoreError {
    KmsStoreError::Backend(e.to_string())
}

/// The KMS master secrets.
#[derive(Debug, Clone)]
pub struct MasterSecrets {
    /// ECCSI KSAK.
    pub ksak: Ksak,
    /// SAKKE z.
    pub z: SakkeMaster,
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its identifier.
    pub client_id: String,
    /// The MC service identities it may ask keys for.
    pub users: Vec<String>,
    /// Its TrK, InK and mode.
    pub keys: TransportKeys,
}

/// The store.
#[derive(Debug)]
pub struct KmsStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    kek: StateKey,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS master (
    name TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    users TEXT NOT NULL,
    trk_id INTEGER NOT NULL UNIQUE,
    trk BLOB NOT NULL,
    ink_id INTEGER UNIQUE,
    ink BLOB,
    mode TEXT NOT NULL CHECK (mode IN ('standard', 'bound'))
);
CREATE TABLE IF NOT EXISTS rotations (
    client_id TEXT PRIMARY KEY REFERENCES clients (client_id),
    trk_id INTEGER NOT NULL UNIQUE,
    trk BLOB NOT NULL,
    ink_id INTEGER UNIQUE,
    ink BLOB,
    staged_at INTEGER NOT NULL
);
";

/// What the TrK-ID of a request finds (docs/mcx.md §3.4).
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The client's current TrK; `offer` is its staged record, when a rotation is pending,
    /// to be delivered in KmsInit/KmsKeyProv.
    Current {
        /// The client, with its current keys.
        client: Client,
        /// The staged record (new TrK, and the new or the kept InK).
        offer: Option<TransportKeys>,
    },
    /// The staged TrK of a pending rotation: the client, with the staged keys. The switch is
    /// made by [`KmsStore::complete_rotation`] once the request is otherwise accepted.
    Staged(Client),
}

fn aad(row: &str) -> Vec<u8> {
    format!("{AD_LABEL}|{row}").into_bytes()
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Standard => "standard",
        Mode::Bound => "bound",
    }
}

impl KmsStore {
    /// Opens (creating when needed, directory mode 0700) the store in `data_dir`. A new store
    /// gets its master secrets and, when the file does not exist, its KEK at `kek_file`; an
    /// existing one needs the KEK it was made with.
    ///
    /// # Errors
    /// [`KmsStoreError`].
    pub fn open(data_dir: &Path, kek_file: &Path) -> Result<(Self, MasterSecrets), KmsStoreError> {
        let path = data_dir.join(FILE_NAME);
        let mut conn = open_private_db(data_dir, FILE_NAME).map_err(KmsStoreError::Backend)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        // One writer decides whether the masters exist: BEGIN IMMEDIATE.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let existing: i64 = tx
            .query_row("SELECT count(*) FROM master", [], |r| r.get(0))
            .map_err(db)?;
        let kek = if existing == 0 {
            let kek = load_or_create_kek(kek_file)?;
            let ksak =
                Ksak::generate(&mut crate::crypto::OsRandom).map_err(|_| KmsStoreError::Random)?;
            let z = SakkeMaster::generate(&mut crate::crypto::OsRandom)
                .map_err(|_| KmsStoreError::Random)?;
            for (name, value) in [("ksak", &ksak.as_bytes()[..]), ("z", &z.as_bytes()[..])] {
                tx.execute(
                    "INSERT INTO master (name, sealed) VALUES (?1, ?2)",
                    params![name, seal_with(&kek, &aad(name), value)],
                )
                .map_err(db)?;
            }
            tracing::info!(store = %path.display(), "created the KMS master secrets");
            kek
        } else {
            read_kek(kek_file).map_err(|e| match e {
                StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    StoreError::KekMissing {
                        path: kek_file.to_owned(),
                        store: path.clone(),
                    }
                    .into()
                }
                other => KmsStoreError::from(other),
            })?
        };
        tx.commit().map_err(db)?;
        let store = Self {
            path,
            conn: Mutex::new(conn),
            kek,
        };
        let masters = store.masters(kek_file)?;
        Ok((store, masters))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn masters(&self, kek_file: &Path) -> Result<MasterSecrets, KmsStoreError> {
        let conn = self.lock();
        let get = |name: &str| -> Result<zeroize::Zeroizing<Vec<u8>>, KmsStoreError> {
            let blob: Vec<u8> = conn
                .query_row("SELECT sealed FROM master WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .map_err(db)?;
            open_with(&self.kek, &aad(name), &blob).map_err(|_| KmsStoreError::WrongKek {
                store: self.path.clone(),
                kek_file: kek_file.to_owned(),
            })
        };
        let ksak = Ksak::from_slice(&get("ksak")?)
            .map_err(|_| KmsStoreError::Corrupt("KSAK length".into()))?;
        let z = SakkeMaster::from_slice(&get("z")?)
            .map_err(|_| KmsStoreError::Corrupt("z length".into()))?;
        Ok(MasterSecrets { ksak, z })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers a client.
    ///
    /// # Errors
    /// [`KmsStoreError::Duplicate`] for a client-id, TrK-ID or InK-ID already registered,
    /// [`KmsStoreError::InvalidClient`] for an empty id, no user or too many, a TrK or InK not
    /// of 32 octets.
    pub fn add_client(&self, client: &Client) -> Result<(), KmsStoreError> {
        let invalid = |m: &str| Err(KmsStoreError::InvalidClient(m.into()));
        if client.client_id.is_empty() || client.client_id.len() > 256 {
            return invalid("client-id must have 1 to 256 characters");
        }
        if client.users.is_empty() || client.users.len() > MAX_USERS {
            return invalid("a client needs 1 to 64 user URIs");
        }
        if client
            .users
            .iter()
            .any(|u| u.is_empty() || u.contains('\n'))
        {
            return invalid("a user URI is empty or has a line break");
        }
        let k = &client.keys;
        if k.trk.expose().len() != 32 || k.ink.as_ref().is_some_and(|(_, i)| i.expose().len() != 32)
        {
            return invalid("TrK and InK must be 32 octets");
        }
        let id = &client.client_id;
        let conn = self.lock();
        let ink_id = k.ink.as_ref().map(|(i, _)| i64::from(i.0));
        let ink = k
            .ink
            .as_ref()
            .map(|(_, i)| seal_with(&self.kek, &aad(&format!("ink:{id}")), i.expose()));
        // A TrK-ID must not equal another client's InK-ID either: the Signature-ID of a
        // response names one key.
        let trk_id = i64::from(k.trk_id.0);
        let clash = Self::ids_in_use(&conn, &[trk_id, ink_id.unwrap_or(trk_id)])?;
        if clash || ink_id == Some(trk_id) {
            return Err(KmsStoreError::Duplicate("TrK-ID or InK-ID".into()));
        }
        let r = conn.execute(
            "INSERT INTO clients (client_id, users, trk_id, trk, ink_id, ink, mode)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                client.users.join("\n"),
                i64::from(k.trk_id.0),
                seal_with(&self.kek, &aad(&format!("trk:{id}")), k.trk.expose()),
                ink_id,
                ink,
                mode_name(k.mode),
            ],
        );
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(KmsStoreError::Duplicate(format!("client-id {id}")))
            }
            Err(e) => Err(db(e)),
        }
    }

    /// IDs in use anywhere (clients' TrK/InK, staged TrK/InK) among `ids`.
    fn ids_in_use(conn: &Connection, ids: &[i64]) -> Result<bool, KmsStoreError> {
        for id in ids {
            let n: i64 = conn
                .query_row(
                    "SELECT (SELECT count(*) FROM clients WHERE trk_id = ?1 OR ink_id = ?1)
                          + (SELECT count(*) FROM rotations WHERE trk_id = ?1 OR ink_id = ?1)",
                    [id],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if n > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stages new transport keys for `client_id` (`kms rotate-client`): a new TrK-ID and TrK,
    /// and with `ink` a new InK-ID and InK (without, the client keeps its InK, if any), sealed
    /// under the KEK with their own associated data (`new-trk:<client-id>`,
    /// `new-ink:<client-id>`). The identifiers are unique across every client, current and
    /// staged.
    ///
    /// # Errors
    /// [`KmsStoreError::InvalidClient`] for an unknown client or a key not of 32 octets;
    /// [`KmsStoreError::Duplicate`] when an identifier is in use or a rotation is already
    /// pending for the client (\[CHOICE\] docs/mcx.md §3.4: one at a time, so a client that
    /// adopted the staged keys is never left with keys the KMS forgot).
    pub fn stage_rotation(
        &self,
        client_id: &str,
        trk: (KeyId, &Secret),
        ink: Option<(KeyId, &Secret)>,
        now: u64,
    ) -> Result<(), KmsStoreError> {
        if trk.1.expose().len() != 32 || ink.is_some_and(|(_, k)| k.expose().len() != 32) {
            return Err(KmsStoreError::InvalidClient(
                "TrK and InK must be 32 octets".into(),
            ));
        }
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let known: i64 = tx
            .query_row(
                "SELECT count(*) FROM clients WHERE client_id = ?1",
                [client_id],
                |r| r.get(0),
            )
            .map_err(db)?;
        if known == 0 {
            return Err(KmsStoreError::InvalidClient(format!(
                "no client {client_id}"
            )));
        }
        let pending: i64 = tx
            .query_row(
                "SELECT count(*) FROM rotations WHERE client_id = ?1",
                [client_id],
                |r| r.get(0),
            )
            .map_err(db)?;
        if pending > 0 {
            return Err(KmsStoreError::Duplicate(format!(
                "a rotation is pending for client {client_id}"
            )));
        }
        let trk_id = i64::from(trk.0.0);
        let ink_id = ink.map(|(id, _)| i64::from(id.0));
        if ink_id == Some(trk_id) || Self::ids_in_use(&tx, &[trk_id, ink_id.unwrap_or(trk_id)])? {
            return Err(KmsStoreError::Duplicate("TrK-ID or InK-ID".into()));
        }
        tx.execute(
            "INSERT INTO rotations (client_id, trk_id, trk, ink_id, ink, staged_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                client_id,
                trk_id,
                seal_with(
                    &self.kek,
                    &aad(&format!("new-trk:{client_id}")),
                    trk.1.expose()
                ),
                ink_id,
                ink.map(|(_, k)| seal_with(
                    &self.kek,
                    &aad(&format!("new-ink:{client_id}")),
                    k.expose()
                )),
                i64::try_from(now).unwrap_or(i64::MAX),
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// The staged record of `client` (its current keys in `client.keys`), if a rotation is
    /// pending: the new TrK, and the new InK or the current one.
    fn staged(&self, client: &Client) -> Result<Option<TransportKeys>, KmsStoreError> {
        type Row = (i64, Vec<u8>, Option<i64>, Option<Vec<u8>>);
        let id = &client.client_id;
        let row: Option<Row> = self
            .lock()
            .query_row(
                "SELECT trk_id, trk, ink_id, ink FROM rotations WHERE client_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((trk_id, trk, ink_id, ink)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| KmsStoreError::Corrupt(format!("{what} of client {id}"));
        let trk = open_with(&self.kek, &aad(&format!("new-trk:{id}")), &trk)
            .map_err(|_| corrupt("staged TrK"))?;
        let trk_id = u32::try_from(trk_id).map_err(|_| corrupt("staged TrK-ID"))?;
        let ink = match (ink_id, ink) {
            (Some(i), Some(blob)) => {
                let k = open_with(&self.kek, &aad(&format!("new-ink:{id}")), &blob)
                    .map_err(|_| corrupt("staged InK"))?;
                let i = u32::try_from(i).map_err(|_| corrupt("staged InK-ID"))?;
                Some((KeyId(i), Secret::new(k.to_vec())))
            }
            (None, None) => client.keys.ink.clone(),
            _ => return Err(corrupt("staged InK")),
        };
        Ok(Some(TransportKeys {
            trk_id: KeyId(trk_id),
            trk: Secret::new(trk.to_vec()),
            ink,
            mode: client.keys.mode,
        }))
    }

    /// What a request's TrK-ID finds: a client's current TrK (with its staged record, if a
    /// rotation is pending) or a client's staged TrK.
    ///
    /// # Errors
    /// [`KmsStoreError::Backend`], [`KmsStoreError::Corrupt`] when a sealed key does not open.
    pub fn lookup(&self, trk_id: KeyId) -> Result<Option<Lookup>, KmsStoreError> {
        if let Some(client) = self.client_by_trk_id(trk_id)? {
            let offer = self.staged(&client)?;
            return Ok(Some(Lookup::Current { client, offer }));
        }
        let owner: Option<String> = self
            .lock()
            .query_row(
                "SELECT client_id FROM rotations WHERE trk_id = ?1",
                [i64::from(trk_id.0)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        let Some(mut client) = self.client_by_id(&owner)? else {
            return Ok(None);
        };
        match self.staged(&client)? {
            Some(keys) if keys.trk_id == trk_id => {
                client.keys = keys;
                Ok(Some(Lookup::Staged(client)))
            }
            _ => Ok(None),
        }
    }

    /// Switches `client` (as [`Lookup::Staged`] gave it) to its staged keys: they become its
    /// current TrK/InK (resealed under their rows' associated data), the old TrK-ID and InK-ID
    /// are forgotten (\[CHOICE\] docs/mcx.md §3.4), and the rotation is done. Idempotent: a
    /// switch already made by a concurrent request is not an error.
    ///
    /// # Errors
    /// [`KmsStoreError::Backend`].
    pub fn complete_rotation(&self, client: &Client) -> Result<(), KmsStoreError> {
        let id = &client.client_id;
        let k = &client.keys;
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let deleted = tx
            .execute(
                "DELETE FROM rotations WHERE client_id = ?1 AND trk_id = ?2",
                params![id, i64::from(k.trk_id.0)],
            )
            .map_err(db)?;
        if deleted == 0 {
            return Ok(());
        }
        tx.execute(
            "UPDATE clients SET trk_id = ?2, trk = ?3, ink_id = ?4, ink = ?5 WHERE client_id = ?1",
            params![
                id,
                i64::from(k.trk_id.0),
                seal_with(&self.kek, &aad(&format!("trk:{id}")), k.trk.expose()),
                k.ink.as_ref().map(|(i, _)| i64::from(i.0)),
                k.ink.as_ref().map(|(_, i)| seal_with(
                    &self.kek,
                    &aad(&format!("ink:{id}")),
                    i.expose()
                )),
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::info!(client = %id, trk_id = %k.trk_id, "client switched to its new transport keys");
        Ok(())
    }

    /// The client registered as `client_id`, if any.
    ///
    /// # Errors
    /// [`KmsStoreError::Backend`], [`KmsStoreError::Corrupt`].
    pub fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, KmsStoreError> {
        let trk_id: Option<i64> = self
            .lock()
            .query_row(
                "SELECT trk_id FROM clients WHERE client_id = ?1",
                [client_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        match trk_id.map(u32::try_from) {
            None => Ok(None),
            Some(Ok(t)) => self.client_by_trk_id(KeyId(t)),
            Some(Err(_)) => Err(KmsStoreError::Corrupt(format!(
                "TrK-ID of client {client_id}"
            ))),
        }
    }

    /// The client registered with TrK-ID `trk_id`, if any.
    ///
    /// # Errors
    /// [`KmsStoreError::Backend`], [`KmsStoreError::Corrupt`] when a sealed key does not open.
    pub fn client_by_trk_id(&self, trk_id: KeyId) -> Result<Option<Client>, KmsStoreError> {
        type Row = (
            String,
            String,
            Vec<u8>,
            Option<i64>,
            Option<Vec<u8>>,
            String,
        );
        let row: Option<Row> = self
            .lock()
            .query_row(
                "SELECT client_id, users, trk, ink_id, ink, mode FROM clients WHERE trk_id = ?1",
                [i64::from(trk_id.0)],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()
            .map_err(db)?;
        let Some((client_id, users, trk, ink_id, ink, mode)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| KmsStoreError::Corrupt(format!("{what} of client {client_id}"));
        let trk = open_with(&self.kek, &aad(&format!("trk:{client_id}")), &trk)
            .map_err(|_| corrupt("TrK"))?;
        let ink = match (ink_id, ink) {
            (Some(id), Some(blob)) => {
                let k = open_with(&self.kek, &aad(&format!("ink:{client_id}")), &blob)
                    .map_err(|_| corrupt("InK"))?;
                let id = u32::try_from(id).map_err(|_| corrupt("InK-ID"))?;
                Some((KeyId(id), Secret::new(k.to_vec())))
            }
            (None, None) => None,
            _ => return Err(corrupt("InK")),
        };
        let mode = match mode.as_str() {
            "standard" => Mode::Standard,
            "bound" => Mode::Bound,
            _ => return Err(corrupt("mode")),
        };
        Ok(Some(Client {
            users: users.split('\n').map(str::to_owned).collect(),
            keys: TransportKeys {
                trk_id,
                trk: Secret::new(trk.to_vec()),
                ink,
                mode,
            },
            client_id,
        }))
    }
}
