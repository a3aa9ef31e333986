//! The lazy DataFrame front end for Rust programs: a [`Dataset`] wraps DataFusion's `DataFrame`
//! (so every transformation is DataFusion's, planned and optimized lazily), and its actions
//! (`collect`, `count`, `write_parquet`) run through the session's stage executor and commit
//! protocol, exactly as `sheaf sql` statements do.

use crate::error::{SqlError, SqlResult};
use crate::executor::StageStats;
use crate::session::{SqlSession, StatementOutcome};
use datafusion::arrow::array::RecordBatch;
use datafusion::logical_expr::{Expr, JoinType, SortExpr};
use datafusion::prelude::{CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A lazy, immutable dataset of rows; nothing runs until an action.
#[derive(Clone)]
pub struct Dataset {
    session: Arc<SqlSession>,
    df: DataFrame,
}

/// Names of the temporary views actions register.
static VIEWS: AtomicU64 = AtomicU64::new(0);

impl SqlSession {
    /// Parquet files (a file, a directory or a glob; `sheaf://` or local).
    pub async fn read_parquet(self: &Arc<Self>, path: &str) -> SqlResult<Dataset> {
        let df = self
            .context()
            .read_parquet(path, ParquetReadOptions::default())
            .await?;
        Ok(self.dataset(df))
    }

    /// CSV files with a header line.
    pub async fn read_csv(self: &Arc<Self>, path: &str) -> SqlResult<Dataset> {
        let df = self
            .context()
            .read_csv(path, CsvReadOptions::new().has_header(true))
            .await?;
        Ok(self.dataset(df))
    }

    /// Newline-delimited JSON files.
    pub async fn read_json(self: &Arc<Self>, path: &str) -> SqlResult<Dataset> {
        let df = self
            .context()
            .read_json(path, JsonReadOptions::default())
            .await?;
        Ok(self.dataset(df))
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
        self.session.collect_dataframe(self.df, &|_| {}).await
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
        let view = format!("__sheaf_dataset_{}", VIEWS.fetch_add(1, Ordering::Relaxed));
        let ctx = self.session.context();
        ctx.register_table(view.as_str(), self.df.into_view())?;
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
        let sql = format!("COPY (SELECT * FROM {view}) TO '{dir}' STORED AS PARQUET{partitioned}");
        let outcome = self.session.execute(&sql, &|_| {}).await;
        let _ = ctx.deregister_table(view.as_str());
        match outcome? {
            StatementOutcome::Done(msg) => Ok(msg),
            StatementOutcome::Rows { .. } => Ok(String::new()),
        }
    }
}
