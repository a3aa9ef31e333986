//! `sheaf sql`: SQL over CSV, JSON and Parquet tables in the DFS (or local files), planned by
//! DataFusion and cut into stages (`sheaf-sql`).

use anyhow::{anyhow, bail, Context};
use clap::Args;
use sheaf_dfs::client::DfsClient;
use sheaf_sql::catalog::Metastore;
use sheaf_sql::cluster::client::{ClusterSessionOptions, ClusterSqlClient};
use sheaf_sql::executor::StageProgress;
use sheaf_sql::output::{write_rows, OutputFormat};
use sheaf_sql::script::{split_statements, ScriptStatement};
use sheaf_sql::{SqlSession, SqlSettings, StatementOutcome};
use sheaf_yarn::config::YarnSections;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// `sheaf sql` arguments.
#[derive(Args, Debug)]
pub struct SqlArgs {
    /// Statements to run (`;`-separated).
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    execute: Option<String>,
    /// A script of statements (`;`-separated, `--` and `/* */` comments).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output of result rows: table (default on a terminal), csv (default when piped), json.
    #[arg(long, value_name = "FORMAT")]
    format: Option<OutputFormat>,
    /// Run every stage in this process (same planner and stages, no cluster containers);
    /// without it, the session runs on the cluster as one application.
    #[arg(long)]
    local: bool,
    /// Session settings: sheaf.sql.shuffle-partitions, sheaf.sql.broadcast-threshold,
    /// sheaf.sql.task-memory, sheaf.sql.scratch-dir, or any datafusion.* key.
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Keep the catalog in this local directory instead of the DFS's /sheaf/metastore.
    #[arg(long, value_name = "DIR")]
    metastore: Option<PathBuf>,
    /// No progress line, even on a terminal.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// After each query, one line per stage on stderr: tasks, attempts, re-run outputs, rows,
    /// bytes written, bytes spilled, time.
    #[arg(long)]
    stats: bool,
}

/// Session settings from `-D KEY=VALUE` arguments (`sheaf sql`, `sheaf bench tpch`).
pub fn parse_settings(args: &[String]) -> anyhow::Result<SqlSettings> {
    let mut settings = SqlSettings::default();
    for kv in args {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("-D {kv}: expected KEY=VALUE"))?;
        settings.set(k.trim(), v.trim())?;
    }
    Ok(settings)
}

/// Runs `sheaf sql`.
pub fn run(args: SqlArgs) -> anyhow::Result<()> {
    let settings = parse_settings(&args.settings)?;
    let runtime = super::runtime::runtime(super::runtime::Workload::Command)?;
    runtime.block_on(run_async(args, settings))
}

/// Where statements run: in this process (`--local`), or as a session on the cluster.
enum Backend {
    Local(Box<SqlSession>),
    Cluster(Box<ClusterSqlClient>),
}

