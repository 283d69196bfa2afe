//! A second SRTP implementation, written from RFC 3711 for the tests alone: key derivation
//! (§4.3.1, key derivation rate 0), AES-CM (§4.1.1) and HMAC-SHA-1 (§4.2.1), on the
//! RustCrypto primitives. Checked against the RFC's Appendix B.3 vectors below.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// AES-CM keystream of `len` octets from the 16-octet `iv`.
fn keystream(key: &[u8; 16], iv: [u8; 16], len: usize) -> Vec<u8> {
    let aes = Aes128::new(key.into());
    let mut out = Vec::with_capacity(len + 16);
    let mut counter = u128::from_be_bytes(iv);
    while out.len() < len {
        let mut block = counter.to_be_bytes().into();
        aes.encrypt_block(&mut block);
        out.extend_from_slice(&block);
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// RFC 3711 §4.3.1 with kdr 0: the session key of `label`.
pub fn derive(master_key: &[u8; 16], master_salt: &[u8; 14], label: u8, len: usize) -> Vec<u8> {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(master_salt);
    iv[7] ^= label;
    keystream(master_key, iv, len)
}

/// The session keys of one master key.
pub struct Keys {
    enc: [u8; 16],
    auth: Vec<u8>,
    salt: [u8; 14],
}

impl Keys {
    pub fn new(master_key: &[u8], master_salt: &[u8]) -> Self {
        let mk: [u8; 16] = master_key.try_into().expect("16-octet master key");
        let ms: [u8; 14] = master_salt.try_into().expect("14-octet master salt");
        Self {
            enc: derive(&mk, &ms, 0, 16).try_into().unwrap(),
            auth: derive(&mk, &ms, 1, 20),
            salt: derive(&mk, &ms, 2, 14).try_into().unwrap(),
        }
    }
}

/// RTP header length (fixed part, CSRCs, extension).
pub fn header_len(p: &[u8]) -> usize {
    let mut len = 12 + usize::from(p[0] & 0x0f) * 4;
    if p[0] & 0x10 != 0 {
        len += 4 + usize::from(u16::from_be_bytes([p[len + 2], p[len + 3]])) * 4;
    }
    len
}

/// Checks the tag and decrypts an SRTP packet without MKI at index `roc ‖ seq`.
pub fn unprotect(keys: &Keys, srtp: &[u8], roc: u32, tag_len: usize) -> Result<Vec<u8>, String> {
    let (body, tag) = srtp.split_at(srtp.len() - tag_len);
    let mut mac = Hmac::<Sha1>::new_from_slice(&keys.auth).unwrap();
    mac.update(body);
    mac.update(&roc.to_be_bytes());
    let full = mac.finalize().into_bytes();
    if full[..tag_len] != *tag {
        return Err("authentication tag mismatch".into());
    }
    let seq = u16::from_be_bytes([body[2], body[3]]);
    let ssrc = &body[8..12];
    let index = (u64::from(roc) << 16) | u64::from(seq);
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&keys.salt);
    for (i, b) in ssrc.iter().enumerate() {
        iv[4 + i] ^= b;
    }
    for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
        iv[8 + i] ^= b;
    }
    let hl = header_len(body);
    let ks = keystream(&keys.enc, iv, body.len() - hl);
    let mut out = body.to_vec();
    for (o, k) in out[hl..].iter_mut().zip(ks) {
        *o ^= k;
    }
    Ok(out)
}

/// The MKI of a packet with an `mki_len`-octet MKI before a `tag_len`-octet tag, and the
/// packet without it (the MKI is not authenticated, RFC 3711 §3.1).
pub fn split_mki(srtp: &[u8], mki_len: usize, tag_len: usize) -> (Vec<u8>, Vec<u8>) {
    let end = srtp.len() - tag_len;
    let mki = srtp[end - mki_len..end].to_vec();
    let mut rest = srtp[..end - mki_len].to_vec();
    rest.extend_from_slice(&srtp[end..]);
    (mki, rest)
}

#[test]
fn reference_key_derivation_matches_rfc_3711_appendix_b3() {
    let mk = hex::decode("E1F97A0D3E018BE0D64FA32C06DE4139").unwrap();
    let ms = hex::decode("0EC675AD498AFEEBB6960B3AABE6").unwrap();
    let (mk, ms): ([u8; 16], [u8; 14]) = (mk.try_into().unwrap(), ms.try_into().unwrap());
    assert_eq!(
        hex::encode_upper(derive(&mk, &ms, 0, 16)),
        "C61E7A93744F39EE10734AFE3FF7A087"
    );
    assert_eq!(
        hex::encode_upper(derive(&mk, &ms, 2, 14)),
        "30CBBC08863D8C85D49DB34A9AE1"
    );
    assert_eq!(
        hex::encode_upper(derive(&mk, &ms, 1, 20)),
        "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"
    );
}
