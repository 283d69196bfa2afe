//! Debian's `freeDiameterd` as the BSF of the Zn tests and of `bench zn`: our extension
//! `tools/bsf-zn/bsf_zn.fdx` answers Bootstrapping-Info-Requests from a subscriber file with the
//! TS 33.220 Annex B derivation, written in C against `libfreediameter-dev` and GnuTLS, so that
//! its keys are an implementation independent of the project's `gba` module.
//!
//! [`extension`] builds the extension once per process (`make -C tools/bsf-zn`, output under
//! the workspace's `target/bsf-zn/`); [`Bsf::start`] writes a self-signed certificate (which
//! freeDiameter requires even for plain TCP), the `acl_wl` whitelist, the subscriber file and the
//! daemon configuration into a temporary directory, starts `freeDiameterd -c` on a free port and
//! waits for `daemon initialized`. The daemon is stopped (SIGTERM, then SIGKILL) when the guard
//! drops, and can be stopped, restarted on the same port, frozen (SIGSTOP) and thawed.
//!
//! [`available`] follows the oracle rule: when freeDiameterd, make, a C compiler, openssl or the
//! freeDiameter headers are missing, tests skip, or fail under `MBMS_REQUIRE_ORACLES=1`.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{TempDir, find_on_path, free_port, oracle};

/// How the Debian packages are installed, for skip messages.
pub const INSTALL_HINT: &str = "apt-get install freediameterd freediameter-extensions \
     libfreediameter-dev libgnutls28-dev gcc make openssl pkg-config";

/// Debian's whitelist extension, which admits our plain-TCP client.
pub const ACL_WL: &str = "/usr/lib/freeDiameter/acl_wl.fdx";

/// The header the extension is compiled against.
pub const HEADER: &str = "/usr/include/freeDiameter/extension.h";

/// One line of the subscriber file: what the BSF holds after a UE bootstrapped.
#[derive(Clone)]
pub struct Subscriber {
    /// The B-TID (the Transaction-Identifier the BIR must carry).
    pub btid: String,
    /// The IMPI (returned as User-Name, an input of the derivation).
    pub impi: String,
    /// Ks = CK ‖ IK.
    pub ks: [u8; 32],
    /// The RAND of the bootstrapping run.
    pub rand: [u8; 16],
    /// A GBA_U subscription (ME key Ks_ext_NAF, UICC key Ks_int_NAF for a GBA_U-aware NAF).
    pub gba_u: bool,
    /// Answer Experimental-Result 5402 (not authorized) instead of keys.
    pub not_authorized: bool,
    /// Key-ExpiryTime in Unix seconds; `None` takes the file's default lifetime.
    pub expires: Option<u64>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("btid", &self.btid)
            .field("impi", &self.impi)
            .field("ks", &"<redacted>")
            .field("gba_u", &self.gba_u)
            .field("not_authorized", &self.not_authorized)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// A GBA_ME subscriber with the default lifetime.
    pub fn me(btid: &str, impi: &str, ks: [u8; 32], rand: [u8; 16]) -> Self {
        Self {
            btid: btid.to_owned(),
            impi: impi.to_owned(),
            ks,
            rand,
            gba_u: false,
            not_authorized: false,
            expires: None,
        }
    }

    /// The subscriber file line.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} {} {} {}",
            self.btid,
            self.impi,
            hex::encode(self.ks),
            hex::encode(self.rand)
        );
        if self.gba_u {
            line.push_str(" gba_u");
        }
        if self.not_authorized {
            line.push_str(" not_authorized");
        }
        if let Some(t) = self.expires {
            let _ = write!(line, " expires={t}");
        }
        line
    }
}

/// What the BSF is and whom it serves.
#[derive(Clone, Debug)]
pub struct BsfConfig {
    /// Its Diameter identity (Origin-Host of its answers).
    pub identity: String,
    /// Its realm: the Destination-Realm the client must send (freeDiameter relays others).
    pub realm: String,
    /// `acl_wl` patterns of the clients admitted over plain TCP (`*.naf.test`).
    pub allowed_peers: Vec<String>,
    /// The subscribers.
    pub subscribers: Vec<Subscriber>,
    /// Default key lifetime in seconds (the extension's default is 3600).
    pub lifetime: Option<u64>,
    /// Lines appended to the subscriber file as they are (for tests of its parser).
    pub raw_lines: Vec<String>,
}

