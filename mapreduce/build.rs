//! Records the compiler version and target triple so a plugin's ABI fingerprint can name
//! exactly what built it (a plugin built by another rustc or for another target is refused).

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc (unknown version)".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown-target".to_string());
    println!("cargo:rustc-env=SHEAF_RUSTC_VERSION={version}");
    println!("cargo:rustc-env=SHEAF_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
