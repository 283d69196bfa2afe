//! A scripted BSF on loopback TCP, written with the crate's own Diameter codec: the Zn peer of
//! the client tests and of `bench zn` when no freeDiameterd is at hand. It answers CER, DWR,
//! DPR and BIR, and can be told to stay silent, delay, refuse or drop the connection, so that
//! timeouts, the watchdog, failover and reconnection can be exercised.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mbms_keys::diameter::{
    Avp, HEADER_LEN, Header, Message, VENDOR_3GPP, app, cmd, code, result, system_to_ntp, zn,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Identity the fake BSF answers with.
pub const BSF_HOST: &str = "bsf.example.test";
/// Its realm.
pub const BSF_REALM: &str = "example.test";

/// One subscriber of the fake BSF.
#[derive(Clone)]
pub struct FakeSubscriber {
    /// IMPI sent as User-Name.
    pub impi: String,
    /// ME-Key-Material.
    pub me_key: [u8; 32],
    /// UICC-Key-Material, sent when the request is GBA_U aware.
    pub uicc_key: Option<[u8; 32]>,
    /// Key-ExpiryTime.
    pub expires: SystemTime,
}

/// What the fake BSF does; every switch can change while it runs.
#[derive(Default)]
pub struct Behaviour {
    /// Do not answer BIRs.
    pub ignore_bir: AtomicBool,
    /// Do not answer DWRs.
    pub ignore_dwr: AtomicBool,
    /// Close the connection when a BIR arrives.
    pub close_on_bir: AtomicBool,
    /// Answer BIRs after this many milliseconds.
    pub delay_ms: AtomicU32,
    /// Advertise Zn as a plain Auth-Application-Id rather than in a
    /// Vendor-Specific-Application-Id.
    pub plain_auth_app: AtomicBool,
    /// Advertise no Zn application at all.
    pub no_zn: AtomicBool,
    /// Answer BIRs with this Experimental-Result code when non-zero.
    pub experimental: AtomicU32,
}

/// What the fake BSF saw.
#[derive(Default)]
pub struct Seen {
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// CERs received.
    pub cers: AtomicUsize,
    /// DWRs received.
    pub dwrs: AtomicUsize,
    /// DPRs received.
    pub dprs: AtomicUsize,
    /// BIRs received.
    pub birs: AtomicUsize,
    /// BIRs received with the T flag.
    pub retransmitted: AtomicUsize,
    /// BIRs received and not answered yet, now.
    pub outstanding: AtomicUsize,
    /// Highest `outstanding` seen.
    pub peak_outstanding: AtomicUsize,
    /// The last CER.
    pub last_cer: Mutex<Option<Message>>,
    /// The last BIR.
    pub last_bir: Mutex<Option<Message>>,
}

struct State {
    subscribers: Mutex<HashMap<String, FakeSubscriber>>,
    behaviour: Behaviour,
    seen: Seen,
}

/// A running fake BSF; stops (closing every connection) when dropped or [`FakeBsf::stop`]ped.
pub struct FakeBsf {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FakeBsf {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("address")).await
    }

    /// Starts on `addr` (to come back on the port of a stopped one).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            subscribers: Mutex::new(HashMap::new()),
            behaviour: Behaviour::default(),
            seen: Seen::default(),
        });
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (s, c) = (state.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                s.seen.connections.fetch_add(1, Ordering::SeqCst);
                let h = tokio::spawn(serve(sock, s.clone()));
                c.lock().unwrap_or_else(PoisonError::into_inner).push(h);
            }
        });
        Ok(Self {
            addr,
            state,
            task,
            conns,
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds (or replaces) a subscriber.
    pub fn add(&self, btid: &str, sub: FakeSubscriber) {
        self.state
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(btid.to_owned(), sub);
    }

    /// The behaviour switches.
    pub fn behaviour(&self) -> &Behaviour {
        &self.state.behaviour
    }

    /// What it saw.
    pub fn seen(&self) -> &Seen {
        &self.state.seen
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.task.abort();
        for c in self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            c.abort();
        }
    }
}

impl Drop for FakeBsf {
    fn drop(&mut self) {
        self.stop();
    }
}

fn origin() -> Vec<Avp> {
    vec![
        Avp::base(code::ORIGIN_HOST, BSF_HOST),
        Avp::base(code::ORIGIN_REALM, BSF_REALM),
    ]
}

fn answer(req: &Message, result_code: u32, extra: Vec<Avp>) -> Message {
    let mut avps = Vec::new();
    if let Some(s) = req.find(code::SESSION_ID, None) {
        avps.push(s.clone());
    }
    avps.push(Avp::base_u32(code::RESULT_CODE, result_code));
    avps.extend(origin());
    avps.extend(extra);
    Message::answer_to(&req.header, avps)
}

fn cea(req: &Message, b: &Behaviour) -> Message {
    let mut extra = vec![
        Avp::base(code::HOST_IP_ADDRESS, vec![0, 1, 127, 0, 0, 1]),
        Avp::base_u32(code::VENDOR_ID, 0),
        Avp::octets(code::PRODUCT_NAME, None, false, &b"fake-bsf"[..]),
    ];
    if !b.no_zn.load(Ordering::SeqCst) {
        if b.plain_auth_app.load(Ordering::SeqCst) {
            extra.push(Avp::base_u32(code::AUTH_APPLICATION_ID, app::ZN));
        } else {
            extra.push(Avp::grouped(
                code::VENDOR_SPECIFIC_APPLICATION_ID,
                None,
                vec![
                    Avp::base_u32(code::VENDOR_ID, VENDOR_3GPP),
                    Avp::base_u32(code::AUTH_APPLICATION_ID, app::ZN),
                ],
            ));
        }
    }
    answer(req, result::SUCCESS, extra)
}

