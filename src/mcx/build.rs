//! Building the I_MESSAGE of a key delivery (RFC 6509 §4, TS 33.180 key delivery):
//! `HDR ‖ T ‖ RAND ‖ IDR(8) ‖ IDR(9) ‖ [IDR(6) ‖ IDR(7)] ‖ SAKKE ‖ [EXT 7] ‖ SIGN`.
//!
//! A 32-octet key adds a KEMAC before SIGN (`super::kemac`, docs/mcx.md §11.5):
//! `… ‖ SAKKE ‖ [EXT 7] ‖ KEMAC ‖ SIGN`, the SAKKE payload then carrying a fresh SSV.
//!
//! HDR: data type SAKKE (26), V = 0, PRF-HMAC-SHA-256, CSB ID the key ID (for a GMK the GUK-ID);
//! a GMK or CSK names its key in one GENERIC-ID crypto session (SPI = GMK-ID ‖ GUK-ID, or the
//! CSK-ID), a PCK has no crypto session (map type 1). The ECCSI signature covers every octet
//! before it, the SIGN type/length octets included.

use thiserror::Error;

use super::kemac;
use super::key::DeliveryKey;
use super::keyid::{KeyPurpose, guk_id};
use super::profile::{CSK_CS_ID, GMK_CS_ID, IDR_ID_TYPE, RAND_LEN};
use crate::crypto::Random;
use crate::ibe::{ECCSI_SIG_LEN, IbeError, Kpak, SakkePublic, Ssk, Ssv, eccsi, sakke};
use crate::mikey::{
    CsIdMap, DataType, EncodeError, ExtType, GenericIdEntry, Hdr, IdRole, MIKEY_VERSION,
    MessageWriter, PrfFunc, SakkeIdScheme, SakkeParams, SignType, Timestamp,
};

/// What a key delivery carries, apart from the key's encapsulation and the signature.
#[derive(Debug, Clone, Copy)]
pub struct KeyDelivery<'a> {
    /// The key: 16 octets go as the SSV of SAKKE itself (RFC 6509), 32 octets in a KEMAC under
    /// a fresh SSV (docs/mcx.md §11.5).
    pub key: &'a DeliveryKey,
    /// The key ID (GMK-ID, PCK-ID or CSK-ID), its purpose tag that of `purpose`.
    pub key_id: u32,
    /// What the key is for.
    pub purpose: KeyPurpose,
    /// The receiver's UID for the current key period: the SAKKE identifier, in IDR role 9.
    pub to_uid: &'a [u8],
    /// The receiver's MC ID (URI), for a GMK's GUK-ID (TS 33.180 F.1.3). Without it a GMK goes
    /// with its GMK-ID in clear as the GUK-ID (\[CHOICE\] docs/mcx.md §11.4).
    pub to_uri: Option<&'a str>,
    /// The KMS URI, written as IDRkmsi and IDRkmsr (roles 6 and 7) when given.
    pub kms_uri: Option<&'a str>,
    /// T, NTP-UTC (64 bits).
    pub time: u64,
    /// The TS 33.180 key parameters (General Extension type 7), written as given.
    pub key_params: Option<&'a [u8]>,
}

/// The sender's ECCSI identity and keys.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// The sender's UID for the current key period, in IDR role 8.
    pub uid: &'a [u8],
    /// The sender's SSK.
    pub ssk: &'a Ssk,
    /// The sender's PVT, `04 ‖ x ‖ y`.
    pub pvt: &'a [u8],
    /// The KPAK of the sender's KMS.
    pub kpak: &'a Kpak,
}

