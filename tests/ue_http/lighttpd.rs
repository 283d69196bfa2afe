//! lighttpd (Debian `lighttpd`, mod_auth + mod_authn_file) as an independent Digest server.
//! The process is killed and its directory removed when the guard drops, also on panic.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::h;

/// The lighttpd binary, if installed.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("lighttpd"))
        .find(|p| p.is_file())
}

/// Skips (returns `None`) when lighttpd is absent, or panics if `MBMS_REQUIRE_ORACLES=1`.
pub fn require() -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        let required = std::env::var("MBMS_REQUIRE_ORACLES").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "MBMS_REQUIRE_ORACLES=1 and lighttpd is not installed \
             (apt-get install --no-install-recommends lighttpd)"
        );
        eprintln!(
            "SKIPPED: lighttpd not installed (apt-get install --no-install-recommends lighttpd); \
             set MBMS_REQUIRE_ORACLES=1 to make this a failure"
        );
    }
    found
}

/// A running lighttpd; dropping it kills the process and removes its files.
pub struct Lighttpd {
    child: Child,
    dir: PathBuf,
    pub base_url: String,
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("error.log"))
        {
            eprintln!("lighttpd error.log:\n{log}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

impl Lighttpd {
    /// Starts lighttpd on 127.0.0.1 requiring Digest (`algorithm`, lighttpd's qop=auth) for
    /// everything, with one htdigest user, serving `/keymanagement/{register,deregister,msk}`
    /// as static files whose content is `file_body`.
    pub fn start(
        bin: &Path,
        algorithm: &str,
        realm: &str,
        user: &str,
        password: &str,
        file_body: &str,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mbms-lighttpd-{}-{}-{}",
            std::process::id(),
            algorithm,
            crate::common::free_port()
        ));
        let www = dir.join("www").join("keymanagement");
        std::fs::create_dir_all(&www).expect("mkdir");
        for f in ["register", "deregister", "msk"] {
            write(&www.join(f), file_body);
        }
        let ha1 = h(algorithm, format!("{user}:{realm}:{password}").as_bytes());
        write(&dir.join("htdigest"), &format!("{user}:{realm}:{ha1}\n"));
        let port = crate::common::free_port();
        let conf = format!(
            "server.bind = \"127.0.0.1\"\n\
             server.port = {port}\n\
             server.document-root = \"{www}\"\n\
             server.errorlog = \"{log}\"\n\
             server.modules = (\"mod_auth\", \"mod_authn_file\")\n\
             mimetype.assign = (\"\" => \"application/mbms-msk-response+xml\")\n\
             auth.backend = \"htdigest\"\n\
             auth.backend.htdigest.userfile = \"{users}\"\n\
             auth.require = (\"/\" => (\"method\" => \"digest\", \"algorithm\" => \"{algorithm}\", \
             \"realm\" => \"{realm}\", \"require\" => \"valid-user\"))\n",
            www = dir.join("www").display(),
            log = dir.join("error.log").display(),
            users = dir.join("htdigest").display(),
        );
        write(&dir.join("lighttpd.conf"), &conf);
        let child = Command::new(bin)
            .arg("-D")
            .arg("-f")
            .arg(dir.join("lighttpd.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lighttpd");
        let mut me = Self {
            child,
            dir,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return me;
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                let log = std::fs::read_to_string(me.dir.join("error.log")).unwrap_or_default();
                panic!("lighttpd exited with {status}: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "lighttpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
