//! The order intermediate keys sort and group in: bytewise (fast path: memcmp and 8-byte prefixes)
//! or a job-supplied comparator.

use std::cmp::Ordering;

use crate::api::KeyComparator;

/// How keys compare during sorts, merges and grouping.
pub enum KeyOrder {
    /// Lexicographic byte order (the default); lets sorts use cached 8-byte prefixes.
    Bytewise,
    /// The job's own comparator.
    Custom(Box<dyn KeyComparator>),
}

impl KeyOrder {
    /// Compares two keys.
    #[inline]
    pub fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
        match self {
            KeyOrder::Bytewise => a.cmp(b),
            KeyOrder::Custom(c) => c.compare(a, b),
        }
    }

    /// True for bytewise order, where [`key_prefix`] order agrees with key order.
    pub fn is_bytewise(&self) -> bool {
        matches!(self, KeyOrder::Bytewise)
    }
}

/// The first 8 bytes of `key` as a big-endian integer, zero-padded: comparing prefixes orders
/// keys bytewise except when prefixes tie, which then needs a full comparison.
#[inline]
pub fn key_prefix(key: &[u8]) -> u64 {
    if key.len() >= 8 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&key[..8]);
        u64::from_be_bytes(b)
    } else {
        let mut b = [0u8; 8];
        b[..key.len()].copy_from_slice(key);
        u64::from_be_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_order_never_contradicts_bytewise_order() {
        let keys: [&[u8]; 7] = [b"", b"a", b"a\0", b"ab", b"abcdefgh", b"abcdefghi", b"\xff"];
        for a in keys {
            for b in keys {
                let p = key_prefix(a).cmp(&key_prefix(b));
                if p != Ordering::Equal {
                    assert_eq!(p, a.cmp(b), "{a:?} vs {b:?}");
                }
            }
        }
    }
}
