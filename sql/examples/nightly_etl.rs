//! A nightly ETL step with the Dataset API: read the day's sales (CSV), join the stores dimension
//! (CSV), aggregate revenue per day and region, and write Parquet partitioned by date — committed
//! atomically (`_SUCCESS` last), so the next job in the cron chain can wait for it.
//!
//! `cargo run -p sheaf-sql --example nightly_etl -- [SALES_DIR STORES_DIR OUT_DIR]`; with no
//! arguments it writes a small sample input into a temp dir first. With `SHEAF_CONF` set (a
//! cluster's `sheaf.toml`) and `SHEAF_BIN` (the `sheaf` binary its containers run), the actions
//! run on that cluster as one SQL session, and the paths may be `sheaf:///…` DFS directories.

use sheaf_sql::catalog::Metastore;
use sheaf_sql::datafusion::arrow::util::pretty::pretty_format_batches;
use sheaf_sql::datafusion::functions_aggregate::expr_fn::{count, sum};
use sheaf_sql::datafusion::logical_expr::JoinType;
use sheaf_sql::datafusion::prelude::{col, lit};
use sheaf_sql::{SqlSession, SqlSettings};
use std::path::PathBuf;
use std::sync::Arc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sample = tempfile::tempdir()?;
    let (sales, stores, out) = match args.as_slice() {
        [s, st, o] => (s.clone(), st.clone(), o.clone()),
        [] => write_sample(sample.path())?,
        _ => return Err("usage: nightly_etl [SALES_DIR STORES_DIR OUT_DIR]".into()),
    };
    let settings = SqlSettings {
        scratch_dir: sample.path().join("scratch"),
        ..SqlSettings::default()
    };
    let session = match std::env::var_os("SHEAF_CONF") {
        Some(conf) => {
            let sheaf = std::env::var_os("SHEAF_BIN")
                .map(PathBuf::from)
                .ok_or("SHEAF_CONF is set: SHEAF_BIN must name the sheaf binary")?;
            SqlSession::connect_cluster(std::path::Path::new(&conf), sheaf, "etl", settings).await?
        }
        None => Arc::new(
            SqlSession::new(
                None,
                Metastore::Local(sample.path().join("ms")),
                settings,
                "etl".into(),
            )
            .await?,
        ),
    };
    let result = nightly(&session, &sales, &stores, &out).await;
    session.close().await?;
    result
}

/// The ETL step itself: the same code runs in this process or on the cluster.
async fn nightly(
    session: &Arc<SqlSession>,
    sales: &str,
    stores: &str,
    out: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let sales = session.read_csv(sales).await?;
    let stores = session.read_csv(stores).await?;
    let daily = sales
        .filter(col("amount").gt(lit(0)))?
        .join(stores, JoinType::Inner, &["store_id"], &["id"])?
        .aggregate(
            vec![col("sale_date"), col("region")],
            vec![
                sum(col("amount")).alias("revenue"),
                count(col("amount")).alias("sales"),
            ],
        )?;
    let written = daily.clone().write_parquet(out, &["sale_date"]).await?;
    println!("{written}");
    let check = session.read_parquet(out).await?;
    let rows = check
        .sort(vec![
            col("region").sort(true, false),
            col("sale_date").sort(true, false),
        ])?
        .collect()
        .await?;
    println!("{}", pretty_format_batches(&rows)?);
    Ok(())
}

fn write_sample(dir: &std::path::Path) -> std::io::Result<(String, String, String)> {
    let sales = dir.join("sales");
    let stores = dir.join("stores");
    std::fs::create_dir_all(&sales)?;
    std::fs::create_dir_all(&stores)?;
    let mut csv = String::from("sale_id,store_id,sale_date,amount\n");
    for i in 0..1000 {
        let day = if i % 3 == 0 {
            "2026-11-30"
        } else {
            "2026-12-01"
        };
        csv.push_str(&format!("{i},{},{day},{}\n", i % 5, (i % 17) as f64 - 1.0));
    }
    std::fs::write(sales.join("day.csv"), csv)?;
    std::fs::write(
        stores.join("stores.csv"),
        "id,region\n0,north\n1,south\n2,east\n3,west\n4,north\n",
    )?;
    let out = dir.join("out/daily_revenue");
    Ok((
        format!("{}/", sales.display()),
        format!("{}/", stores.display()),
        out.display().to_string(),
    ))
}
