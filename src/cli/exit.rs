//! How a command's outcome becomes a process exit: one line on stderr and a non-zero code.

use std::process::ExitCode;

/// A failure that has already been reported to the user and only needs its exit code
/// (`sheaf dfs test` fails silently with 1, like `hdfs dfs -test`).
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct SilentExit(pub u8);

/// Prints `sheaf <verb>: <error chain>` on one line and maps the outcome to an exit code.
pub fn report(verb: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(SilentExit(code)) = err.downcast_ref::<SilentExit>() {
                return ExitCode::from(*code);
            }
            let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
            eprintln!("sheaf {verb}: {}", chain.join(": "));
            ExitCode::from(1)
        }
    }
}
