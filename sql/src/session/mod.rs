//! A SQL session: DataFusion's `SessionContext` set up for Sheaf (the DFS registered as the
//! `sheaf://` object store, the catalog replayed from the metastore, settings that keep plans
//! cuttable), and the statements whose effect must outlive the session (`CREATE EXTERNAL TABLE`,
//! `CREATE TABLE … AS SELECT`, `DROP TABLE`) or be committed atomically (`COPY … TO`, in
//! `commit`).

mod commit;

use crate::block_splits::{self, BlockHosts};
use crate::catalog::{Metastore, TableEntry, WAREHOUSE_DIR};
use crate::dfs_store::DfsObjectStore;
use crate::error::{SqlError, SqlResult};
use crate::executor::{self, StageProgress, StageStats};
use crate::hidden_files::HiddenFilesStore;
use crate::scan_caches::ScanCaches;
pub use crate::settings::{parse_bytes, parse_duration, SqlSettings};
use crate::stage_store::LocalStageDir;
use crate::stage_store::StageWriteOptions;
use crate::stages::{self, StagePlan};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::config::Dialect;
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{CopyToSource, CopyToStatement, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{HiveIOFormat, ObjectType, Statement as SqlStatement};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sheaf_dfs::client::DfsClient;
use std::sync::Arc;
use url::Url;

/// How many times the partitions a statement runs again with after a join ran out of memory.
const RETRY_PARTITION_FACTOR: usize = 4;

/// A statement's text, as executors plan it again: DataFusion's display of `COPY` leaves the
/// target unquoted, which does not parse back.
fn statement_text(statement: &DfStatement) -> String {
    match statement {
        DfStatement::CopyTo(copy) => {
            let mut copy = copy.clone();
            copy.target = format!("'{}'", copy.target.replace('\'', "''"));
            DfStatement::CopyTo(copy).to_string()
        }
        other => other.to_string(),
    }
}

/// The start time `state` plans with (what `now()` is), ns since the epoch.
fn start_time_ns(state: &SessionState) -> Option<i64> {
    state
        .execution_props()
        .query_execution_start_time
        .and_then(|t| t.timestamp_nanos_opt())
}

/// A query about to run distributed: what every executor needs to plan it again.
pub struct DistributedQuery<'a> {
    /// The statement as planned (executors plan the same text).
    pub statement: &'a str,
    /// The master's stage plan.
    pub plan: &'a StagePlan,
    /// The hosts holding the blocks its scans read.
    pub hosts: &'a BlockHosts,
    /// The session state it was planned in.
    pub state: &'a SessionState,
    /// `CREATE EXTERNAL TABLE` statements of every table the session knows.
    pub tables: Vec<String>,
    /// The session's settings as given.
    pub settings: Vec<(String, String)>,
    /// How long a scan task waits for a host holding its block.
    pub locality_wait: std::time::Duration,
    /// The query's start time (`now()`), ns since the epoch.
    pub start_time_ns: Option<i64>,
}

