//! Bearer tokens and secrets (a session's client and executor tokens, a job's shuffle secret)
//! are compared in constant time, so a caller cannot learn a token byte by byte from how long a
//! refusal takes.

use subtle::ConstantTimeEq;

/// True when `given` equals `expected`, in time that depends only on their lengths.
pub fn same(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_only_when_every_byte_is() {
        assert!(super::same(b"secret", b"secret"));
        assert!(!super::same(b"secreT", b"secret"));
        assert!(!super::same(b"secre", b"secret"));
        assert!(!super::same(b"", b"secret"));
    }
}
