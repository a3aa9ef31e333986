//! The one parser of DFS path arguments, shared by the CLI, the job client and MapReduce's
//! job paths, so every command accepts the same forms (Hadoop accepts `hdfs:///x` everywhere):
//!
//! - `/abs/path`: the NameNode of the configuration;
//! - `sheaf:///abs/path`: the same, spelled as a URI;
//! - `sheaf://host[:port]/abs/path`: a named NameNode ([`DEFAULT_NAMENODE_PORT`] if no port);
//! - `rel/path`: under the user's home directory, for callers that give one
//!   ([`DfsUri::parse_relative_to`]; [`DfsUri::parse`] refuses it).

use crate::path::InvalidPath;
use std::net::{SocketAddr, ToSocketAddrs};

/// The prefix of DFS URIs.
pub const DFS_SCHEME: &str = "sheaf://";
/// NameNode port assumed when a `sheaf://host/` URI names none (Hadoop's 9000 convention).
pub const DEFAULT_NAMENODE_PORT: u16 = 9000;

/// Why a DFS path argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The argument is empty.
    #[error("empty path")]
    Empty,
    /// A `scheme://` other than `sheaf://`.
    #[error("{uri}: unsupported scheme {scheme:?} (use /absolute/path, sheaf:///path or sheaf://host:port/path)")]
    UnsupportedScheme {
        /// The argument as given.
        uri: String,
        /// The scheme it names.
        scheme: String,
    },
    /// The `host[:port]` part cannot be read (no host, or a port that is not a number).
    #[error("{uri}: malformed NameNode address {authority:?} (expected sheaf://host:port/path or sheaf:///path)")]
    MalformedAuthority {
        /// The argument as given.
        uri: String,
        /// The `host[:port]` part.
        authority: String,
    },
    /// The host does not resolve to an address.
    #[error("{uri}: cannot resolve the NameNode address {authority:?} (expected sheaf://host:port/path or sheaf:///path)")]
    UnresolvedNamenode {
        /// The argument as given.
        uri: String,
        /// The `host:port` looked up.
        authority: String,
    },
    /// The path part is not a valid DFS path (relative where refused, `.`/`..`, NUL).
    #[error(transparent)]
    InvalidPath(#[from] InvalidPath),
}

/// A parsed DFS path argument: which NameNode (if the argument names one) and the absolute,
/// normalized path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DfsUri {
    /// The NameNode of `sheaf://host[:port]/…`; `None` for the configured one.
    pub namenode: Option<SocketAddr>,
    /// Absolute, normalized DFS path.
    pub path: String,
}

impl DfsUri {
    /// Parses `/abs`, `sheaf:///abs` or `sheaf://host[:port]/abs`. Relative paths are refused
    /// (an [`InvalidPath`] saying so).
    pub fn parse(text: &str) -> Result<DfsUri, UriError> {
        Self::parse_with(text, None)
    }

    /// Like [`DfsUri::parse`], with relative paths taken under `home` (Hadoop's rule: a
    /// relative path is in the user's home directory, see [`crate::client::home_dir`]).
    pub fn parse_relative_to(text: &str, home: &str) -> Result<DfsUri, UriError> {
        Self::parse_with(text, Some(home))
    }

    fn parse_with(text: &str, home: Option<&str>) -> Result<DfsUri, UriError> {
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        if let Some(rest) = text.strip_prefix(DFS_SCHEME) {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let namenode = if authority.is_empty() {
                None
            } else {
                Some(resolve(text, authority)?)
            };
            let path = crate::path::normalize(path).map_err(|e| InvalidPath {
                path: text.to_string(),
                reason: e.reason,
            })?;
            return Ok(DfsUri { namenode, path });
        }
        if let Some(i) = text.find("://") {
            return Err(UriError::UnsupportedScheme {
                uri: text.to_string(),
                scheme: text[..i].to_string(),
            });
        }
        let path = match home {
            Some(home) if !text.starts_with('/') => {
                crate::path::normalize(&format!("{}/{text}", home.trim_end_matches('/')))?
            }
            _ => crate::path::normalize(text)?,
        };
        Ok(DfsUri {
            namenode: None,
            path,
        })
    }
}

/// `host:port`, `host`, `[v6]:port` or `[v6]` (default port) to a socket address.
fn resolve(uri: &str, authority: &str) -> Result<SocketAddr, UriError> {
    let malformed = || UriError::MalformedAuthority {
        uri: uri.to_string(),
        authority: authority.to_string(),
    };
    let (host, port) = split_authority(authority).ok_or_else(malformed)?;
    let port = match port {
        None => DEFAULT_NAMENODE_PORT,
        Some(p) => p.parse::<u16>().map_err(|_| malformed())?,
    };
    let lookup = format!("{host}:{port}");
    lookup
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or(UriError::UnresolvedNamenode {
            uri: uri.to_string(),
            authority: lookup,
        })
}

