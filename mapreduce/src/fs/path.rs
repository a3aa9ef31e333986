//! Paths of job inputs and outputs: a local path, or a DFS path `sheaf://host:port/abs` (a named
//! NameNode) or `sheaf:///abs` (the NameNode of the configuration).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sheaf_dfs::uri::DfsUri;
pub use sheaf_dfs::uri::{DEFAULT_NAMENODE_PORT, DFS_SCHEME};

use super::FsError;

/// Where a job reads or writes: the local filesystem or a DFS cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobPath {
    /// A path on the local filesystem (relative paths are relative to the working directory).
    Local(PathBuf),
    /// An absolute, normalized path on a DFS cluster.
    Dfs {
        /// The NameNode named in the path; `None` for `sheaf:///…` (the configured cluster).
        namenode: Option<SocketAddr>,
        /// Absolute, normalized DFS path.
        path: String,
    },
}

impl JobPath {
    /// Parses `sheaf://host:port/abs`, `sheaf:///abs` or a local path. Other `scheme://`
    /// prefixes are refused rather than taken as odd local file names.
    pub fn parse(text: &str) -> Result<JobPath, FsError> {
        // Anything spelled `scheme://` is a URI; only a plain path is local.
        if text.contains("://") {
            let uri = DfsUri::parse(text).map_err(|e| FsError::BadPath(e.to_string()))?;
            return Ok(JobPath::Dfs {
                namenode: uri.namenode,
                path: uri.path,
            });
        }
        if text.is_empty() {
            return Err(FsError::BadPath("empty path".into()));
        }
        Ok(JobPath::Local(PathBuf::from(text)))
    }

    /// Interprets a `Path` the way [`JobPath::parse`] does its text (non-UTF-8 paths are local).
    pub fn from_path(path: &Path) -> Result<JobPath, FsError> {
        match path.to_str() {
            Some(text) => JobPath::parse(text),
            None => Ok(JobPath::Local(path.to_path_buf())),
        }
    }

    /// True for a DFS path.
    pub fn is_dfs(&self) -> bool {
        matches!(self, JobPath::Dfs { .. })
    }

    /// The child `name` of this directory path.
    pub fn join(&self, name: &str) -> JobPath {
        match self {
            JobPath::Local(p) => JobPath::Local(p.join(name)),
            JobPath::Dfs { namenode, path } => JobPath::Dfs {
                namenode: *namenode,
                path: if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                },
            },
        }
    }

    /// The last component of the path, if any.
    pub fn file_name(&self) -> Option<String> {
        match self {
            JobPath::Local(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            JobPath::Dfs { path, .. } => path
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        }
    }

    /// The same path as a `PathBuf` (for types that carry `PathBuf`s, e.g. input splits);
    /// [`JobPath::from_path`] turns it back.
    pub fn to_path_buf(&self) -> PathBuf {
        match self {
            JobPath::Local(p) => p.clone(),
            dfs => PathBuf::from(dfs.to_string()),
        }
    }
}

impl fmt::Display for JobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobPath::Local(p) => write!(f, "{}", p.display()),
            JobPath::Dfs {
                namenode: Some(addr),
                path,
            } => write!(f, "{DFS_SCHEME}{addr}{path}"),
            JobPath::Dfs {
                namenode: None,
                path,
            } => write!(f, "{DFS_SCHEME}{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dfs_and_local_paths_are_told_apart() {
        assert_eq!(
            JobPath::parse("sheaf://127.0.0.1:9100/a//b/").unwrap(),
            JobPath::Dfs {
                namenode: Some("127.0.0.1:9100".parse().unwrap()),
                path: "/a/b".into()
            }
        );
        assert_eq!(
            JobPath::parse("sheaf:///data/in").unwrap(),
            JobPath::Dfs {
                namenode: None,
                path: "/data/in".into()
            }
        );
        assert_eq!(
            JobPath::parse("sheaf://127.0.0.1/x").unwrap(),
            JobPath::Dfs {
                namenode: Some("127.0.0.1:9000".parse().unwrap()),
                path: "/x".into()
            }
        );
        assert_eq!(
            JobPath::parse("/tmp/in").unwrap(),
            JobPath::Local(PathBuf::from("/tmp/in"))
        );
        assert_eq!(
            JobPath::parse("rel/in").unwrap(),
            JobPath::Local(PathBuf::from("rel/in"))
        );
        assert!(JobPath::parse("hdfs://h:1/x").is_err());
        assert!(JobPath::parse("sheaf:///a/../b").is_err());
        assert!(JobPath::parse("").is_err());
    }

    #[test]
    fn paths_round_trip_through_display_and_path_buf() {
        for text in ["sheaf://127.0.0.1:9100/a/b", "sheaf:///a", "/x/y", "rel"] {
            let p = JobPath::parse(text).unwrap();
            assert_eq!(p.to_string(), text);
            assert_eq!(JobPath::from_path(&p.to_path_buf()).unwrap(), p);
        }
        let dir = JobPath::parse("sheaf:///out").unwrap();
        assert_eq!(
            dir.join("part-r-00000").to_string(),
            "sheaf:///out/part-r-00000"
        );
        assert_eq!(
            dir.join("part-r-00000").file_name().as_deref(),
            Some("part-r-00000")
        );
        assert_eq!(
            JobPath::parse("sheaf:///").unwrap().join("x").to_string(),
            "sheaf:///x"
        );
    }
}
