//! Shared helpers of the end-to-end tests.
#![allow(dead_code)] // each test binary uses a different part

pub mod mini_cluster;
pub mod mini_dfs;

use std::path::PathBuf;

/// A plugin library built with the workspace (`lib<name>.so`): next to the `sheaf` binary or in
/// its `deps/` directory (the root crate's dev-dependencies build them).
pub fn plugin(name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_sheaf"));
    let dir = exe.parent().expect("binary directory");
    let file = format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    for candidate in [dir.join(&file), dir.join("deps").join(&file)] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "{file} not found in {}: run `cargo build -p {name}` first",
        dir.display()
    );
}
