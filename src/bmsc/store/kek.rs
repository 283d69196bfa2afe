//! The key-encryption key (KEK) of the store: 32 random octets in a file of its own, apart
//! from the database, so a copy of the database alone reveals no key.
//!
//! The file is created on first start with mode 0600 (the directory, when created, 0700) and
//! holds 64 hex digits and a newline; a file given by the operator may also hold the 32 raw
//! octets. A file readable by group or others is used, with a warning: secret mounts of
//! container platforms are often 0644 and refusing them would only push operators to weaker
//! workarounds.

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

/// Reads an existing KEK file.
///
/// # Errors
/// As [`load_or_create_kek`].
pub fn read_kek(path: &Path) -> Result<StateKey, StoreError> {
    let mut file = File::open(path).map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(kek_err(path, "not a regular file"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "the key-encryption key file is readable by group or others; chmod 600 it"
        );
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
