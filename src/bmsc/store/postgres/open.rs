//! Opening the PostgreSQL store: its runtime, the client configuration (with the password
//! from the environment or its file), the node's advisory lock, migrations, the KEK check and
//! the pool; or a read-only open for `bmsc status`.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use zeroize::Zeroizing;

use std::sync::Arc;

use super::cluster::Ownership;
use super::{PostgresStore, StoreRuntime, db, run_on, schema};
use crate::bmsc::config::{Password, PostgresConfig};
use crate::bmsc::store::StoreError;
use crate::bmsc::store::batch::GroupCommitLimits;
use crate::bmsc::store::kek::{load_or_create_kek, read_kek};
use crate::crypto::StateKey;

/// How long a connection attempt may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a query waits for a pooled connection before failing.
const POOL_WAIT: Duration = Duration::from_secs(30);

fn password_err(path: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::PasswordFile {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Reads `password_file`: mode 0600 or stricter (as the KEK), its first line.
fn read_password_file(path: &Path) -> Result<Password, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(password_err(path, "not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(password_err(
            path,
            format!("has mode {mode:04o}, open to group or others: chmod 600 it"),
        ));
    }
    if meta.len() > 4096 {
        return Err(password_err(path, "too long for a password"));
    }
    let mut content = Zeroizing::new(Vec::new());
    file.read_to_end(&mut content).map_err(io)?;
    let text = std::str::from_utf8(&content).map_err(|_| password_err(path, "not UTF-8"))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(password_err(path, "is empty"));
    }
    Ok(Password::new(line.to_owned()))
}

/// The client configuration of `config`: its URL, the password (`$MBMS_PG_PASSWORD` over
/// `password_file`), an application name and a connect timeout unless the URL sets them.
fn client_config(
    config: &PostgresConfig,
    read_only: bool,
) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg: tokio_postgres::Config = config
        .url
        .parse()
        .map_err(|e| StoreError::Backend(format!("store URL: {e}")))?;
    let password = match (&config.password, &config.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(file)) => Some(read_password_file(file)?),
        (None, None) => None,
    };
    if let Some(p) = &password {
        pg.password(p.expose());
    }
    if pg.get_application_name().is_none() {
        pg.application_name("mbms-keys bmsc");
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT_TIMEOUT);
    }
    if read_only {
        // Every transaction of a read-only store is refused writes by the server itself.
        add_option(&mut pg, "-c default_transaction_read_only=on");
    }
    Ok(pg)
}

/// Adds a server option (`-c name=value`) to the connections of `pg`.
fn add_option(pg: &mut tokio_postgres::Config, option: &str) {
    let options = match pg.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {option}"),
        _ => option.to_owned(),
    };
    pg.options(&options);
}

/// Connections of the bookkeeping pool ([`PostgresStore`]'s `relaxed`).
const RELAXED_POOL_SIZE: usize = 2;

/// docs/profile.md §6 \[CHOICE\] "fan-out bookkeeping commits": the pool of the statements
/// whose loss in a crash of the database server costs only pushes sent again (claims, lease
/// renewals and marks of fan-out work items, recorded acknowledgements): their commits do not
/// wait for the WAL flush (`synchronous_commit = off`; the server still writes them within
/// its WAL writer delay, and a crash never leaves a torn state, only an older one).
fn relaxed_pool(pg: &tokio_postgres::Config) -> Result<Pool, StoreError> {
    let mut pg = pg.clone();
    add_option(&mut pg, "-c synchronous_commit=off");
    pool(pg, RELAXED_POOL_SIZE)
}

fn runtime() -> Result<StoreRuntime, StoreError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bmsc-pg")
        .enable_all()
        .build()
        .map(|rt| StoreRuntime(Some(rt)))
        .map_err(|e| StoreError::Backend(format!("cannot start the store's runtime: {e}")))
}

fn pool(pg: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Backend(format!("connection pool: {e}")))
}

/// A dedicated connection, its driver spawned on the current (the store's) runtime.
pub(super) async fn connect(
    pg: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = pg.connect(NoTls).await.map_err(|e| db(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "the store's dedicated database connection ended");
        }
    });
    Ok(client)
}

/// The KEK of an existing store: a missing file is [`StoreError::KekMissing`], never created.
fn read_existing_kek(kek_file: &Path, store: &str) -> Result<StateKey, StoreError> {
    read_kek(kek_file).map_err(|e| match e {
        StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            StoreError::KekMissing {
                path: kek_file.to_owned(),
                store: PathBuf::from(store),
            }
        }
        other => other,
    })
}

