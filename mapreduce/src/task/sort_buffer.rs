//! The map-side sort buffer: serialized records in one byte arena plus a compact metadata array,
//! sorted in place by (partition, key).

use std::cmp::Ordering;

use super::error::EngineResult;
use super::key_order::{key_prefix, KeyOrder};
use super::merge::RecordSource;

/// Metadata of one buffered record. The value follows the key in the arena. The cached key
/// prefix lets most bytewise comparisons finish without touching the arena.
#[derive(Clone, Copy, Debug)]
struct RecordMeta {
    prefix: u64,
    partition: u32,
    key_off: u32,
    key_len: u32,
    value_len: u32,
}

/// Bytes of bookkeeping charged to the buffer budget per record.
pub const RECORD_OVERHEAD: usize = std::mem::size_of::<RecordMeta>();

/// Records of one spill, in arrival order until [`SortBuffer::sort`].
pub struct SortBuffer {
    arena: Vec<u8>,
    meta: Vec<RecordMeta>,
}

impl SortBuffer {
    /// An empty buffer that never needs to reallocate below `budget` bytes. Capacity is only
    /// address space until written, so resident memory follows what is actually used.
    pub fn with_budget(budget: usize) -> Self {
        SortBuffer {
            arena: Vec::with_capacity(budget),
            meta: Vec::with_capacity(budget / RECORD_OVERHEAD + 1),
        }
    }

    /// Bytes charged to the budget: arena plus metadata.
    #[inline]
    pub fn used(&self) -> usize {
        self.arena.len() + self.meta.len() * RECORD_OVERHEAD
    }

    /// Number of buffered records.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Appends a record; the caller has checked the budget (offsets must stay below 4 GiB).
    #[inline]
    pub fn push(&mut self, partition: u32, key: &[u8], value: &[u8]) {
        let key_off = self.arena.len() as u32;
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
        self.meta.push(RecordMeta {
            prefix: key_prefix(key),
            partition,
            key_off,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        });
    }

    #[inline]
    fn key_of(&self, m: &RecordMeta) -> &[u8] {
        let start = m.key_off as usize;
        &self.arena[start..start + m.key_len as usize]
    }

    #[inline]
    fn value_of(&self, m: &RecordMeta) -> &[u8] {
        let start = m.key_off as usize + m.key_len as usize;
        &self.arena[start..start + m.value_len as usize]
    }

    /// Sorts by (partition, key). Bytewise order compares cached prefixes first and reads the
    /// arena only on prefix ties.
    pub fn sort(&mut self, order: &KeyOrder) {
        let arena = &self.arena;
        let key = |m: &RecordMeta| {
            let start = m.key_off as usize;
            &arena[start..start + m.key_len as usize]
        };
        if order.is_bytewise() {
            self.meta.sort_unstable_by(|a, b| {
                match (a.partition, a.prefix).cmp(&(b.partition, b.prefix)) {
                    Ordering::Equal => key(a).cmp(key(b)),
                    o => o,
                }
            });
        } else {
            self.meta.sort_unstable_by(|a, b| {
                a.partition
                    .cmp(&b.partition)
                    .then_with(|| order.compare(key(a), key(b)))
            });
        }
    }

    /// Index ranges of the sorted metadata holding each partition in `0..partitions`.
    pub fn partition_ranges(&self, partitions: u32) -> Vec<std::ops::Range<usize>> {
        let mut ranges = Vec::with_capacity(partitions as usize);
        let mut start = 0;
        for p in 0..partitions {
            let len = self.meta[start..].partition_point(|m| m.partition <= p);
            ranges.push(start..start + len);
            start += len;
        }
        ranges
    }

    /// A record source over the sorted records in `range`.
    pub fn source(&self, range: std::ops::Range<usize>) -> SortedRecords<'_> {
        SortedRecords {
            buffer: self,
            next: range.start,
            end: range.end,
            current: None,
        }
    }
}

/// Reads a range of a sorted [`SortBuffer`] as a [`RecordSource`].
pub struct SortedRecords<'a> {
    buffer: &'a SortBuffer,
    next: usize,
    end: usize,
    current: Option<usize>,
}

impl RecordSource for SortedRecords<'_> {
    #[inline]
    fn advance(&mut self) -> EngineResult<bool> {
        if self.next < self.end {
            self.current = Some(self.next);
            self.next += 1;
            Ok(true)
        } else {
            self.current = None;
            Ok(false)
        }
    }
    #[inline]
    fn key(&self) -> &[u8] {
        match self.current {
            Some(i) => self.buffer.key_of(&self.buffer.meta[i]),
            None => &[],
        }
    }
    #[inline]
    fn value(&self) -> &[u8] {
        match self.current {
            Some(i) => self.buffer.value_of(&self.buffer.meta[i]),
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_partition_then_key_and_keeps_values_attached() {
        let mut b = SortBuffer::with_budget(1 << 16);
        let recs: [(u32, &[u8], &[u8]); 6] = [
            (1, b"banana", b"1"),
            (0, b"zebra-long-key", b"2"),
            (1, b"apple-long-key-2", b"3"),
            (0, b"apple", b"4"),
            (1, b"apple-long-key-1", b"5"),
            (2, b"", b"6"),
        ];
        for (p, k, v) in recs {
            b.push(p, k, v);
        }
        assert_eq!(b.used(), b.arena.len() + 6 * RECORD_OVERHEAD);
        b.sort(&KeyOrder::Bytewise);
        let ranges = b.partition_ranges(4);
        assert_eq!(ranges, vec![0..2, 2..5, 5..6, 6..6]);
        let mut got = Vec::new();
        for r in ranges {
            let mut s = b.source(r);
            while s.advance().expect("advance") {
                got.push((s.key().to_vec(), s.value().to_vec()));
            }
        }
        let expect: Vec<(Vec<u8>, Vec<u8>)> = [
            ("apple", "4"),
            ("zebra-long-key", "2"),
            ("apple-long-key-1", "5"),
            ("apple-long-key-2", "3"),
            ("banana", "1"),
            ("", "6"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(got, expect);
    }
}
