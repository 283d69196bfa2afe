//! Verifying an I_MESSAGE of a key delivery, checks in this order, cheap before costly and
//! the signature before any use of the key material (docs/mcx.md §11.2):
//!
//! 1. the MIKEY codec (`Malformed`);
//! 2. the shape of a SAKKE I_MESSAGE (`Structure`);
//! 3. the sender's UID in IDR role 8 (`WrongSender`);
//! 4. T within the window of `at` (`StaleTime`);
//! 5. our UID in IDR role 9 (`WrongReceiver`);
//! 6. the ECCSI signature under the sender's KPAK and UID over all octets before it
//!    (`BadSignature`);
//! 7. the key ID's purpose (`UnknownPurpose`, `WrongPurpose`);
//! 8. the replay cache (`Replayed`);
//! 9. SAKKE decapsulation with our RSK (`DecapsulationFailed`);
//! 10. with a KEMAC (a 32-octet key, docs/mcx.md §11.5): its algorithms (`KemacAlgorithm`), its
//!     MAC under the SSV's envelope keys in constant time (`BadKemacMac`), and only then its
//!     decryption and Key data (`KemacKeyData`);
//! 11. with our URI, a GMK's GUK-ID (`GukIdMismatch`).
//!
//! Only then is the message remembered and the key handed out.

use std::time::{Duration, SystemTime};

use thiserror::Error;

use super::kemac;
use super::key::DeliveryKey;
use super::keyid::{KeyPurpose, guk_id};
use super::replay::ReplayCache;
use super::time::ntp_to_system;
use crate::crypto::sha256;
use crate::ibe::{ECCSI_SIG_LEN, Kpak, Rsk, SakkePublic, eccsi, sakke};
use crate::mikey::view::{CsIdMapView, ExtensionView, KemacView, PayloadView};
use crate::mikey::{
    DataType, DecodeError, ExtType, IdRole, MIKEY_VERSION, MessageView, SakkeIdScheme, SakkeParams,
    SignType, Timestamp,
};

/// The receiver's identity and keys.
#[derive(Debug, Clone, Copy)]
pub struct Receiver<'a> {
    /// Our UID for the message's key period (the SAKKE identifier).
    pub uid: &'a [u8],
    /// Our MC ID (URI): with it a GMK's GUK-ID is checked and its GMK-ID recovered
    /// (TS 33.180 F.1.3).
    pub uri: Option<&'a str>,
    /// Our RSK.
    pub rsk: &'a Rsk,
    /// Z, the SAKKE public key of our KMS.
    pub z: &'a SakkePublic,
}

/// Whom and what the receiver expects, and when it verifies.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The sender's UID for the message's key period.
    pub from_uid: &'a [u8],
    /// The KPAK of the sender's KMS.
    pub kpak: &'a Kpak,
    /// The purpose the key must have, if one is required.
    pub purpose: Option<KeyPurpose>,
    /// The verifier's time.
    pub at: SystemTime,
    /// How far T may lie from `at` ([`super::profile::FRESHNESS_WINDOW`] by default).
    pub window: Duration,
}