/// Runs stage plans somewhere else than this process (the query master's executors).
#[async_trait::async_trait]
pub trait DistributedRunner: Send + Sync {
    /// Runs `query` and returns the final stage's rows and per-stage figures.
    async fn run(
        &self,
        query: DistributedQuery<'_>,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<(Vec<RecordBatch>, Vec<StageStats>)>;
}

/// What a statement produced.
#[derive(Debug)]
pub enum StatementOutcome {
    /// Result rows (a query, SHOW, DESCRIBE, EXPLAIN).
    Rows {
        /// Their schema.
        schema: SchemaRef,
        /// The rows.
        batches: Vec<RecordBatch>,
        /// Per-stage figures (empty for statements that ran no stages).
        stages: Vec<StageStats>,
    },
    /// A statement with an effect and no rows; the message says what it did.
    Done(String),
}

/// One user's SQL session.
pub struct SqlSession {
    ctx: SessionContext,
    metastore: Metastore,
    dfs: Option<DfsClient>,
    settings: SqlSettings,
    user: String,
    /// Tables of the metastore that could not be registered (shown once, not fatal).
    warnings: Vec<String>,
    queries: std::sync::atomic::AtomicU64,
    /// The DDL of every table registered in this session, by name (what executors register).
    tables: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    runner: Option<Arc<dyn DistributedRunner>>,
    /// The distributed plan of the last statement that ran stages and its stages' figures (for
    /// the session history).
    last_run: std::sync::Mutex<Option<(String, Vec<StageStats>)>>,
    /// The cluster session Dataset actions run on (`None`: they run in this process).
    pub(crate) remote: tokio::sync::Mutex<Option<crate::cluster::client::ClusterSqlClient>>,
    /// The last statement planned a hash join (so running out of memory may be its build side).
    planned_hash_join: std::sync::atomic::AtomicBool,
    /// Plan joins as sort-merge joins: set while a statement runs again after a hash join ran
    /// out of memory.
    sort_merge_joins: std::sync::atomic::AtomicBool,
}

impl SqlSession {
    /// A session over `dfs` (if a cluster is configured) with its catalog in `metastore`.
    pub async fn new(
        dfs: Option<DfsClient>,
        metastore: Metastore,
        settings: SqlSettings,
        user: String,
    ) -> SqlResult<SqlSession> {
        Self::new_sharing(dfs, metastore, settings, user, &ScanCaches::default()).await
    }

    /// [`SqlSession::new`], reusing what earlier sessions read of their files' footers.
    pub async fn new_sharing(
        dfs: Option<DfsClient>,
        metastore: Metastore,
        settings: SqlSettings,
        user: String,
        caches: &ScanCaches,
    ) -> SqlResult<SqlSession> {
        let config = SessionConfig::new()
            .with_target_partitions(settings.partitions)
            .with_information_schema(true)
            // Scan parallelism comes from splitting files along blocks, never from a round-robin
            // shuffle of everything read (stages would cut there).
            .set_bool("datafusion.optimizer.enable_round_robin_repartition", false)
            .set_u64(
                "datafusion.optimizer.hash_join_single_partition_threshold",
                settings.broadcast_threshold,
            )
            .set_u64(
                "datafusion.optimizer.hash_join_single_partition_threshold_rows",
                // Only used when a side's size in bytes is unknown: ~128 bytes per row.
                settings.broadcast_threshold / 128,
            )
            // A dynamic filter crosses a stage boundary only inside one process: keep plans the
            // same wherever their stages run.
            .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false)
            // Each scan task reads exactly its own file group: with work stealing a task running
            // alone (on an executor) would read its siblings' files too.
            .set_bool(
                "datafusion.execution.enable_file_stream_work_stealing",
                false,
            )
            .set_bool("datafusion.execution.collect_statistics", true)
            // A sort reserves this much up front to merge its spill files; DataFusion's 10 MiB
            // would be the whole of a small task budget, and the sort could not start.
            .set_usize(
                "datafusion.execution.sort_spill_reservation_bytes",
                (settings.task_memory / 8).min(10 << 20),
            );
        let mut config = config.with_extension(Arc::new(StageWriteOptions {
            compress: settings.shuffle_compression,
        }));
        for (k, v) in &settings.datafusion {
            config
                .options_mut()
                .set(k, v)
                .map_err(|e| SqlError::Config(format!("-D {k}={v}: {e}")))?;
        }
        let spill = settings.scratch_dir.join("spill");
        std::fs::create_dir_all(&spill)
            .map_err(|e| SqlError::io(format!("creating {}", spill.display()), e))?;
        // A fair pool: concurrent spilling operators each get their share instead of the first
        // one taking everything and the next failing.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(settings.task_memory),
            std::num::NonZeroUsize::MIN.saturating_add(4),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_temp_file_path(spill)
            .with_cache_manager(caches.config())
            .build_arc()?;
        // `SELECT * FROM 'sheaf:///data/x.csv'` reads a file without a CREATE TABLE, as in datafusion-cli.
        let ctx = SessionContext::new_with_config_rt(config, runtime).enable_url_table();
        // Readers never see `_*` and `.*` files (`_SUCCESS`, `_temporary/`), as Hadoop's
        // FileInputFormat hides them.
        let local = Arc::new(HiddenFilesStore::new(
            object_store::local::LocalFileSystem::new(),
        ));
        if let Ok(url) = Url::parse("file://") {
            ctx.register_object_store(&url, local);
        }
        if let Some(client) = &dfs {
            let store = Arc::new(HiddenFilesStore::new(DfsObjectStore::new(client.clone())));
            for url in [
                "sheaf://".to_string(),
                format!("sheaf://{}", client.namenode_addr()),
            ] {
                if let Ok(url) = Url::parse(&url) {
                    ctx.register_object_store(&url, store.clone());
                }
            }
        }
        let mut session = SqlSession {
            ctx,
            metastore,
            dfs,
            settings,
            user,
            warnings: Vec::new(),
            queries: std::sync::atomic::AtomicU64::new(0),
            tables: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            runner: None,
            last_run: std::sync::Mutex::new(None),
            remote: tokio::sync::Mutex::new(None),
            planned_hash_join: std::sync::atomic::AtomicBool::new(false),
            sort_merge_joins: std::sync::atomic::AtomicBool::new(false),
        };
        session.warnings = session.replay_catalog().await?;
        Ok(session)
    }

