//! Several `bmsc serve` processes on one real PostgreSQL server behave as one BM-SC
//! (docs/cluster.md): UEs register with `curl --digest` spread over three nodes; a UE farm on
//! loopback verifies every MSK message under its MUK and every MTK message under its MSK; the
//! owner of the MSK group is killed with SIGKILL while a rotation is under way. Checked: the
//! rotation completes under the node that takes over, within the bound; every UE gets every
//! MSK, one key per MSK ID; one MTK per MTK ID whatever node sent it; no counter used twice; no
//! acknowledged registration lost. A non-owner killed with SIGKILL while it holds work items of
//! a shared MSK fan-out: the other nodes push its share again within two retransmission
//! intervals, every UE gets the MSK, several nodes sent, no counter used twice. Then
//! PostgreSQL restarted under a running cluster: 503 (registrations, MSK requests,
//! deregistrations) while it is down, nothing lost, service resumes by itself.
//!
//! Skipped without PostgreSQL or curl, failing then under `MBMS_REQUIRE_ORACLES=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::{PASSWORD, PgServer};
use mbms_keys::crypto::{KsNaf, Msk};
use mbms_keys::gba::{digest_password, mrk_gba_me, muk_gba_me};
use mbms_keys::mbms::keyreq::{
    MIME_DEREGISTER, MIME_MSK, MIME_REGISTER, MskRequest, PATH_DEREGISTER, PATH_MSK, PATH_REGISTER,
    RegisterRequest,
};
use mbms_keys::mbms::profile::csb_id_for;
use mbms_keys::mbms::{
    AckContext, KeyDomainId, MskId, MskUpdate, MtkId, MtkKeys, PreparedMuk, UnverifiedMsk,
    UnverifiedMtk, build_ack,
};
use mbms_lab::bmsc_config::{LabConfig, LabService, LabSubscriber};
use mbms_lab::{TempDir, free_port};

const SERVICE: &str = "urn:example:mbms:cluster";
const KEK: [u8; 32] = [0x6b; 32];

fn btid(i: usize) -> String {
    format!("ue{i:03}@bsf.example.org")
}

fn ks_naf(i: usize) -> [u8; 32] {
    let mut k = [0x21u8; 32];
    k[0] = u8::try_from(i & 0xff).expect("one octet");
    k[1] ^= u8::try_from(i >> 8).expect("fewer than 65536 UEs");
    k
}

/// What differs between the tests' nodes.
#[derive(Clone, Copy)]
struct NodeOpts {
    msk_lifetime: &'static str,
    /// `[push]` initial and most backoff.
    push_backoff: (&'static str, &'static str),
    /// `[push] retries`; `None`: the default.
    push_retries: Option<u32>,
    /// Lines of `[cluster]`.
    cluster: &'static str,
}

/// The nodes of the ownership and restart tests.
const NODE_OPTS: NodeOpts = NodeOpts {
    msk_lifetime: "6s",
    push_backoff: ("300ms", "1s"),
    push_retries: None,
    cluster: "takeover_after = \"1s\"\nfollow_interval = \"200ms\"\n",
};