/// Why a message was refused. Never names key material.
#[non_exhaustive]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a MIKEY message.
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// A MIKEY message, but not a SAKKE I_MESSAGE of this profile.
    #[error("not a MIKEY-SAKKE I_MESSAGE: {0}")]
    Structure(&'static str),
    /// IDR role 8 is not the expected sender's UID.
    #[error("signed by another sender")]
    WrongSender,
    /// T too far from the verifier's time (`seconds` = T − at).
    #[error("time outside the window ({seconds} s from the verifier's clock)")]
    StaleTime {
        /// T minus the verifier's time, in seconds.
        seconds: i64,
    },
    /// IDR role 9 is not our UID.
    #[error("addressed to another receiver")]
    WrongReceiver,
    /// The ECCSI signature does not verify under the KPAK and the sender's UID.
    #[error("ECCSI signature does not verify")]
    BadSignature,
    /// The key ID's purpose tag is none of GMK, PCK, CSK.
    #[error("key ID purpose tag {0} is not GMK, PCK or CSK")]
    UnknownPurpose(u8),
    /// The key is not for the purpose required.
    #[error("key for {got}, {expected} required")]
    WrongPurpose {
        /// The purpose required.
        expected: KeyPurpose,
        /// The key's purpose.
        got: KeyPurpose,
    },
    /// Accepted before (or not newer than what the cache has forgotten).
    #[error("replayed")]
    Replayed,
    /// The SAKKE data does not decapsulate with our RSK.
    #[error("SAKKE data does not decapsulate")]
    DecapsulationFailed,
    /// The GUK-ID is not the GMK-ID hidden for our URI.
    #[error("GUK-ID does not match the GMK-ID for this receiver")]
    GukIdMismatch,
    /// The KEMAC's encryption or MAC algorithm is not the profile's (AES-CM-128, HMAC-SHA-1-160).
    #[error(
        "KEMAC: encr alg {encr_alg}, MAC alg {mac_alg}: AES-CM-128 (1) and HMAC-SHA-1-160 (1) required"
    )]
    KemacAlgorithm {
        /// The Encr alg octet.
        encr_alg: u8,
        /// The MAC alg octet.
        mac_alg: u8,
    },
    /// The KEMAC's MAC does not verify under the keys of the message's SSV.
    #[error("KEMAC MAC does not verify")]
    BadKemacMac,
    /// The KEMAC's decrypted content is not one 32-octet TGK.
    #[error("KEMAC key data: {0}")]
    KemacKeyData(&'static str),
}

impl Refusal {
    /// A stable short name (`reason` of `mikey verify-sakke --json`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Structure(_) => "structure",
            Self::WrongSender => "wrong_sender",
            Self::StaleTime { .. } => "stale_time",
            Self::WrongReceiver => "wrong_receiver",
            Self::BadSignature => "bad_signature",
            Self::UnknownPurpose(_) => "unknown_purpose",
            Self::WrongPurpose { .. } => "wrong_purpose",
            Self::Replayed => "replayed",
            Self::DecapsulationFailed => "decapsulation_failed",
            Self::GukIdMismatch => "guk_id_mismatch",
            Self::KemacAlgorithm { .. } => "kemac_algorithm",
            Self::BadKemacMac => "bad_kemac_mac",
            Self::KemacKeyData(_) => "kemac_key_data",
        }
    }
}

/// A key delivered by a verified message.
#[derive(Debug, Clone)]
pub struct DeliveredKey {
    /// The key: the SSV (16 octets), or the KEMAC's key (32 octets).
    pub key: DeliveryKey,
    /// The key ID: the GMK-ID (from the SPI, or recovered from the GUK-ID with our URI), PCK-ID
    /// or CSK-ID.
    pub key_id: u32,
    /// The key's purpose, from the key ID's tag.
    pub purpose: KeyPurpose,
    /// The HDR's CSB ID (a GMK's GUK-ID).
    pub csb_id: u32,
    /// The sender's UID.
    pub sender_uid: Vec<u8>,
    /// T, NTP-UTC.
    pub time: u64,
    /// The KMS URI of IDR role 6 (the sender's KMS), if present.
    pub kms_uri: Option<Vec<u8>>,
    /// The TS 33.180 key parameters (EXT type 7) as received, if present.
    pub key_params: Option<Vec<u8>>,
}