fn bia(req: &Message, state: &State) -> Message {
    let exp = state.behaviour.experimental.load(Ordering::SeqCst);
    let btid = req
        .find(zn::TRANSACTION_IDENTIFIER, Some(VENDOR_3GPP))
        .and_then(Avp::as_str)
        .unwrap_or_default();
    let sub = state
        .subscribers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(btid)
        .cloned();
    let experimental = |c: u32| {
        let mut avps = Vec::new();
        if let Some(s) = req.find(code::SESSION_ID, None) {
            avps.push(s.clone());
        }
        avps.push(Avp::grouped(
            code::EXPERIMENTAL_RESULT,
            None,
            vec![
                Avp::base_u32(code::VENDOR_ID, VENDOR_3GPP),
                Avp::base_u32(code::EXPERIMENTAL_RESULT_CODE, c),
            ],
        ));
        avps.extend(origin());
        Message::answer_to(&req.header, avps)
    };
    if exp != 0 {
        return experimental(exp);
    }
    let Some(sub) = sub else {
        return experimental(result::TRANSACTION_IDENTIFIER_INVALID);
    };
    let aware = req
        .find(zn::GBA_U_AWARENESS_INDICATOR, Some(VENDOR_3GPP))
        .and_then(Avp::as_u32)
        == Some(1);
    let mut extra = vec![
        Avp::base(code::USER_NAME, sub.impi.as_bytes()),
        Avp::tgpp(zn::ME_KEY_MATERIAL, sub.me_key.to_vec()),
    ];
    if let (true, Some(u)) = (aware, sub.uicc_key) {
        extra.push(Avp::tgpp(zn::UICC_KEY_MATERIAL, u.to_vec()));
    }
    if let Some(t) = system_to_ntp(sub.expires) {
        extra.push(Avp::tgpp(zn::KEY_EXPIRY_TIME, t.to_be_bytes()));
    }
    extra.push(Avp::tgpp(zn::GBA_TYPE, 0u32.to_be_bytes()));
    answer(req, result::SUCCESS, extra)
}

async fn serve(sock: TcpStream, state: Arc<State>) {
    let _ = sock.set_nodelay(true);
    let (read, mut write) = sock.into_split();
    let mut read = tokio::io::BufReader::with_capacity(64 * 1024, read);
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
    let writer = tokio::spawn(async move {
        let mut out = Vec::with_capacity(64 * 1024);
        'outer: while let Some(Some(b)) = rx.recv().await {
            out.clear();
            out.extend_from_slice(&b);
            // Whatever else is queued goes in the same write.
            while out.len() < 60 * 1024 {
                match rx.try_recv() {
                    Ok(Some(b)) => out.extend_from_slice(&b),
                    Ok(None) => {
                        let _ = write.write_all(&out).await;
                        break 'outer;
                    }
                    Err(_) => break,
                }
            }
            if write.write_all(&out).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    let send = |m: &Message| {
        let _ = tx.send(Some(m.encode().expect("encode")));
    };
    let seen = &state.seen;
    let b = &state.behaviour;
    let mut head = [0u8; HEADER_LEN];
    loop {
        if read.read_exact(&mut head).await.is_err() {
            break;
        }
        let Ok((_, len)) = Header::check_length(&head, 1 << 16) else {
            break;
        };
        let mut buf = vec![0u8; len];
        buf[..HEADER_LEN].copy_from_slice(&head);
        if read.read_exact(&mut buf[HEADER_LEN..]).await.is_err() {
            break;
        }
        let Ok(m) = Message::decode(&buf, 1 << 16) else {
            break;
        };
        if !m.header.is_request() {
            continue;
        }
        match m.header.command {
            cmd::CAPABILITIES_EXCHANGE => {
                seen.cers.fetch_add(1, Ordering::SeqCst);
                *seen.last_cer.lock().unwrap_or_else(PoisonError::into_inner) = Some(m.clone());
                send(&cea(&m, b));
            }
            cmd::DEVICE_WATCHDOG => {
                seen.dwrs.fetch_add(1, Ordering::SeqCst);
                if !b.ignore_dwr.load(Ordering::SeqCst) {
                    send(&answer(&m, result::SUCCESS, vec![]));
                }
            }
            cmd::DISCONNECT_PEER => {
                seen.dprs.fetch_add(1, Ordering::SeqCst);
                send(&answer(&m, result::SUCCESS, vec![]));
                break;
            }
            cmd::BOOTSTRAPPING_INFO => {
                seen.birs.fetch_add(1, Ordering::SeqCst);
                if m.header.flags & mbms_keys::diameter::flags::RETRANSMITTED != 0 {
                    seen.retransmitted.fetch_add(1, Ordering::SeqCst);
                }
                *seen.last_bir.lock().unwrap_or_else(PoisonError::into_inner) = Some(m.clone());
                if b.close_on_bir.load(Ordering::SeqCst) {
                    break;
                }
                if b.ignore_bir.load(Ordering::SeqCst) {
                    continue;
                }
                let a = bia(&m, &state);
                let delay = b.delay_ms.load(Ordering::SeqCst);
                if delay == 0 {
                    send(&a);
                } else {
                    let now = seen.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
                    seen.peak_outstanding.fetch_max(now, Ordering::SeqCst);
                    let (tx, st) = (tx.clone(), state.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
                        st.seen.outstanding.fetch_sub(1, Ordering::SeqCst);
                        let _ = tx.send(Some(a.encode().expect("encode")));
                    });
                }
            }
            _ => send(&answer(&m, result::COMMAND_UNSUPPORTED, vec![])),
        }
    }
    let _ = tx.send(None);
    let _ = writer.await;
}