impl PostgresStore {
    /// Opens the store in the database of `config`, creating its schema when the database has
    /// none, with the KEK read from `kek_file` — or created there when the database holds no
    /// store yet, and only then. Several BM-SC nodes may open one database (each with a copy of
    /// the KEK file): the connection that runs the migrations stays open as the node's
    /// ownership connection (MSK group locks, `postgres/cluster.rs`). Runs the migrations under
    /// the migration lock and checks the KEK against the store's check value (recorded when
    /// missing). Call it from a blocking thread.
    ///
    /// # Errors
    /// [`StoreError::KekMissing`],
    /// [`StoreError::WrongKek`], [`StoreError::KekPermissions`], [`StoreError::PasswordFile`],
    /// [`StoreError::SchemaTooNew`], [`StoreError::Backend`] when the database cannot be
    /// reached or refuses.
    pub fn open(config: &PostgresConfig, kek_file: &Path) -> Result<Self, StoreError> {
        let pg = client_config(config, false)?;
        let rt = runtime()?;
        let handle = rt.handle()?;
        let url = config.url.clone();
        let session_pg = pg.clone();
        let ownership_pg = pg.clone();
        let (session, new) = run_on(&handle, async move {
            let session = connect(&session_pg).await?;
            // Held until the migrations are committed: a second node starting at the same
            // time waits here, then finds the schema (and the KEK check value) in place.
            session
                .execute("SELECT pg_advisory_lock($1)", &[&schema::MIGRATION_LOCK])
                .await
                .map_err(|e| db(&e))?;
            let new = schema::is_new(&session).await?;
            Ok((session, new))
        })?;
        let kek = if new {
            load_or_create_kek(kek_file)?
        } else {
            read_existing_kek(kek_file, &url)?
        };
        let wrong = StoreError::WrongKek {
            store: PathBuf::from(&url),
            kek_file: Some(kek_file.to_owned()),
        };
        let key = kek.clone();
        let session = run_on(&handle, async move {
            let mut session = session;
            schema::migrate(&mut session, &key, wrong).await?;
            session
                .execute("SELECT pg_advisory_unlock($1)", &[&schema::MIGRATION_LOCK])
                .await
                .map_err(|e| db(&e))?;
            Ok(session)
        })?;
        let relaxed = relaxed_pool(&pg)?;
        let pool = pool(pg, config.pool_size)?;
        let mut store = Self {
            url,
            kek,
            pool,
            relaxed,
            registrations: None,
            session: Some(Arc::new(Ownership::new(ownership_pg, session))),
            runtime: rt,
        };
        store.registrations = Some(store.registration_writer(GroupCommitLimits::default())?);
        Ok(store)
    }

    /// Opens an existing store without changing anything: no schema, KEK or lock; every
    /// transaction of its connections is read-only on the server. What `bmsc status` reads
    /// through, beside running BM-SCs.
    ///
    /// # Errors
    /// [`StoreError::NoStore`] when the database holds no store, [`StoreError::KekMissing`],
    /// [`StoreError::WrongKek`], [`StoreError::KekPermissions`], [`StoreError::SchemaTooNew`],
    /// [`StoreError::Backend`].
    pub fn open_read_only(config: &PostgresConfig, kek_file: &Path) -> Result<Self, StoreError> {
        let pg = client_config(config, true)?;
        let url = config.url.clone();
        let kek = read_existing_kek(kek_file, &url)?;
        let rt = runtime()?;
        let pool = pool(pg, 2)?;
        let (p, key) = (pool.clone(), kek.clone());
        let no_store = StoreError::NoStore {
            path: PathBuf::from(&url),
        };
        let wrong = StoreError::WrongKek {
            store: PathBuf::from(&url),
            kek_file: Some(kek_file.to_owned()),
        };
        run_on(&rt.handle()?, async move {
            let client = p.get().await.map_err(|e| super::pool_err(&e))?;
            schema::check_read_only(&**client, &key, no_store, wrong).await
        })?;
        Ok(Self {
            url,
            kek,
            relaxed: pool.clone(),
            pool,
            registrations: None,
            session: None,
            runtime: rt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::add_option;

    #[test]
    fn server_options_are_appended_to_those_of_the_url() {
        let mut pg: tokio_postgres::Config = "postgres://bmsc@127.0.0.1/keys".parse().expect("url");
        add_option(&mut pg, "-c synchronous_commit=off");
        assert_eq!(pg.get_options(), Some("-c synchronous_commit=off"));
        let mut pg: tokio_postgres::Config =
            "postgres://bmsc@127.0.0.1/keys?options=-c%20work_mem%3D4MB"
                .parse()
                .expect("url");
        add_option(&mut pg, "-c synchronous_commit=off");
        add_option(&mut pg, "-c default_transaction_read_only=on");
        assert_eq!(
            pg.get_options(),
            Some("-c work_mem=4MB -c synchronous_commit=off -c default_transaction_read_only=on")
        );
    }
}
