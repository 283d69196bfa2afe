//! The KMS client's key store (docs/mcx.md §10): a directory of sealed files, one per KMS
//! certificate and one per (KMS, user, key period) key material, each AES-256-GCM under the
//! store key ([`crate::crypto::at_rest::seal_with`]) with its file name bound as associated
//! data, so a file renamed or copied over another does not open.
//!
//! | file | content |
//! |---|---|
//! | `home.cert` | the certificate of the KMS the client was initialised with (`init`) |
//! | `cert-<h>.cert` | a certificate of a KmsCertCache, `h` = first 16 octets of SHA-256(KmsUri), hex |
//! | `keys-<h>.key` | key material, `h` = first 16 octets of SHA-256(KmsUri ‖ 0 ‖ UserUri ‖ 0 ‖ KeyPeriodNo), hex |
//!
//! The store key is 32 octets in a file of its own (64 hex digits or the raw octets), by
//! default `store.key` in the directory, created 0600 with the directory (0700) when neither
//! exists; a key file open to group or others is refused.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroizing;

use super::check::{KeyMaterial, key_period_no};
use crate::crypto::StateKey;
use crate::crypto::at_rest::{open_with, seal_with};
use crate::kms::messages::KmsCertificate;

mod codec;
use codec::{Fields, decode_certificate, decode_material, encode_certificate, encode_material};

/// Associated-data label of every sealed file (the file name follows it).
const AD_LABEL: &[u8] = b"mbms-keys kms-client store v1 ";

/// The default key file name inside the store directory.
pub const KEY_FILE: &str = "store.key";

/// Largest stored file read (a key set is under 1 KiB sealed).
const MAX_FILE_LEN: u64 = 64 * 1024;

/// A store failure. Never carries key material.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-octet key.
    #[error("{path}: {problem}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key file may be read by group or others.
    #[error("{path}: mode {mode:o} lets group or others read the store key (chmod 600)")]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A stored file does not open under the store key, or is not in the store's format.
    #[error("{path}: does not open under the store key, or is damaged")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a store key file: 64 hex digits (white space around allowed) or the 32 raw octets,