impl Backend {
    async fn execute(
        &self,
        sql: &str,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> sheaf_sql::SqlResult<StatementOutcome> {
        match self {
            Backend::Local(s) => s.execute(sql, progress).await,
            Backend::Cluster(c) => c.execute(sql, progress).await,
        }
    }

    async fn close(self) -> anyhow::Result<()> {
        if let Backend::Cluster(c) = self {
            c.close().await?;
        }
        Ok(())
    }
}

/// Starts a SQL session on the configured cluster (its query master and executors) for `user`.
pub async fn start_cluster_session(
    user: String,
    settings: &SqlSettings,
) -> anyhow::Result<ClusterSqlClient> {
    let config = super::config::client(None)?;
    let yarn = YarnSections::from_file(&config.file).context("invalid configuration")?;
    let sheaf_binary = std::env::current_exe().context("cannot locate the sheaf executable")?;
    let options = ClusterSessionOptions::new(
        yarn.resourcemanager.address,
        user,
        settings.given.clone(),
        sheaf_binary,
    );
    Ok(ClusterSqlClient::start(&config.identity, options).await?)
}

async fn run_async(args: SqlArgs, settings: SqlSettings) -> anyhow::Result<()> {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    let cluster_configured = super::config::config_path().is_some();
    let backend = if args.local {
        let dfs = if cluster_configured {
            let config = super::config::client(None)?;
            Some(DfsClient::connect(&config.dfs, config.identity).await?)
        } else {
            None
        };
        let metastore = match (&args.metastore, &dfs) {
            (Some(dir), _) => Metastore::Local(dir.clone()),
            (None, Some(client)) => Metastore::Dfs(client.clone()),
            (None, None) => Metastore::Local(default_local_metastore()),
        };
        let session = SqlSession::new(dfs, metastore, settings, user).await?;
        for w in session.warnings() {
            eprintln!("sheaf sql: warning: {w}");
        }
        Backend::Local(Box::new(session))
    } else {
        if !cluster_configured {
            bail!("no cluster is configured (no sheaf.toml in the run dir and no --conf): start one with scripts/start-cluster.sh, or add --local to run every stage in this process");
        }
        if args.metastore.is_some() {
            bail!("--metastore is for --local sessions; a cluster session keeps its catalog in the DFS");
        }
        Backend::Cluster(Box::new(start_cluster_session(user, &settings).await?))
    };
    let result = run_statements(&args, &backend).await;
    let closed = backend.close().await;
    result?;
    closed
}

async fn run_statements(args: &SqlArgs, session: &Backend) -> anyhow::Result<()> {
    let stdout_tty = std::io::stdout().is_terminal();
    let format = args.format.unwrap_or(if stdout_tty {
        OutputFormat::Table
    } else {
        OutputFormat::Csv
    });
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let script = match (&args.execute, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        (None, None) if std::io::stdin().is_terminal() => {
            return interactive(session, format, show_progress).await
        }
        (None, None) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("cannot read statements from stdin")?;
            s
        }
    };
    let statements = split_statements(&script);
    if statements.is_empty() {
        bail!("no statement to run");
    }
    for statement in &statements {
        run_one(
            session,
            statement,
            format,
            show_progress,
            statements.len() > 1,
            args.stats,
        )
        .await?;
    }
    Ok(())
}

fn default_local_metastore() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".sheaf")
        .join("metastore")
}

async fn run_one(
    session: &Backend,
    statement: &ScriptStatement,
    format: OutputFormat,
    show_progress: bool,
    several: bool,
    stats: bool,
) -> anyhow::Result<()> {
    let progress = move |p: StageProgress| {
        if show_progress {
            eprint!(
                "\r[Stage {}/{}: {}/{} tasks, {} rows, {}]\x1b[K",
                p.stage + 1,
                p.stages,
                p.done,
                p.total,
                p.rows,
                human_bytes(p.bytes)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let outcome = session.execute(&statement.text, &progress).await;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    match outcome.map_err(|e| anyhow!("line {}: {e}", statement.line))? {
        StatementOutcome::Rows {
            schema,
            batches,
            stages,
        } => {
            if stats {
                for s in &stages {
                    eprintln!(
                        "stage {}: {} tasks, {} attempts ({} data-local, {} rack-local), {} outputs re-run, {} rows, {} written, {} spilled, {:.2} s",
                        s.stage,
                        s.tasks,
                        s.attempts,
                        s.data_local,
                        s.rack_local,
                        s.reruns,
                        s.output_rows,
                        human_bytes(s.output_bytes),
                        human_bytes(s.spilled_bytes),
                        s.elapsed.as_secs_f64()
                    );
                }
            }
            let mut out = std::io::stdout().lock();
            match write_rows(&mut out, format, &schema, &batches) {
                Ok(()) => {}
                // `sheaf sql … | head`: the reader has gone; that is not an error.
                Err(sheaf_sql::SqlError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
        StatementOutcome::Done(message) => {
            if several || std::io::stderr().is_terminal() {
                eprintln!("{message}");
            }
        }
    }
    Ok(())
}

async fn interactive(
    session: &Backend,
    format: OutputFormat,
    show_progress: bool,
) -> anyhow::Result<()> {
    let mut editor = rustyline::DefaultEditor::new().context("cannot start the line editor")?;
    let history = default_local_metastore()
        .parent()
        .map(|p| p.join("sql_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let mut buffer = String::new();
    let mut line_no = 0usize;
    loop {
        let prompt = if buffer.is_empty() {
            "sheaf> "
        } else {
            "    -> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                line_no += 1;
                buffer.push_str(&line);
                buffer.push('\n');
                if !line.trim_end().ends_with(';') {
                    continue;
                }
                let _ = editor.add_history_entry(buffer.trim());
                for statement in split_statements(&buffer) {
                    if let Err(e) =
                        run_one(session, &statement, format, show_progress, true, false).await
                    {
                        eprintln!("sheaf sql: {e}");
                    }
                }
                buffer.clear();
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(anyhow!("reading a statement (line {line_no}): {e}")),
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(h);
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
