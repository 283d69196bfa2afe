//! Properties of ECCSI and SAKKE over random keys and identifiers: what the KMS issues
//! validates, a signature verifies only on its own message and identifier, and encapsulated
//! data decapsulates to its SSV only under the receiver's RSK.
#![cfg(feature = "mcx")]

use proptest::collection::vec;
use proptest::prelude::*;

use mbms_keys::crypto::Seeded;
use mbms_keys::ibe::{IbeError, Ksak, SakkeMaster, Ssv, eccsi, sakke};

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn eccsi_issue_validate_sign_verify(
        seed in any::<u64>(),
        id in vec(any::<u8>(), 1..80),
        msg in vec(any::<u8>(), 0..200),
        flip in any::<usize>(),
    ) {
        let mut rng = Seeded::new(seed);
        let ksak = Ksak::generate(&mut rng).unwrap();
        let kpak = ksak.kpak().unwrap();
        let pair = ksak.issue(&id, &mut rng).unwrap();
        eccsi::validate(&kpak, &id, &pair.ssk, &pair.pvt).unwrap();
        let sig = eccsi::sign(&kpak, &id, &pair.ssk, &pair.pvt, &msg, &mut rng).unwrap();
        prop_assert_eq!(eccsi::verify(&kpak, &id, &msg, &sig), Ok(()));
        // Another message, another identifier.
        let mut m2 = msg.clone();
        m2.push(0);
        prop_assert_eq!(eccsi::verify(&kpak, &id, &m2, &sig), Err(IbeError::BadSignature));
        let mut id2 = id.clone();
        let at = flip % id2.len();
        id2[at] ^= 0x01;
        prop_assert_eq!(eccsi::verify(&kpak, &id2, &msg, &sig), Err(IbeError::BadSignature));
        // The key pair of one identifier does not validate for another.
        prop_assert_eq!(
            eccsi::validate(&kpak, &id2, &pair.ssk, &pair.pvt),
            Err(IbeError::InvalidKeyPair)
        );
    }
}

proptest! {
    // Each case costs several 1024-bit scalar multiplications and two pairings.
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn sakke_issue_validate_encap_decap(
        seed in any::<u64>(),
        id in vec(any::<u8>(), 1..=128),
        other in vec(any::<u8>(), 1..=32),
    ) {
        prop_assume!(id != other);
        let mut rng = Seeded::new(seed);
        let z = SakkeMaster::generate(&mut rng).unwrap();
        let zs = z.public().unwrap();
        let rsk = z.issue_rsk(&id).unwrap();
        sakke::validate_rsk(&zs, &id, &rsk).unwrap();
        prop_assert_eq!(sakke::validate_rsk(&zs, &other, &rsk), Err(IbeError::InvalidRsk));
        let ssv = Ssv::generate(&mut rng).unwrap();
        let data = sakke::encapsulate(&zs, &id, &ssv).unwrap();
        let got = sakke::decapsulate(&zs, &id, &rsk, &data).unwrap();
        prop_assert_eq!(got.as_bytes(), ssv.as_bytes());
        let other_rsk = z.issue_rsk(&other).unwrap();
        prop_assert_eq!(
            sakke::decapsulate(&zs, &id, &other_rsk, &data).err(),
            Some(IbeError::DecapsulationFailed)
        );
    }
}
