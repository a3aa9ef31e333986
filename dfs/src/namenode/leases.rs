//! Writers' leases (sans-I/O). A client holds one lease covering every file it has open for
//! write; renewing it (any call of the client, or `RenewLease`) keeps all of them. Past the
//! soft limit another client may take a file over (after recovery); past the hard limit the
//! NameNode recovers and closes the files by itself.

use std::collections::{BTreeSet, HashMap};

/// One client's lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Last renewal (ms).
    pub renewed_ms: u64,
    /// Inode ids of its files open for write.
    pub files: BTreeSet<u64>,
}

/// All leases.
#[derive(Debug, Default)]
pub struct LeaseManager {
    leases: HashMap<String, Lease>,
}

impl LeaseManager {
    /// `client` opened file `inode` for write.
    pub fn add(&mut self, client: &str, inode: u64, now: u64) {
        let lease = self.leases.entry(client.to_string()).or_insert(Lease {
            renewed_ms: now,
            files: BTreeSet::new(),
        });
        lease.renewed_ms = now;
        lease.files.insert(inode);
    }

    /// File `inode` was closed, deleted or recovered.
    pub fn remove(&mut self, client: &str, inode: u64) {
        if let Some(l) = self.leases.get_mut(client) {
            l.files.remove(&inode);
            if l.files.is_empty() {
                self.leases.remove(client);
            }
        }
    }

    /// Renews `client`'s lease; false if it holds none.
    pub fn renew(&mut self, client: &str, now: u64) -> bool {
        match self.leases.get_mut(client) {
            Some(l) => {
                l.renewed_ms = now;
                true
            }
            None => false,
        }
    }

    /// True if `client`'s lease was not renewed within `limit_ms`.
    pub fn expired(&self, client: &str, now: u64, limit_ms: u64) -> bool {
        self.leases
            .get(client)
            .is_some_and(|l| now.saturating_sub(l.renewed_ms) > limit_ms)
    }

    /// Clients whose lease passed `limit_ms`, with their files; their leases are dropped (the
    /// caller starts recovery of each file).
    pub fn take_expired(&mut self, now: u64, limit_ms: u64) -> Vec<(String, Vec<u64>)> {
        let expired: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, l)| now.saturating_sub(l.renewed_ms) > limit_ms)
            .map(|(c, _)| c.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|c| {
                self.leases
                    .remove(&c)
                    .map(|l| (c, l.files.into_iter().collect()))
            })
            .collect()
    }

    /// Number of clients holding leases.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// True if no client holds a lease.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_keeps_and_expiry_takes_all_files() {
        let mut m = LeaseManager::default();
        m.add("c1", 10, 0);
        m.add("c1", 11, 0);
        m.add("c2", 12, 0);
        assert!(m.renew("c1", 900));
        assert!(!m.renew("nobody", 900));
        assert!(m.expired("c2", 1001, 1000));
        assert!(!m.expired("c1", 1001, 1000));
        let gone = m.take_expired(1001, 1000);
        assert_eq!(gone, vec![("c2".to_string(), vec![12])]);
        m.remove("c1", 10);
        m.remove("c1", 11);
        assert!(m.is_empty());
    }
}
