//! `sheaf job …`: run a MapReduce job from a plugin library or as Hadoop Streaming, locally
//! (`--local`) or on the cluster (see [`super::job_cluster`]), and inspect cluster jobs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use sheaf_mapreduce::api::plugin::PluginLibrary;
use sheaf_mapreduce::api::{JobConf, JobDefinition};
use sheaf_mapreduce::fs::{DfsAccess, JobPath};
use sheaf_mapreduce::local::{
    default_slots, run_local_job, JobReport, LocalJobConfig, DEFAULT_SPLIT_SIZE,
};
use sheaf_mapreduce::streaming::StreamingJob;

use super::job_cluster::{self, ClusterJob, ProgramSpec};

/// `sheaf job` subcommands.
#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Run a job whose mapper/reducer live in a plugin library (`cdylib`): in this process with
    /// `--local`, else on the cluster (like `submit`).
    Run(RunArgs),
    /// Run a Hadoop Streaming job (mapper, combiner and reducer are shell commands): in this
    /// process with `--local`, else on the cluster.
    Streaming(StreamingArgs),
    /// Submit a plugin job to the cluster (inputs and output are DFS paths).
    Submit(SubmitArgs),
    /// A cluster job's state, progress and counters.
    Status {
        /// Job id (job_<cluster>_<seq>).
        job: String,
    },
    /// A cluster job's counters, or one counter's value with GROUP and NAME.
    Counters {
        /// Job id.
        job: String,
        /// Counter group, e.g. "Map-Reduce Framework".
        #[arg(requires = "name")]
        group: Option<String>,
        /// Counter name, e.g. MAP_INPUT_RECORDS.
        name: Option<String>,
    },
    /// Kill a cluster job.
    Kill {
        /// Job id.
        job: String,
    },
    /// Cluster jobs that are not finished (with --all, also finished ones and their history).
    List {
        /// Include finished jobs.
        #[arg(long)]
        all: bool,
    },
    /// A finished job's configuration, counters and task attempts (from its history in the DFS).
    History {
        /// Job id.
        job: String,
    },
}

/// Options shared by every way of running a job.
#[derive(Args, Debug, Clone)]
pub struct CommonJobArgs {
    /// Run in this process with no daemons; without it the job is submitted to the cluster.
    #[arg(long)]
    pub local: bool,
    /// Input files or directories (a directory means its files not starting with `_` or `.`).
    /// With --local: local paths, `sheaf:///path` (the configured cluster) or
    /// `sheaf://host:port/path`; on the cluster: DFS paths (`/path`, `sheaf:///path`, or relative
    /// to /user/$USER).
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output directory (same forms as --input); must not exist yet.
    #[arg(long)]
    pub output: PathBuf,
    /// Number of reduce tasks; 0 makes a map-only job (`part-m-NNNNN` files).
    #[arg(long, default_value_t = 1)]
    pub reducers: u32,
    /// Job configuration entry `key=value` (repeatable, Hadoop's `-D`), e.g.
    /// `-D mapreduce.task.sort-buffer-mb=32`. (`--conf` is the global configuration file.)
    #[arg(short = 'D', long = "jobconf", value_name = "KEY=VALUE")]
    pub jobconf: Vec<String>,
    /// Bytes per input split (suffixes k, m, g allowed).
    #[arg(long, value_parser = parse_size)]
    pub split_size: Option<u64>,
    /// Tasks run at once (default: one per core; --local only).
    #[arg(long)]
    pub slots: Option<usize>,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// Options of jobs that run on the cluster.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterFlags {
    /// Queue to submit to (default: mapreduce.job.queuename, else "default"; cluster only).
    #[arg(long)]
    pub queue: Option<String>,
    /// Wait for the job, show its progress, print its counters; exit 0 only if it succeeded
    /// (cluster only).
    #[arg(long)]
    pub wait: bool,
    /// Print only the job id (stdout), no progress or counters (cluster only).
    #[arg(long)]
    pub quiet: bool,
}

