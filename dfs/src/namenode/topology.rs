//! Host → rack map from the `[cluster] topology` file: lines `IP RACK`, `#` comments, blank
//! lines ignored. Hosts not listed are on [`DEFAULT_RACK`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The rack of hosts absent from the topology file (Hadoop's name).
pub const DEFAULT_RACK: &str = "/default-rack";

/// A malformed or unreadable topology file.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("topology file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not `IP RACK`.
    #[error("topology file {source_name} line {line}: {reason}")]
    Syntax {
        /// The file (or `<text>`).
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Which rack each host is on.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    racks: HashMap<IpAddr, String>,
}

impl Topology {
    /// Reads a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Topology::parse(&text, &path.display().to_string())
    }

    /// Parses topology text; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Topology, TopologyError> {
        let mut racks = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |reason: String| TopologyError::Syntax {
                source_name: source_name.to_string(),
                line: i + 1,
                reason,
            };
            let mut parts = line.split_whitespace();
            let (Some(host), Some(rack), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(err(format!("expected `IP RACK`, got `{line}`")));
            };
            let ip: IpAddr = host
                .parse()
                .map_err(|_| err(format!("`{host}` is not an IP address")))?;
            let rack = if rack.starts_with('/') {
                rack.to_string()
            } else {
                format!("/{rack}")
            };
            racks.insert(ip, rack);
        }
        Ok(Topology { racks })
    }

    /// The rack of `host`.
    pub fn rack_of(&self, host: IpAddr) -> &str {
        self.racks
            .get(&host)
            .map(String::as_str)
            .unwrap_or(DEFAULT_RACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_and_defaults_unknown_hosts() {
        let t = Topology::parse(
            "# racks\n127.0.0.2 /rack1\n\n127.0.0.4 rack2  # second\n",
            "t",
        )
        .unwrap();
        assert_eq!(t.rack_of("127.0.0.2".parse().unwrap()), "/rack1");
        assert_eq!(t.rack_of("127.0.0.4".parse().unwrap()), "/rack2");
        assert_eq!(t.rack_of("127.0.0.9".parse().unwrap()), DEFAULT_RACK);
        let e = Topology::parse("127.0.0.2\n", "t").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(Topology::parse("host1 /r\n", "t").is_err());
    }
}
