//! The `sheaf` binary: the user's CLI (`sheaf dfs`, `sheaf job`, …) and every daemon
//! (`sheaf namenode`, `sheaf datanode`, …) in one executable.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Sheaf: a distributed filesystem, a resource manager and MapReduce in one binary.
#[derive(Parser)]
#[command(name = "sheaf", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (default: $SHEAF_RUN_DIR/sheaf.toml of a running pseudo-cluster).
    #[arg(long, global = true, env = "SHEAF_CONF", value_name = "FILE")]
    conf: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a MapReduce job (locally or on the cluster) and inspect jobs.
    #[command(subcommand)]
    Job(cli::job::JobCommand),
    /// Benchmarks that compare Sheaf with a baseline in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `sheaf bench …`: every benchmark prints Sheaf's figure next to a baseline measured in the same run.
#[derive(Subcommand)]
enum BenchCommand {
    /// Local wordcount vs a plain single-threaded word-count loop.
    Wordcount(cli::job_bench::WordcountBenchArgs),
    /// teragen → terasort → teravalidate vs `LC_ALL=C sort`.
    Terasort(cli::job_bench::TerasortBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::logging::init();
    cli::config::set_explicit(cli.conf.clone());
    let (verb, result) = match cli.command {
        Command::Job(cmd) => ("job", cli::job::run(cmd)),
        Command::Bench(BenchCommand::Wordcount(args)) => ("bench", cli::job_bench::wordcount(args)),
        Command::Bench(BenchCommand::Terasort(args)) => ("bench", cli::job_bench::terasort(args)),
    };
    cli::exit::report(verb, result)
}