/// `sheaf job submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The job's plugin library (`lib<job>.so`), uploaded with the job.
    #[arg(long)]
    pub plugin: PathBuf,
    /// Input files or directories in the DFS (`/path`, `sheaf:///path`, or relative to
    /// /user/$USER).
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<String>,
    /// Output directory in the DFS; must not exist yet.
    #[arg(long)]
    pub output: String,
    /// Number of reduce tasks; 0 makes a map-only job (`part-m-NNNNN` files).
    #[arg(long, default_value_t = 1)]
    pub reducers: u32,
    /// Job configuration entry `key=value` (repeatable, Hadoop's `-D`).
    #[arg(short = 'D', long = "jobconf", value_name = "KEY=VALUE")]
    pub jobconf: Vec<String>,
    /// Bytes per input split (suffixes k, m, g allowed; default: one split per DFS block).
    #[arg(long, value_parser = parse_size)]
    pub split_size: Option<u64>,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// `sheaf job run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The job's plugin library (`lib<job>.so`).
    #[arg(long)]
    pub plugin: PathBuf,
    #[command(flatten)]
    pub common: CommonJobArgs,
}

/// `sheaf job streaming`.
#[derive(Args, Debug)]
pub struct StreamingArgs {
    /// Map command, run with `sh -c`; reads input lines, prints `key<TAB>value` lines.
    #[arg(long)]
    pub mapper: String,
    /// Optional combine command (must keep keys in sorted order, like a reducer).
    #[arg(long)]
    pub combiner: Option<String>,
    /// Reduce command; reads sorted `key<TAB>value` lines.
    #[arg(long)]
    pub reducer: String,
    /// A local file to ship with a cluster job (repeatable; Hadoop's `-file`): every task
    /// container gets it, executable, in its working dir under its file name; run it as
    /// `./NAME`. Commands starting with any other relative path are refused on the cluster.
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonJobArgs,
}

/// Parses `123`, `64k`, `128m`, `1g` (binary multiples).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        Some('t') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1048576, 64k, 128m or 1g"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses `key=value` entries into a job configuration.
pub fn parse_conf(entries: &[String]) -> anyhow::Result<JobConf> {
    let mut conf = JobConf::default();
    for entry in entries {
        let (k, v) = entry
            .split_once('=')
            .ok_or_else(|| anyhow!("-D {entry:?} is not KEY=VALUE"))?;
        if k.trim().is_empty() {
            bail!("-D {entry:?} has an empty key");
        }
        conf.set(k.trim(), v);
    }
    Ok(conf)
}

fn local_config(common: &CommonJobArgs) -> anyhow::Result<LocalJobConfig> {
    let c = &common.cluster;
    if c.queue.is_some() || c.wait || c.quiet {
        bail!("--queue, --wait and --quiet are for cluster jobs (drop them or drop --local)");
    }
    if common.slots == Some(0) {
        bail!("--slots must be at least 1");
    }
    let mut uses_dfs = false;
    for p in common.input.iter().chain(std::iter::once(&common.output)) {
        uses_dfs |= JobPath::from_path(p)?.is_dfs();
    }
    Ok(LocalJobConfig {
        inputs: common.input.clone(),
        output: common.output.clone(),
        reducers: common.reducers,
        split_size: common.split_size.unwrap_or(DEFAULT_SPLIT_SIZE),
        slots: common.slots.unwrap_or_else(default_slots),
        conf: parse_conf(&common.jobconf)?,
        // The cluster configuration is only needed (and only required) for `sheaf://` paths.
        dfs: if uses_dfs { Some(dfs_access()?) } else { None },
    })
}

/// The DFS configuration and user identity, loaded the way `sheaf dfs` loads them.
fn dfs_access() -> anyhow::Result<DfsAccess> {
    let config = super::config::client(None)?;
    Ok(DfsAccess {
        config: config.dfs,
        identity: config.identity,
    })
}

