//! lighttpd (Debian's `lighttpd`, mod_auth + mod_authn_file) serving static files under HTTP
//! Digest: the independent Digest server of the Key Request client's interop tests, and the
//! peer `bench http` measures the BM-SC against. Found on `PATH`; the process is killed and
//! its directory removed when the guard drops (also on panic, after printing its error log).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;

use crate::{TempDir, find_on_path, free_port};

/// How the Debian package is installed, for skip messages.
pub const INSTALL_HINT: &str = "apt-get install --no-install-recommends lighttpd";

/// What lighttpd serves and how it authenticates.
pub struct Site<'a> {
    /// The Digest algorithm: `"SHA-256"` or `"MD5"` (lighttpd does `qop=auth` only).
    pub algorithm: &'a str,
    /// The Digest realm.
    pub realm: &'a str,
    /// The htdigest users: (username, password).
    pub users: &'a [(String, String)],
    /// The path prefix that requires Digest (`"/"` for everything).
    pub protected: &'a str,
    /// The files served: (path under the document root, content).
    pub files: &'a [(&'a str, &'a str)],
    /// The Content-Type of every file, if not lighttpd's default.
    pub content_type: Option<&'a str>,
}

/// A running lighttpd.
pub struct Lighttpd {
    child: Child,
    dir: TempDir,
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
}

/// The lighttpd binary on `PATH`.
pub fn find() -> Option<PathBuf> {
    find_on_path("lighttpd")
}

/// HA1 = H(user:realm:password) in hex, computed with the hash crates directly (not the
/// project's Digest code, which the peer is there to check).
pub fn ha1(algorithm: &str, user: &str, realm: &str, password: &str) -> Result<String, String> {
    let data = format!("{user}:{realm}:{password}");
    match algorithm {
        "SHA-256" => Ok(hex::encode(sha2::Sha256::digest(data.as_bytes()))),
        "MD5" => Ok(
            digest_auth::Algorithm::new(digest_auth::AlgorithmType::MD5, false)
                .hash(data.as_bytes()),
        ),
        other => Err(format!("lighttpd: algorithm {other} not supported")),
    }
}

impl Lighttpd {
    /// Starts lighttpd on 127.0.0.1 serving `site`, and waits until it accepts connections.
    pub fn start(site: &Site<'_>) -> Result<Self, String> {
        let exe = find().ok_or_else(|| format!("lighttpd not on PATH ({INSTALL_HINT})"))?;
        let dir = TempDir::try_new("lighttpd").map_err(|e| format!("lighttpd directory: {e}"))?;
        let root = dir.path().join("www");
        for (path, body) in site.files {
            let file = root.join(path.trim_start_matches('/'));
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&file, body).map_err(|e| format!("{}: {e}", file.display()))?;
        }
        let mut users = String::new();
        for (user, password) in site.users {
            let ha1 = ha1(site.algorithm, user, site.realm, password)?;
            let _ = writeln!(users, "{user}:{}:{ha1}", site.realm);
        }
        let userfile = dir.path().join("htdigest");
        std::fs::write(&userfile, users).map_err(|e| e.to_string())?;
        let port = free_port();
        let mut conf = format!(
            r#"server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.modules = ("mod_auth", "mod_authn_file")
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 60
server.errorlog = "{log}"
auth.backend = "htdigest"
auth.backend.htdigest.userfile = "{userfile}"
auth.require = ("{protected}" => ("method" => "digest", "algorithm" => "{algorithm}", "realm" => "{realm}", "require" => "valid-user"))
"#,
            root = root.display(),
            log = dir.path().join("error.log").display(),
            userfile = userfile.display(),
            protected = site.protected,
            algorithm = site.algorithm,
            realm = site.realm,
        );
        if let Some(t) = site.content_type {
            let _ = writeln!(conf, "mimetype.assign = (\"\" => \"{t}\")");
        }
        let conf_path = dir.path().join("lighttpd.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .arg("-D")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting lighttpd: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut this = Self {
            child,
            dir,
            addr,
            base_url: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(this);
            }
            if let Ok(Some(status)) = this.child.try_wait() {
                return Err(format!(
                    "lighttpd exited with {status}: {}",
                    this.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "lighttpd did not listen on {addr}: {}",
            this.error_log()
        ))
    }

    /// lighttpd's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("lighttpd error.log:\n{}", self.error_log());
        }
    }
}
