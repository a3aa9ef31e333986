//! DFS paths: absolute, `/`-separated, normalized. Relative paths, `.`/`..` components and empty
//! names are refused rather than guessed at.

/// Why a path string is not a valid DFS path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct InvalidPath {
    /// The path as given.
    pub path: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Normalizes an absolute DFS path: collapses repeated `/`, drops a trailing `/`.
pub fn normalize(path: &str) -> Result<String, InvalidPath> {
    let bad = |reason| {
        Err(InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if !path.starts_with('/') {
        return bad(
            "relative paths are not supported (use /absolute/path or sheaf://host:port/path)",
        );
    }
    let mut out = String::with_capacity(path.len());
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        if comp == "." || comp == ".." {
            return bad("'.' and '..' are not allowed in DFS paths");
        }
        if comp.contains('\0') {
            return bad("contains a NUL byte");
        }
        out.push('/');
        out.push_str(comp);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The components of a normalized path (`/a/b` → `["a", "b"]`; `/` → `[]`).
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// The parent of a normalized path (`None` for `/`).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of a normalized path (`""` for `/`).
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// `dir` joined with `name`.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_relative_or_dotted_paths() {
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("//a///b/").unwrap(), "/a/b");
        assert!(normalize("a/b").is_err());
        assert!(normalize("").is_err());
        assert!(normalize("/a/../b").is_err());
        assert!(normalize("/a/./b").is_err());
    }

    #[test]
    fn parent_name_and_join() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(file_name("/a/b"), "b");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
        assert_eq!(components("/a/b").collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