/// mode without group or other bits.
///
/// # Errors
/// [`StoreError::Io`] (`NotFound` when there is none), [`StoreError::KeyPermissions`],
/// [`StoreError::KeyFile`].
pub fn read_key_file(path: &Path) -> Result<StateKey, StoreError> {
    let file = fs::File::open(path).map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(StoreError::KeyFile {
            path: path.to_owned(),
            problem: "not a regular file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(StoreError::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(1024).read_to_end(&mut bytes).map_err(io(path))?;
    let bad = || StoreError::KeyFile {
        path: path.to_owned(),
        problem: "expected 64 hex digits or 32 octets".into(),
    };
    if bytes.len() == 32 {
        return StateKey::from_slice(&bytes).map_err(|_| bad());
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    StateKey::from_hex(text.trim()).map_err(|_| bad())
}

/// Creates a key file with a fresh key, mode 0600; fails if it exists.
fn create_key_file(path: &Path) -> Result<StateKey, StoreError> {
    let key = StateKey::try_random().map_err(|e| StoreError::KeyFile {
        path: path.to_owned(),
        problem: format!("no randomness: {e}"),
    })?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    let text = Zeroizing::new(format!("{}\n", hex::encode(key.as_bytes())));
    f.write_all(text.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(key)
}

fn short_hash(parts: &[&[u8]]) -> String {
    let h = crate::crypto::sha256(parts);
    hex::encode(h.get(..16).unwrap_or(&h))
}

/// The client's sealed key store.
pub struct ClientStore {
    dir: PathBuf,
    key: StateKey,
}

impl std::fmt::Debug for ClientStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStore")
            .field("dir", &self.dir)
            .field("key", &self.key)
            .finish()
    }
}

impl ClientStore {
    /// A store in `dir` sealed under `key`; the directory is created (0700) when missing.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created.
    pub fn open(dir: &Path, key: StateKey) -> Result<Self, StoreError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            key,
        })
    }

    /// A store in `dir` whose key is read from `key_file` (by default `dir/store.key`). When
    /// neither the directory nor the key file exist, both are created, the key fresh and 0600;
    /// a key file missing beside an existing directory that holds sealed files is refused (a new
    /// key would not open them).
    ///
    /// # Errors
    /// [`StoreError`] for the directory or the key file.
    pub fn open_with_key_file(dir: &Path, key_file: Option<&Path>) -> Result<Self, StoreError> {
        let default = dir.join(KEY_FILE);
        let key_path = key_file.unwrap_or(&default);
        let key = match read_key_file(key_path) {
            Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                let has_files = fs::read_dir(dir).is_ok_and(|mut d| {
                    d.any(|e| {
                        e.is_ok_and(|e| {
                            let n = e.file_name();
                            let n = n.to_string_lossy();
                            n.ends_with(".cert") || n.ends_with(".key") && n != KEY_FILE
                        })
                    })
                });
                if has_files {
                    return Err(StoreError::KeyFile {
                        path: key_path.to_owned(),
                        problem: "missing, and the store holds sealed files".into(),
                    });
                }
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io(dir))?;
                create_key_file(key_path)?
            }
            other => other?,
        };
        Self::open(dir, key)
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn aad(name: &str) -> Vec<u8> {
        [AD_LABEL, name.as_bytes()].concat()
    }

    fn write(&self, name: &str, plain: &Fields) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let blob = seal_with(&self.key, &Self::aad(name), &plain.0);
        crate::files::write_atomic(&path, &blob).map_err(io(&path))?;
        // The file holds only sealed octets; 0600 all the same.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(io(&path))
    }

    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let path = self.dir.join(name);
        let f = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut blob = Vec::new();
        f.take(MAX_FILE_LEN + 1)
            .read_to_end(&mut blob)
            .map_err(io(&path))?;
        if blob.len() as u64 > MAX_FILE_LEN {
            return Err(StoreError::Corrupt { path });
        }
        open_with(&self.key, &Self::aad(name), &blob)
            .map(Some)
            .map_err(|_| StoreError::Corrupt { path })
    }

    fn cert_name(kms_uri: &str) -> String {
        format!("cert-{}.cert", short_hash(&[kms_uri.as_bytes()]))
    }

    fn keys_name(kms_uri: &str, user_uri: &str, period_no: u64) -> String {
        format!(
            "keys-{}.key",
            short_hash(&[
                kms_uri.as_bytes(),
                &[0],
                user_uri.as_bytes(),
                &[0],
                &period_no.to_be_bytes()
            ])
        )
    }

    fn read_certificate(&self, name: &str) -> Result<Option<KmsCertificate>, StoreError> {
        match self.read(name)? {
            None => Ok(None),
            Some(b) => decode_certificate(&b).map(Some).ok_or(StoreError::Corrupt {
                path: self.dir.join(name),
            }),
        }
    }

    /// The certificate of the KMS the client was initialised with (the fields the client
    /// uses: KmsUri, UserIdFormat, UserKeyPeriod, UserKeyOffset, PubEncKey, PubAuthKey,
    /// ParameterSet).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn home_certificate(&self) -> Result<Option<KmsCertificate>, StoreError> {
        self.read_certificate("home.cert")
    }

    /// A certificate by its KmsUri (the home KMS's, or one from a KmsCertCache).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn certificate(&self, kms_uri: &str) -> Result<Option<KmsCertificate>, StoreError> {
        match self.home_certificate()? {
            Some(c) if c.kms_uri == kms_uri => Ok(Some(c)),
            _ => self.read_certificate(&Self::cert_name(kms_uri)),
        }
    }

    /// Stores a checked KmsInit certificate as the home KMS's.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn put_home_certificate(&self, c: &KmsCertificate) -> Result<(), StoreError> {
        self.write("home.cert", &encode_certificate(c))
    }

    /// Stores a checked certificate of a KmsCertCache.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn put_certificate(&self, c: &KmsCertificate) -> Result<(), StoreError> {
        self.write(&Self::cert_name(&c.kms_uri), &encode_certificate(c))
    }

    /// Stores validated key material.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn put_key_material(&self, m: &KeyMaterial) -> Result<(), StoreError> {
        self.write(
            &Self::keys_name(&m.kms_uri, &m.user_uri, m.key_period_no),
            &encode_material(m),
        )
    }

    /// The verified key material of `user_uri` for key period `period_no` of the KMS
    /// `kms_uri`: SSK, PVT, RSK, KPAK, Z and the UID, for MIKEY-SAKKE.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn key_material_of(
        &self,
        kms_uri: &str,
        user_uri: &str,
        period_no: u64,
    ) -> Result<Option<KeyMaterial>, StoreError> {
        let name = Self::keys_name(kms_uri, user_uri, period_no);
        match self.read(&name)? {
            None => Ok(None),
            Some(b) => match decode_material(&b) {
                Some(m)
                    if m.kms_uri == kms_uri
                        && m.user_uri == user_uri
                        && m.key_period_no == period_no =>
                {
                    Ok(Some(m))
                }
                _ => Err(StoreError::Corrupt {
                    path: self.dir.join(name),
                }),
            },
        }
    }

    /// The key material of `user_uri` for key period `period_no` of the home KMS.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn key_material(
        &self,
        user_uri: &str,
        period_no: u64,
    ) -> Result<Option<KeyMaterial>, StoreError> {
        match self.home_certificate()? {
            None => Ok(None),
            Some(c) => self.key_material_of(&c.kms_uri, user_uri, period_no),
        }
    }

    /// The key material of `user_uri` for the home KMS's key period holding `unix_secs`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn key_material_at(
        &self,
        user_uri: &str,
        unix_secs: u64,
    ) -> Result<Option<KeyMaterial>, StoreError> {
        let Some(c) = self.home_certificate()? else {
            return Ok(None);
        };
        match key_period_no(unix_secs, c.user_key_period, c.user_key_offset) {
            None => Ok(None),
            Some(n) => self.key_material_of(&c.kms_uri, user_uri, n),
        }
    }

    /// The names of the sealed files (certificates and key material), sorted.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn entries(&self) -> Result<Vec<String>, StoreError> {
        let mut v: Vec<String> = fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cert") || (n.ends_with(".key") && n != KEY_FILE))
            .collect();
        v.sort();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ibe::{ECCSI_POINT_LEN, Rsk, SAKKE_POINT_LEN, Ssk};

    fn material() -> KeyMaterial {
        KeyMaterial {
            user_uri: "sip:alice@example.org".into(),
            kms_uri: "kms.example.org".into(),
            user_key_period: 2_592_000,
            user_key_offset: 0,
            key_period_no: 1516,
            uid: [1; 32],
            ssk: Ssk::from_bytes([2; 32]),
            pvt: [3; ECCSI_POINT_LEN],
            rsk: Rsk::from_bytes([4; SAKKE_POINT_LEN]),
            kpak: [5; ECCSI_POINT_LEN],
            z: [6; SAKKE_POINT_LEN],
        }
    }

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mbms-kmsstore-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn key_material_round_trips_sealed_and_a_moved_file_does_not_open() {
        let dir = temp("rt");
        let s = ClientStore::open_with_key_file(&dir, None).unwrap();
        let m = material();
        s.put_key_material(&m).unwrap();
        assert_eq!(
            s.key_material_of("kms.example.org", "sip:alice@example.org", 1516)
                .unwrap(),
            Some(m.clone())
        );
        assert_eq!(
            s.key_material_of("kms.example.org", "sip:alice@example.org", 1517)
                .unwrap(),
            None
        );
        let name = s.entries().unwrap().remove(0);
        let blob = fs::read(dir.join(&name)).unwrap();
        // No key octets in clear on disk.
        assert!(!blob.windows(32).any(|w| w == [2u8; 32]));
        // Copied under another period's name: refused.
        let other = ClientStore::keys_name("kms.example.org", "sip:alice@example.org", 1517);
        fs::write(dir.join(&other), &blob).unwrap();
        assert!(matches!(
            s.key_material_of("kms.example.org", "sip:alice@example.org", 1517),
            Err(StoreError::Corrupt { .. })
        ));
        // Reopened with the same key file: still there; the key file is 0600.
        let s2 = ClientStore::open_with_key_file(&dir, None).unwrap();
        assert!(
            s2.key_material_of("kms.example.org", "sip:alice@example.org", 1516)
                .unwrap()
                .is_some()
        );
        let mode = fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_prints_the_secret_keys_or_the_store_key() {
        let d = format!("{:?}", material());
        assert!(!d.contains(&hex::encode([2u8; 32])) && !d.contains("[2, 2, 2"));
        assert!(!d.contains(&hex::encode([4u8; 8])) && !d.contains("[4, 4, 4"));
        assert!(
            d.contains("Ssk([REDACTED])") && d.contains("Rsk([REDACTED])"),
            "{d}"
        );
        let dir = temp("dbg");
        let s = ClientStore::open(&dir, StateKey::from_bytes([9; 32])).unwrap();
        assert!(format!("{s:?}").contains("StateKey([REDACTED])"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_open_key_file_is_refused() {
        let dir = temp("key");
        let s = ClientStore::open_with_key_file(&dir, None).unwrap();
        s.put_key_material(&material()).unwrap();
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            ClientStore::open_with_key_file(&dir, None),
            Err(StoreError::KeyPermissions { .. })
        ));
        fs::remove_file(dir.join(KEY_FILE)).unwrap();
        assert!(matches!(
            ClientStore::open_with_key_file(&dir, None),
            Err(StoreError::KeyFile { .. })
        ));
        let wrong = ClientStore::open(&dir, StateKey::from_bytes([9; 32])).unwrap();
        assert!(matches!(
            wrong.key_material_of("kms.example.org", "sip:alice@example.org", 1516),
            Err(StoreError::Corrupt { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
