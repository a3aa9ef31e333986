//! The `sheaf` binary: the user's CLI (`sheaf dfs`, `sheaf job`, …) and every daemon
//! (`sheaf namenode`, `sheaf datanode`, …) in one executable.

mod cli;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// Sheaf: a distributed filesystem, a resource manager and MapReduce in one binary.
#[derive(Parser)]
#[command(name = "sheaf", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (default: $SHEAF_RUN_DIR/sheaf.toml of a running pseudo-cluster).
    #[arg(long, global = true, env = "SHEAF_CONF", value_name = "FILE")]
    conf: Option<std::path::PathBuf>,
    /// Act as the user whose certificate is in DIR (made by `sheaf admin user add`; default:
    /// the run dir's admin identity).
    #[arg(long, global = true, env = "SHEAF_IDENTITY", value_name = "DIR")]
    identity: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a MapReduce job (locally or on the cluster) and inspect jobs.
    #[command(subcommand)]
    Job(cli::job::JobCommand),
    /// SQL over CSV, JSON and Parquet tables (`-e SQL`, `-f FILE`, or a prompt).
    Sql(cli::sql::SqlArgs),
    /// Benchmarks that compare Sheaf with a baseline in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The DFS shell (Hadoop's `hdfs dfs`): put, get, cat, ls, mkdir, rm, mv, cp, stat, du, df, ….
    /// Verbs may be spelled `-ls` as in Hadoop; `-D KEY=VALUE`, `-fs sheaf://HOST:PORT` and
    /// `-conf FILE` before the verb set configuration for this command.
    #[command(subcommand, visible_alias = "fs")]
    Dfs(cli::dfs::DfsCommand),
    /// Check the health of every file and block under a path.
    Fsck(cli::dfsadmin::FsckArgs),
    /// Cluster administration: `report`, `safemode get|enter|leave|wait`.
    #[command(subcommand)]
    Dfsadmin(cli::dfsadmin::DfsadminCommand),
    /// Run a DataNode (stores block replicas) until SIGTERM/SIGINT.
    Datanode(cli::datanode::DatanodeArgs),
    /// Run the NameNode (namespace and block map) until SIGTERM/SIGINT.
    Namenode(cli::namenode::NamenodeArgs),
    /// Create the cluster certificates (unless present) and an empty namespace.
    Format(cli::namenode::FormatArgs),
    /// Cluster administration with the CA: `user add` issues a user's certificate.
    #[command(subcommand)]
    Admin(cli::admin::AdminCommand),
    /// The resource layer: nodes, applications, queues, and `run` (distributed shell).
    #[command(subcommand)]
    Yarn(cli::yarn::YarnCommand),
    /// Run the ResourceManager (queues, scheduler, applications) until SIGTERM/SIGINT.
    Resourcemanager(cli::yarn_daemons::ResourceManagerArgs),
    /// Run a NodeManager (runs containers) until SIGTERM/SIGINT.
    Nodemanager(cli::yarn_daemons::NodeManagerArgs),
    /// A MapReduce task attempt in a container the JobTracker launched (internal).
    #[command(name = "mr-task", hide = true)]
    MrTask(cli::mr_task::MrTaskArgs),
    /// A MapReduce job's application master, run by the ResourceManager (internal).
    #[command(name = "mr-jobtracker", hide = true)]
    MrJobtracker(cli::mr_jobtracker::MrJobTrackerArgs),
    /// A SQL session's query master, run by the ResourceManager (internal).
    #[command(name = "sql-master", hide = true)]
    SqlMaster(cli::sql_cluster::SqlMasterArgs),
    /// An executor of a SQL session, launched by its query master (internal).
    #[command(name = "sql-executor", hide = true)]
    SqlExecutor(cli::sql_cluster::SqlExecutorArgs),
}

