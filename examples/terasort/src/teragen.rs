//! TeraGen: deterministic 100-byte GenSort-style ASCII records.

use crate::RECORD_LEN;
use std::io::{BufWriter, Write};
use std::path::Path;

/// splitmix64: a well-mixed 64-bit value from any 64-bit input.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Fills `rec` with record number `row`.
pub fn generate_record(row: u64, rec: &mut [u8; RECORD_LEN]) {
    let hi = splitmix64(row.wrapping_mul(2).wrapping_add(0x5eed));
    let lo = splitmix64(row.wrapping_mul(2).wrapping_add(0x5eed + 1));
    // Key: 8 characters from the high word, 2 from the low word, base 95 printable ASCII.
    let mut t = hi;
    for b in rec.iter_mut().take(8) {
        *b = b' ' + (t % 95) as u8;
        t /= 95;
    }
    let mut t = lo;
    for b in &mut rec[8..10] {
        *b = b' ' + (t % 95) as u8;
        t /= 95;
    }
    rec[10] = b' ';
    rec[11] = b' ';
    // Row id as 32 hex digits (a 128-bit number whose high half is 0).
    for i in 0..32 {
        let shift = 4 * (31 - i);
        let nibble = if shift >= 64 { 0 } else { (row >> shift) & 0xf };
        rec[12 + i] = HEX[nibble as usize];
    }
    rec[44] = b' ';
    rec[45] = b' ';
    // Filler: 13 nibbles of the low word's top 52 bits, each written 4 times.
    for i in 0..13 {
        let nibble = (lo >> (60 - 4 * i)) & 0xf;
        let c = HEX[nibble as usize];
        rec[46 + 4 * i..50 + 4 * i].fill(c);
    }
    rec[98] = b'\r';
    rec[99] = b'\n';
}

/// Writes rows `first_row .. first_row + count` to `out`.
pub fn write_records<W: Write>(out: &mut W, first_row: u64, count: u64) -> std::io::Result<()> {
    let mut rec = [0u8; RECORD_LEN];
    for row in first_row..first_row + count {
        generate_record(row, &mut rec);
        out.write_all(&rec)?;
    }
    Ok(())
}

/// Writes `records` rows (from row 0) into a new file at `path`.
pub fn teragen(path: &Path, records: u64) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write_records(&mut out, 0, records)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_gensort_ascii_layout() {
        let mut rec = [0u8; RECORD_LEN];
        generate_record(0x1234, &mut rec);
        assert!(rec[..10].iter().all(|b| (b' '..=b'~').contains(b)));
        assert_eq!(&rec[10..12], b"  ");
        assert_eq!(&rec[12..44], b"00000000000000000000000000001234");
        assert_eq!(&rec[44..46], b"  ");
        for group in rec[46..98].chunks(4) {
            assert!(group.iter().all(|&c| c == group[0] && HEX.contains(&c)));
        }
        assert_eq!(&rec[98..], b"\r\n");
    }

    #[test]
    fn generation_is_deterministic_and_rows_differ() {
        let mut a = [0u8; RECORD_LEN];
        let mut b = [0u8; RECORD_LEN];
        generate_record(7, &mut a);
        generate_record(7, &mut b);
        assert_eq!(a, b);
        generate_record(8, &mut b);
        assert_ne!(a[..10], b[..10]);
        let mut one = Vec::new();
        write_records(&mut one, 0, 20).unwrap();
        let mut two = Vec::new();
        write_records(&mut two, 0, 12).unwrap();
        write_records(&mut two, 12, 8).unwrap();
        assert_eq!(one, two, "ranges of rows can be generated independently");
    }
}