/// Prints the end-of-job summary and counters to stderr, Hadoop style.
pub fn print_report(report: &JobReport) {
    eprintln!(
        "Job complete: {} map tasks, {} reduce tasks, {:.2} s",
        report.maps,
        report.reduces,
        report.elapsed.as_secs_f64()
    );
    eprint!("{}", report.counters);
}

/// Runs `job` locally and prints its counters.
pub fn run_job(job: Arc<dyn JobDefinition>, config: &LocalJobConfig) -> anyhow::Result<JobReport> {
    let report = run_local_job(job, config)?;
    print_report(&report);
    Ok(report)
}

/// The verb for error messages (`sheaf <verb>: …`); local runs keep plain `job`.
pub fn verb(command: &JobCommand) -> &'static str {
    match command {
        JobCommand::Run(a) if a.common.local => "job",
        JobCommand::Streaming(a) if a.common.local => "job",
        JobCommand::Run(_) | JobCommand::Submit(_) => "job submit",
        JobCommand::Streaming(_) => "job streaming",
        JobCommand::Status { .. } => "job status",
        JobCommand::Counters { .. } => "job counters",
        JobCommand::Kill { .. } => "job kill",
        JobCommand::List { .. } => "job list",
        JobCommand::History { .. } => "job history",
    }
}

/// A `run`/`streaming` without `--local`, as a cluster job.
fn cluster_job(common: CommonJobArgs, program: ProgramSpec) -> anyhow::Result<ClusterJob> {
    if common.slots.is_some() {
        bail!("--slots is for --local runs (the cluster sizes containers itself)");
    }
    let text = |p: &PathBuf| {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{}: not a UTF-8 path", p.display()))
    };
    Ok(ClusterJob {
        program,
        inputs: common
            .input
            .iter()
            .map(text)
            .collect::<anyhow::Result<_>>()?,
        output: text(&common.output)?,
        reducers: common.reducers,
        queue: common.cluster.queue,
        jobconf: common.jobconf,
        split_size: common.split_size,
        wait: common.cluster.wait,
        quiet: common.cluster.quiet,
        files: Vec::new(),
    })
}

