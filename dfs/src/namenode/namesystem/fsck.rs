//! `fsck`: the health of every block of every file under a path.

use super::{Namesystem, Result};
use crate::protocol::{BlockHealth, ExtendedBlock, FsckBlock, FsckFile};

impl Namesystem {
    /// Per-file, per-block health of the subtree at `path`.
    pub(super) fn fsck(&self, path: &str) -> Result<Vec<FsckFile>> {
        let mut files = Vec::new();
        self.ns.walk(path, |p, inode| {
            let Some(f) = &inode.file else { return };
            let blocks = f
                .blocks
                .iter()
                .map(|b| {
                    let (locations, _) = self.bm.locations(b.id, None);
                    let health = match self.bm.health(b.id) {
                        // A block still being written has no final replicas yet.
                        BlockHealth::Missing if !b.complete => BlockHealth::UnderReplicated {
                            live: 0,
                            target: f.replication,
                        },
                        h => h,
                    };
                    FsckBlock {
                        block: ExtendedBlock {
                            id: b.id,
                            gen: b.gen,
                            len: b.len,
                        },
                        health,
                        locations,
                    }
                })
                .collect();
            files.push(FsckFile {
                path: p.to_string(),
                len: f.len(),
                replication: f.replication,
                blocks,
                open_for_write: f.under_construction.is_some(),
            });
        })?;
        Ok(files)
    }
}