/// `sheaf bench …`: every benchmark prints Sheaf's figure next to a baseline measured in the same run.
#[derive(Subcommand)]
enum BenchCommand {
    /// Local wordcount vs a plain single-threaded word-count loop.
    Wordcount(cli::job_bench::WordcountBenchArgs),
    /// teragen → terasort → teravalidate vs `LC_ALL=C sort`.
    Terasort(cli::job_bench::TerasortBenchArgs),
    /// Write the deterministic Zipf text corpus the wordcount benchmark uses.
    Corpus(cli::job_bench::CorpusArgs),
    /// Write the deterministic terasort input records to a file.
    Teragen(cli::job_bench::TeragenArgs),
    /// Check a terasort output (local part files) against its input.
    Teravalidate(cli::job_bench::TeravalidateArgs),
    /// Block-data transports: plain TCP vs TLS-over-TCP vs tuned QUIC.
    Transport(cli::transport_bench::TransportBenchArgs),
    /// DFS write and read throughput (like TestDFSIO) vs the raw disk.
    Dfsio(cli::dfs_bench::DfsioArgs),
    /// TPC-H: the 22 queries by Sheaf SQL vs DataFusion alone on the same Parquet data.
    Tpch(cli::sql_bench::TpchBenchArgs),
    /// QUIC shuffle of real map outputs vs a plain TCP copy of the same bytes.
    Shuffle(cli::shuffle_bench::ShuffleBenchArgs),
}

fn main() -> ExitCode {
    // `sheaf dfs -ls /`, `sheaf fs …` and Hadoop's generic options, in Sheaf's spelling.
    let commands = Cli::command();
    let dfs = commands.find_subcommand("dfs");
    let is_verb = |v: &str| dfs.is_some_and(|d| d.find_subcommand(v).is_some());
    let (argv, generic) =
        match cli::generic_options::rewrite(std::env::args_os().collect(), is_verb) {
            Ok(rewritten) => rewritten,
            Err(e) => {
                eprintln!("sheaf dfs: {e}");
                return ExitCode::from(2);
            }
        };
    let cli = Cli::parse_from(argv);
    cli::logging::init();
    cli::config::set_explicit(cli.conf.clone().or(generic.conf));
    cli::config::set_defines(generic.defines);
    cli::config::set_identity(cli.identity.clone());
    let (verb, result) = match cli.command {
        Command::Job(cmd) => (cli::job::verb(&cmd), cli::job::run(cmd)),
        Command::Bench(BenchCommand::Wordcount(args)) => ("bench", cli::job_bench::wordcount(args)),
        Command::Bench(BenchCommand::Terasort(args)) => ("bench", cli::job_bench::terasort(args)),
        Command::Bench(BenchCommand::Corpus(args)) => ("bench", cli::job_bench::corpus(args)),
        Command::Bench(BenchCommand::Teragen(args)) => ("bench", cli::job_bench::teragen(args)),
        Command::Bench(BenchCommand::Teravalidate(args)) => {
            ("bench teravalidate", cli::job_bench::teravalidate(args))
        }
        Command::Bench(BenchCommand::Transport(args)) => ("bench", cli::transport_bench::run(args)),
        Command::Bench(BenchCommand::Dfsio(args)) => ("bench dfsio", cli::dfs_bench::run(args)),
        Command::Bench(BenchCommand::Tpch(args)) => ("bench tpch", cli::sql_bench::run(args)),
        Command::Bench(BenchCommand::Shuffle(args)) => {
            ("bench shuffle", cli::shuffle_bench::run(args))
        }
        Command::Sql(args) => ("sql", cli::sql::run(args)),
        Command::Dfs(cmd) => (cli::dfs::verb(&cmd), cli::dfs::run(cmd)),
        Command::Fsck(args) => ("fsck", cli::dfsadmin::fsck(args)),
        Command::Dfsadmin(cmd) => ("dfsadmin", cli::dfsadmin::dfsadmin(cmd)),
        Command::Datanode(args) => ("datanode", cli::datanode::run(args)),
        Command::Namenode(args) => ("namenode", cli::namenode::run(args)),
        Command::Format(args) => ("format", cli::namenode::format(args)),
        Command::Admin(cmd) => ("admin", cli::admin::run(cmd)),
        Command::Yarn(cmd) => (cli::yarn::verb(&cmd), cli::yarn::run(cmd)),
        Command::Resourcemanager(args) => {
            ("resourcemanager", cli::yarn_daemons::resourcemanager(args))
        }
        Command::Nodemanager(args) => ("nodemanager", cli::yarn_daemons::nodemanager(args)),
        // Its exit status is the task's own (0 also when the JobTracker stopped it).
        Command::MrTask(args) => return cli::mr_task::run(args),
        Command::MrJobtracker(args) => ("mr-jobtracker", cli::mr_jobtracker::run(args)),
        Command::SqlMaster(args) => ("sql-master", cli::sql_cluster::master(args)),
        Command::SqlExecutor(args) => ("sql-executor", cli::sql_cluster::executor(args)),
    };
    cli::exit::report(verb, result)
}
