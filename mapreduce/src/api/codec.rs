//! Encoding helpers for integer and text keys/values.
//!
//! Two families: fixed-width big-endian binary (`encode_u64`, `encode_i64`) whose bytewise order
//! equals numeric order, so integer keys sort correctly under the default `BytewiseComparator`;
//! and decimal ASCII text (`DecimalBuf`, `parse_u64`), which is what text output formats print.
//! Nothing here allocates per call.

/// A key or value that does not decode as the expected integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A fixed-width field had the wrong number of bytes.
    #[error("expected {expected} bytes, found {found}")]
    WrongLength {
        /// Bytes the encoding needs.
        expected: usize,
        /// Bytes that were given.
        found: usize,
    },
    /// A decimal field was empty, had a non-digit or overflowed.
    #[error("not a decimal integer: {0:?}")]
    NotDecimal(String),
}

impl From<CodecError> for super::TaskError {
    fn from(e: CodecError) -> Self {
        super::TaskError::new(e.to_string())
    }
}

/// Big-endian bytes of `v` (bytewise order == numeric order).
pub fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Decodes 8 big-endian bytes written by [`encode_u64`].
pub fn decode_u64(bytes: &[u8]) -> Result<u64, CodecError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| CodecError::WrongLength {
        expected: 8,
        found: bytes.len(),
    })?;
    Ok(u64::from_be_bytes(arr))
}

/// Big-endian bytes of `v` with the sign bit flipped, so negative numbers sort before positive
/// ones under bytewise comparison.
pub fn encode_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// Decodes 8 bytes written by [`encode_i64`].
pub fn decode_i64(bytes: &[u8]) -> Result<i64, CodecError> {
    Ok((decode_u64(bytes)? ^ (1u64 << 63)) as i64)
}

/// Big-endian bytes of `v` (bytewise order == numeric order).
pub fn encode_u32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// Decodes 4 big-endian bytes written by [`encode_u32`].
pub fn decode_u32(bytes: &[u8]) -> Result<u32, CodecError> {
    let arr: [u8; 4] = bytes.try_into().map_err(|_| CodecError::WrongLength {
        expected: 4,
        found: bytes.len(),
    })?;
    Ok(u32::from_be_bytes(arr))
}

/// A stack buffer that formats integers as decimal ASCII without allocating.
#[derive(Debug, Clone, Copy)]
pub struct DecimalBuf {
    buf: [u8; 20],
}

impl Default for DecimalBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl DecimalBuf {
    /// An empty buffer.
    pub const fn new() -> Self {
        DecimalBuf { buf: [0; 20] }
    }

    /// The decimal text of `v`, borrowed from this buffer.
    pub fn format_u64(&mut self, mut v: u64) -> &[u8] {
        let mut pos = self.buf.len();
        loop {
            pos -= 1;
            self.buf[pos] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        &self.buf[pos..]
    }

    /// The decimal text of `v` (with a leading `-` when negative), borrowed from this buffer.
    pub fn format_i64(&mut self, v: i64) -> &[u8] {
        // 20 bytes hold "-9223372036854775808" exactly.
        let mut pos = self.buf.len();
        let mut mag = v.unsigned_abs();
        loop {
            pos -= 1;
            self.buf[pos] = b'0' + (mag % 10) as u8;
            mag /= 10;
            if mag == 0 {
                break;
            }
        }
        if v < 0 {
            pos -= 1;
            self.buf[pos] = b'-';
        }
        &self.buf[pos..]
    }
}

/// Appends the decimal text of `v` to `out`.
pub fn append_decimal_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(DecimalBuf::new().format_u64(v));
}

fn not_decimal(bytes: &[u8]) -> CodecError {
    CodecError::NotDecimal(String::from_utf8_lossy(bytes).into_owned())
}

/// Parses unsigned decimal ASCII (digits only, no sign, no spaces).
pub fn parse_u64(bytes: &[u8]) -> Result<u64, CodecError> {
    if bytes.is_empty() {
        return Err(not_decimal(bytes));
    }
    let mut v: u64 = 0;
    for &b in bytes {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(not_decimal(bytes));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or_else(|| not_decimal(bytes))?;
    }
    Ok(v)
}

/// Parses signed decimal ASCII (an optional leading `-` or `+`, then digits).
pub fn parse_i64(bytes: &[u8]) -> Result<i64, CodecError> {
    let (neg, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let mag = parse_u64(digits).map_err(|_| not_decimal(bytes))?;
    if neg {
        if mag == 1u64 << 63 {
            Ok(i64::MIN)
        } else {
            i64::try_from(mag)
                .map(|m| -m)
                .map_err(|_| not_decimal(bytes))
        }
    } else {
        i64::try_from(mag).map_err(|_| not_decimal(bytes))
    }
}

/// Lowercase hex of `bytes` (used to ship binary keys through the string-valued `JobConf`).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Decodes hex written by [`to_hex`] (either case).
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_round_trip_and_order() {
        let vals = [0u64, 1, 255, 256, 1 << 40, u64::MAX];
        for w in vals.windows(2) {
            assert!(encode_u64(w[0]) < encode_u64(w[1]));
        }
        for v in vals {
            assert_eq!(decode_u64(&encode_u64(v)).unwrap(), v);
        }
        assert_eq!(
            decode_u64(&[1, 2, 3]),
            Err(CodecError::WrongLength {
                expected: 8,
                found: 3
            })
        );
    }

    #[test]
    fn i64_round_trip_and_order() {
        let vals = [i64::MIN, -1_000_000, -1, 0, 1, 42, i64::MAX];
        for w in vals.windows(2) {
            assert!(encode_i64(w[0]) < encode_i64(w[1]), "{} vs {}", w[0], w[1]);
        }
        for v in vals {
            assert_eq!(decode_i64(&encode_i64(v)).unwrap(), v);
        }
    }

    #[test]
    fn u32_round_trip() {
        assert_eq!(decode_u32(&encode_u32(0xdead_beef)).unwrap(), 0xdead_beef);
        assert!(decode_u32(&[0; 8]).is_err());
    }

    #[test]
    fn decimal_format_and_parse() {
        let mut buf = DecimalBuf::new();
        for v in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let text = buf.format_u64(v).to_vec();
            assert_eq!(text, v.to_string().as_bytes());
            assert_eq!(parse_u64(&text).unwrap(), v);
        }
        for v in [i64::MIN, -12, 0, 12, i64::MAX] {
            let text = buf.format_i64(v).to_vec();
            assert_eq!(text, v.to_string().as_bytes());
            assert_eq!(parse_i64(&text).unwrap(), v);
        }
        assert!(parse_u64(b"").is_err());
        assert!(parse_u64(b"12a").is_err());
        assert!(parse_u64(b"18446744073709551616").is_err());
        assert!(parse_i64(b"-").is_err());
        assert!(parse_i64(b"9223372036854775808").is_err());
        assert_eq!(parse_i64(b"+5").unwrap(), 5);
        let mut v = b"n=".to_vec();
        append_decimal_u64(&mut v, 301);
        assert_eq!(v, b"n=301");
    }

    #[test]
    fn hex_round_trip() {
        let data = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(to_hex(&data), "00017f80ff");
        assert_eq!(from_hex("00017F80ff").unwrap(), data);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }
}
