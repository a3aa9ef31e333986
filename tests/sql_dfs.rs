//! `sheaf sql --local` against a real multi-process DFS: tables in the DFS read through the DFS
//! object store, the catalog in `/sheaf/metastore` seen by a new `sheaf sql` process and after a
//! cluster restart, CTAS into the warehouse and a partitioned COPY committed with `_SUCCESS` last,
//! and the CLI's output formats, errors and exit codes.

mod common;

use common::mini_dfs::{one_line_error, MiniDfs, MiniDfsOptions};

const OCTET: u8 = 71;

fn sql(dfs: &MiniDfs, args: &[&str]) -> String {
    let mut all = vec!["sql", "--local"];
    all.extend_from_slice(args);
    dfs.ok(&all)
}

fn put(dfs: &MiniDfs, name: &str, content: &str, dst: &str) {
    let local = dfs.dir.path().join(name);
    std::fs::write(&local, content).unwrap();
    dfs.ok(&["dfs", "mkdir", "-p", dst]);
    dfs.ok(&["dfs", "put", local.to_str().unwrap(), dst]);
}

#[test]
fn sql_over_csv_json_and_parquet_in_the_dfs_with_a_catalog_that_survives_a_restart() {
    let mut dfs = MiniDfs::start(MiniDfsOptions::new(3, OCTET));
    put(
        &dfs,
        "sales.csv",
        "id,region,amount,note\n1,east,10.5,plain\n2,west,20,\"with, comma\"\n3,east,,null amount\n4,north,7.25,x\n5,west,2.5,\n",
        "/data/sales",
    );
    put(
        &dfs,
        "regions.json",
        "{\"region\":\"east\",\"manager\":\"ann\"}\n{\"region\":\"west\",\"manager\":\"bob\"}\n{\"region\":\"north\",\"manager\":null}\n",
        "/data/regions",
    );
    sql(
        &dfs,
        &[
            "-e",
            "CREATE EXTERNAL TABLE sales (id INT, region VARCHAR, amount DOUBLE, note VARCHAR) \
             STORED AS CSV LOCATION 'sheaf:///data/sales/' OPTIONS ('format.has_header' 'true'); \
             CREATE EXTERNAL TABLE regions STORED AS JSON LOCATION 'sheaf:///data/regions/'",
        ],
    );
    // The catalog is in the DFS.
    let listing = dfs.ok(&["dfs", "ls", "/sheaf/metastore/tables"]);
    assert!(
        listing.contains("sales.json") && listing.contains("regions.json"),
        "{listing}"
    );

    // A new process joins them; CSV output has a header and RFC 4180 quoting.
    let script = dfs.dir.path().join("report.sql");
    std::fs::write(
        &script,
        "-- nightly report\n\
         SELECT r.region, r.manager, count(*) AS n, sum(s.amount) AS total\n\
         FROM sales s JOIN regions r ON s.region = r.region\n\
         GROUP BY r.region, r.manager ORDER BY r.region;\n",
    )
    .unwrap();
    let out = sql(&dfs, &["-f", script.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(
        out,
        "region,manager,n,total\neast,ann,2,10.5\nnorth,,1,7.25\nwest,bob,2,22.5\n"
    );
    let json = sql(
        &dfs,
        &[
            "-e",
            "SELECT note FROM sales WHERE id = 2",
            "--format",
            "json",
        ],
    );
    assert_eq!(json.trim(), "{\"note\":\"with, comma\"}");

    // CTAS into the warehouse and a partitioned COPY, both committed with _SUCCESS last.
    sql(
        &dfs,
        &["-e", "CREATE TABLE totals STORED AS PARQUET AS SELECT region, sum(amount) AS total FROM sales GROUP BY region"],
    );
    let warehouse = dfs.ok(&["dfs", "ls", "/sheaf/warehouse/totals"]);
    assert!(
        warehouse.contains("_SUCCESS") && !warehouse.contains("_temporary"),
        "{warehouse}"
    );
    sql(
        &dfs,
        &["-e", "COPY (SELECT id, region, amount FROM sales) TO 'sheaf:///out/by_region/' STORED AS PARQUET PARTITIONED BY (region)"],
    );
    let out_dir = dfs.ok(&["dfs", "ls", "/out/by_region"]);
    for want in ["region=east", "region=west", "region=north", "_SUCCESS"] {
        assert!(out_dir.contains(want), "{want} missing: {out_dir}");
    }
    assert!(!out_dir.contains("_temporary"), "{out_dir}");

    // Restart the whole DFS: a new session still has every table.
    dfs.kill_namenode();
    dfs.start_namenode();
    dfs.wait_ready(3, std::time::Duration::from_secs(60));
    sql(
        &dfs,
        &["-e", "CREATE EXTERNAL TABLE by_region STORED AS PARQUET PARTITIONED BY (region) LOCATION 'sheaf:///out/by_region/'"],
    );
    let out = sql(
        &dfs,
        &[
            "-e",
            "SELECT t.region, t.total, b.n FROM totals t JOIN \
             (SELECT region, count(*) AS n FROM by_region GROUP BY region) b ON t.region = b.region ORDER BY t.region",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        out,
        "region,total,n\neast,10.5,2\nnorth,7.25,1\nwest,22.5,2\n"
    );
    let tables = sql(&dfs, &["-e", "SHOW TABLES", "--format", "csv"]);
    for t in ["sales", "regions", "totals", "by_region"] {
        assert!(tables.contains(t), "{t} missing: {tables}");
    }
}

#[test]
fn errors_name_the_statement_line_and_exit_non_zero() {
    let dfs = MiniDfs::start(MiniDfsOptions::new(1, OCTET));
    put(&dfs, "t.csv", "a\n1\n", "/data/t");
    let script = dfs.dir.path().join("bad.sql");
    std::fs::write(
        &script,
        "CREATE EXTERNAL TABLE t (a INT) STORED AS CSV LOCATION 'sheaf:///data/t/' OPTIONS ('format.has_header' 'true');\n\
         -- the next statement has a typo\n\
         SELECT * FROM tt;\n\
         SELECT 1;\n",
    )
    .unwrap();
    let out = dfs.sheaf(&["sql", "--local", "-f", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    // The first statement's confirmation, then the error of the third line, and nothing after it.
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].contains("table 't' created"), "{stderr}");
    let line = lines[1];
    assert!(line.starts_with("sheaf sql: line 3: "), "{line}");
    assert!(line.contains("tt"), "{line}");
    // The statement after the failing one did not run.
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());

    let out = dfs.sheaf(&[
        "sql",
        "--local",
        "-e",
        "SELECT * FROM 'sheaf:///no/such/dir/'",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let missing = one_line_error(&out);
    assert!(missing.contains("/no/such/dir"), "{missing}");

    let out = dfs.sheaf(&["sql", "--local", "-e", "SELEC 1"]);
    let syntax = one_line_error(&out);
    assert!(
        syntax.starts_with("sheaf sql: line 1: syntax error"),
        "{syntax}"
    );

    let out = dfs.sheaf(&["sql", "-e", "SELECT 1"]);
    let cluster = one_line_error(&out);
    assert!(cluster.contains("--local"), "{cluster}");
}
