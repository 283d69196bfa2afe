//! RFC 1982 serial number arithmetic on the 32-bit MIKEY COUNTER
//! (docs/profile.md §3: a counter is accepted only when it is newer than the
//! stored one, so the BM-SC's counter may wrap).

/// Half the 32-bit serial space: a counter this far from the stored one is
/// neither newer nor older (RFC 1982 §3.2 leaves it undefined); the profile
/// discards it (docs/profile.md §3 \[CHOICE\]).
pub const SERIAL_HALF: u32 = 0x8000_0000;

/// Whether `new` is greater than `stored` in RFC 1982 serial arithmetic
/// (SERIAL_BITS = 32). With no stored counter yet, any counter is newer.
#[must_use]
pub fn is_newer(new: u32, stored: Option<u32>) -> bool {
    match stored {
        None => true,
        Some(old) => {
            let distance = new.wrapping_sub(old);
            distance != 0
                && (distance < SERIAL_HALF
                    || (crate::mbms::profile::SERIAL_HALF_IS_NEWER && distance == SERIAL_HALF))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_order_follows_rfc_1982() {
        assert!(is_newer(0, None));
        assert!(is_newer(6, Some(5)));
        assert!(!is_newer(5, Some(5)));
        assert!(!is_newer(4, Some(5)));
        assert!(is_newer(0x0000_0005, Some(0xffff_fff0)));
        assert!(!is_newer(0xffff_fff0, Some(0x0000_0005)));
        assert!(is_newer(0x7fff_ffff, Some(0)));
        assert!(!is_newer(0x8000_0000, Some(0)));
        assert!(!is_newer(0, Some(0x8000_0000)));
        assert!(is_newer(0x8000_0001, Some(0x0000_0002)));
    }
}