/// The fields the checks need, gathered in one walk.
#[derive(Default)]
struct Fields<'a> {
    t: Option<u64>,
    ts: usize,
    rands: usize,
    rand: &'a [u8],
    uidi: Option<&'a [u8]>,
    uidr: Option<&'a [u8]>,
    idrr: Option<&'a [u8]>,
    idrs_8_9: usize,
    kmsi: Option<&'a [u8]>,
    sakke: Option<(SakkeParams, SakkeIdScheme, &'a [u8])>,
    sakkes: usize,
    key_params: Option<&'a [u8]>,
    /// The KEMAC and where its payload starts.
    kemac: Option<(usize, KemacView<'a>)>,
    kemacs: usize,
    sig: Option<(SignType, &'a [u8])>,
    other_ts: bool,
}

impl<'a> Fields<'a> {
    fn visit(&mut self, offset: usize, p: PayloadView<'a>) {
        match p {
            PayloadView::T(Timestamp::NtpUtc(v)) => {
                self.t = Some(v);
                self.ts += 1;
            }
            PayloadView::T(_) => self.other_ts = true,
            PayloadView::Rand(r) => {
                self.rand = r;
                self.rands += 1;
            }
            PayloadView::Kemac(k) => {
                self.kemac = Some((offset, k));
                self.kemacs += 1;
            }
            PayloadView::Idr(i) if i.role == IdRole::IDRUIDI => {
                self.uidi = Some(i.data);
                self.idrs_8_9 += 1;
            }
            PayloadView::Idr(i) if i.role == IdRole::IDRUIDR => {
                self.uidr = Some(i.data);
                self.idrs_8_9 += 1;
            }
            PayloadView::Idr(i) if i.role == IdRole::IDRKMSI => self.kmsi = Some(i.data),
            PayloadView::Idr(i) if i.role == IdRole::IDRR => self.idrr = Some(i.data),
            PayloadView::Sakke(s) => {
                self.sakke = Some((s.params, s.id_scheme, s.data));
                self.sakkes += 1;
            }
            PayloadView::Ext(ExtensionView::Other { ext_type, data })
                if ext_type == ExtType::KEY_PARAMS =>
            {
                self.key_params = Some(data);
            }
            PayloadView::Sign(s) => self.sig = Some((s.sign_type, s.signature)),
            _ => {}
        }
    }
}

/// The shape every accepted message has.
struct Shape<'a> {
    t: u64,
    uidi: &'a [u8],
    uidr: &'a [u8],
    sakke_data: &'a [u8],
    /// The KEMAC and the octets its MAC covers (all before its MAC field).
    kemac: Option<(KemacView<'a>, &'a [u8])>,
    signed: &'a [u8],
    sig: &'a [u8],
}

fn shape<'a>(view: &MessageView<'a>, f: &Fields<'a>) -> Result<Shape<'a>, Refusal> {
    let hdr = view.hdr();
    if hdr.version != MIKEY_VERSION || hdr.data_type != DataType::SAKKE {
        return Err(Refusal::Structure("HDR: not data type SAKKE (26)"));
    }
    let t = match (f.ts, f.other_ts, f.t) {
        (1, false, Some(t)) => t,
        _ => return Err(Refusal::Structure("not exactly one T, of type NTP-UTC")),
    };
    if f.rands != 1 {
        return Err(Refusal::Structure("not exactly one RAND"));
    }
    let (Some(uidi), Some(uidr), 2) = (f.uidi, f.uidr, f.idrs_8_9) else {
        return Err(Refusal::Structure(
            "not one IDR of role 8 and one of role 9",
        ));
    };
    let sakke_data = match (f.sakkes, f.sakke) {
        (1, Some((SakkeParams::PARAMETER_SET_1, SakkeIdScheme::UID, data))) => data,
        (1, Some(_)) => {
            return Err(Refusal::Structure(
                "SAKKE payload: not parameter set 1 with the UID scheme",
            ));
        }
        _ => return Err(Refusal::Structure("not exactly one SAKKE payload")),
    };
    let sig = match f.sig {
        Some((SignType::ECCSI, sig)) if sig.len() == ECCSI_SIG_LEN => sig,
        Some(_) => return Err(Refusal::Structure("SIGN: not an ECCSI signature")),
        None => return Err(Refusal::Structure("no SIGN payload")),
    };
    let signed = view
        .mac_input()
        .ok_or(Refusal::Structure("no SIGN payload"))?;
    let kemac = kemac_shape(view, f, signed.len())?;
    Ok(Shape {
        t,
        uidi,
        uidr,
        sakke_data,
        kemac,
        signed,
        sig,
    })
}

/// At most one KEMAC, and it ends where the SIGN payload (2 octets before the signature at
/// `sig_at`) begins, so its MAC covers every octet but the signature (docs/mcx.md §11.5).
fn kemac_shape<'a>(
    view: &MessageView<'a>,
    f: &Fields<'a>,
    sig_at: usize,
) -> Result<Option<(KemacView<'a>, &'a [u8])>, Refusal> {
    let Some((offset, kemac)) = f.kemac else {
        return Ok(None);
    };
    if f.kemacs != 1 {
        return Err(Refusal::Structure("more than one KEMAC"));
    }
    // next (1) ‖ Encr alg (1) ‖ Encr data len (2) ‖ Encr data ‖ MAC alg (1) ‖ MAC.
    let mac_at = offset
        .saturating_add(5)
        .saturating_add(kemac.encr_data.len());
    let ends_at_sign = mac_at.checked_add(kemac.mac.len()) == sig_at.checked_sub(2);
    match view.bytes().get(..mac_at) {
        Some(covered) if ends_at_sign => Ok(Some((kemac, covered))),
        _ => Err(Refusal::Structure("KEMAC: not the payload before SIGN")),
    }
}