    /// The distributed plan of the last statement that ran stages and its stages' figures
    /// (empty if it failed), taken: the next statement's record does not repeat them.
    pub fn take_last_run(&self) -> Option<(String, Vec<StageStats>)> {
        self.last_run.lock().ok().and_then(|mut p| p.take())
    }

    /// Runs queries' stages through `runner` from now on (a query master's executors).
    pub fn with_runner(mut self, runner: Arc<dyn DistributedRunner>) -> SqlSession {
        self.runner = Some(runner);
        self
    }

    /// Registers tables from their `CREATE EXTERNAL TABLE` statements, as another session
    /// recorded them (an executor replaying the master's session); the first failure is returned.
    pub async fn register_tables(&self, ddl: &[String]) -> SqlResult<()> {
        for d in ddl {
            self.register_ddl(d).await?;
            self.remember_table(d);
        }
        Ok(())
    }

    /// Registers a `CREATE EXTERNAL [TEMPORARY] TABLE` in this session's context only. A
    /// temporary table is Sheaf's notion (kept out of the metastore): DataFusion refuses the
    /// keyword, so it sees the same statement without it.
    async fn register_ddl(&self, sql: &str) -> SqlResult<()> {
        let state = self.ctx.state();
        let statement = match state.sql_to_statement(sql, &Dialect::Generic)? {
            DfStatement::CreateExternalTable(mut create) => {
                create.temporary = false;
                DfStatement::CreateExternalTable(create)
            }
            other => other,
        };
        let plan = state.statement_to_plan(statement).await?;
        self.ctx.execute_logical_plan(plan).await?.collect().await?;
        Ok(())
    }

    fn remember_table(&self, ddl: &str) {
        let name = self
            .ctx
            .state()
            .sql_to_statement(ddl, &Dialect::Generic)
            .ok()
            .and_then(|s| match s {
                DfStatement::CreateExternalTable(c) => Some(c.name.to_string().to_lowercase()),
                _ => None,
            });
        if let (Some(name), Ok(mut t)) = (name, self.tables.lock()) {
            t.insert(name, ddl.to_string());
        }
    }

    fn forget_table(&self, name: &str) {
        if let Ok(mut t) = self.tables.lock() {
            t.remove(name);
        }
    }

