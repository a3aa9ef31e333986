//! The lazy DataFrame front end for Rust programs: a [`Dataset`] wraps DataFusion's `DataFrame`
//! (so every transformation is DataFusion's, planned and optimized lazily), and its actions
//! (`collect`, `count`, `write_parquet`) run through the session's stage executor and commit
//! protocol, exactly as `sheaf sql` statements do.
//!
//! A session from [`SqlSession::connect_cluster`] runs the actions on the cluster, through the
//! same query master as `sheaf sql`: the lazy plan becomes SQL text with DataFusion's unparser
//! (executors plan statements from text, so master and executors agree by construction), and
//! every `read_*` is a temporary table registered on both sides under a generated name.

use crate::catalog::Metastore;
use crate::cluster::client::{ClusterSessionOptions, ClusterSqlClient};
use crate::error::{SqlError, SqlResult};
use crate::executor::StageStats;
use crate::session::{SqlSession, SqlSettings, StatementOutcome};
use datafusion::arrow::array::RecordBatch;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, LogicalPlanBuilder, SortExpr};
use datafusion::prelude::DataFrame;
use datafusion::sql::unparser::plan_to_sql;
use sheaf_dfs::client::DfsClient;
use sheaf_dfs::config::DfsConfig;
use sheaf_rpc::config::ConfigFile;
use sheaf_rpc::TlsIdentity;
use sheaf_yarn::config::YarnSections;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A lazy, immutable dataset of rows; nothing runs until an action.
#[derive(Clone)]
pub struct Dataset {
    session: Arc<SqlSession>,
    df: DataFrame,
}

/// `plan` with an explicit projection of an aggregate's columns in their order (the unparser
/// writes the aggregates before the group columns otherwise), put under the sorts and limits
/// above it so they stay the query's own (an ORDER BY inside a subquery means nothing).
fn columns_in_order(plan: &LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    match plan {
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => {
            let input = columns_in_order(plan.inputs()[0])?;
            plan.with_new_exprs(plan.expressions(), vec![input])
        }
        LogicalPlan::Aggregate(_) => {
            let columns: Vec<Expr> = plan
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            LogicalPlanBuilder::from(plan.clone())
                .project(columns)?
                .build()
        }
        _ => Ok(plan.clone()),
    }
}

/// Names of the temporary views actions register.
static VIEWS: AtomicU64 = AtomicU64::new(0);

impl SqlSession {
    /// A session on the cluster configured in `conf` (a `sheaf.toml`), as `sheaf sql` starts
    /// one: a yarnlike application whose query master runs `sheaf_binary`; Dataset actions run
    /// there. End it with [`SqlSession::close`].
    pub async fn connect_cluster(
        conf: &Path,
        sheaf_binary: PathBuf,
        user: &str,
        settings: SqlSettings,
    ) -> SqlResult<Arc<SqlSession>> {
        let bad = |e: &dyn std::fmt::Display| SqlError::Config(format!("{}: {e}", conf.display()));
        let file = ConfigFile::load(conf).map_err(|e| bad(&e))?;
        let dfs_config = DfsConfig::from_file(&file).map_err(|e| bad(&e))?;
        let yarn = YarnSections::from_file(&file).map_err(|e| bad(&e))?;
        let identity =
            TlsIdentity::load(&dfs_config.cluster.tls_dir, "user").map_err(|e| bad(&e))?;
        let dfs = DfsClient::connect(&dfs_config, identity.clone()).await?;
        let options = ClusterSessionOptions::new(
            yarn.resourcemanager.address,
            user.to_string(),
            settings.given.clone(),
            sheaf_binary,
        );
        let client = ClusterSqlClient::start(&identity, options).await?;
        let session = SqlSession::new(
            Some(dfs.clone()),
            Metastore::Dfs(dfs),
            settings,
            user.to_string(),
        )
        .await?;
        *session.remote.lock().await = Some(client);
        Ok(Arc::new(session))
    }

    /// Ends the cluster session, if this is one (its master stops its executors and the
    /// application finishes); a local session has nothing to end.
    pub async fn close(&self) -> SqlResult<()> {
        if let Some(client) = self.remote.lock().await.take() {
            client.close().await?;
        }
        Ok(())
    }

    /// Runs `sql` where this session's actions run (the cluster session, or here).
    async fn run_action(&self, sql: &str) -> SqlResult<StatementOutcome> {
        match self.remote.lock().await.as_ref() {
            Some(client) => client.execute(sql, &|_| {}).await,
            None => self.execute(sql, &|_| {}).await,
        }
    }

    /// Registers `location` as a temporary table under a generated name, here and on the
    /// cluster session, and returns it as a Dataset.
    async fn read(
        self: &Arc<Self>,
        format: &str,
        location: &str,
        options: &str,
    ) -> SqlResult<Dataset> {
        let name = format!("__sheaf_dataset_{}", VIEWS.fetch_add(1, Ordering::Relaxed));
        let ddl = format!(
            "CREATE EXTERNAL TEMPORARY TABLE {name} STORED AS {format} LOCATION '{}'{options}",
            location.replace('\'', "''")
        );
        self.execute(&ddl, &|_| {}).await?;
        if let Some(client) = self.remote.lock().await.as_ref() {
            client.execute(&ddl, &|_| {}).await?;
        }
        let df = self.context().table(name.as_str()).await?;
        Ok(self.dataset(df))
    }

    /// Parquet files (a file or a directory; `sheaf://` or local).
    pub async fn read_parquet(self: &Arc<Self>, path: &str) -> SqlResult<Dataset> {
        self.read("PARQUET", path, "").await
    }