/// Splits `host[:port]` (the host of an IPv6 literal keeps its brackets); `None` without a host.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_is_empty = host.is_empty() || host == "[]";
    (!host_is_empty).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().expect("test address"))
    }

    #[test]
    fn absolute_paths_name_the_configured_namenode() {
        assert_eq!(
            DfsUri::parse("/a//b/").unwrap(),
            DfsUri {
                namenode: None,
                path: "/a/b".into()
            }
        );
        assert_eq!(DfsUri::parse("/").unwrap().path, "/");
    }

    #[test]
    fn sheaf_uris_without_a_host_name_the_configured_namenode() {
        let u = DfsUri::parse("sheaf:///x/y").unwrap();
        assert_eq!(u.namenode, None);
        assert_eq!(u.path, "/x/y");
        assert_eq!(DfsUri::parse("sheaf://").unwrap().path, "/");
        assert_eq!(DfsUri::parse("sheaf:///").unwrap().path, "/");
    }

    #[test]
    fn sheaf_uris_with_a_host_name_that_namenode_with_the_default_port() {
        let u = DfsUri::parse("sheaf://127.0.0.1:9100/a//b/").unwrap();
        assert_eq!(u.namenode, addr("127.0.0.1:9100"));
        assert_eq!(u.path, "/a/b");
        assert_eq!(
            DfsUri::parse("sheaf://127.0.0.1/x").unwrap().namenode,
            addr("127.0.0.1:9000")
        );
        assert_eq!(
            DfsUri::parse("sheaf://127.0.0.1").unwrap(),
            DfsUri {
                namenode: addr("127.0.0.1:9000"),
                path: "/".into()
            }
        );
        assert_eq!(
            DfsUri::parse("sheaf://[::1]:9100/x").unwrap().namenode,
            addr("[::1]:9100")
        );
        assert_eq!(
            DfsUri::parse("sheaf://[::1]/x").unwrap().namenode,
            addr("[::1]:9000")
        );
    }

    #[test]
    fn relative_paths_are_under_the_home_directory_or_refused() {
        assert_eq!(
            DfsUri::parse_relative_to("wc/out", "/user/alice").unwrap(),
            DfsUri {
                namenode: None,
                path: "/user/alice/wc/out".into()
            }
        );
        assert_eq!(
            DfsUri::parse_relative_to("x", "/user/alice/").unwrap().path,
            "/user/alice/x"
        );
        // Absolute paths and URIs ignore the home directory.
        assert_eq!(
            DfsUri::parse_relative_to("/abs", "/user/alice")
                .unwrap()
                .path,
            "/abs"
        );
        assert_eq!(
            DfsUri::parse_relative_to("sheaf:///abs", "/user/alice")
                .unwrap()
                .path,
            "/abs"
        );
        let e = DfsUri::parse("relative/x").unwrap_err();
        assert!(matches!(e, UriError::InvalidPath(_)), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("relative/x: relative paths are not supported"),
            "{e}"
        );
    }

    #[test]
    fn bad_arguments_have_typed_errors() {
        assert_eq!(DfsUri::parse(""), Err(UriError::Empty));
        assert_eq!(
            DfsUri::parse_relative_to("", "/user/a"),
            Err(UriError::Empty)
        );
        assert!(matches!(
            DfsUri::parse("hdfs://h:1/x"),
            Err(UriError::UnsupportedScheme { scheme, .. }) if scheme == "hdfs"
        ));
        for bad in [
            "sheaf://:/x",
            "sheaf://:9000/x",
            "sheaf://h:port/x",
            "sheaf://h:99999/x",
            "sheaf://[::1/x",
            "sheaf://[::1]x/x",
        ] {
            let e = DfsUri::parse(bad).unwrap_err();
            assert!(
                matches!(e, UriError::MalformedAuthority { .. }),
                "{bad}: {e:?}"
            );
            assert!(e.to_string().contains("malformed NameNode address"), "{e}");
        }
        assert!(matches!(
            DfsUri::parse("sheaf://no-such-host.invalid/x"),
            Err(UriError::UnresolvedNamenode { authority, .. })
                if authority == "no-such-host.invalid:9000"
        ));
        for dotted in ["/a/../b", "sheaf:///a/./b", "sheaf://127.0.0.1/a/.."] {
            let e = DfsUri::parse(dotted).unwrap_err();
            assert!(matches!(e, UriError::InvalidPath(_)), "{dotted}: {e:?}");
            assert!(e.to_string().starts_with(dotted), "{e}");
        }
    }
}
