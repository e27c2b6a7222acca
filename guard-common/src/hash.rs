//! FNV-1a, 64 bit: the one hash both sides use for argv tokens and names.
//!
//! Chosen because a BPF program can compute it one byte at a time while it copies argv
//! (a multiply and an xor per byte, no tables, no state beyond one u64), and because
//! userspace gets the same value from the same function. It is not collision resistant;
//! the threat model (mistakes, not an adversary) does not need it to be.

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds one byte into a running hash.
#[inline(always)]
pub const fn fnv1a_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(FNV_PRIME)
}

/// Folds one byte into a running hash of a path's basename: a `/` starts it over.
#[inline(always)]
pub const fn basename_step(hash: u64, byte: u8) -> u64 {
    if byte == b'/' {
        FNV_OFFSET
    } else {
        fnv1a_step(hash, byte)
    }
}

/// Hash of a whole byte string.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        hash = fnv1a_step(hash, bytes[i]);
        i += 1;
    }
    hash
}

/// Hash of a short option as a word, `-` followed by one character (`-F`, `-r`).
#[inline(always)]
pub const fn short_option_hash(c: u8) -> u64 {
    fnv1a_step(fnv1a_step(FNV_OFFSET, b'-'), c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn short_option_is_the_two_byte_hash() {
        assert_eq!(short_option_hash(b'F'), fnv1a(b"-F"));
    }
}