    fn table_ddl(&self) -> Vec<String> {
        self.tables
            .lock()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Warnings from setting the session up (tables that could not be registered).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The footer and statistics caches of this session, for later sessions to share.
    pub fn scan_caches(&self) -> ScanCaches {
        ScanCaches::of(&self.ctx.runtime_env())
    }

    /// The DataFusion context (for the DataFrame front end).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    fn next_query(&self) -> u64 {
        self.queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Runs a DataFrame's plan through the stage executor and returns its rows.
    pub async fn collect_dataframe(
        &self,
        df: datafusion::prelude::DataFrame,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<(Vec<RecordBatch>, Vec<StageStats>)> {
        let state = self.ctx.state();
        let physical = df.create_physical_plan().await?;
        let (plan, hosts) = self.cut_stages(physical).await?;
        // A DataFrame has no statement text for executors to plan: its stages run here.
        self.run_plan(&plan, &hosts, &state, None, progress).await
    }

    async fn replay_catalog(&self) -> SqlResult<Vec<String>> {
        let mut warnings = Vec::new();
        for table in self.metastore.tables().await? {
            if let Err(e) = self.ctx.sql(&table.ddl).await {
                warnings.push(format!(
                    "table '{}' ({}) is unavailable: {}",
                    table.name,
                    table.location,
                    SqlError::from(e)
                ));
            } else {
                self.remember_table(&table.ddl);
            }
        }
        Ok(warnings)
    }

    /// Runs one statement.
    ///
    /// DataFusion's hash join does not spill: when one runs out of its task's memory, the
    /// statement runs once more with sort-merge joins, whose sorts spill, over four times the
    /// partitions (Spark's answers to a build side too big for memory). A failed statement leaves nothing behind, so the second
    /// run starts clean.
    pub async fn execute(
        &self,
        sql: &str,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<StatementOutcome> {
        use std::sync::atomic::Ordering;
        self.planned_hash_join.store(false, Ordering::Relaxed);
        let first = self.execute_once(sql, progress).await;
        let hash_join_out_of_memory = matches!(&first, Err(e) if e.is_out_of_memory())
            && self.planned_hash_join.load(Ordering::Relaxed)
            && self
                .ctx
                .state()
                .config()
                .options()
                .optimizer
                .prefer_hash_join;
        if !hash_join_out_of_memory {
            return first;
        }
        let why = first.err().map(|e| e.to_string()).unwrap_or_default();
        tracing::warn!(error = %why, "a hash join ran out of memory; running the statement again with sort-merge joins");
        self.sort_merge_joins.store(true, Ordering::Relaxed);
        let second = self.execute_once(sql, progress).await;
        self.sort_merge_joins.store(false, Ordering::Relaxed);
        match second {
            Ok(outcome) => {
                if let Ok(mut last) = self.last_run.lock() {
                    if let Some((plan, _)) = last.as_mut() {
                        plan.insert_str(0, &format!("-- ran again with sort-merge joins over {} partitions: {why}\n", self.retry_partitions()));
                    }
                }
                Ok(outcome)
            }
            Err(e) => Err(SqlError::OutOfMemory(format!(
                "{e} (the statement ran out of memory with hash joins and again with sort-merge joins: raise sheaf.sql.task-memory or sheaf.sql.shuffle-partitions)"
            ))),
        }
    }

    /// The session state statements are planned in (sort-merge joins while [`Self::execute`]
    /// runs a statement again).
    fn planning_state(&self) -> SessionState {
        let mut state = self.ctx.state();
        if self
            .sort_merge_joins
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let options = state.config_mut().options_mut();
            options.optimizer.prefer_hash_join = false;
            options.execution.target_partitions = self.retry_partitions();
        }
        state
    }

    /// Partitions of a statement run again after a join ran out of memory: four times as many,
    /// so each task's sorts hold a quarter of the rows.
    fn retry_partitions(&self) -> usize {
        self.settings
            .partitions
            .saturating_mul(RETRY_PARTITION_FACTOR)
    }

    /// The settings executors plan a statement with: the session's, and sort-merge joins while
    /// a statement runs again.
    fn task_settings(&self) -> Vec<(String, String)> {
        let mut settings = self.settings.given.clone();
        if self
            .sort_merge_joins
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            settings.push((
                "datafusion.optimizer.prefer_hash_join".into(),
                "false".into(),
            ));
            settings.push((
                "sheaf.sql.shuffle-partitions".into(),
                self.retry_partitions().to_string(),
            ));
        }
        settings
    }

    async fn execute_once(
        &self,
        sql: &str,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<StatementOutcome> {
        let statement = self.ctx.state().sql_to_statement(sql, &Dialect::Generic)?;
        match statement {
            DfStatement::CreateExternalTable(create) => {
                let name = create.name.to_string().to_lowercase();
                let location = create.locations.first().cloned().unwrap_or_default();
                if create.temporary {
                    self.register_ddl(sql).await?;
                    self.remember_table(sql.trim().trim_end_matches(';'));
                    return Ok(StatementOutcome::Done(format!(
                        "temporary table '{name}' created"
                    )));
                }
                if self.metastore.get(&name).await?.is_some() && !create.or_replace {
                    if create.if_not_exists {
                        return Ok(StatementOutcome::Done(format!("table '{name}' exists")));
                    }
                    return Err(SqlError::Catalog(format!(
                        "table '{name}' already exists (DROP TABLE {name} first, or CREATE OR REPLACE EXTERNAL TABLE)"
                    )));
                }
                self.ctx.sql(sql).await?.collect().await?;
                self.remember_table(sql.trim().trim_end_matches(';'));
                let entry = TableEntry {
                    name: name.clone(),
                    ddl: sql.trim().trim_end_matches(';').to_string(),
                    location,
                    managed: false,
                    owner: self.user.clone(),
                    created_ms: now_ms(),
                };
                self.metastore.put(&entry, create.or_replace).await?;
                Ok(StatementOutcome::Done(format!("table '{name}' created")))
            }
            DfStatement::Statement(inner) => match *inner {
                SqlStatement::CreateTable(create) if create.query.is_some() => {
                    let name = create.name.to_string().to_lowercase();
                    let format = create
                        .hive_formats
                        .as_ref()
                        .and_then(|h| h.storage.as_ref())
                        .and_then(|s| match s {
                            HiveIOFormat::FileFormat { format } => Some(format.to_string()),
                            _ => None,
                        })
                        .unwrap_or_else(|| "PARQUET".to_string());
                    let query = create
                        .query
                        .as_ref()
                        .map(|q| q.to_string())
                        .unwrap_or_default();
                    self.create_table_as(
                        &name,
                        &format,
                        &query,
                        create.or_replace,
                        create.if_not_exists,
                        progress,
                    )
                    .await
                }
                SqlStatement::Drop {
                    object_type: ObjectType::Table,
                    if_exists,
                    names,
                    ..
                } => {
                    let mut dropped = Vec::new();
                    for name in names {
                        let name = name.to_string().to_lowercase();
                        self.drop_table(&name, if_exists).await?;
                        dropped.push(name);
                    }
                    Ok(StatementOutcome::Done(format!(
                        "dropped {}",
                        dropped.join(", ")
                    )))
                }
                other => {
                    self.run_statement(DfStatement::Statement(Box::new(other)), progress)
                        .await
                }
            },
            DfStatement::CopyTo(copy) => self.copy_to(copy, progress).await,
            DfStatement::Explain(explain) if !explain.options.analyze => {
                self.explain(*explain.statement).await
            }
            other => self.run_statement(other, progress).await,
        }
    }

    /// Plans a statement and runs it through the stage executor.
    async fn run_statement(
        &self,
        statement: DfStatement,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<StatementOutcome> {
        let state = self.planning_state();
        let text = statement_text(&statement);
        let logical = state.statement_to_plan(statement).await?;
        let is_query = !matches!(
            logical,
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::DescribeTable(_)
        );
        let df = self.ctx.execute_logical_plan(logical).await?;
        if !is_query {
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            if schema.fields().is_empty() {
                return Ok(StatementOutcome::Done("ok".into()));
            }
            return Ok(StatementOutcome::Rows {
                schema,
                batches,
                stages: Vec::new(),
            });
        }
        let start_time_ns = start_time_ns(&state);
        let physical = state.create_physical_plan(df.logical_plan()).await?;
        if contains_hash_join(&physical) {
            self.planned_hash_join
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let schema = physical.schema();
        let (plan, hosts) = self.cut_stages(physical).await?;
        if let Ok(mut last) = self.last_run.lock() {
            *last = Some((plan.display(), Vec::new()));
        }
        let (batches, stages) = self
            .run_plan(
                &plan,
                &hosts,
                &state,
                Some((&text, start_time_ns)),
                progress,
            )
            .await?;
        if let Ok(mut last) = self.last_run.lock() {
            if let Some((_, figures)) = last.as_mut() {
                figures.clone_from(&stages);
            }
        }
        Ok(StatementOutcome::Rows {
            schema,
            batches,
            stages,
        })
    }

    /// Splits the plan's DFS scans along blocks and cuts it into stages.
    async fn cut_stages(
        &self,
        physical: Arc<dyn ExecutionPlan>,
    ) -> SqlResult<(StagePlan, BlockHosts)> {
        let (physical, hosts) = match &self.dfs {
            Some(dfs) => {
                let target = self.planning_state().config().target_partitions();
                block_splits::split_along_blocks(physical, dfs, target, self.settings.split_size)
                    .await?
            }
            None => (physical, BlockHosts::default()),
        };
        Ok((stages::cut(physical)?, hosts))
    }

    async fn run_plan(
        &self,
        plan: &StagePlan,
        hosts: &BlockHosts,
        state: &SessionState,
        statement: Option<(&str, Option<i64>)>,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<(Vec<RecordBatch>, Vec<StageStats>)> {
        if let (Some(runner), Some((statement, start_time_ns))) = (&self.runner, statement) {
            let query = DistributedQuery {
                statement,
                plan,
                hosts,
                state,
                tables: self.table_ddl(),
                settings: self.task_settings(),
                locality_wait: self.settings.locality_wait,
                start_time_ns,
            };
            return runner.run(query, progress).await;
        }
        let n = self.next_query();
        let scratch = LocalStageDir::new(self.settings.scratch_dir.join(format!(
            "query-{}-{}-{n}",
            std::process::id(),
            now_ms()
        )));
        executor::run_local(
            plan,
            state,
            scratch,
            self.settings.local_parallelism,
            progress,
        )
        .await
    }

    /// The physical plan cut into stages, for a statement.
    /// `start_time_ns` is the query's start time as the master planned it (what `now()` is).
    pub async fn stage_plan(&self, sql: &str, start_time_ns: Option<i64>) -> SqlResult<StagePlan> {
        let mut state = self.ctx.state();
        if let Some(ns) = start_time_ns {
            state.execution_props_mut().query_execution_start_time =
                Some(chrono::DateTime::from_timestamp_nanos(ns));
        }
        let statement = state.sql_to_statement(sql, &Dialect::Generic)?;
        let logical = state.statement_to_plan(statement).await?;
        let physical = state.create_physical_plan(&logical).await?;
        Ok(self.cut_stages(physical).await?.0)
    }

    async fn explain(&self, statement: DfStatement) -> SqlResult<StatementOutcome> {
        let state = self.ctx.state();
        let logical = state.statement_to_plan(statement).await?;
        let physical: Arc<dyn ExecutionPlan> = state.create_physical_plan(&logical).await?;
        let (plan, _) = self.cut_stages(physical).await?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["logical_plan", "distributed_plan"])),
                Arc::new(StringArray::from(vec![
                    logical.display_indent().to_string(),
                    plan.display(),
                ])),
            ],
        )
        .map_err(datafusion::error::DataFusionError::from)?;
        Ok(StatementOutcome::Rows {
            schema,
            batches: vec![batch],
            stages: Vec::new(),
        })
    }
}

fn contains_hash_join(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut pending = vec![Arc::clone(plan)];
    while let Some(node) = pending.pop() {
        if node
            .downcast_ref::<datafusion::physical_plan::joins::HashJoinExec>()
            .is_some()
        {
            return true;
        }
        pending.extend(node.children().into_iter().cloned());
    }
    false
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
