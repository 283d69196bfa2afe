//! The key-encryption key (KEK) of the store: 32 random octets in a file of its own, apart
//! from the database, so a copy of the database alone reveals no key.
//!
//! The file is created with mode 0600 (the directory, when created, 0700) together with a new,
//! empty database, and only then: for an existing store a missing file is refused
//! ([`StoreError::KekMissing`]), since a new key would not open it, and a key that does not
//! open the store's check value is refused too ([`StoreError::WrongKek`]). It holds 64 hex
//! digits and a newline; a file given by the operator may also hold the 32 raw octets.
//!
//! A file open to group or others is refused ([`StoreError::KekPermissions`]), not merely
//! warned about: the KEK opens every key the BM-SC ever stored, and a warning in a log nobody
//! reads protects nothing. Secret mounts of container platforms can be made 0400 or 0600
//! (Kubernetes `defaultMode: 0400`, Docker secrets `mode: 0400`), so the rule costs operators
//! one line of their deployment.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use super::StoreError;
use crate::crypto::StateKey;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn kek_err(path: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::Kek {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Reads the KEK at `path`, creating it (0600, fresh random octets) when there is no file.
///
/// Only for a store being created: [`super::SqliteStore::open_with_kek_file`] calls it for a
/// new, empty database and [`read_kek`] for an existing one.
///
/// # Errors
/// [`StoreError::Io`] when the file cannot be read or created, [`StoreError::Kek`] when its
/// content is not a key.
pub fn load_or_create_kek(path: &Path) -> Result<StateKey, StoreError> {
    match read_kek(path) {
        Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            match create_kek(path) {
                // Another process created it between our read and our create: use theirs.
                Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                    read_kek(path)
                }
                other => other,
            }
        }
        other => other,
    }
}

/// Reads an existing KEK file; creates nothing.
///
/// # Errors
/// [`StoreError::Io`] when the file cannot be read (`NotFound` when there is none),
/// [`StoreError::KekPermissions`] when group or others may access it, [`StoreError::Kek`] when
/// its content is not a key.
pub fn read_kek(path: &Path) -> Result<StateKey, StoreError> {
    let mut file = File::open(path).map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(kek_err(path, "not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    // [CHOICE] docs/profile.md §6 "KEK file permissions": any group or other bit is refused.
    if mode & 0o077 != 0 {
        return Err(StoreError::KekPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > 256 {
        return Err(kek_err(path, "too long for a key"));
    }
    let mut content = Zeroizing::new(Vec::with_capacity(80));
    file.read_to_end(&mut content).map_err(io(path))?;
    if content.len() == StateKey::LEN {
        return StateKey::from_slice(&content).map_err(|_| kek_err(path, "not a key"));
    }
    let text = std::str::from_utf8(&content)
        .map_err(|_| kek_err(path, "must hold 64 hex digits or 32 octets"))?;
    StateKey::from_hex(text.trim_end_matches(['\n', '\r']))
        .map_err(|_| kek_err(path, "must hold 64 hex digits or 32 octets"))
}

fn create_kek(path: &Path) -> Result<StateKey, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let key = StateKey::try_random().map_err(|e| kek_err(path, format!("no randomness: {e}")))?;
    let mut text = Zeroizing::new(hex::encode(key.as_bytes()));
    text.push('\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    // The umask cannot widen 0600, but an inherited ACL default could: set it explicitly.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io(path))?;
    file.write_all(text.as_bytes()).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the new directory entry durable too, or a crash could lose the key while the
        // database sealed under it survives.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    tracing::info!(path = %path.display(), "created a new key-encryption key");
    Ok(key)
}