impl BsfConfig {
    /// `bsf.<realm>` in `realm`, admitting every host of `client_domain`.
    pub fn new(realm: &str, client_domain: &str, subscribers: Vec<Subscriber>) -> Self {
        Self {
            identity: format!("bsf.{realm}"),
            realm: realm.to_owned(),
            allowed_peers: vec![format!("*.{client_domain}")],
            subscribers,
            lifetime: None,
            raw_lines: Vec::new(),
        }
    }
}

/// Whether everything the BSF needs is installed; if not, [`oracle::missing`] (skip, or panic
/// under `MBMS_REQUIRE_ORACLES=1`) and `false`.
pub fn available() -> bool {
    let mut missing = Vec::new();
    for program in ["freeDiameterd", "make", "openssl"] {
        if find_on_path(program).is_none() {
            missing.push(program.to_owned());
        }
    }
    if find_on_path("cc").is_none() && find_on_path("gcc").is_none() {
        missing.push("cc".to_owned());
    }
    for file in [HEADER, ACL_WL] {
        if !Path::new(file).is_file() {
            missing.push(file.to_owned());
        }
    }
    if missing.is_empty() {
        return true;
    }
    oracle::missing(
        &format!("freeDiameterd BSF ({} missing)", missing.join(", ")),
        INSTALL_HINT,
    );
    false
}

/// The workspace root (the lab crate's parent directory).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The extension's sources.
pub fn source_dir() -> PathBuf {
    workspace().join("tools").join("bsf-zn")
}

/// Builds `bsf_zn.fdx` (once per process) and returns its absolute path. The build goes to a
/// private directory and is renamed into `target/bsf-zn/`, so parallel test processes never
/// load a half-written file.
pub fn extension() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build_extension).clone()
}

