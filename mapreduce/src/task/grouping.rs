//! Feeds a sorted record stream to a reducer (or combiner) one key group at a time.

use std::cmp::Ordering;

use crate::api::{Emitter, Reducer, TaskContext, ValueIter};

use super::error::{EngineError, EngineResult};
use super::key_order::KeyOrder;
use super::merge::RecordSource;

/// Records and groups a grouping pass fed to user code.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupStats {
    /// Key groups (reduce calls).
    pub groups: u64,
    /// Records handed out as values.
    pub records: u64,
}

/// The values of one key group, read in place from the underlying source.
struct GroupValues<'a, S: RecordSource> {
    source: &'a mut S,
    order: &'a KeyOrder,
    key: &'a [u8],
    started: bool,
    done: bool,
    /// Whether `source` still has a current record (the first of the next group, once done).
    has_current: bool,
    records: u64,
    error: Option<EngineError>,
}

impl<S: RecordSource> ValueIter for GroupValues<'_, S> {
    #[inline]
    fn next_value(&mut self) -> Option<&[u8]> {
        if self.done {
            return None;
        }
        if self.started {
            match self.source.advance() {
                Ok(true) => {}
                Ok(false) => {
                    self.has_current = false;
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.error = Some(e);
                    self.has_current = false;
                    self.done = true;
                    return None;
                }
            }
        }
        self.started = true;
        if self.order.compare(self.source.key(), self.key) != Ordering::Equal {
            self.done = true;
            return None;
        }
        self.records += 1;
        Some(self.source.value())
    }
}

/// Runs `reducer` over every key group of `source` (not yet advanced), then its `cleanup`.
pub fn reduce_groups<S: RecordSource>(
    source: &mut S,
    order: &KeyOrder,
    reducer: &mut dyn Reducer,
    out: &mut dyn Emitter,
    ctx: &mut dyn TaskContext,
) -> EngineResult<GroupStats> {
    let mut stats = GroupStats::default();
    let mut has = source.advance()?;
    let mut key = Vec::new();
    while has {
        key.clear();
        key.extend_from_slice(source.key());
        let mut values = GroupValues {
            source: &mut *source,
            order,
            key: &key,
            started: false,
            done: false,
            has_current: true,
            records: 0,
            error: None,
        };
        reducer.reduce(&key, &mut values, out, ctx)?;
        // The reducer may stop early: skip the rest of its group.
        while values.next_value().is_some() {}
        if let Some(e) = values.error.take() {
            return Err(e);
        }
        has = values.has_current;
        stats.groups += 1;
        stats.records += values.records;
    }
    reducer.cleanup(out, ctx)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{JobConf, TaskError};
    use crate::task::merge::tests::VecSource;

    /// Sums little-endian u64 values, reading only the first value of keys starting with `x`.
    struct Summer;
    impl Reducer for Summer {
        fn reduce(
            &mut self,
            key: &[u8],
            values: &mut dyn ValueIter,
            out: &mut dyn Emitter,
            _ctx: &mut dyn TaskContext,
        ) -> Result<(), TaskError> {
            let mut sum = 0u64;
            while let Some(v) = values.next_value() {
                sum += u64::from(v[0]);
                if key.starts_with(b"x") {
                    break;
                }
            }
            out.emit(key, &sum.to_le_bytes())
        }
    }

    struct Collect(Vec<(Vec<u8>, u64)>);
    impl Emitter for Collect {
        fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), TaskError> {
            let mut b = [0u8; 8];
            b.copy_from_slice(value);
            self.0.push((key.to_vec(), u64::from_le_bytes(b)));
            Ok(())
        }
    }

    struct NoCtx(JobConf);
    impl TaskContext for NoCtx {
        fn conf(&self) -> &JobConf {
            &self.0
        }
        fn incr_counter(&mut self, _: &str, _: &str, _: i64) {}
    }

    #[test]
    fn groups_follow_key_changes_even_when_reducer_stops_early() {
        let recs = [
            ("a", 1),
            ("a", 2),
            ("b", 5),
            ("xa", 1),
            ("xa", 1),
            ("xa", 1),
            ("z", 3),
        ];
        let mut src = VecSource::new(
            recs.iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), vec![*v as u8]))
                .collect(),
        );
        let mut out = Collect(Vec::new());
        let stats = reduce_groups(
            &mut src,
            &KeyOrder::Bytewise,
            &mut Summer,
            &mut out,
            &mut NoCtx(JobConf::default()),
        )
        .expect("reduce");
        let got: Vec<(String, u64)> = out
            .0
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), *v))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), 3),
                ("b".into(), 5),
                ("xa".into(), 1),
                ("z".into(), 3)
            ]
        );
        assert_eq!(
            stats,
            GroupStats {
                groups: 4,
                records: 7
            }
        );
    }
}