/// Entry point of `sheaf job`.
pub fn run(command: JobCommand) -> anyhow::Result<()> {
    match command {
        JobCommand::Run(args) if !args.common.local => {
            job_cluster::submit(cluster_job(args.common, ProgramSpec::Plugin(args.plugin))?)?;
        }
        JobCommand::Streaming(args) if !args.common.local => {
            let program = ProgramSpec::Streaming {
                mapper: args.mapper,
                combiner: args.combiner,
                reducer: args.reducer,
            };
            let mut job = cluster_job(args.common, program)?;
            job.files = args.files;
            job_cluster::submit(job)?;
        }
        JobCommand::Submit(a) => job_cluster::submit(ClusterJob {
            program: ProgramSpec::Plugin(a.plugin),
            inputs: a.input,
            output: a.output,
            reducers: a.reducers,
            queue: a.cluster.queue,
            jobconf: a.jobconf,
            split_size: a.split_size,
            wait: a.cluster.wait,
            quiet: a.cluster.quiet,
            files: Vec::new(),
        })?,
        JobCommand::Status { job } => job_cluster::status(&job)?,
        JobCommand::Counters { job, group, name } => {
            job_cluster::counters(&job, group.as_deref(), name.as_deref())?
        }
        JobCommand::Kill { job } => job_cluster::kill(&job)?,
        JobCommand::List { all } => job_cluster::list(all)?,
        JobCommand::History { job } => job_cluster::history(&job)?,
        JobCommand::Run(args) => {
            let config = local_config(&args.common)?;
            let job = PluginLibrary::load(&args.plugin)
                .with_context(|| format!("loading plugin {}", args.plugin.display()))?;
            run_job(job, &config)?;
        }
        JobCommand::Streaming(args) => {
            let mut config = local_config(&args.common)?;
            let job = StreamingJob {
                mapper: args.mapper,
                combiner: args.combiner,
                reducer: Some(args.reducer),
            };
            job.store_in_conf(&mut config.conf);
            run_job(Arc::new(job), &config)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes_and_refuse_garbage() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("128M"), Ok(128 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("2GB"), Ok(2 << 30));
        assert!(parse_size("x1").is_err());
        assert!(parse_size("99999999999999999999t").is_err());
    }

    #[derive(clap::Parser)]
    struct TestCli {
        #[command(subcommand)]
        job: JobCommand,
    }

    fn parse(args: &[&str]) -> Result<JobCommand, clap::Error> {
        use clap::Parser;
        TestCli::try_parse_from(std::iter::once("job").chain(args.iter().copied())).map(|c| c.job)
    }

    #[test]
    fn run_and_streaming_go_to_the_cluster_without_local() {
        let run = [
            "run", "--plugin", "w.so", "--input", "/a", "b", "--output", "out",
        ];
        let cmd = parse(&run).expect("parse");
        assert_eq!(verb(&cmd), "job submit");
        let JobCommand::Run(args) = cmd else {
            panic!("not run")
        };
        let job = cluster_job(args.common, ProgramSpec::Plugin("w.so".into())).expect("job");
        assert_eq!(job.inputs, ["/a", "b"]);
        assert_eq!(job.output, "out");
        assert!(!job.wait && job.queue.is_none());

        let local = parse(&[
            "run", "--local", "--plugin", "w.so", "--input", "a", "--output", "o",
        ])
        .expect("parse");
        assert_eq!(verb(&local), "job");
        let streaming = ["streaming", "--mapper", "cat", "--reducer", "wc -l"];
        let cmd = parse(
            &[
                &streaming[..],
                &["--input", "/i", "--output", "/o", "--wait"],
            ]
            .concat(),
        )
        .expect("parse");
        assert_eq!(verb(&cmd), "job streaming");
    }

    #[test]
    fn local_and_cluster_only_flags_are_refused_in_the_other_mode() {
        let cmd = parse(&[
            "run", "--local", "--wait", "--plugin", "w.so", "--input", "a", "--output", "o",
        ])
        .expect("parse");
        let JobCommand::Run(args) = cmd else {
            panic!("not run")
        };
        let err = local_config(&args.common).unwrap_err().to_string();
        assert!(err.contains("--wait") && err.contains("--local"), "{err}");

        let cmd = parse(&[
            "run", "--slots", "2", "--plugin", "w.so", "--input", "a", "--output", "o",
        ])
        .expect("parse");
        let JobCommand::Run(args) = cmd else {
            panic!("not run")
        };
        let err = cluster_job(args.common, ProgramSpec::Plugin("w.so".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--slots"), "{err}");
    }

    #[test]
    fn inspection_verbs_parse_like_mapred_job() {
        let cmd =
            parse(&["counters", "job_1_0001", "Job Counters", "DATA_LOCAL_MAPS"]).expect("parse");
        assert_eq!(verb(&cmd), "job counters");
        assert!(matches!(
            cmd,
            JobCommand::Counters { group: Some(g), name: Some(n), .. }
                if g == "Job Counters" && n == "DATA_LOCAL_MAPS"
        ));
        assert!(
            parse(&["counters", "job_1_0001", "Job Counters"]).is_err(),
            "NAME required"
        );
        assert!(matches!(
            parse(&["list", "--all"]),
            Ok(JobCommand::List { all: true })
        ));
        assert_eq!(
            verb(&parse(&["kill", "job_1_0001"]).expect("kill")),
            "job kill"
        );
        assert_eq!(
            verb(&parse(&["history", "job_1_0001"]).expect("history")),
            "job history"
        );
        assert!(
            parse(&["submit", "--plugin", "w.so", "--output", "o"]).is_err(),
            "--input"
        );
    }

    #[test]
    fn conf_entries_need_an_equals_sign() {
        let conf = parse_conf(&["a=1".into(), "b=x=y".into()]).expect("parse");
        assert_eq!(conf.get("a"), Some("1"));
        assert_eq!(conf.get("b"), Some("x=y"));
        assert!(parse_conf(&["novalue".into()]).is_err());
    }
}
