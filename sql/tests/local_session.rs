//! Sheaf SQL sessions over local files (no cluster): statements, the catalog, the commit protocol,
//! stage cutting, broadcast vs partitioned joins, and spilling under a memory budget. The stage
//! executor writes and reads real stage-output files here, as a cluster task does.

use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use sheaf_sql::catalog::Metastore;
use sheaf_sql::executor::StageProgress;
use sheaf_sql::stages::ExchangeKind;
use sheaf_sql::{SqlSession, SqlSettings, StatementOutcome};
use std::path::Path;

fn no_progress() -> impl Fn(StageProgress) + Send + Sync {
    |_| {}
}

async fn session(dir: &Path, settings: &[(&str, &str)]) -> SqlSession {
    let mut s = SqlSettings {
        scratch_dir: dir.join("scratch"),
        ..SqlSettings::default()
    };
    for (k, v) in settings {
        s.set(k, v).unwrap();
    }
    SqlSession::new(
        None,
        Metastore::Local(dir.join("metastore")),
        s,
        "alice".into(),
    )
    .await
    .unwrap()
}

async fn rows(session: &SqlSession, sql: &str) -> Vec<RecordBatch> {
    match session.execute(sql, &no_progress()).await {
        Ok(StatementOutcome::Rows { batches, .. }) => batches,
        Ok(StatementOutcome::Done(m)) => panic!("{sql}: expected rows, got {m}"),
        Err(e) => panic!("{sql}: {e}"),
    }
}