/// The key ID and GUK-ID the HDR names (module doc of `build`): the CSB ID, and for a GMK the
/// GMK-ID of an 8-octet GENERIC-ID SPI (`GMK-ID ‖ GUK-ID`) when there is one.
fn key_ids(view: &MessageView<'_>) -> Result<(u32, Option<u32>), Refusal> {
    let hdr = view.hdr();
    let csb = hdr.csb_id;
    if KeyPurpose::of_key_id(csb) != Some(KeyPurpose::Gmk) {
        return Ok((csb, None));
    }
    let CsIdMapView::GenericId(map) = hdr.cs_id_map else {
        return Ok((csb, None));
    };
    let Some(entry) = map.iter().next() else {
        return Ok((csb, None));
    };
    match entry.spi.split_first_chunk::<4>() {
        Some((gmk, guk)) if guk.len() == 4 => {
            if guk != csb.to_be_bytes() {
                return Err(Refusal::Structure("GMK: SPI does not end with the CSB ID"));
            }
            Ok((u32::from_be_bytes(*gmk), Some(csb)))
        }
        _ => Ok((csb, None)),
    }
}

/// Seconds from `at` to `t` (negative: `t` is earlier).
fn offset_secs(t: SystemTime, at: SystemTime) -> i64 {
    match t.duration_since(at) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A message with the shape of a key delivery (checks 1 and 2 of the module doc): its fields
/// are found, none of them is trusted until [`UnverifiedIMessage::verify_signature`] has
/// passed. The one signature check of an I_MESSAGE: [`verify_i_message`] and the key relay's
/// envelope check (`relay::envelope`) both go through it.
pub struct UnverifiedIMessage<'a> {
    view: MessageView<'a>,
    f: Fields<'a>,
    s: Shape<'a>,
}

impl<'a> UnverifiedIMessage<'a> {
    /// Decodes `msg` and checks its shape.
    ///
    /// # Errors
    /// [`Refusal::Malformed`] or [`Refusal::Structure`].
    pub fn parse(msg: &'a [u8]) -> Result<Self, Refusal> {
        let mut f = Fields::default();
        let view = MessageView::decode_with(msg, |offset, p| f.visit(offset, p))?;
        let s = shape(&view, &f)?;
        Ok(Self { view, f, s })
    }

    /// The sender's UID (IDR role 8), as claimed.
    pub fn sender_uid(&self) -> &'a [u8] {
        self.s.uidi
    }

    /// The receiver's UID (IDR role 9), as claimed.
    pub fn receiver_uid(&self) -> &'a [u8] {
        self.s.uidr
    }

    /// The responder's URI (IDRr, role 2), when the message names it.
    pub fn responder_uri(&self) -> Option<&'a [u8]> {
        self.f.idrr
    }

    /// The SAKKE Encapsulated Data.
    pub fn sakke_data(&self) -> &'a [u8] {
        self.s.sakke_data
    }

    /// T, NTP-UTC.
    pub fn time(&self) -> u64 {
        self.s.t
    }

    /// The SHA-256 of the signed octets (all before the signature): what identifies a message
    /// for replay. Not of the signature, which can be altered without the key (s → −s).
    pub fn replay_digest(&self) -> [u8; 32] {
        sha256(&[self.s.signed])
    }

    /// Check 6: the message is signed by `from_uid` (IDR role 8 names it, else
    /// [`Refusal::WrongSender`]) and its ECCSI signature over every octet before it verifies
    /// under `kpak` for that UID.
    ///
    /// # Errors
    /// [`Refusal::WrongSender`], [`Refusal::BadSignature`].
    pub fn verify_signature(&self, kpak: &Kpak, from_uid: &[u8]) -> Result<(), Refusal> {
        if self.s.uidi != from_uid {
            return Err(Refusal::WrongSender);
        }
        eccsi::verify(kpak, from_uid, self.s.signed, self.s.sig).map_err(|_| Refusal::BadSignature)
    }
}