    /// CSV files with a header line.
    pub async fn read_csv(self: &Arc<Self>, path: &str) -> SqlResult<Dataset> {
        self.read("CSV", path, " OPTIONS ('format.has_header' 'true')")
            .await
    }

    /// Newline-delimited JSON files.
    pub async fn read_json(self: &Arc<Self>, path: &str) -> SqlResult<Dataset> {
        self.read("JSON", path, "").await
    }

    /// A table of the catalog.
    pub async fn table(self: &Arc<Self>, name: &str) -> SqlResult<Dataset> {
        let df = self.context().table(name).await?;
        Ok(self.dataset(df))
    }

    fn dataset(self: &Arc<Self>, df: DataFrame) -> Dataset {
        Dataset {
            session: Arc::clone(self),
            df,
        }
    }
}

impl Dataset {
    fn map(
        self,
        f: impl FnOnce(DataFrame) -> datafusion::error::Result<DataFrame>,
    ) -> SqlResult<Dataset> {
        Ok(Dataset {
            df: f(self.df)?,
            session: self.session,
        })
    }

    /// Rows for which `predicate` is true.
    pub fn filter(self, predicate: Expr) -> SqlResult<Dataset> {
        self.map(|df| df.filter(predicate))
    }

    /// The given expressions as columns.
    pub fn select(self, exprs: Vec<Expr>) -> SqlResult<Dataset> {
        self.map(|df| df.select(exprs))
    }

    /// An equi-join with `right` on `left_cols[i] = right_cols[i]`.
    pub fn join(
        self,
        right: Dataset,
        join_type: JoinType,
        left_cols: &[&str],
        right_cols: &[&str],
    ) -> SqlResult<Dataset> {
        let right = right.df;
        self.map(|df| df.join(right, join_type, left_cols, right_cols, None))
    }

    /// `GROUP BY group_by` computing `aggregates`.
    pub fn aggregate(self, group_by: Vec<Expr>, aggregates: Vec<Expr>) -> SqlResult<Dataset> {
        self.map(|df| df.aggregate(group_by, aggregates))
    }

    /// Sorted by `order`.
    pub fn sort(self, order: Vec<SortExpr>) -> SqlResult<Dataset> {
        self.map(|df| df.sort(order))
    }

    /// At most `n` rows.
    pub fn limit(self, n: usize) -> SqlResult<Dataset> {
        self.map(|df| df.limit(0, Some(n)))
    }

    /// The underlying DataFusion DataFrame (for transformations not wrapped here).
    pub fn dataframe(&self) -> &DataFrame {
        &self.df
    }

    /// Runs the plan and returns its rows and per-stage figures.
    pub async fn collect_with_stats(self) -> SqlResult<(Vec<RecordBatch>, Vec<StageStats>)> {
        if self.session.remote.lock().await.is_none() {
            return self.session.collect_dataframe(self.df, &|_| {}).await;
        }
        let sql = self.to_sql()?;
        match self.session.run_action(&sql).await? {
            StatementOutcome::Rows {
                batches, stages, ..
            } => Ok((batches, stages)),
            StatementOutcome::Done(_) => Ok((Vec::new(), Vec::new())),
        }
    }

    /// The plan as one SQL query (DataFusion's unparser), what a cluster session runs.
    pub fn to_sql(&self) -> SqlResult<String> {
        let plan = columns_in_order(self.df.logical_plan())?;
        Ok(plan_to_sql(&plan)?.to_string())
    }

    /// Runs the plan and returns its rows.
    pub async fn collect(self) -> SqlResult<Vec<RecordBatch>> {
        Ok(self.collect_with_stats().await?.0)
    }

    /// The number of rows.
    pub async fn count(self) -> SqlResult<u64> {
        let ds = self.aggregate(
            vec![],
            vec![datafusion::functions_aggregate::count::count_all()],
        )?;
        let batches = ds.collect().await?;
        batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .map(|a| a.value(0) as u64)
            })
            .ok_or_else(|| SqlError::Unsupported("count returned no value".into()))
    }

    /// Writes the rows as Parquet into directory `path` (optionally Hive-partitioned by
    /// `partition_by`), committed atomically with `_SUCCESS` last; returns the rows written.
    pub async fn write_parquet(self, path: &str, partition_by: &[&str]) -> SqlResult<String> {
        let dir = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        let partitioned = if partition_by.is_empty() {
            String::new()
        } else {
            format!(" PARTITIONED BY ({})", partition_by.join(", "))
        };
        let copy = |query: &str| {
            format!(
                "COPY ({query}) TO '{}' STORED AS PARQUET{partitioned}",
                dir.replace('\'', "''")
            )
        };
        if self.session.remote.lock().await.is_some() {
            let sql = copy(&self.to_sql()?);
            return match self.session.run_action(&sql).await? {
                StatementOutcome::Done(msg) => Ok(msg),
                StatementOutcome::Rows { .. } => Ok(String::new()),
            };
        }
        // Here: the plan as a view, so the COPY plans exactly this DataFrame.
        let view = format!("__sheaf_dataset_{}", VIEWS.fetch_add(1, Ordering::Relaxed));
        let ctx = self.session.context();
        ctx.register_table(view.as_str(), self.df.into_view())?;
        let outcome = self
            .session
            .execute(&copy(&format!("SELECT * FROM {view}")), &|_| {})
            .await;
        let _ = ctx.deregister_table(view.as_str());
        match outcome? {
            StatementOutcome::Done(msg) => Ok(msg),
            StatementOutcome::Rows { .. } => Ok(String::new()),
        }
    }
}