/// A `bmsc serve` process writing its log to a file, killed when dropped.
struct Node {
    child: Child,
    log: PathBuf,
    http_port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(
        dir: &Path,
        name: &str,
        url: &str,
        ue_port: u16,
        mtk_sink: SocketAddr,
        ues: usize,
        opts: NodeOpts,
    ) -> Self {
        let http_port = free_port();
        let node_dir = dir.join(name);
        let data = node_dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        // Every node holds a copy of the deployment's KEK.
        let kek = data.join("kek");
        std::fs::write(&kek, hex::encode(KEK)).expect("kek");
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut c = LabConfig::new(
            "bmsc.example.org",
            data,
            ue_port,
            LabService {
                id: SERVICE.to_owned(),
                msk_lifetime: opts.msk_lifetime,
                mtk_interval: "1s",
                mtk_resend: "400ms",
                mtk_destination: mtk_sink,
            },
        );
        c.http_port = http_port;
        c.qop = Some("auth,auth-int");
        c.push_backoff = Some(opts.push_backoff);
        c.push_retries = opts.push_retries;
        c.subscribers = (0..ues)
            .map(|i| LabSubscriber {
                btid: btid(i),
                impi: format!("ue{i:03}@ims.example.org"),
                ks_naf: ks_naf(i),
            })
            .collect();
        let text = format!(
            "store = \"{url}\"\n{}\n[cluster]\n{}",
            c.to_toml(),
            opts.cluster
        );
        let config = node_dir.join("bmsc.toml");
        std::fs::write(&config, text).expect("config");
        let log = node_dir.join("log");
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
            .env_remove("MBMS_KEK_FILE")
            .env(
                "MBMS_LOG",
                std::env::var("MBMS_TEST_NODE_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .env("MBMS_PG_PASSWORD", PASSWORD)
            .args(["bmsc", "serve", "--config"])
            .arg(&config)
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("bmsc serve");
        let mut node = Self {
            child,
            log,
            http_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            if let Some(status) = node.child.try_wait().expect("try_wait") {
                panic!("{name} exited with {status}: {}", node.log_text());
            }
            assert!(Instant::now() < deadline, "{name} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn owns(&self) -> bool {
        let log = self.log_text();
        log.contains("this node owns the MSK group") || log.contains("took over the MSK group")
    }

    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

/// Registers UE `i` with `curl --digest` at `node`: the HTTP status.
fn register(curl: &Path, dir: &Path, node: &Node, i: usize) -> String {
    let body = RegisterRequest::register(&[SERVICE.to_owned()]).to_xml();
    request(curl, dir, node, i, PATH_REGISTER, MIME_REGISTER, &body)
}

/// Deregisters UE `i` with `curl --digest` at `node`: the HTTP status.
fn deregister(curl: &Path, dir: &Path, node: &Node, i: usize) -> String {
    let body = RegisterRequest::deregister(&[SERVICE.to_owned()]).to_xml();
    request(curl, dir, node, i, PATH_DEREGISTER, MIME_DEREGISTER, &body)
}

/// UE `i` asks `node` for the current MSK of the service's Key Group: the HTTP status.
fn msk_request(curl: &Path, dir: &Path, node: &Node, i: usize) -> String {
    let body = MskRequest::new(&[(KeyDomainId([0x00, 0xf1, 0x10]), MskId::new(1, 0))]).to_xml();
    request(curl, dir, node, i, PATH_MSK, MIME_MSK, &body)
}

/// One Key Request of UE `i` with `curl --digest` at `node`: the HTTP status.
fn request(
    curl: &Path,
    dir: &Path,
    node: &Node,
    i: usize,
    path: &str,
    mime: &str,
    body: &str,
) -> String {
    let file = dir.join(format!("body-{i}.xml"));
    std::fs::write(&file, body).expect("body");
    let password = digest_password(&mrk_gba_me(&KsNaf::from_bytes(ks_naf(i)))).to_string();
    let out = Command::new(curl)
        .args([
            "-s",
            "-S",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "--digest",
            "-u",
        ])
        .arg(format!("{}:{password}", btid(i)))
        .args(["-H", &format!("Content-Type: {mime}"), "--data-binary"])
        .arg(format!("@{}", file.display()))
        .args(["-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{}{path}", node.http_port))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One verified MSK message: its B-TID, MSK ID, key (a new key) and counter.
type MskSeen = (String, MskId, Option<[u8; 16]>, u32);

/// What the UE farm and the MTK sink received.
#[derive(Default)]
struct Seen {
    /// Distinct MSK messages (a retransmission repeats the bytes): (B-TID, MSK ID, key, counter).
    msk: HashMap<Vec<u8>, MskSeen>,
    /// Per B-TID, the counters of its distinct messages in order of first arrival.
    order: BTreeMap<String, Vec<u32>>,
    /// MSK messages that did not verify.
    bad: u64,
    /// Distinct MTK messages.
    mtk: BTreeSet<Vec<u8>>,
    /// Distinct MSK messages carrying a key, as they arrived: (B-TID, MSK ID, the sender's
    /// port, when, counter).
    arrivals: Vec<(String, u32, u16, Instant, u32)>,
    /// Acknowledgements the farm sent.
    acks: u64,
}

/// The UE farm: verifies every MSK message under its UE's MUK; the UEs with an even index
/// acknowledge the new keys when `ack` (docs/profile.md §2.2), the others never do.
fn farm(socket: UdpSocket, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>, ues: usize, ack: bool) {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let muks: HashMap<String, _> = (0..ues)
        .map(|i| (btid(i), muk_gba_me(&KsNaf::from_bytes(ks_naf(i)))))
        .collect();
    let acking: BTreeSet<String> = (0..ues).filter(|i| ack && i % 2 == 0).map(btid).collect();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let bytes = buf[..n].to_vec();
        let mut seen = seen.lock().expect("seen");
        if seen.msk.contains_key(&bytes) {
            continue;
        }
        let verified = UnverifiedMsk::parse(&bytes).ok().and_then(|m| {
            let b = String::from_utf8(m.idr().to_vec()).ok()?;
            let muk = muks.get(&b)?;
            Some((b, m.verify(muk).ok()?))
        });
        match verified {
            Some((b, m)) => {
                let key = match &m.update {
                    MskUpdate::NewKey { msk, .. } => Some(*msk.as_bytes()),
                    _ => None,
                };
                if key.is_some() {
                    let at = Instant::now();
                    seen.arrivals
                        .push((b.clone(), m.msk_id.to_u32(), from.port(), at, m.counter));
                    if acking.contains(&b)
                        && let Some(ack) = ack_of(&bytes, &muks[&b])
                    {
                        let _ = socket.send_to(&ack, from);
                        seen.acks += 1;
                    }
                }
                seen.order.entry(b.clone()).or_default().push(m.counter);
                seen.msk.insert(bytes, (b, m.msk_id, key, m.counter));
            }
            None => seen.bad += 1,
        }
    }
}

/// The acknowledgement of the MSK message `bytes` under `muk`.
fn ack_of(bytes: &[u8], muk: &mbms_keys::crypto::Muk) -> Option<Vec<u8>> {
    let un = UnverifiedMsk::parse(bytes).ok()?;
    let keys = PreparedMuk::new(muk).keys(un.csb_id(), un.view().rand()?);
    let ctx = AckContext::new(
        keys,
        un.csb_id(),
        un.counter(),
        b"bmsc.example.org",
        un.idr(),
    );
    build_ack(&ctx).ok()
}

fn sink(socket: UdpSocket, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.lock().expect("seen").mtk.insert(buf[..n].to_vec());
        }
    }
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

struct Cluster {
    server: PgServer,
    db: String,
    dir: TempDir,
    curl: PathBuf,
    ue_port: u16,
    mtk_sink: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Cluster {
    fn new(ues: usize) -> Option<Self> {
        Self::with_acks(ues, false)
    }

    /// A cluster whose UE farm acknowledges (the UEs with an even index) when `ack`.
    fn with_acks(ues: usize, ack: bool) -> Option<Self> {
        let curl = common::oracle("curl", &[], "apt-get install curl")?;
        let server = PgServer::start()?;
        let db = server.database();
        let ue_socket = UdpSocket::bind("127.0.0.1:0").expect("UE farm socket");
        let mtk_socket = UdpSocket::bind("127.0.0.1:0").expect("MTK sink");
        let ue_port = ue_socket.local_addr().expect("addr").port();
        let mtk_sink = mtk_socket.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = vec![
            {
                let (seen, stop) = (seen.clone(), stop.clone());
                std::thread::spawn(move || farm(ue_socket, seen, stop, ues, ack))
            },
            {
                let (seen, stop) = (seen.clone(), stop.clone());
                std::thread::spawn(move || sink(mtk_socket, seen, stop))
            },
        ];
        Some(Self {
            server,
            db,
            dir: TempDir::new("cluster"),
            curl,
            ue_port,
            mtk_sink,
            seen,
            stop,
            threads,
        })
    }

    fn node(&self, name: &str, ues: usize) -> Node {
        self.node_with(name, ues, NODE_OPTS)
    }

    fn node_with(&self, name: &str, ues: usize, opts: NodeOpts) -> Node {
        Node::start(
            self.dir.path(),
            name,
            &self.server.url(&self.db),
            self.ue_port,
            self.mtk_sink,
            ues,
            opts,
        )
    }

    fn psql(&self, sql: &str) -> String {
        self.server.psql(&self.db, sql)
    }

    fn finish(mut self) -> (Seen, PgServer, String) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().expect("farm thread");
        }
        let seen = std::mem::take(&mut *self.seen.lock().expect("seen"));
        (seen, self.server, self.db)
    }
}

#[test]
fn three_nodes_act_as_one_bmsc_through_the_owner_killed_mid_rotation() {
    const UES: usize = 24;
    let Some(cluster) = Cluster::new(UES) else {
        return;
    };
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| cluster.node(n, UES))
        .collect();
    let owners: Vec<usize> = (0..3).filter(|i| nodes[*i].owns()).collect();
    assert_eq!(owners, [0], "the first node to start owns the group");
    // Registrations spread over the nodes.
    for i in 0..UES {
        let status = register(&cluster.curl, cluster.dir.path(), &nodes[i % 3], i);
        assert_eq!(status, "200", "UE {i} at node {}", i % 3);
    }
    // Each registration is in the database (durable before its 200).
    assert_eq!(
        cluster.psql("SELECT count(*) FROM registrations").trim(),
        UES.to_string()
    );
    // A rotation under way: the next MSK made and being pushed. The owner dies then.
    wait_for("a next MSK", Duration::from_secs(15), || {
        cluster
            .psql("SELECT count(*) FROM msks WHERE state = 'next'")
            .trim()
            == "1"
    });
    let next_id = cluster.psql("SELECT msk_id FROM msks WHERE state = 'next'");
    nodes[0].kill9();
    let moved = wait_for("the takeover", Duration::from_secs(10), || {
        nodes[1].owns() || nodes[2].owns()
    });
    // [cluster] takeover_after = 1 s, plus the time the killed connection takes to end.
    assert!(
        moved < Duration::from_secs(3),
        "ownership moved after {moved:?}"
    );
    assert!(!(nodes[1].owns() && nodes[2].owns()), "one owner at a time");
    // The rotation completes: the MSK that was next becomes current, and the new owner goes
    // on to make the one after it.
    wait_for("the rotation completed", Duration::from_secs(20), || {
        cluster.psql(&format!(
            "SELECT state FROM msks WHERE msk_id = {}",
            next_id.trim()
        )) == "current\n"
            && cluster.psql("SELECT count(*) FROM msks").trim() == "3"
    });
    // Pushes of the third MSK and its retransmissions.
    std::thread::sleep(Duration::from_secs(3));
    for n in &mut nodes[1..] {
        assert!(n.running(), "{}", n.log_text());
    }
    let registrations = cluster.psql("SELECT count(*) FROM registrations");
    let msk_ids: BTreeSet<u32> = cluster
        .psql("SELECT msk_id FROM msks")
        .lines()
        .map(|l| l.trim().parse().expect("MSK ID"))
        .collect();
    let logs: Vec<String> = nodes.iter().map(Node::log_text).collect();
    drop(nodes);
    let (seen, _server, _db) = cluster.finish();

    assert_eq!(
        registrations.trim(),
        UES.to_string(),
        "no registration lost"
    );
    assert_eq!(seen.bad, 0, "every MSK message verifies under its UE's MUK");
    // One key per MSK ID, whatever node sent it; every UE got every MSK.
    let mut keys: BTreeMap<u32, BTreeSet<[u8; 16]>> = BTreeMap::new();
    let mut got: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for (b, id, key, _) in seen.msk.values() {
        if let Some(k) = key {
            keys.entry(id.to_u32()).or_default().insert(*k);
            got.entry(b.as_str()).or_default().insert(id.to_u32());
        }
    }
    for (id, k) in &keys {
        assert_eq!(k.len(), 1, "MSK {id:08x}: {} different keys", k.len());
    }
    assert!(msk_ids.len() >= 3, "{msk_ids:?}");
    for i in 0..UES {
        let b = btid(i);
        assert_eq!(
            got.get(b.as_str()),
            Some(&msk_ids),
            "UE {b} got {:?} of {msk_ids:?}",
            got.get(b.as_str())
        );
    }
    // No counter used twice, in MSK and MTK messages together (one allocator for all).
    let mut counters: BTreeMap<u32, usize> = BTreeMap::new();
    for (_, _, _, c) in seen.msk.values() {
        *counters.entry(*c).or_default() += 1;
    }
    // Per UE, every new message carries a counter above the previous ones.
    for (b, order) in &seen.order {
        for w in order.windows(2) {
            assert!(w[0] < w[1], "UE {b}: counter {} after {}", w[1], w[0]);
        }
    }
    // MTK messages from all nodes: each verifies under its MSK, one MTK per MTK ID.
    let msks: HashMap<u32, MtkKeys> = keys
        .iter()
        .map(|(id, k)| {
            let key = k.iter().next().expect("a key");
            let msk_id = MskId::from_u32(*id);
            (
                *id,
                MtkKeys::new(&Msk::from_bytes(*key), csb_id_for(msk_id)),
            )
        })
        .collect();
    let mut mtks: BTreeMap<(u32, u16), BTreeSet<Vec<u8>>> = BTreeMap::new();
    for bytes in &seen.mtk {
        let m = UnverifiedMtk::parse(bytes).expect("an MTK message");
        let id = m.msk_id().to_u32();
        let keys = msks
            .get(&id)
            .expect("the MTK's MSK was delivered to the UEs");
        let m = m.verify(keys).expect("verifies under its MSK");
        *counters.entry(m.counter).or_default() += 1;
        let MtkId(mtk_id) = m.mtk_id;
        mtks.entry((id, mtk_id))
            .or_default()
            .insert(m.mtk.as_bytes().to_vec());
    }
    assert!(mtks.len() >= 4, "MTKs seen: {}", mtks.len());
    for ((msk, mtk), keys) in &mtks {
        assert_eq!(keys.len(), 1, "MTK {msk:08x}/{mtk}: {} keys", keys.len());
    }
    eprintln!(
        "cluster: {} distinct MSK messages to {UES} UEs, {} MSKs, {} MTK messages for {} MTK \
         IDs, ownership moved {moved:?} after the kill",
        seen.msk.len(),
        msk_ids.len(),
        seen.mtk.len(),
        mtks.len()
    );
    let reused: Vec<_> = counters.iter().filter(|(_, n)| **n > 1).collect();
    assert!(reused.is_empty(), "counters used twice: {reused:?}");
    for log in &logs {
        assert!(!log.contains(PASSWORD), "the password in a log");
    }
}

#[test]
fn postgresql_restarted_under_a_running_cluster_gets_503_then_resumes() {
    const UES: usize = 6;
    let Some(cluster) = Cluster::new(UES) else {
        return;
    };
    let mut nodes: Vec<Node> = ["a", "b"].iter().map(|n| cluster.node(n, UES)).collect();
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(register(&cluster.curl, cluster.dir.path(), node, i), "200");
    }
    assert_eq!(
        msk_request(&cluster.curl, cluster.dir.path(), &nodes[1], 0),
        "200",
        "an MSK request at the node that did not take the registration"
    );
    cluster.server.pg_ctl_stop();
    for i in 2..4 {
        let status = register(&cluster.curl, cluster.dir.path(), &nodes[i % 2], i);
        assert_eq!(status, "503", "UE {i} while the database is down");
    }
    assert_eq!(
        msk_request(&cluster.curl, cluster.dir.path(), &nodes[0], 1),
        "503",
        "an MSK request while the database is down"
    );
    assert_eq!(
        deregister(&cluster.curl, cluster.dir.path(), &nodes[1], 0),
        "503",
        "a deregistration while the database is down"
    );
    for n in &mut nodes {
        assert!(n.running(), "a node exited: {}", n.log_text());
    }
    cluster.server.pg_ctl_start();
    for i in 2..UES {
        let node = &nodes[i % 2];
        wait_for(
            "registration after the restart",
            Duration::from_secs(30),
            || register(&cluster.curl, cluster.dir.path(), node, i) == "200",
        );
    }
    assert_eq!(
        cluster.psql("SELECT count(*) FROM registrations").trim(),
        UES.to_string(),
        "nothing lost, every acknowledged registration stored"
    );
    assert_eq!(
        msk_request(&cluster.curl, cluster.dir.path(), &nodes[0], 1),
        "200",
        "MSK requests resume"
    );
    // The group still has exactly one owner, which keeps making MTKs.
    let before = cluster.psql("SELECT count(*) FROM mtks");
    std::thread::sleep(Duration::from_secs(3));
    let after = cluster.psql("SELECT count(*) FROM mtks");
    assert!(
        after.trim().parse::<u32>().expect("count") > before.trim().parse::<u32>().expect("count"),
        "MTKs made after the restart: {before} then {after}"
    );
    for n in &mut nodes {
        assert!(n.running(), "a node exited: {}", n.log_text());
    }
    drop(nodes);
    let (seen, _server, _db) = cluster.finish();
    assert_eq!(seen.bad, 0);
}

/// The nodes of the shared fan-out test: one retransmission interval of 2 s (the lease), two
/// retransmissions, an MSK rotation every 8 s (the next MSK 2 s before), items of 10
/// registrations (40 items for 400 UEs: more than one node holds at once).
const FANOUT_OPTS: NodeOpts = NodeOpts {
    msk_lifetime: "8s",
    push_backoff: ("2s", "2s"),
    push_retries: Some(2),
    cluster: "takeover_after = \"1s\"\nfollow_interval = \"200ms\"\nfanout_item_size = 10\n",
};

#[test]
fn a_node_killed_mid_fanout_has_its_share_finished_by_the_others() {
    const UES: usize = 400;
    const INTERVAL: Duration = Duration::from_secs(2);
    let Some(cluster) = Cluster::with_acks(UES, true) else {
        return;
    };
    let mut nodes = vec![cluster.node_with("a", UES, FANOUT_OPTS)];
    // Registrations written straight into the database (old: no node pushes to them at its
    // start), so that the fan-out of the next MSK is the only push they get.
    cluster.psql(&format!(
        "INSERT INTO registrations (service_id, btid, ue_addr, registered_at)
         SELECT '{SERVICE}', format('ue%s@bsf.example.org', lpad(i::text, 3, '0')),
                '127.0.0.1', 1
         FROM generate_series(0, {}) AS i",
        UES - 1
    ));
    nodes.push(cluster.node_with("b", UES, FANOUT_OPTS));
    nodes.push(cluster.node_with("c", UES, FANOUT_OPTS));
    assert!(nodes[0].owns() && !nodes[1].owns() && !nodes[2].owns());
    let pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
    let next = wait_for("a next MSK", Duration::from_secs(20), || {
        cluster
            .psql("SELECT count(*) FROM msks WHERE state = 'next'")
            .trim()
            == "1"
    });
    let next_id: u32 = cluster
        .psql("SELECT msk_id FROM msks WHERE state = 'next'")
        .trim()
        .parse()
        .expect("MSK ID");
    // Node c (not the owner) holds open items of the fan-out: it dies then.
    let held_by_c = format!(
        "SELECT after_btid, until_btid FROM fanout_items
         WHERE msk_id = {next_id} AND NOT done AND claimed_by LIKE '{}-%'",
        pids[2]
    );
    wait_for("node c holding work items", Duration::from_secs(5), || {
        !cluster.psql(&held_by_c).trim().is_empty()
    });
    let killed_at = Instant::now();
    nodes[2].kill9();
    let ranges: Vec<(String, String)> = cluster
        .psql(&held_by_c)
        .lines()
        .map(|l| {
            let mut f = l.split('|');
            let mut next = || f.next().unwrap_or("").trim().to_owned();
            (next(), next())
        })
        .collect();
    assert!(!ranges.is_empty(), "node c held items at its kill");
    let in_ranges = |b: &str| {
        ranges
            .iter()
            .any(|(after, until)| b > after.as_str() && (until.is_empty() || b <= until.as_str()))
    };
    // Its items are closed by the others: every UE acknowledged or ran out of retries.
    let open = format!("SELECT count(*) FROM fanout_items WHERE msk_id = {next_id} AND NOT done");
    let start = Instant::now();
    while cluster.psql(&open).trim() != "0" {
        if start.elapsed() > Duration::from_secs(40) {
            let state = cluster.psql(&format!(
                "SELECT item, claimed_by, claims, sent, done, lease_until < clock_timestamp()
                 FROM fanout_items WHERE msk_id = {next_id} AND NOT done ORDER BY item"
            ));
            let tail = |n: &Node| {
                let log = n.log_text();
                log.lines()
                    .filter(|l| !l.contains("MTK"))
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "work items not closed within 40 s (pids {pids:?}):\n{state}\na:\n{}\nb:\n{}",
                tail(&nodes[0]),
                tail(&nodes[1])
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed = start.elapsed();
    let items = cluster.psql(&format!(
        "SELECT count(*), count(DISTINCT claimed_by), sum(claims) FROM fanout_items
         WHERE msk_id = {next_id}"
    ));
    let acked = cluster.psql(&format!(
        "SELECT count(*) FROM fanout_acks WHERE msk_id = {next_id}"
    ));
    for n in &mut nodes[..2] {
        assert!(n.running(), "{}", n.log_text());
    }
    let logs: Vec<String> = nodes.iter().map(Node::log_text).collect();
    drop(nodes);
    let (seen, _server, _db) = cluster.finish();

    assert_eq!(seen.bad, 0, "every MSK message verifies under its UE's MUK");
    let of_next: Vec<&(String, u32, u16, Instant, u32)> =
        seen.arrivals.iter().filter(|a| a.1 == next_id).collect();
    // Every UE got the next MSK.
    let reached: BTreeSet<&str> = of_next.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(reached.len(), UES, "UEs that got MSK {next_id:08x}");
    // Each UE in one item: once, twice when its item changed hands (the kill, or a node that
    // could not renew its lease in time on a loaded machine).
    let mut per_ue: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &of_next {
        *per_ue.entry(a.0.as_str()).or_default() += 1;
    }
    let most = per_ue.values().copied().max().unwrap_or(0);
    assert!(most <= 3, "a UE got MSK {next_id:08x} in {most} messages");
    assert!(of_next.len() < 2 * UES, "{} messages", of_next.len());
    // The UEs of node c's items that never acknowledge got it again from another node,
    // within two retransmission intervals of the kill.
    let orphans: BTreeSet<String> = (0..UES)
        .filter(|i| i % 2 == 1)
        .map(btid)
        .filter(|b| in_ranges(b))
        .collect();
    assert!(!orphans.is_empty(), "node c's items hold UEs: {ranges:?}");
    let mut latest = Duration::ZERO;
    for b in &orphans {
        let first_after = of_next
            .iter()
            .filter(|a| a.0 == *b && a.3 > killed_at)
            .map(|a| a.3 - killed_at)
            .min();
        let Some(after) = first_after else {
            panic!("UE {b} of node c's items got nothing after the kill");
        };
        latest = latest.max(after);
    }
    assert!(
        latest <= 2 * INTERVAL + Duration::from_secs(1),
        "node c's share finished {latest:?} after the kill"
    );
    // The fan-out was shared: several nodes sent the next MSK's messages.
    let mut share: BTreeMap<u16, usize> = BTreeMap::new();
    for a in &of_next {
        *share.entry(a.2).or_default() += 1;
    }
    assert!(share.len() >= 2, "senders of the fan-out: {share:?}");
    // No counter reused.
    let mut counters: BTreeMap<u32, usize> = BTreeMap::new();
    for (_, _, _, c) in seen.msk.values() {
        *counters.entry(*c).or_default() += 1;
    }
    let reused: Vec<_> = counters.iter().filter(|(_, n)| **n > 1).collect();
    assert!(reused.is_empty(), "counters used twice: {reused:?}");
    // Per UE, messages from two nodes at about the same time may arrive out of counter order
    // (docs/cluster.md "Limits"): counted and shown, not failed.
    let mut out_of_order = Vec::new();
    for (b, order) in &seen.order {
        if order.windows(2).any(|w| w[0] >= w[1]) {
            let of_ue: Vec<_> = seen
                .arrivals
                .iter()
                .filter(|a| a.0 == *b)
                .map(|a| (a.1, a.2, a.4))
                .collect();
            out_of_order.push((b.clone(), of_ue));
        }
    }
    assert!(
        seen.acks > 0 && acked.trim() != "0",
        "acknowledgements recorded"
    );
    eprintln!(
        "shared fan-out: next MSK {next_id:08x} after {next:?}; node c killed holding {} items \
         ({} UEs never acknowledging); its share done {latest:?} after the kill; every item \
         closed {closed:?} after; items, holders, claims: {}; acknowledgements sent {}, \
         recorded {}; messages per sender port: {share:?}; UEs with messages out of counter \
         order: {} {:?}; {} messages of the next MSK, at most {most} to one UE",
        ranges.len(),
        orphans.len(),
        items.trim(),
        seen.acks,
        acked.trim(),
        out_of_order.len(),
        out_of_order.first(),
        of_next.len()
    );
    for log in &logs {
        assert!(!log.contains(PASSWORD), "the password in a log");
    }
}
