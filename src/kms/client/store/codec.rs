//! The plaintext of the store's sealed files: length-prefixed fields (4-octet big-endian
//! length ‖ octets), integers as 8 octets big-endian; a file with a field missing, extra or of
//! the wrong size does not decode.

use zeroize::Zeroizing;

use crate::ibe::{ECCSI_POINT_LEN, Rsk, SAKKE_POINT_LEN, Ssk};
use crate::kms::client::check::KeyMaterial;
use crate::kms::messages::KmsCertificate;

/// A length-prefixed field writer and reader for the sealed files.
#[derive(Default)]
pub(super) struct Fields(pub(super) Zeroizing<Vec<u8>>);

impl Fields {
    fn put(&mut self, b: &[u8]) {
        // Fields are a few hundred octets at most: a URI the XML reader bounded, a key.
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
    }

    fn put_u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (field, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some(field)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.take()?.to_vec()).ok()
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take()?.try_into().ok()?))
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take()?.try_into().ok()
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

pub(super) fn encode_certificate(c: &KmsCertificate) -> Fields {
    let mut f = Fields::default();
    f.put(c.kms_uri.as_bytes());
    f.put(c.user_id_format.as_bytes());
    f.put_u64(c.user_key_period);
    f.put_u64(c.user_key_offset);
    f.put(&c.pub_enc_key);
    f.put(&c.pub_auth_key);
    f.put_u64(c.parameter_set.map_or(0, u64::from));
    f
}

pub(super) fn decode_certificate(b: &[u8]) -> Option<KmsCertificate> {
    let mut r = Reader(b);
    let c = KmsCertificate {
        kms_uri: r.string()?,
        user_id_format: r.string()?,
        user_key_period: r.u64()?,
        user_key_offset: r.u64()?,
        pub_enc_key: r.take()?.to_vec(),
        pub_auth_key: r.take()?.to_vec(),
        parameter_set: match r.u64()? {
            0 => None,
            p => Some(u32::try_from(p).ok()?),
        },
        ..KmsCertificate::default()
    };
    r.end()?;
    Some(c)
}

pub(super) fn encode_material(m: &KeyMaterial) -> Fields {
    let mut f = Fields::default();
    f.put(m.user_uri.as_bytes());
    f.put(m.kms_uri.as_bytes());
    f.put_u64(m.user_key_period);
    f.put_u64(m.user_key_offset);
    f.put_u64(m.key_period_no);
    f.put(&m.uid);
    f.put(m.ssk.as_bytes());
    f.put(&m.pvt);
    f.put(m.rsk.as_bytes());
    f.put(&m.kpak);
    f.put(&m.z);
    f
}

pub(super) fn decode_material(b: &[u8]) -> Option<KeyMaterial> {
    let mut r = Reader(b);
    let m = KeyMaterial {
        user_uri: r.string()?,
        kms_uri: r.string()?,
        user_key_period: r.u64()?,
        user_key_offset: r.u64()?,
        key_period_no: r.u64()?,
        uid: r.array::<32>()?,
        ssk: Ssk::from_slice(r.take()?).ok()?,
        pvt: r.array::<ECCSI_POINT_LEN>()?,
        rsk: Rsk::from_slice(r.take()?).ok()?,
        kpak: r.array::<ECCSI_POINT_LEN>()?,
        z: r.array::<SAKKE_POINT_LEN>()?,
    };
    r.end()?;
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_round_trips_and_a_cut_or_extended_one_does_not_decode() {
        let c = KmsCertificate {
            kms_uri: "kms.example.org".into(),
            user_id_format: "2".into(),
            user_key_period: 2_592_000,
            user_key_offset: 7,
            pub_enc_key: vec![4; 257],
            pub_auth_key: vec![4; 65],
            parameter_set: Some(1),
            ..KmsCertificate::default()
        };
        let f = encode_certificate(&c);
        assert_eq!(decode_certificate(&f.0), Some(c));
        for len in 0..f.0.len() {
            assert_eq!(decode_certificate(&f.0[..len]), None, "{len}");
        }
        let mut longer = f.0.to_vec();
        longer.push(0);
        assert_eq!(decode_certificate(&longer), None);
        assert!(decode_material(&f.0).is_none(), "not key material");
    }
}