async fn done(session: &SqlSession, sql: &str) -> String {
    match session.execute(sql, &no_progress()).await {
        Ok(StatementOutcome::Done(m)) => m,
        Ok(StatementOutcome::Rows { .. }) => panic!("{sql}: expected no rows"),
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

fn write_csv(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("sales");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("sales.csv"),
        "id,region,amount,note\n\
         1,east,10.5,\"plain\"\n\
         2,west,20,\"with, comma\"\n\
         3,east,,\"amount is NULL\"\n\
         4,north,7.25,\"say \"\"hi\"\"\"\n\
         5,west,2.5,\n",
    )
    .unwrap();
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_table_with_header_quotes_and_nulls_survives_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_csv(dir.path());
    let s = session(dir.path(), &[]).await;
    let msg = done(
        &s,
        &format!(
            "CREATE EXTERNAL TABLE sales (id INT, region VARCHAR, amount DOUBLE, note VARCHAR) \
             STORED AS CSV LOCATION '{}/' OPTIONS ('format.has_header' 'true')",
            data.display()
        ),
    )
    .await;
    assert!(msg.contains("table 'sales' created"), "{msg}");
    drop(s);

    // A new session (as the next `sheaf sql` call) sees the table from the metastore.
    let s = session(dir.path(), &[]).await;
    assert!(s.warnings().is_empty(), "{:?}", s.warnings());
    let got = table(
        &rows(
            &s,
            "SELECT region, count(*) AS n, sum(amount) AS total, count(amount) AS priced \
             FROM sales GROUP BY region ORDER BY region",
        )
        .await,
    );
    let expected = "\
+--------+---+-------+--------+
| region | n | total | priced |
+--------+---+-------+--------+
| east   | 2 | 10.5  | 1      |
| north  | 1 | 7.25  | 1      |
| west   | 2 | 22.5  | 2      |
+--------+---+-------+--------+";
    assert_eq!(got, expected);
    let notes = table(
        &rows(
            &s,
            "SELECT note FROM sales WHERE id IN (2, 4, 5) ORDER BY id",
        )
        .await,
    );
    assert!(notes.contains("with, comma"), "{notes}");
    assert!(notes.contains("say \"hi\""), "{notes}");

    // Creating it again is refused; SHOW TABLES and DESCRIBE see it.
    let err = s
        .execute(
            &format!(
                "CREATE EXTERNAL TABLE sales STORED AS CSV LOCATION '{}/'",
                data.display()
            ),
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("table 'sales' already exists"),
        "{err}"
    );
    let tables = table(&rows(&s, "SHOW TABLES").await);
    assert!(tables.contains("sales"), "{tables}");
    let described = table(&rows(&s, "DESCRIBE sales").await);
    assert!(
        described.contains("amount") && described.contains("Float64"),
        "{described}"
    );

    // DROP TABLE forgets it for every later session; an external table keeps its files.
    done(&s, "DROP TABLE sales").await;
    drop(s);
    let s = session(dir.path(), &[]).await;
    let err = s
        .execute("SELECT * FROM sales", &no_progress())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sales"), "{err}");
    assert!(data.join("sales.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_csv_row_is_an_error_not_a_silently_dropped_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("bad.csv"), "a,b\n1,2\n3\n5,6\n").unwrap();
    let s = session(dir.path(), &[]).await;
    done(
        &s,
        &format!(
            "CREATE EXTERNAL TABLE bad (a INT, b INT) STORED AS CSV LOCATION '{}/' OPTIONS ('format.has_header' 'true')",
            data.display()
        ),
    )
    .await;
    let err = s
        .execute("SELECT sum(a) FROM bad", &no_progress())
        .await
        .unwrap_err();
    let msg = err.to_string();
    // The file and its line: the header is line 1, the short row line 3.
    let file = data.join("bad.csv").display().to_string();
    assert!(
        msg.contains(&file) && msg.contains("line 3") && msg.contains("expected 2"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_row_deep_in_a_split_file_is_reported_at_its_line_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("split");
    std::fs::create_dir_all(&data).unwrap();
    let mut csv = String::from("a,b\n");
    for line in 2..=400 {
        if line == 350 {
            csv.push_str("oops\n");
        } else {
            csv.push_str(&format!("{line},{line}\n"));
        }
    }
    std::fs::write(data.join("split.csv"), csv).unwrap();
    // DataFusion splits the file into byte ranges, as a DFS file is split along its blocks.
    let s = session(
        dir.path(),
        &[("datafusion.optimizer.repartition_file_min_size", "64")],
    )
    .await;
    done(
        &s,
        &format!(
            "CREATE EXTERNAL TABLE split (a INT, b INT) STORED AS CSV LOCATION '{}/' OPTIONS ('format.has_header' 'true')",
            data.display()
        ),
    )
    .await;
    let plan = s
        .stage_plan("SELECT sum(a) FROM split", None)
        .await
        .unwrap();
    let shown = plan.display();
    assert!(
        shown.contains("split.csv:"),
        "the file is not split into ranges: {shown}"
    );
    let err = s
        .execute("SELECT sum(a) FROM split", &no_progress())
        .await
        .unwrap_err()
        .to_string();
    let file = data.join("split.csv").display().to_string();
    assert!(err.contains(&file) && err.contains("line 350"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctas_and_partitioned_copy_commit_atomically_and_read_back_in_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_csv(dir.path());
    let s = session(dir.path(), &[]).await;
    done(
        &s,
        &format!(
            "CREATE EXTERNAL TABLE sales (id INT, region VARCHAR, amount DOUBLE, note VARCHAR) \
             STORED AS CSV LOCATION '{}/' OPTIONS ('format.has_header' 'true')",
            data.display()
        ),
    )
    .await;
    let msg = done(
        &s,
        "CREATE TABLE totals STORED AS PARQUET AS SELECT region, sum(amount) AS total FROM sales GROUP BY region",
    )
    .await;
    assert!(msg.contains("3 rows"), "{msg}");
    let warehouse = dir.path().join("warehouse/totals");
    assert!(warehouse.join("_SUCCESS").exists());
    assert!(!warehouse.join("_temporary").exists());

    let out = dir.path().join("out/by_region");
    let msg = done(
        &s,
        &format!(
            "COPY (SELECT id, region, amount FROM sales) TO '{}/' STORED AS PARQUET PARTITIONED BY (region)",
            out.display()
        ),
    )
    .await;
    assert!(msg.contains("5 rows"), "{msg}");
    for region in ["east", "west", "north"] {
        assert!(
            out.join(format!("region={region}")).is_dir(),
            "no region={region}/"
        );
    }
    assert!(out.join("_SUCCESS").exists());
    assert!(!out.join("_temporary").exists());
    // A second COPY to the same non-empty directory is refused, leaving it as it was.
    let err = s
        .execute(
            &format!(
                "COPY (SELECT 1 AS x) TO '{}/' STORED AS PARQUET",
                out.display()
            ),
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    drop(s);

    let s = session(dir.path(), &[]).await;
    let got = table(&rows(&s, "SELECT region, total FROM totals ORDER BY region").await);
    assert!(got.contains("| west   | 22.5  |"), "{got}");
    done(
        &s,
        &format!(
            "CREATE EXTERNAL TABLE by_region STORED AS PARQUET PARTITIONED BY (region) LOCATION '{}/'",
            out.display()
        ),
    )
    .await;
    let got = table(
        &rows(
            &s,
            "SELECT region, count(*) AS n FROM by_region GROUP BY region ORDER BY region",
        )
        .await,
    );
    assert!(
        got.contains("| east   | 2 |") && got.contains("| north  | 1 |"),
        "{got}"
    );
    // Dropping the managed table removes its files.
    done(&s, "DROP TABLE totals").await;
    assert!(!warehouse.join("_SUCCESS").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_leaves_no_success_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), &[]).await;
    let out = dir.path().join("out/failed");
    // The cast fails at execution time, after the write has started.
    let err = s
        .execute(
            &format!(
                "COPY (SELECT CAST(CASE WHEN value > 5 THEN 'x' ELSE '1' END AS INT) AS v FROM range(10)) TO '{}/' STORED AS CSV",
                out.display()
            ),
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("cast"), "{err}");
    assert!(!out.join("_SUCCESS").exists());
    assert!(!out.join("_temporary").exists());
    assert!(!dir.path().join("scratch").read_dir().unwrap().any(|e| e
        .map(|e| e.file_name().to_string_lossy().starts_with("query-"))
        .unwrap_or(false)));
}

async fn join_tables(s: &SqlSession, dir: &Path) {
    // A fact table of 200k rows in 4 files and a 50-row dimension, both Parquet (with statistics).
    for part in 0..4 {
        let path = dir.join(format!("facts/part-{part}.parquet"));
        done(
            s,
            &format!(
                "COPY (SELECT value AS id, value % 50 AS dim_id, value * 2 AS amount FROM range({}, {})) TO '{}' STORED AS PARQUET",
                part * 50_000,
                (part + 1) * 50_000,
                path.display()
            ),
        )
        .await;
    }
    done(
        s,
        &format!(
            "COPY (SELECT value AS dim_id, concat('name-', CAST(value AS VARCHAR)) AS name FROM range(50)) TO '{}' STORED AS PARQUET",
            dir.join("dims/dims.parquet").display()
        ),
    )
    .await;
    done(
        s,
        &format!(
            "CREATE EXTERNAL TABLE facts STORED AS PARQUET LOCATION '{}/'",
            dir.join("facts").display()
        ),
    )
    .await;
    done(
        s,
        &format!(
            "CREATE EXTERNAL TABLE dims STORED AS PARQUET LOCATION '{}/'",
            dir.join("dims").display()
        ),
    )
    .await;
}

const JOIN: &str = "SELECT d.name, sum(f.amount) AS total FROM facts f JOIN dims d ON f.dim_id = d.dim_id GROUP BY d.name ORDER BY d.name LIMIT 3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_side_under_the_threshold_is_broadcast_and_the_big_side_is_not_shuffled() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), &[]).await;
    join_tables(&s, dir.path()).await;
    let plan = s.stage_plan(JOIN, None).await.unwrap();
    let exchanges: Vec<Option<ExchangeKind>> = plan.stages.iter().map(|st| st.exchange).collect();
    assert!(
        exchanges.contains(&Some(ExchangeKind::Broadcast)),
        "{}",
        plan.display()
    );
    // The fact table's scan stage is not hash-repartitioned before the join: the only hash
    // repartition is the aggregate's.
    let hash = exchanges
        .iter()
        .filter(|e| **e == Some(ExchangeKind::HashRepartition))
        .count();
    assert_eq!(hash, 1, "{}", plan.display());
    let explain = table(&rows(&s, &format!("EXPLAIN {JOIN}")).await);
    assert!(explain.contains("broadcast"), "{explain}");

    let got = rows(&s, JOIN).await;
    let expected = SessionContext::new();
    expected
        .register_parquet(
            "facts",
            dir.path().join("facts").to_str().unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
    expected
        .register_parquet(
            "dims",
            dir.path().join("dims").to_str().unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
    let want = expected.sql(JOIN).await.unwrap().collect().await.unwrap();
    assert_eq!(table(&got), table(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_threshold_both_sides_are_hash_partitioned() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), &[("sheaf.sql.broadcast-threshold", "0")]).await;
    join_tables(&s, dir.path()).await;
    let plan = s.stage_plan(JOIN, None).await.unwrap();
    let exchanges: Vec<Option<ExchangeKind>> = plan.stages.iter().map(|st| st.exchange).collect();
    assert!(
        !exchanges.contains(&Some(ExchangeKind::Broadcast)),
        "{}",
        plan.display()
    );
    let hash = exchanges
        .iter()
        .filter(|e| **e == Some(ExchangeKind::HashRepartition))
        .count();
    assert!(
        hash >= 3,
        "both join sides and the aggregate: {}",
        plan.display()
    );
    let got = table(&rows(&s, JOIN).await);
    assert!(got.contains("name-0"), "{got}");
    // Same answer as the broadcast plan.
    let b = session(&dir.path().join("b"), &[]).await;
    join_tables(&b, &dir.path().join("b")).await;
    assert_eq!(got, table(&rows(&b, JOIN).await));
}

/// The answer DataFusion alone gives over the join tables.
async fn datafusion_alone(dir: &Path, sql: &str) -> String {
    let expected = SessionContext::new();
    for t in ["facts", "dims"] {
        expected
            .register_parquet(t, dir.join(t).to_str().unwrap(), Default::default())
            .await
            .unwrap();
    }
    table(&expected.sql(sql).await.unwrap().collect().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_that_keep_unmatched_small_side_rows_run_partitioned_not_as_one_task() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), &[]).await;
    join_tables(&s, dir.path()).await;
    // The small side (dims) is the build side and its unmatched rows are kept: a broadcast
    // would need every probe task's matches in one place.
    for sql in [
        "SELECT d.dim_id, count(f.id) AS n FROM dims d LEFT JOIN facts f ON d.dim_id = f.dim_id AND f.amount < 1000 GROUP BY d.dim_id ORDER BY d.dim_id",
        "SELECT count(*) AS n FROM dims d WHERE NOT EXISTS (SELECT 1 FROM facts f WHERE f.dim_id = d.dim_id AND f.amount < 40)",
        "SELECT count(*) AS n, count(d.dim_id) AS matched FROM dims d FULL JOIN (SELECT * FROM facts WHERE amount < 200) f ON d.dim_id = f.dim_id",
    ] {
        let plan = s.stage_plan(sql, None).await.unwrap();
        let join_stage = plan
            .stages
            .iter()
            .find(|st| {
                let shown = datafusion::physical_plan::displayable(st.plan.as_ref())
                    .indent(true)
                    .to_string();
                shown.contains("HashJoinExec")
            })
            .unwrap_or_else(|| panic!("no join: {}", plan.display()));
        let shown = plan.display();
        // DataFusion may swap the sides (a RIGHT ANTI join with the small side probing needs no
        // shared state); a join that keeps its build side's unmatched rows is never a broadcast.
        for kept in ["join_type=Left", "join_type=Full"] {
            assert!(
                !shown.contains(&format!("mode=CollectLeft, {kept}")),
                "{sql}: {shown}"
            );
        }
        if shown.contains("join_type=Left,") || shown.contains("join_type=Full") {
            assert!(shown.contains("mode=Partitioned"), "{shown}");
            assert!(join_stage.tasks() > 1, "the join runs as one task: {shown}");
        }
        assert_eq!(
            table(&rows(&s, sql).await),
            datafusion_alone(dir.path(), sql).await,
            "{sql}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_whose_build_side_does_not_fit_runs_again_as_a_sort_merge_join() {
    let dir = tempfile::tempdir().unwrap();
    let writer = session(&dir.path().join("writer"), &[]).await;
    done(
        &writer,
        &format!(
            "COPY (SELECT value AS id, value * 3 AS v FROM range(3000000)) TO '{}' STORED AS PARQUET",
            dir.path().join("big/part-0.parquet").display()
        ),
    )
    .await;
    let s = session(
        dir.path(),
        &[
            ("sheaf.sql.task-memory", "12m"),
            ("sheaf.sql.broadcast-threshold", "0"),
        ],
    )
    .await;
    done(
        &s,
        &format!(
            "CREATE EXTERNAL TABLE big STORED AS PARQUET LOCATION '{}/'",
            dir.path().join("big").display()
        ),
    )
    .await;
    // Each of 4 build partitions holds 750k rows of two i64: 12 MiB of rows alone, against a
    // 12 MiB budget.
    let sql = "SELECT count(*) AS n, sum(a.v + b.v) AS total FROM big a JOIN big b ON a.id = b.id";
    let batches = rows(&s, sql).await;
    let col = |i: usize| {
        batches[0]
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.value(0))
            .unwrap_or_else(|| panic!("column {i}: {:?}", batches[0].column(i).data_type()))
    };
    assert_eq!(col(0), 3_000_000);
    assert_eq!(col(1), 6 * (0..3_000_000i64).sum::<i64>());
    let (plan, _) = s.take_last_run().expect("the run is recorded");
    assert!(
        plan.starts_with("-- ran again with sort-merge joins") && plan.contains("SortMergeJoin"),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_by_ten_times_the_memory_budget_spills_and_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path(), &[("sheaf.sql.task-memory", "8m")]).await;
    // ~2M distinct groups of (i64 key, i64 sum, i64 count): far over 8 MiB of hash table.
    let sql = "SELECT count(*) AS groups, sum(n) AS rows, sum(total) AS total FROM \
               (SELECT value % 2000000 AS k, count(*) AS n, sum(value) AS total FROM range(4000000) GROUP BY value % 2000000)";
    let (batches, stages) = match s.execute(sql, &no_progress()).await {
        Ok(StatementOutcome::Rows {
            batches, stages, ..
        }) => (batches, stages),
        Ok(other) => panic!("{other:?}"),
        Err(e) => panic!("{e}"),
    };
    let col = |i: usize| {
        batches[0]
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.value(0))
            .unwrap_or_else(|| panic!("column {i}: {:?}", batches[0].column(i).data_type()))
    };
    assert_eq!(col(0), 2_000_000);
    assert_eq!(col(1), 4_000_000);
    assert_eq!(col(2), (0..4_000_000i64).sum::<i64>());
    let spilled: u64 = stages.iter().map(|st| st.spilled_bytes).sum();
    assert!(spilled > 0, "no spill reported: {stages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dataset_api_joins_aggregates_and_writes_partitioned_parquet() {
    use datafusion::functions_aggregate::expr_fn::sum;
    use datafusion::logical_expr::JoinType;
    use datafusion::prelude::{col, lit};
    let dir = tempfile::tempdir().unwrap();
    let data = write_csv(dir.path());
    let dims = dir.path().join("dims");
    std::fs::create_dir_all(&dims).unwrap();
    std::fs::write(
        dims.join("d.csv"),
        "name,boss\neast,ann\nwest,bob\nnorth,cy\n",
    )
    .unwrap();
    let session = std::sync::Arc::new(session(dir.path(), &[]).await);
    let sales = session
        .read_csv(&format!("{}/", data.display()))
        .await
        .unwrap();
    let regions = session
        .read_csv(&format!("{}/", dims.display()))
        .await
        .unwrap();
    let by_boss = sales
        .filter(col("amount").gt(lit(5.0)))
        .unwrap()
        .join(regions, JoinType::Inner, &["region"], &["name"])
        .unwrap()
        .aggregate(vec![col("boss")], vec![sum(col("amount")).alias("total")])
        .unwrap();
    let out = dir.path().join("out/by_boss");
    let msg = by_boss
        .clone()
        .write_parquet(out.to_str().unwrap(), &["boss"])
        .await
        .unwrap();
    assert!(msg.contains("3 rows"), "{msg}");
    assert!(out.join("boss=ann").is_dir() && out.join("_SUCCESS").exists());
    let (batches, stages) = by_boss
        .sort(vec![col("boss").sort(true, false)])
        .unwrap()
        .collect_with_stats()
        .await
        .unwrap();
    assert!(stages.len() > 1, "the plan ran as stages: {stages:?}");
    let expected = "\
+------+-------+
| boss | total |
+------+-------+
| ann  | 10.5  |
| bob  | 20.0  |
| cy   | 7.25  |
+------+-------+";
    assert_eq!(table(&batches), expected);
    assert_eq!(
        session
            .read_parquet(out.to_str().unwrap())
            .await
            .unwrap()
            .count()
            .await
            .unwrap(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_session_reuses_the_parquet_footers_an_earlier_one_read() {
    let dir = tempfile::tempdir().unwrap();
    let first = session(dir.path(), &[]).await;
    let out = dir.path().join("numbers");
    done(
        &first,
        &format!(
            "COPY (SELECT value AS n FROM generate_series(1, 5000)) TO '{}/' STORED AS PARQUET",
            out.display()
        ),
    )
    .await;
    let ddl = format!(
        "CREATE EXTERNAL TEMPORARY TABLE numbers STORED AS PARQUET LOCATION '{}/'",
        out.display()
    );
    done(&first, &ddl).await;
    let sum = "SELECT sum(n) AS s FROM numbers";
    let want = table(&rows(&first, sum).await);
    let footers = |s: &SqlSession| {
        s.context()
            .runtime_env()
            .cache_manager
            .get_file_metadata_cache()
    };
    assert!(
        !footers(&first).is_empty(),
        "the first session read no footer"
    );

    // An executor's next statement: a session of its own sharing the first one's caches.
    let settings = SqlSettings {
        scratch_dir: dir.path().join("scratch2"),
        ..SqlSettings::default()
    };
    let second = SqlSession::new_sharing(
        None,
        Metastore::Local(dir.path().join("metastore2")),
        settings,
        "alice".into(),
        &first.scan_caches(),
    )
    .await
    .unwrap();
    let hits =
        |s: &SqlSession| -> usize { footers(s).list_entries().values().map(|e| e.hits).sum() };
    assert_eq!(
        footers(&second).len(),
        footers(&first).len(),
        "the second session does not see the footers the first one read"
    );
    let before = hits(&second);
    done(&second, &ddl).await;
    assert_eq!(table(&rows(&second, sum).await), want);
    assert!(
        hits(&second) > before,
        "the second session read the footers again instead of using the cached ones"
    );
    assert!(want.contains("12502500"), "{want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_outputs_are_lz4_unless_shuffle_compression_is_none() {
    let dir = tempfile::tempdir().unwrap();
    // Repetitive values: lz4 shrinks them a lot; the answer is the same either way.
    let sql = "SELECT k, count(*) AS n, max(s) AS s FROM \
               (SELECT value % 50000 AS k, repeat('sheaf', 20) AS s FROM range(200000)) GROUP BY k ORDER BY k";
    let mut answers = Vec::new();
    let mut written = Vec::new();
    for setting in ["lz4", "none"] {
        let s = session(
            &dir.path().join(setting),
            &[("sheaf.sql.shuffle-compression", setting)],
        )
        .await;
        match s.execute(sql, &no_progress()).await {
            Ok(StatementOutcome::Rows {
                batches, stages, ..
            }) => {
                answers.push(table(&batches));
                written.push(stages.iter().map(|st| st.output_bytes).sum::<u64>());
            }
            other => panic!("{setting}: {other:?}"),
        }
    }
    assert_eq!(answers[0], answers[1]);
    assert!(
        written[1] > 2 * written[0],
        "uncompressed {} bytes vs lz4 {} bytes",
        written[1],
        written[0]
    );
    let bad = SqlSettings::default()
        .set("sheaf.sql.shuffle-compression", "zip")
        .unwrap_err();
    assert!(bad.to_string().contains("expected lz4 or none"), "{bad}");
}
