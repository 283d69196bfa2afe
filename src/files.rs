//! Durable file replacement, for the UE state file and the BM-SC's MTK objects.

use std::io::{self, Write as _};
use std::path::Path;

/// Writes `bytes` to `path` so that a reader, or a start after a crash, sees the old file or the
/// whole new one: a temporary file `.<name>.tmp` in the same directory (created if missing),
/// written and synced, renamed over `path`, then the directory synced.
///
/// # Errors
/// The file system's error; `InvalidInput` when `path` names no file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn the_new_content_replaces_the_old_and_no_temporary_file_is_left() {
        let dir = std::env::temp_dir().join(format!("mbms-files-{}", std::process::id()));
        let path = dir.join("sub").join("state.bin");
        assert!(write_atomic(&path, b"first").is_ok());
        assert!(write_atomic(&path, b"second").is_ok());
        assert_eq!(std::fs::read(&path).ok(), Some(b"second".to_vec()));
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
            .unwrap_or_default();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_atomic(std::path::Path::new("/"), b"x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