/// Why a message could not be built.
#[non_exhaustive]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The key ID's purpose tag is not that of the purpose.
    #[error("key ID {key_id:08x}: purpose tag {tag}, not that of {purpose}")]
    PurposeTag {
        /// The key ID.
        key_id: u32,
        /// Its purpose tag.
        tag: u8,
        /// The purpose asked for.
        purpose: KeyPurpose,
    },
    /// A URI too long for the GUK-ID derivation.
    #[error("receiver URI too long")]
    UriTooLong,
    /// A key of another length than 16 or 32 octets.
    #[error("key of {len} octets: 16 (the SSV) or 32 (KEMAC) required")]
    KeyLength {
        /// The key's length in octets.
        len: usize,
    },
    /// A 32-octet key given to [`assemble`], which has no SSV to derive the KEMAC's keys from.
    #[error("a 32-octet key needs the SSV of its SAKKE data (build_i_message)")]
    SsvRequired,
    /// Encapsulation, signing or the random generator.
    #[error(transparent)]
    Ibe(#[from] IbeError),
    /// A field too long for its length field.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A message written up to its signature: sign [`Unsigned::signed_octets`], then
/// [`Unsigned::finish`].
#[derive(Debug, Clone)]
pub struct Unsigned {
    bytes: Vec<u8>,
    sig_at: usize,
}

impl Unsigned {
    /// The octets the ECCSI signature covers: all before the signature field.
    pub fn signed_octets(&self) -> &[u8] {
        self.bytes.get(..self.sig_at).unwrap_or_default()
    }

    /// The octets written, for tests that alter a message before signing it.
    #[cfg(test)]
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// The message with `sig` (`r ‖ s ‖ PVT`) in its signature field.
    pub fn finish(mut self, sig: &[u8; ECCSI_SIG_LEN]) -> Vec<u8> {
        if let Some(field) = self.bytes.get_mut(self.sig_at..) {
            field.copy_from_slice(sig);
        }
        self.bytes
    }
}

/// The HDR of a delivery of `d.purpose`: CSB ID and CS ID map (module doc).
fn hdr(d: &KeyDelivery<'_>) -> Result<Hdr, BuildError> {
    let generic = |cs_id, spi: Vec<u8>| {
        CsIdMap::GenericId(vec![GenericIdEntry {
            cs_id,
            prot_type: 0,
            s: false,
            policies: vec![],
            session_data: vec![],
            spi,
        }])
    };
    let (csb_id, cs_count, cs_id_map) = match d.purpose {
        KeyPurpose::Gmk => {
            let guk = match d.to_uri {
                Some(uri) => {
                    guk_id(d.key.as_bytes(), d.key_id, uri).ok_or(BuildError::UriTooLong)?
                }
                None => d.key_id,
            };
            let mut spi = d.key_id.to_be_bytes().to_vec();
            spi.extend_from_slice(&guk.to_be_bytes());
            (guk, 1, generic(GMK_CS_ID, spi))
        }
        KeyPurpose::Csk => (
            d.key_id,
            1,
            generic(CSK_CS_ID, d.key_id.to_be_bytes().to_vec()),
        ),
        KeyPurpose::Pck => (d.key_id, 0, CsIdMap::Empty),
    };
    Ok(Hdr {
        version: MIKEY_VERSION,
        data_type: DataType::SAKKE,
        v: false,
        prf_func: PrfFunc::HMAC_SHA_256,
        csb_id,
        cs_count,
        cs_id_map,
    })
}

/// The key ID must carry the purpose's tag.
fn check_tag(d: &KeyDelivery<'_>) -> Result<(), BuildError> {
    let tag = KeyPurpose::tag_of(d.key_id);
    if tag == d.purpose.tag() {
        Ok(())
    } else {
        Err(BuildError::PurposeTag {
            key_id: d.key_id,
            tag,
            purpose: d.purpose,
        })
    }
}

/// Writes the message around `sakke_data` (the SAKKE Encapsulated Data, made by anyone),
/// up to the signature, for the sender `from_uid`: a delivery of a 16-octet key, whose SAKKE
/// data encapsulates the key itself.
///
/// # Errors
/// [`BuildError::PurposeTag`] when the key ID is not tagged for the purpose;
/// [`BuildError::SsvRequired`] for a 32-octet key; field lengths.
pub fn assemble(
    d: &KeyDelivery<'_>,
    from_uid: &[u8],
    rand: &[u8],
    sakke_data: &[u8],
) -> Result<Unsigned, BuildError> {
    match d.key {
        DeliveryKey::Bits128(_) => write(d, from_uid, rand, sakke_data, None),
        DeliveryKey::Bits256(_) => Err(BuildError::SsvRequired),
    }
}

/// Writes the message up to the signature; with `kemac` = (key, SSV), a KEMAC carrying the key
/// under the SSV's envelope keys (`super::kemac`) before SIGN.
pub(super) fn write(
    d: &KeyDelivery<'_>,
    from_uid: &[u8],
    rand: &[u8],
    sakke_data: &[u8],
    kemac: Option<(&[u8], &Ssv)>,
) -> Result<Unsigned, BuildError> {
    check_tag(d)?;
    let hdr = hdr(d)?;
    let kms_len = d.kms_uri.map_or(0, str::len);
    let capacity = 384
        + rand.len()
        + from_uid.len()
        + d.to_uid.len()
        + 2 * kms_len
        + sakke_data.len()
        + d.key_params.map_or(0, <[u8]>::len)
        + kemac.map_or(0, |(k, _)| k.len() + 32);
    let mut w = MessageWriter::new(&hdr, capacity)?;
    w.timestamp(Timestamp::NtpUtc(d.time));
    w.rand(rand)?;
    w.idr(IdRole::IDRUIDI, IDR_ID_TYPE, from_uid)?;
    w.idr(IdRole::IDRUIDR, IDR_ID_TYPE, d.to_uid)?;
    if let Some(kms) = d.kms_uri {
        w.idr(IdRole::IDRKMSI, IDR_ID_TYPE, kms.as_bytes())?;
        w.idr(IdRole::IDRKMSR, IDR_ID_TYPE, kms.as_bytes())?;
    }
    w.sakke(SakkeParams::PARAMETER_SET_1, SakkeIdScheme::UID, sakke_data)?;
    if let Some(params) = d.key_params {
        w.extension(ExtType::KEY_PARAMS, params)?;
    }
    if let Some((key, ssv)) = kemac {
        let keys = kemac::envelope_keys(ssv, hdr.csb_id, rand);
        kemac::write(&mut w, key, &keys, hdr.csb_id, d.time)?;
    }
    let (bytes, field) = w.sign(SignType::ECCSI, ECCSI_SIG_LEN)?;
    Ok(Unsigned {
        bytes,
        sig_at: field.offset,
    })
}

/// The I_MESSAGE delivering `d.key` to `d.to_uid` under the receiver's KMS public key `z`,
/// signed by `signer`; RAND, the signature's ephemeral and (for a 32-octet key) the SSV from
/// `rng`.
///
/// # Errors
/// [`BuildError::PurposeTag`]; [`BuildError::Ibe`] for a malformed UID, SSK or PVT, or a failed
/// generator.
pub fn build_i_message(
    d: &KeyDelivery<'_>,
    z: &SakkePublic,
    signer: &Signer<'_>,
    rng: &mut dyn Random,
) -> Result<Vec<u8>, BuildError> {
    check_tag(d)?;
    let mut rand = [0u8; RAND_LEN];
    rng.fill(&mut rand).map_err(|_| IbeError::Random)?;
    let unsigned = match d.key {
        DeliveryKey::Bits128(ssv) => {
            let data = sakke::encapsulate(z, d.to_uid, ssv)?;
            write(d, signer.uid, &rand, &data, None)?
        }
        DeliveryKey::Bits256(key) => {
            let ssv = Ssv::generate(rng)?;
            let data = sakke::encapsulate(z, d.to_uid, &ssv)?;
            write(d, signer.uid, &rand, &data, Some((key.as_bytes(), &ssv)))?
        }
    };
    sign(unsigned, signer, rng)
}

/// Signs the octets of `unsigned` as `signer` and writes the signature.
pub(super) fn sign(
    unsigned: Unsigned,
    signer: &Signer<'_>,
    rng: &mut dyn Random,
) -> Result<Vec<u8>, BuildError> {
    let sig = eccsi::sign(
        signer.kpak,
        signer.uid,
        signer.ssk,
        signer.pvt,
        unsigned.signed_octets(),
        rng,
    )?;
    Ok(unsigned.finish(&sig))
}