/// Verifies `msg` for `rx` as `expect` says (checks in the order of the module doc), and
/// remembers it in `replay` once accepted.
///
/// # Errors
/// The first check that fails, as a [`Refusal`].
pub fn verify_i_message(
    msg: &[u8],
    rx: &Receiver<'_>,
    expect: &Expect<'_>,
    replay: &mut ReplayCache,
) -> Result<DeliveredKey, Refusal> {
    let m = UnverifiedIMessage::parse(msg)?;
    let (view, f, s) = (&m.view, &m.f, &m.s);
    if s.uidi != expect.from_uid {
        return Err(Refusal::WrongSender);
    }
    let t = ntp_to_system(s.t);
    let seconds = offset_secs(t, expect.at);
    if seconds.unsigned_abs() > expect.window.as_secs() {
        return Err(Refusal::StaleTime { seconds });
    }
    if s.uidr != rx.uid {
        return Err(Refusal::WrongReceiver);
    }
    m.verify_signature(expect.kpak, expect.from_uid)?;
    let (mut key_id, guk) = key_ids(view)?;
    let csb_id = view.hdr().csb_id;
    let purpose =
        KeyPurpose::of_key_id(csb_id).ok_or(Refusal::UnknownPurpose(KeyPurpose::tag_of(csb_id)))?;
    if KeyPurpose::of_key_id(key_id) != Some(purpose) {
        return Err(Refusal::UnknownPurpose(KeyPurpose::tag_of(key_id)));
    }
    if let Some(expected) = expect.purpose
        && expected != purpose
    {
        return Err(Refusal::WrongPurpose {
            expected,
            got: purpose,
        });
    }
    let digest = m.replay_digest();
    let t_secs = unix_secs(t);
    if replay.is_replay(t_secs, &digest) {
        return Err(Refusal::Replayed);
    }
    let ssv = sakke::decapsulate(rx.z, rx.uid, rx.rsk, s.sakke_data)
        .map_err(|_| Refusal::DecapsulationFailed)?;
    let key = match s.kemac {
        Some((kemac, covered)) => {
            let keys = kemac::envelope_keys(&ssv, csb_id, f.rand);
            DeliveryKey::Bits256(kemac::open(&kemac, covered, &keys, csb_id, s.t)?)
        }
        None => DeliveryKey::Bits128(ssv),
    };
    if purpose == KeyPurpose::Gmk
        && let Some(uri) = rx.uri
    {
        // GMK-ID = GUK-ID XOR the mask (TS 33.180 F.1.3): the XOR is its own inverse.
        let gmk_id = guk_id(key.as_bytes(), csb_id, uri).ok_or(Refusal::GukIdMismatch)?;
        if guk.is_some() && gmk_id != key_id {
            return Err(Refusal::GukIdMismatch);
        }
        key_id = gmk_id;
    }
    let oldest = unix_secs(expect.at).saturating_sub(expect.window.as_secs());
    replay.record(t_secs, digest, oldest);
    Ok(DeliveredKey {
        key,
        key_id,
        purpose,
        csb_id,
        sender_uid: s.uidi.to_vec(),
        time: s.t,
        kms_uri: f.kmsi.map(<[u8]>::to_vec),
        key_params: f.key_params.map(<[u8]>::to_vec),
    })
}
