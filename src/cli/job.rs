//! `sheaf job …`: run a MapReduce job from a plugin library or as Hadoop Streaming, locally.

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

/// `sheaf job` subcommands.
#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Run a job whose mapper/reducer live in a plugin library (`cdylib`).
    Run(RunArgs),
    /// Run a Hadoop Streaming job: mapper, combiner and reducer are shell commands.
    Streaming(StreamingArgs),
}

/// Options shared by every way of running a job.
#[derive(Args, Debug, Clone)]
pub struct CommonJobArgs {
    /// Run in this process with no daemons (the only mode available so far).
    #[arg(long)]
    pub local: bool,
    /// Input files or directories (a directory means its files not starting with `_` or `.`):
    /// local paths, `sheaf:///path` (the configured cluster) or `sheaf://host:port/path`.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output directory (local or `sheaf://…`); must not exist yet.
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
    /// Tasks run at once (default: one per core).
    #[arg(long)]
    pub slots: Option<usize>,
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
    if !common.local {
        bail!("only local execution is available (add --local)");
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
    let (config, identity) = super::dfs::load_config(None)?;
    Ok(DfsAccess { config, identity })
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

/// Entry point of `sheaf job`.
pub fn run(command: JobCommand) -> anyhow::Result<()> {
    match command {
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

    #[test]
    fn conf_entries_need_an_equals_sign() {
        let conf = parse_conf(&["a=1".into(), "b=x=y".into()]).expect("parse");
        assert_eq!(conf.get("a"), Some("1"));
        assert_eq!(conf.get("b"), Some("x=y"));
        assert!(parse_conf(&["novalue".into()]).is_err());
    }
}
