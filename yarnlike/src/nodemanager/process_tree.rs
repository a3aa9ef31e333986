//! Resident memory of whole process trees, read from `/proc` (Linux). A container's usage is the
//! RSS of its first process plus every descendant, so a shell that forks a hog is charged for it.

use std::collections::HashMap;

/// One scan of `/proc`: parent and RSS of every process.
#[derive(Debug, Default)]
pub struct ProcessTable {
    parent: HashMap<i32, i32>,
    rss_bytes: HashMap<i32, u64>,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Parses `/proc/PID/stat`: the parent pid is the 2nd field after the parenthesised command
/// (which may itself contain spaces and parentheses) and RSS in pages the 22nd.
fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let rss_pages = fields.get(21)?.parse().ok()?;
    Some((ppid, rss_pages))
}

impl ProcessTable {
    /// Reads every process (blocking: run it off the async runtime). Processes that exit during
    /// the scan are skipped.
    pub fn scan() -> ProcessTable {
        let page = page_size();
        let mut t = ProcessTable::default();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return t;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((ppid, rss)) = parse_stat(&stat) {
                t.parent.insert(pid, ppid);
                t.rss_bytes.insert(pid, rss * page);
            }
        }
        t
    }

    /// `root` and all its descendants that exist.
    pub fn tree(&self, root: i32) -> Vec<i32> {
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for (&pid, &ppid) in &self.parent {
            children.entry(ppid).or_default().push(pid);
        }
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(p) = stack.pop() {
            if self.parent.contains_key(&p) {
                out.push(p);
            }
            if let Some(c) = children.get(&p) {
                stack.extend(c.iter().copied());
            }
        }
        out
    }

    /// Total RSS of `root`'s tree, bytes.
    pub fn tree_rss(&self, root: i32) -> u64 {
        self.tree(root)
            .iter()
            .filter_map(|p| self.rss_bytes.get(p))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "1234 (a) b (c)) S 99 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 555 1000000 321 18446744073709551615";
        assert_eq!(parse_stat(line), Some((99, 321)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_shells_children_are_part_of_its_tree() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 5 & sleep 5; wait"])
            .spawn()
            .unwrap();
        let root = child.id() as i32;
        let mut tree = Vec::new();
        for _ in 0..50 {
            tree = ProcessTable::scan().tree(root);
            if tree.len() >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let rss = ProcessTable::scan().tree_rss(root);
        let _ = child.kill();
        // SAFETY: plain signal to the sleeps we started (their pids came from the scan just above).
        for p in &tree {
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
        let _ = child.wait();
        assert!(tree.len() >= 3, "sh and two sleeps, got {tree:?}");
        assert!(rss > 0);
    }
}
