//! T as NTP-UTC (RFC 3830 §6.6): 32 bits of seconds since 1900, 32 bits of fraction.

use std::time::SystemTime;

use crate::diameter;

/// The 64-bit NTP-UTC value of `t` (the fraction from its nanoseconds); `None` outside the
/// two NTP eras of 1968–2104.
pub fn ntp_timestamp(t: SystemTime) -> Option<u64> {
    let secs = diameter::system_to_ntp(t)?;
    let nanos = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .subsec_nanos();
    let frac = (u64::from(nanos) << 32) / 1_000_000_000;
    Some(u64::from(secs) << 32 | frac)
}

/// The seconds of a 64-bit NTP value.
pub const fn ntp_seconds(ntp: u64) -> u32 {
    (ntp >> 32) as u32
}

/// The time of a 64-bit NTP-UTC value, to the second; seconds with the most significant bit
/// clear are read in the era that starts in 2036 (RFC 5905).
pub fn ntp_to_system(ntp: u64) -> SystemTime {
    diameter::ntp_to_system(ntp_seconds(ntp))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_streamwide_time_is_2025_10_02() {
        // 0xec898da8 = 3968437672 s since 1900 = 1759448872 s since 1970.
        let t = ntp_to_system(0xec89_8da8_0000_0000);
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_759_448_872)
        );
        assert_eq!(ntp_timestamp(t), Some(0xec89_8da8_0000_0000));
        let half = t + Duration::from_millis(500);
        assert_eq!(ntp_timestamp(half), Some(0xec89_8da8_8000_0000));
    }
}
