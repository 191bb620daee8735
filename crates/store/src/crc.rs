//! CRC32C (Castagnoli): the processor's CRC32 instruction where there is one (x86-64 SSE 4.2,
//! aarch64 CRC), else a table computed at compile time. Every record is checksummed on the
//! writer thread, so at byte-at-a-time speed the CRC was a visible share of a persistent
//! publish.

const POLY: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    !update(!0, data)
}

#[cfg(target_arch = "x86_64")]
fn update(crc: u32, data: &[u8]) -> u32 {
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the feature was detected at run time.
        unsafe { update_sse42(crc, data) }
    } else {
        update_table(crc, data)
    }
}

#[cfg(target_arch = "aarch64")]
fn update(crc: u32, data: &[u8]) -> u32 {
    if std::arch::is_aarch64_feature_detected!("crc") {
        // SAFETY: the feature was detected at run time.
        unsafe { update_arm(crc, data) }
    } else {
        update_table(crc, data)
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn update(crc: u32, data: &[u8]) -> u32 {
    update_table(crc, data)
}

fn update_table(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc = TABLE[((crc ^ byte as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn update_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut words = data.chunks_exact(8);
    let mut crc = crc as u64;
    for word in &mut words {
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    let mut crc = crc as u32;
    for &byte in words.remainder() {
        crc = _mm_crc32_u8(crc, byte);
    }
    crc
}

#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "crc")]
unsafe fn update_arm(crc: u32, data: &[u8]) -> u32 {
    use std::arch::aarch64::{__crc32cb, __crc32cd};
    let mut words = data.chunks_exact(8);
    let mut crc = crc;
    for word in &mut words {
        crc = __crc32cd(crc, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    for &byte in words.remainder() {
        crc = __crc32cb(crc, byte);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::{crc32c, update_table};
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    proptest! {
        #[test]
        fn the_instruction_agrees_with_the_table(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(crc32c(&data), !update_table(!0, &data));
        }
    }
}