fn build_extension() -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), PathBuf::from)
        .join("bsf-zn");
    let scratch = target.join(format!("build-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(source_dir())
        .arg(format!("O={}", scratch.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running make: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "make -C tools/bsf-zn failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let fdx = target.join("bsf_zn.fdx");
    std::fs::rename(scratch.join("bsf_zn.fdx"), &fdx)
        .map_err(|e| format!("installing {}: {e}", fdx.display()))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(fdx)
}

/// The daemon's output, shared with the thread that reads it.
#[derive(Default)]
struct Log {
    text: Mutex<String>,
    changed: Condvar,
}

/// A running (or stopped, or frozen) freeDiameterd BSF.
pub struct Bsf {
    child: Option<Child>,
    frozen: bool,
    log: Arc<Log>,
    dir: TempDir,
    conf: PathBuf,
    config: BsfConfig,
    /// The TCP port it listens on (all interfaces, see docs/oracles.md; clients use 127.0.0.1).
    pub port: u16,
}

impl Bsf {
    /// Writes the files and starts freeDiameterd on a free port.
    pub fn start(config: &BsfConfig) -> Result<Self, String> {
        Self::start_on(config, free_port())
    }

    /// Writes the files and starts freeDiameterd on `port`.
    pub fn start_on(config: &BsfConfig, port: u16) -> Result<Self, String> {
        let fdx = extension()?;
        let dir = TempDir::try_new("bsf").map_err(|e| format!("BSF directory: {e}"))?;
        let d = dir.path();
        let (cert, key) = (d.join("bsf.cert.pem"), d.join("bsf.key.pem"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            ])
            .arg("-subj")
            .arg(format!("/CN={}", config.identity))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl req failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let acl = d.join("acl_wl.conf");
        let acl_text: String = config
            .allowed_peers
            .iter()
            .map(|p| format!("ALLOW_IPSEC {p}\n"))
            .collect();
        write(&acl, &acl_text)?;
        let subs = d.join("subscribers.conf");
        let mut subs_text = String::from("# B-TID IMPI KS RAND [options]\n");
        if let Some(l) = config.lifetime {
            let _ = writeln!(subs_text, "@lifetime {l}");
        }
        for line in config
            .subscribers
            .iter()
            .map(Subscriber::line)
            .chain(config.raw_lines.iter().cloned())
        {
            subs_text.push_str(&line);
            subs_text.push('\n');
        }
        write(&subs, &subs_text)?;
        let conf = d.join("freeDiameter-bsf.conf");
        write(
            &conf,
            &conf_text(config, port, &cert, &key, &acl, &fdx, &subs),
        )?;
        let mut this = Self {
            child: None,
            frozen: false,
            log: Arc::default(),
            dir,
            conf,
            config: config.clone(),
            port,
        };
        this.launch()?;
        Ok(this)
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &BsfConfig {
        &self.config
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The directory holding its files (configuration, subscriber file, certificate).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the daemon printed since the last (re)start.
    pub fn log(&self) -> String {
        self.log.text.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn launch(&mut self) -> Result<(), String> {
        let exe = find_on_path("freeDiameterd")
            .ok_or_else(|| format!("freeDiameterd not on PATH ({INSTALL_HINT})"))?;
        if let Ok(mut t) = self.log.text.lock() {
            t.clear();
        }
        let mut child = Command::new(exe)
            .arg("-c")
            .arg(&self.conf)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting freeDiameterd: {e}"))?;
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&self.log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut t) = log.text.lock() {
                        // bounded: a chatty daemon keeps only the last 1 MiB
                        if t.len() > 1 << 20 {
                            let cut = t.len() - (1 << 19);
                            let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
                            t.drain(..cut);
                        }
                        t.push_str(&line);
                        t.push('\n');
                    }
                    log.changed.notify_all();
                }
            });
        }
        self.child = Some(child);
        self.frozen = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut text = self.log.text.lock().map_err(|_| "log lock poisoned")?;
        loop {
            if text.contains("daemon initialized") {
                drop(text);
                return self.wait_listening(deadline);
            }
            drop(text);
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "freeDiameterd exited with {status}:\n{}",
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                let log = self.log();
                self.stop();
                return Err(format!("freeDiameterd did not initialize in 20 s:\n{log}"));
            }
            text = self.log.text.lock().map_err(|_| "log lock poisoned")?;
            text = self
                .log
                .changed
                .wait_timeout(text, Duration::from_millis(100))
                .map_err(|_| "log lock poisoned")?
                .0;
        }
    }

    /// Waits until the port accepts connections: under load, the daemon can say "initialized"
    /// a moment before its listening socket takes connections.
    fn wait_listening(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            if std::net::TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "freeDiameterd exited with {status}:\n{}",
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                let log = self.log();
                self.stop();
                return Err(format!(
                    "freeDiameterd did not listen on {}:\n{log}",
                    self.addr()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon: SIGTERM (it sends DPR to its peers), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.frozen {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
        }
        terminate(&mut child, Duration::from_secs(5));
    }

    /// Stops it if running, then starts it again on the same port with the same files.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        // the listening socket of the old process may linger for a moment
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline && e.contains("exited") => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// SIGSTOP: the daemon keeps its connections open but answers nothing (not even DWR).
    pub fn freeze(&mut self) -> Result<(), String> {
        let pid = self.pid().ok_or("freeDiameterd is not running")?;
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).map_err(|e| e.to_string())?;
        self.frozen = true;
        // The stop is delivered asynchronously: a thread running on the other core may still
        // answer a request sent right after kill(2) returns. Wait until every thread is stopped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            if Instant::now() >= deadline {
                return Err(format!(
                    "freeDiameterd ({pid}) not stopped 5 s after SIGSTOP"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// SIGCONT after [`freeze`](Self::freeze).
    pub fn thaw(&mut self) -> Result<(), String> {
        let pid = self.pid().ok_or("freeDiameterd is not running")?;
        kill(Pid::from_raw(pid as i32), Signal::SIGCONT).map_err(|e| e.to_string())?;
        self.frozen = false;
        Ok(())
    }
}

/// Whether every thread of process `pid` is in the stopped state (`T` in `/proc/PID/task/*/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        })
    })
}

impl Drop for Bsf {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("freeDiameterd log:\n{}", self.log());
        }
        self.stop();
    }
}

/// Ends `child` (one we started) with SIGTERM, or SIGKILL when it has not exited after `grace`;
/// reaps it either way.
pub fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The daemon configuration: plain TCP only (`SecPort = 0`, `No_SCTP`), the whitelist and our
/// extension loaded by absolute path (freeDiameter hands relative ones to dlopen).
fn conf_text(
    config: &BsfConfig,
    port: u16,
    cert: &Path,
    key: &Path,
    acl: &Path,
    fdx: &Path,
    subs: &Path,
) -> String {
    format!(
        r#"Identity = "{identity}";
Realm = "{realm}";
Port = {port};
SecPort = 0;
No_SCTP;
No_IPv6;
TLS_Cred = "{cert}", "{key}";
TLS_CA = "{cert}";
LoadExtension = "{acl_wl}" : "{acl}";
LoadExtension = "{fdx}" : "{subs}";
"#,
        identity = config.identity,
        realm = config.realm,
        cert = cert.display(),
        key = key.display(),
        acl_wl = ACL_WL,
        acl = acl.display(),
        fdx = fdx.display(),
        subs = subs.display(),
    )
}
