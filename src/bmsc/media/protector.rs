//! The sans-IO SRTP sender of one streaming service (docs/profile.md §2.4): plain RTP in, SRTP
//! under the current MTK out, the MKI naming the key.
//!
//! One SRTP stream (the service's SSRC) carries every MTK in turn as a master key selected by
//! its MKI (RFC 3711 §3.1, §8.1), so the packet index — and with it the rollover counter —
//! runs on across MTK changes and MSK rotations, as a receiver holding several MTKs expects.
//! The transform is the `libsrtp` crate's (docs/srtp.md). That crate starts a stream's index at
//! 0 and offers no way to set a sender's rollover counter, so a stream that must start at
//! another index (a configured `roc`, or the rebuild that bounds the keys a stream holds) is
//! first stepped forward with packets under a throwaway key that are never sent: each step
//! advances the index by less than 2^15, which the index estimate of RFC 3711 §3.3.1 takes as
//! forward.

use libsrtp::{MasterKey, ProtectionProfile, SendSession, SrtpError, StreamConfig};
use thiserror::Error;

use crate::bmsc::config::{SrtpSenderConfig, SrtpSuite};
use crate::bmsc::distribution::MediaKey;
use crate::mbms::profile::{SRTP_MKI_LEN, srtp_mki};
use crate::mikey::{MskId, MtkId};

use super::rtp::{RtpError, RtpHeader};

/// Master keys a stream holds before it is rebuilt (each MTK adds one): bounds the memory of a
/// long-running service.
pub const MAX_STREAM_KEYS: usize = 256;

/// The MKI of the throwaway key the index is stepped forward with: MTK ID 0 is never given
/// (MTK IDs start at SEQl + 1, docs/profile.md §2.3), so no real key has this MKI.
const STEP_MKI: [u8; SRTP_MKI_LEN] = [0; SRTP_MKI_LEN];

/// The largest forward step of the index that the estimate still reads as forward.
const MAX_STEP: u64 = 0x7fff;

/// Why a packet was not protected. Every case is counted and the packet dropped.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaError {
    /// Not an RTP packet the sender accepts.
    #[error("not RTP: {0}")]
    Rtp(#[from] RtpError),
    /// The packet's SSRC is not the service's `ssrc` (the one its MTK messages announce).
    #[error("SSRC {0:#010x} is not the service's")]
    OtherSsrc(u32),
    /// No MTK is usable yet (none current, or its message has not gone out `key_lead` times).
    #[error("no usable MTK yet")]
    NoKey,
    /// The packet's index was already protected, or lies behind the replay window: sending it
    /// would reuse keystream.
    #[error("packet index already used")]
    Replayed,
    /// The SRTP transform refused the packet or the key.
    #[error("SRTP: {0}")]
    Srtp(String),
}

impl From<SrtpError> for MediaError {
    fn from(e: SrtpError) -> Self {
        match e {
            SrtpError::InvalidPacketIndex => Self::Replayed,
            other => Self::Srtp(other.to_string()),
        }
    }
}

/// RFC 3711 §3.3.1: the index of `seq` relative to the highest index so far, `highest` — the
/// rollover counter that puts it nearest. The same rule as the transform's, so both agree.
#[must_use]
pub fn estimate_index(highest: u64, seq: u16) -> u64 {
    let guess = (highest & 0xffff_ffff_0000) | u64::from(seq);
    if highest > 0x8000 && guess < highest - 0x8000 {
        guess + 0x1_0000
    } else if guess > highest + 0x8000 && highest >= 0x1_0000 {
        guess - 0x1_0000
    } else {
        guess
    }
}

/// The SRTP sender of one streaming service. See the module documentation.
pub struct Protector {
    ssrc: u32,
    suite: SrtpSuite,
    mki_on_wire: bool,
    key_lead: u32,
    start_roc: u32,
    session: Option<SendSession>,
    stream_keys: usize,
    /// The stream is new: step its index to the packet index before the next one.
    fresh: bool,
    current: Option<(MskId, MtkId)>,
    current_mki: Option<Vec<u8>>,
    /// The highest packet index protected.
    highest: Option<u64>,
}

impl std::fmt::Debug for Protector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protector")
            .field("ssrc", &self.ssrc)
            .field("suite", &self.suite)
            .field("current", &self.current)
            .field("highest", &self.highest)
            .finish_non_exhaustive()
    }
}

fn profile(suite: SrtpSuite) -> ProtectionProfile {
    match suite {
        SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha180,
        SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha132,
    }
}

impl Protector {
    /// The sender of a stream `ssrc` whose rollover counter is `start_roc` before its first
    /// packet, under `config`'s suite, MKI rule and key lead.
    #[must_use]
    pub fn new(ssrc: u32, start_roc: u32, config: &SrtpSenderConfig) -> Self {
        Self {
            ssrc,
            suite: config.suite,
            mki_on_wire: config.mki,
            key_lead: config.key_lead.max(1),
            start_roc,
            session: None,
            stream_keys: 0,
            fresh: true,
            current: None,
            current_mki: None,
            highest: None,
        }
    }

    /// The key media go under now, as (MSK ID, MTK ID).
    #[must_use]
    pub fn current_key(&self) -> Option<(MskId, MtkId)> {
        self.current
    }

