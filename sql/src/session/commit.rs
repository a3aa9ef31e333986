//! The statements whose effect outlives the session or must be committed atomically:
//! `CREATE TABLE … AS SELECT` (Parquet under the warehouse dir, a managed table), `DROP TABLE`,
//! and `COPY … TO` with MapReduce's commit protocol (`_temporary/<query>/`, promote, `_SUCCESS`
//! last, nothing left on failure).

use super::*;

impl SqlSession {
    pub(super) async fn create_table_as(
        &self,
        name: &str,
        format: &str,
        query: &str,
        replace: bool,
        if_not_exists: bool,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<StatementOutcome> {
        if self.metastore.get(name).await?.is_some() {
            if if_not_exists {
                return Ok(StatementOutcome::Done(format!("table '{name}' exists")));
            }
            if !replace {
                return Err(SqlError::Catalog(format!(
                    "table '{name}' already exists (DROP TABLE {name} first)"
                )));
            }
            self.drop_table(name, false).await?;
        }
        let location = match (&self.metastore, &self.dfs) {
            (Metastore::Dfs(_), _) | (_, Some(_)) => format!("sheaf://{WAREHOUSE_DIR}/{name}/"),
            // A local catalog keeps its managed tables beside it.
            (Metastore::Local(dir), None) => format!(
                "{}/",
                dir.parent()
                    .unwrap_or(dir.as_path())
                    .join("warehouse")
                    .join(name)
                    .display()
            ),
        };
        let copy = format!("COPY ({query}) TO '{location}' STORED AS {format}");
        let statement = self
            .ctx
            .state()
            .sql_to_statement(&copy, &Dialect::Generic)?;
        let DfStatement::CopyTo(copy) = statement else {
            return Err(SqlError::Unsupported(format!(
                "CREATE TABLE {name} AS: could not plan the write of {format}"
            )));
        };
        let written = match self.copy_to(copy, progress).await? {
            StatementOutcome::Done(msg) => msg,
            StatementOutcome::Rows { .. } => String::new(),
        };
        let ddl = format!("CREATE EXTERNAL TABLE {name} STORED AS {format} LOCATION '{location}'");
        if let Err(e) = self.ctx.sql(&ddl).await {
            return Err(SqlError::from(e));
        }
        self.remember_table(&ddl);
        let entry = TableEntry {
            name: name.to_string(),
            ddl,
            location,
            managed: true,
            owner: self.user.clone(),
            created_ms: now_ms(),
        };
        self.metastore.put(&entry, true).await?;
        Ok(StatementOutcome::Done(format!(
            "table '{name}' created ({written})"
        )))
    }

    pub(super) async fn drop_table(&self, name: &str, if_exists: bool) -> SqlResult<()> {
        let entry = self.metastore.get(name).await?;
        let registered = self.ctx.table_exist(name)?;
        if entry.is_none() && !registered {
            if if_exists {
                return Ok(());
            }
            return Err(SqlError::Catalog(format!("table '{name}' not found")));
        }
        self.ctx.deregister_table(name)?;
        self.forget_table(name);
        if let Some(entry) = entry {
            self.metastore.remove(name).await?;
            // Managed (CTAS) tables own their files, as Hive's managed tables do.
            if entry.managed {
                self.remove_dir(&entry.location).await?;
            }
        }
        Ok(())
    }

    /// `COPY … TO` with MapReduce's commit protocol: the files are written under
    /// `<target>/_temporary/<query>/`, moved into the target only once every file is written,
    /// then `_SUCCESS` is written last; a failed write leaves no `_temporary` and no `_SUCCESS`.
    pub(super) async fn copy_to(
        &self,
        mut copy: CopyToStatement,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<StatementOutcome> {
        let target = copy.target.clone();
        let as_dir =
            target.ends_with('/') || !copy.partitioned_by.is_empty() || !has_extension(&target);
        let (store, base) = self.store_for(&target)?;
        let dir_prefix = if as_dir {
            base.clone()
        } else {
            parent_of(&base)
        };
        if as_dir && !self.is_empty_dir(&store, &base).await? {
            return Err(SqlError::Catalog(format!(
                "COPY: {target} already exists and is not empty (remove it first, e.g. sheaf dfs rm -r)"
            )));
        }
        let attempt = format!("query-{}-{}", now_ms(), self.next_query());
        let temporary = join_prefix(&dir_prefix, "_temporary");
        let staging = join_prefix(&temporary, &attempt);
        let staged_target = if as_dir {
            format!("{}/", url_of(&target, &staging))
        } else {
            url_of(&target, &join_prefix(&staging, file_name(&base)))
        };
        copy.target = staged_target;
        if let CopyToSource::Relation(_) = copy.source {
            // Planned as a table scan by DataFusion; nothing to change.
        }
        let run = self
            .run_statement(DfStatement::CopyTo(copy), progress)
            .await;
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(e) => {
                self.remove_prefix(&store, &temporary, &target).await;
                return Err(e);
            }
        };
        let rows = match &outcome {
            StatementOutcome::Rows { batches, .. } => batches
                .first()
                .and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                })
                .map(|a| a.value(0))
                .unwrap_or(0),
            StatementOutcome::Done(_) => 0,
        };
        // Promote: every staged file to its place under the target, then _SUCCESS.
        let staged: Vec<object_store::ObjectMeta> = store
            .list(Some(&staging))
            .try_collect()
            .await
            .map_err(datafusion::error::DataFusionError::from)?;
        for file in &staged {
            let rel = file
                .location
                .as_ref()
                .strip_prefix(staging.as_ref())
                .unwrap_or(file.location.as_ref())
                .trim_start_matches('/');
            let dest = join_prefix(&dir_prefix, rel);
            store
                .rename(&file.location, &dest)
                .await
                .map_err(datafusion::error::DataFusionError::from)?;
        }
        self.remove_prefix(&store, &temporary, &target).await;
        if as_dir {
            store
                .put(
                    &join_prefix(&base, "_SUCCESS"),
                    object_store::PutPayload::new(),
                )
                .await
                .map_err(datafusion::error::DataFusionError::from)?;
        }
        Ok(StatementOutcome::Done(format!(
            "{rows} row{} written to {target}",
            if rows == 1 { "" } else { "s" }
        )))
    }

    fn store_for(&self, target: &str) -> SqlResult<(Arc<dyn ObjectStore>, ObjectPath)> {
        let url = datafusion::datasource::listing::ListingTableUrl::parse(target)?;
        let store = self.ctx.runtime_env().object_store(url.object_store())?;
        Ok((store, url.prefix().clone()))
    }

    async fn is_empty_dir(
        &self,
        store: &Arc<dyn ObjectStore>,
        dir: &ObjectPath,
    ) -> SqlResult<bool> {
        let listed = store
            .list_with_delimiter(Some(dir))
            .await
            .map_err(datafusion::error::DataFusionError::from)?;
        Ok(listed.objects.is_empty() && listed.common_prefixes.is_empty())
    }

    /// Removes everything under `prefix` of `target`'s store, directories included.
    async fn remove_prefix(&self, store: &Arc<dyn ObjectStore>, prefix: &ObjectPath, target: &str) {
        if target.starts_with("sheaf://") {
            if let Some(client) = &self.dfs {
                let _ = client.delete(&format!("/{prefix}"), true).await;
                return;
            }
        }
        if !target.contains("://") || target.starts_with("file://") {
            let _ = std::fs::remove_dir_all(format!("/{prefix}"));
            return;
        }
        let files: Vec<_> = store
            .list(Some(prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .unwrap_or_default();
        for f in files {
            let _ = store.delete(&f).await;
        }
    }

    async fn remove_dir(&self, location: &str) -> SqlResult<()> {
        let (store, prefix) = self.store_for(location)?;
        self.remove_prefix(&store, &prefix, location).await;
        Ok(())
    }
}

fn has_extension(target: &str) -> bool {
    target
        .rsplit('/')
        .next()
        .map(|name| name.contains('.'))
        .unwrap_or(false)
}

fn parent_of(path: &ObjectPath) -> ObjectPath {
    let s = path.as_ref();
    match s.rsplit_once('/') {
        Some((parent, _)) => ObjectPath::from(parent),
        None => ObjectPath::from(""),
    }
}

fn file_name(path: &ObjectPath) -> &str {
    path.as_ref().rsplit('/').next().unwrap_or("")
}

fn join_prefix(base: &ObjectPath, rel: &str) -> ObjectPath {
    if base.as_ref().is_empty() {
        ObjectPath::from(rel)
    } else {
        ObjectPath::from(format!("{}/{rel}", base.as_ref()))
    }
}

/// `path` as a URL of the same store as `target`.
fn url_of(target: &str, path: &ObjectPath) -> String {
    if let Some(rest) = target.strip_prefix("sheaf://") {
        let authority = rest.split('/').next().unwrap_or("");
        format!("sheaf://{authority}/{path}")
    } else if target.starts_with("file://") {
        format!("file:///{path}")
    } else {
        format!("/{path}")
    }
}
