//! Architecture invariants checked on the source tree (rust-analyzer's "tidy" tests): the
//! decision cores are sans-I/O state machines, so their non-test code must not reach for the
//! async runtime, the clock or an unseeded random source. Time comes in as a parameter;
//! randomness comes in as a caller-supplied `Rng` or seed (so a replay is identical).
//!
//! Runs in milliseconds and needs no build of anything else: plain file reads.

use std::path::{Path, PathBuf};

/// The decision cores, relative to the workspace root.
const CORE_FILES: &[&str] = &[
    "dfs/src/namenode/placement.rs",
    "dfs/src/namenode/block_manager.rs",
    "dfs/src/namenode/leases.rs",
    "dfs/src/namenode/safe_mode.rs",
    "dfs/src/namenode/topology.rs",
    "yarnlike/src/resourcemanager/scheduler.rs",
    "yarnlike/src/resourcemanager/state.rs",
];

/// Directories whose every non-test `.rs` file (recursively) is a decision core. Scanning the
/// whole directory keeps the check true when a core is split into more files.
const CORE_DIRS: &[&str] = &["mapreduce/src/jobtracker"];

/// Core files that break a rule today, with the reason and who removes it. Empty: keep it so.
/// An entry is `(path, forbidden text)`; it exempts only that text in that file.
const ALLOWED_TODAY: &[(&str, &str)] = &[];

/// What a core must not use, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "the async runtime belongs to the daemon shell"),
    ("SystemTime", "the wall clock is passed in (`now`)"),
    ("Instant::now", "the monotonic clock is passed in (`now`)"),
    ("rand::random", "randomness must be seeded by the caller"),
    ("thread_rng", "randomness must be seeded by the caller"),
    ("OsRng", "randomness must be seeded by the caller"),
    ("from_entropy", "randomness must be seeded by the caller"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True for files that hold only tests (`tests.rs`, `random_tests.rs`, anything under `tests/`).
fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

fn rust_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !is_test_file(path.strip_prefix(root()).unwrap_or(&path))
        {
            out.push(path);
        }
    }
}

/// The file's code outside its test module and comments: everything before the first
/// `#[cfg(test)]` (test modules sit at the end of a file), with `//` comments cut off.
fn production_code(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .enumerate()
        .map(|(i, l)| {
            let code = match l.find("//") {
                Some(at) => &l[..at],
                None => l,
            };
            (i + 1, code.to_string())
        })
        .collect()
}

fn violations(path: &Path, rel: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut found = Vec::new();
    for (line, code) in production_code(&text) {
        for (needle, why) in FORBIDDEN {
            if code.contains(needle) && !ALLOWED_TODAY.contains(&(rel, *needle)) {
                found.push(format!("{rel}:{line}: `{needle}` ({why}): {}", code.trim()));
            }
        }
    }
    found
}

#[test]
fn decision_cores_use_no_runtime_clock_or_unseeded_randomness() {
    let root = root();
    let mut files: Vec<PathBuf> = CORE_FILES.iter().map(|f| root.join(f)).collect();
    for f in &files {
        assert!(
            f.is_file(),
            "{} is listed as a decision core but does not exist: update CORE_FILES",
            f.display()
        );
    }
    for dir in CORE_DIRS {
        let before = files.len();
        rust_files_under(&root.join(dir), &mut files);
        assert!(files.len() > before, "{dir} holds no core file");
    }
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .unwrap_or(f)
            .to_string_lossy()
            .into_owned();
        found.extend(violations(f, &rel));
    }
    assert!(
        found.is_empty(),
        "decision cores must stay sans-I/O (ARCHITECTURE.md, Invariants):\n{}",
        found.join("\n")
    );
}

#[test]
fn allowed_exceptions_are_still_needed() {
    // An exception that no longer matches anything must be deleted, so the list only shrinks.
    for (rel, needle) in ALLOWED_TODAY {
        let text = std::fs::read_to_string(root().join(rel)).unwrap_or_default();
        assert!(
            production_code(&text)
                .iter()
                .any(|(_, c)| c.contains(needle)),
            "{rel} no longer uses `{needle}`: remove it from ALLOWED_TODAY"
        );
    }
}

#[test]
fn the_check_sees_through_test_modules_and_comments() {
    let code = "use std::collections::HashMap;\n// tokio is not used here\nfn f() {}\n#[cfg(test)]\nmod tests { fn t() { let _ = std::time::Instant::now(); } }\n";
    let kept: Vec<String> = production_code(code).into_iter().map(|(_, c)| c).collect();
    assert!(kept
        .iter()
        .all(|c| !c.contains("tokio") && !c.contains("Instant::now")));
    assert!(kept.iter().any(|c| c.contains("fn f()")));
    assert!(is_test_file(Path::new(
        "mapreduce/src/jobtracker/random_tests.rs"
    )));
    assert!(is_test_file(Path::new(
        "mapreduce/src/jobtracker/tracker/tests.rs"
    )));
    assert!(!is_test_file(Path::new(
        "mapreduce/src/jobtracker/tracker.rs"
    )));
}
