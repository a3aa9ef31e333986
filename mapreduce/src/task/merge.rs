//! K-way merge of sorted record sources with a binary heap of source indices: no per-record
//! allocation, each step costs one sift-down of O(log k) key comparisons.

use std::cmp::Ordering;

use super::error::EngineResult;
use super::key_order::KeyOrder;
use super::run_file::SegmentReader;

/// A sorted stream of (key, value) records read in place.
pub trait RecordSource {
    /// Moves to the next record; `false` once the source is exhausted. Call once before the first
    /// record.
    fn advance(&mut self) -> EngineResult<bool>;
    /// Key of the current record.
    fn key(&self) -> &[u8];
    /// Value of the current record.
    fn value(&self) -> &[u8];
}

impl RecordSource for SegmentReader {
    #[inline]
    fn advance(&mut self) -> EngineResult<bool> {
        self.next_record()
    }
    #[inline]
    fn key(&self) -> &[u8] {
        SegmentReader::key(self)
    }
    #[inline]
    fn value(&self) -> &[u8] {
        SegmentReader::value(self)
    }
}

/// Merges sorted sources into one sorted source. Equal keys come out in source order, so the
/// merge is stable with respect to the order the sources were given in.
pub struct Merger<'o, S: RecordSource> {
    sources: Vec<S>,
    /// Min-heap of indices into `sources` (only live ones).
    heap: Vec<usize>,
    order: &'o KeyOrder,
    started: bool,
}

impl<'o, S: RecordSource> Merger<'o, S> {
    /// A merger over `sources`, none of them advanced yet.
    pub fn new(sources: Vec<S>, order: &'o KeyOrder) -> Self {
        Merger {
            heap: Vec::with_capacity(sources.len()),
            sources,
            order,
            started: false,
        }
    }

    /// The merged sources (to read byte counters after the merge).
    pub fn sources(&self) -> &[S] {
        &self.sources
    }

    #[inline]
    fn less(&self, a: usize, b: usize) -> bool {
        match self
            .order
            .compare(self.sources[a].key(), self.sources[b].key())
        {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => a < b,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                return;
            }
            let r = l + 1;
            let mut m = l;
            if r < n && self.less(self.heap[r], self.heap[l]) {
                m = r;
            }
            if self.less(self.heap[m], self.heap[i]) {
                self.heap.swap(m, i);
                i = m;
            } else {
                return;
            }
        }
    }
}

impl<S: RecordSource> RecordSource for Merger<'_, S> {
    fn advance(&mut self) -> EngineResult<bool> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                if self.sources[i].advance()? {
                    self.heap.push(i);
                }
            }
            for i in (0..self.heap.len() / 2).rev() {
                self.sift_down(i);
            }
            return Ok(!self.heap.is_empty());
        }
        let Some(&top) = self.heap.first() else {
            return Ok(false);
        };
        if !self.sources[top].advance()? {
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
        }
        self.sift_down(0);
        Ok(!self.heap.is_empty())
    }

    #[inline]
    fn key(&self) -> &[u8] {
        self.sources[self.heap[0]].key()
    }

    #[inline]
    fn value(&self) -> &[u8] {
        self.sources[self.heap[0]].value()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An in-memory sorted source for tests.
    pub(crate) struct VecSource {
        records: Vec<(Vec<u8>, Vec<u8>)>,
        pos: Option<usize>,
    }

    impl VecSource {
        pub(crate) fn new(records: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
            VecSource { records, pos: None }
        }
    }

    impl RecordSource for VecSource {
        fn advance(&mut self) -> EngineResult<bool> {
            let next = self.pos.map_or(0, |p| p + 1);
            self.pos = Some(next);
            Ok(next < self.records.len())
        }
        fn key(&self) -> &[u8] {
            &self.records[self.pos.unwrap_or(0)].0
        }
        fn value(&self) -> &[u8] {
            &self.records[self.pos.unwrap_or(0)].1
        }
    }

    #[test]
    fn merge_of_sorted_sources_is_sorted_and_stable() {
        let mk = |keys: &[&str], tag: u8| {
            VecSource::new(
                keys.iter()
                    .map(|k| (k.as_bytes().to_vec(), vec![tag]))
                    .collect(),
            )
        };
        let sources = vec![
            mk(&["a", "c", "e", "e"], 0),
            mk(&[], 1),
            mk(&["b", "c", "z"], 2),
            mk(&["c"], 3),
        ];
        let order = KeyOrder::Bytewise;
        let mut m = Merger::new(sources, &order);
        let mut out = Vec::new();
        while m.advance().expect("advance") {
            out.push((String::from_utf8_lossy(m.key()).into_owned(), m.value()[0]));
        }
        let expect: Vec<(String, u8)> = [
            ("a", 0),
            ("b", 2),
            ("c", 0),
            ("c", 2),
            ("c", 3),
            ("e", 0),
            ("e", 0),
            ("z", 2),
        ]
        .iter()
        .map(|(k, t)| (k.to_string(), *t))
        .collect();
        assert_eq!(out, expect);
        assert!(!m.advance().expect("after end"));
    }
}