    /// The stream's rollover counter: of the highest index protected, or the start value.
    #[must_use]
    pub fn roc(&self) -> u32 {
        self.highest.map_or(self.start_roc, |i| {
            u32::try_from(i >> 16).unwrap_or(u32::MAX)
        })
    }

    /// Offers the service's current MTK. It protects the packets from the next one on when it
    /// is another key than the one in use and its message went out at least `key_lead` times
    /// (docs/profile.md §2.4); returns whether it was taken.
    ///
    /// # Errors
    /// [`MediaError::Srtp`] when the transform refuses the key (never for a 16-octet MTK and
    /// a 14-octet salt).
    pub fn offer_key(&mut self, key: &MediaKey) -> Result<bool, MediaError> {
        let name = (key.msk_id, key.mtk_id);
        if key.sent < self.key_lead || self.current == Some(name) {
            return Ok(false);
        }
        let mki = srtp_mki(key.msk_id, key.mtk_id).to_vec();
        let master = MasterKey::new(key.mtk.as_bytes(), key.salt.as_bytes(), &Some(mki.clone()));
        let rtp = profile(self.suite);
        let rtcp = ProtectionProfile::Aes128CmHmacSha180;
        let added = match self.session.as_mut() {
            Some(session) if self.stream_keys < MAX_STREAM_KEYS => session
                .add_stream(
                    Some(self.ssrc),
                    &StreamConfig::new(vec![master.clone()], &rtp, &rtcp),
                )
                .is_ok(),
            _ => false,
        };
        if added {
            self.stream_keys += 1;
        } else {
            // A new stream: the throwaway key to step its index with, and this key.
            let step = MasterKey::new(&[0; 16], &[0; 14], &Some(STEP_MKI.to_vec()));
            let mut session = SendSession::new();
            session.add_stream(
                Some(self.ssrc),
                &StreamConfig::new(vec![step, master], &rtp, &rtcp),
            )?;
            self.session = Some(session);
            self.stream_keys = 2;
            self.fresh = true;
        }
        self.current = Some(name);
        self.current_mki = Some(mki);
        Ok(true)
    }

    /// Protects one RTP packet into `out` (cleared first): `header | encrypted payload | [MKI]
    /// | tag` (RFC 3711 §3.1).
    ///
    /// `out`'s buffer is reused: with room for the protected packet, protecting allocates no
    /// buffer.
    ///
    /// # Errors
    /// [`MediaError`]: not RTP, another SSRC, no usable key yet, an index already used; `out`
    /// is then empty and nothing is to be sent.
    pub fn protect(&mut self, rtp: &[u8], out: &mut Vec<u8>) -> Result<(), MediaError> {
        out.clear();
        let header = RtpHeader::parse(rtp)?;
        if header.ssrc != self.ssrc {
            return Err(MediaError::OtherSsrc(header.ssrc));
        }
        let (Some(session), Some(_)) = (self.session.as_mut(), self.current_mki.as_ref()) else {
            return Err(MediaError::NoKey);
        };
        let index = match self.highest {
            Some(h) => estimate_index(h, header.seq),
            None => (u64::from(self.start_roc) << 16) | u64::from(header.seq),
        };
        if self.fresh {
            // The transform's index is 0: step it to the index just before this packet's.
            let target = self.highest.unwrap_or(index.saturating_sub(1));
            step_index(session, self.ssrc, target)?;
            self.fresh = false;
        }
        // The transform takes the packet by value and hands it back grown by the MKI and the
        // tag: `out`'s buffer goes in with room for both, so no packet needs an allocation of
        // its own (the transform's tag computation still makes one small one).
        out.extend_from_slice(rtp);
        out.reserve(SRTP_MKI_LEN + self.suite.tag_len());
        *out = session.rtp_protect_mki(std::mem::take(out), &self.current_mki)?;
        if !self.mki_on_wire {
            // The MKI is not authenticated (RFC 3711 §3.1): dropping it leaves a valid packet
            // for a receiver that knows the one key.
            let tag = self.suite.tag_len();
            let end = out.len().saturating_sub(tag);
            let start = end.saturating_sub(SRTP_MKI_LEN);
            out.drain(start..end);
        }
        self.highest = Some(self.highest.map_or(index, |h| h.max(index)));
        Ok(())
    }
}

/// Steps the fresh stream's index from 0 to `target` with packets under the throwaway key.
fn step_index(session: &mut SendSession, ssrc: u32, target: u64) -> Result<(), MediaError> {
    if target == 0 {
        return Ok(());
    }
    let [s0, s1, s2, s3] = ssrc.to_be_bytes();
    let mut index = 0u64;
    let mut first = true;
    while first || index < target {
        index = if first {
            target.min(MAX_STEP)
        } else {
            (index + MAX_STEP).min(target)
        };
        first = false;
        let [q0, q1] = (index as u16).to_be_bytes();
        let packet = vec![0x80, 0, q0, q1, 0, 0, 0, 0, s0, s1, s2, s3];
        session.rtp_protect_mki(packet, &Some(STEP_MKI.to_vec()))?;
    }
    Ok(())
}
