//! `sheaf sql` on a real multi-process cluster: a session is one yarnlike application whose
//! query master hands the producer stages' tasks to executor containers on every node, stage
//! outputs travel through the NodeManagers' QUIC shuffle service, and the rows come back to the
//! CLI. All 22 TPC-H queries return what `--local` returns on the same DFS tables; no stage
//! output is left on any node afterwards; an executor killed mid-session costs only the work it
//! held.

mod common;

use common::mini_cluster::{MiniCluster, MiniClusterOptions};
use sheaf_sql::tpch;
use std::time::Duration;

const OCTET: u8 = 72;

/// The script's results, split per query at the `SELECT 'Qn' AS marker` lines, each made
/// canonical: floats to 2 decimals (partial sums may add up in another order), rows sorted
/// (ties of an ORDER BY may come in any order).
fn per_query(csv: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut lines = csv.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "marker" {
            let name = lines.next().unwrap_or_default().to_string();
            out.push((name, Vec::new()));
            continue;
        }
        let Some((_, rows)) = out.last_mut() else {
            continue;
        };
        let canon: Vec<String> = line
            .split(',')
            .map(|f| match f.parse::<f64>() {
                Ok(v) if f.contains('.') || f.contains('e') => format!("{v:.2}"),
                _ => f.to_string(),
            })
            .collect();
        rows.push(canon.join(","));
    }
    out.into_iter()
        .map(|(name, mut rows)| {
            rows.sort();
            (name, rows.join("\n"))
        })
        .collect()
}

fn tpch_script() -> String {
    let mut script = String::new();
    for n in 1..=22 {
        script.push_str(&format!("SELECT 'Q{n}' AS marker;\n"));
        for s in tpch::query(n).unwrap() {
            script.push_str(s.trim().trim_end_matches(';'));
            script.push_str(";\n");
        }
    }
    script
}

fn shuffle_leftovers(cluster: &MiniCluster) -> Vec<String> {
    let mut left = Vec::new();
    for i in 0..cluster.nodes() {
        let root = cluster.shuffle_dir(i);
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    left.push(format!("{}/{name}", root.display()));
                }
            }
        }
    }
    left
}

#[test]
fn tpch_on_the_cluster_equals_local_and_leaves_no_stage_outputs() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    cluster.wait_nodemanagers(3, Duration::from_secs(20));
    let data = cluster.dir().join("tpch");
    tpch::generate_csv(&data, 0.01, 2).unwrap();
    for (table, _) in tpch::TABLES {
        for f in std::fs::read_dir(data.join(table)).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            cluster.put(&f, &format!("/tpch/{table}/{name}"));
        }
    }
    let ddl: Vec<String> = tpch::csv_ddl("sheaf:///tpch", "");
    cluster.ok(&["sql", "--local", "-e", &ddl.join(";\n")]);
    let script_path = cluster.dir().join("tpch.sql");
    std::fs::write(&script_path, tpch_script()).unwrap();
    let script = script_path.to_str().unwrap();

    let local = cluster.ok(&["sql", "--local", "--format", "csv", "-f", script]);
    let distributed_csv = cluster.ok(&["sql", "--format", "csv", "-f", script]);
    check_against_hand_computed(&data, &distributed_csv);
    let (local, distributed) = (per_query(&local), per_query(&distributed_csv));
    assert_eq!(
        local.len(),
        22,
        "local run answered {} queries",
        local.len()
    );
    assert_eq!(
        distributed.len(),
        22,
        "cluster run answered {} queries",
        distributed.len()
    );
    for ((name, want), (_, got)) in local.iter().zip(&distributed) {
        assert!(!want.is_empty(), "{name}: no rows locally");
        assert_eq!(
            got, want,
            "{name}: the cluster's rows differ from --local's"
        );
    }

    // The session ran as one SQL application, and it is over.
    let apps = cluster.ok(&["yarn", "app", "list"]);
    assert!(apps.contains("SQL sheaf-sql"), "{apps}");
    // `sheaf job list --all` shows the session beside MapReduce jobs, with its job id.
    let jobs = cluster.ok(&["job", "list", "--all"]);
    assert!(
        jobs.contains("SQL sheaf-sql") && jobs.contains("job_"),
        "{jobs}"
    );
    // Its history in the DFS: every statement, its plan and its stages' figures.
    let job = jobs
        .lines()
        .find(|l| l.contains("SQL sheaf-sql"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the session's job id")
        .to_string();
    cluster.wait_for("the session history", Duration::from_secs(10), || {
        cluster.sheaf(&["job", "history", &job]).status.success()
    });
    let history = cluster.ok(&["job", "history", &job]);
    assert!(
        history.contains("Kind:               SQL session"),
        "{history}"
    );
    assert!(history.contains("(0 failed)"), "{history}");
    assert!(
        history.contains("Statement 2: SUCCEEDED") && history.contains("Stages:"),
        "{history}"
    );
    assert!(
        history.contains("Plan:") && history.contains("Stage 0"),
        "{history}"
    );
    // Every query's stage outputs were removed from every node when the query ended.
    cluster.wait_for("stage outputs removed", Duration::from_secs(10), || {
        shuffle_leftovers(&cluster).is_empty()
    });

    // A failing statement: a clear error, non-zero exit, and again nothing left behind.
    let out = cluster.sheaf(&["sql", "-e", "SELECT * FROM lineitm"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lineitm"), "{err}");
    assert!(shuffle_leftovers(&cluster).is_empty());
}

/// A query over a self-join big enough to run for seconds, so a node can die under it.
const SLOW_QUERY: &str = "SELECT a.l_returnflag, count(*) AS pairs FROM lineitem a JOIN lineitem b ON a.l_suppkey = b.l_suppkey AND a.l_linestatus = b.l_linestatus GROUP BY a.l_returnflag ORDER BY a.l_returnflag";

#[test]
fn a_node_killed_mid_query_costs_only_its_tasks() {
    slow_query_survives(OCTET + 1, true);
}

#[test]
fn an_executor_process_killed_mid_query_is_replaced_and_its_tasks_retried() {
    slow_query_survives(OCTET + 2, false);
}

/// Runs [`SLOW_QUERY`] on the cluster and `kill -9`s, mid-query, the containers of a node that
/// does not host the query master (with its NodeManager when `whole_node`); the answer must
/// equal `--local`'s and the figures must show work done again.
fn slow_query_survives(octet: u8, whole_node: bool) {
    let mut cluster = MiniCluster::start(MiniClusterOptions::new(3, octet));
    cluster.wait_nodemanagers(3, Duration::from_secs(20));
    let data = cluster.dir().join("tpch");
    tpch::generate_csv(&data, 0.01, 3).unwrap();
    for f in std::fs::read_dir(data.join("lineitem")).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        cluster.put(&f, &format!("/tpch/lineitem/{name}"));
    }
    let ddl: Vec<String> = tpch::csv_ddl("sheaf:///tpch", "")
        .into_iter()
        .filter(|d| d.contains(" lineitem "))
        .collect();
    cluster.ok(&["sql", "--local", "-e", &ddl.join(";\n")]);
    let want = cluster.ok(&["sql", "--local", "--format", "csv", "-e", SLOW_QUERY]);

    let child = common::mini_dfs::sheaf_command()
        .arg("--conf")
        .arg(&cluster.dfs.conf)
        .stdin(std::process::Stdio::null())
        .args([
            "sql",
            "--stats",
            "--format",
            "csv",
            "-D",
            "sheaf.sql.shuffle-partitions=6",
            "-e",
            SLOW_QUERY,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sheaf sql");
    // Wait for executors on every node, then kill a node that does not run the query master.
    let mut victim = None;
    cluster.wait_for("executors on three nodes", Duration::from_secs(30), || {
        let procs = cluster.container_processes();
        let master = procs
            .iter()
            .find(|p| p.command.contains(" sql-master"))
            .map(|p| p.host.clone());
        let executors: Vec<String> = procs
            .iter()
            .filter(|p| p.command.contains(" sql-executor"))
            .map(|p| p.host.clone())
            .collect();
        if executors.len() < 3 {
            return false;
        }
        victim =
            (0..cluster.nodes()).find(|i| Some(cluster.nodemanager_host(*i).to_string()) != master);
        victim.is_some()
    });
    // Let the first stage's tasks get going.
    std::thread::sleep(Duration::from_millis(1500));
    let victim = victim.unwrap();
    if whole_node {
        cluster.kill_nodemanager(victim);
    }
    assert!(
        cluster.kill_containers_of(victim) > 0,
        "no container to kill"
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the query failed: {stderr}\n{}",
        cluster.log_tails()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    // The figures show work done again: attempts beyond the tasks (killed with the node, or
    // re-runs of outputs lost with it).
    let (mut tasks, mut attempts) = (0usize, 0usize);
    for line in stderr.lines().filter(|l| l.starts_with("stage ")) {
        tasks += figure(line, "tasks");
        attempts += figure(line, "attempts");
    }
    assert!(tasks > 0, "no stage figures: {stderr}");
    assert!(
        attempts > tasks,
        "nothing ran again ({attempts} attempts for {tasks} tasks): {stderr}"
    );
}

/// Fields of one CSV line (RFC 4180 quotes).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Every row of a generated table (all its part files, headers skipped).
fn table_rows(data: &std::path::Path, table: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(data.join(table))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        rows.extend(text.lines().skip(1).map(fields));
    }
    rows
}

/// A decimal with 2 places as an integer of hundredths.
fn cents(s: &str) -> i128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<2}");
    let sign = if int.starts_with('-') { -1 } else { 1 };
    let int: i128 = int.trim_start_matches('-').parse().unwrap();
    sign * (int * 100 + frac[..2].parse::<i128>().unwrap())
}

/// The rows (header dropped) of query `name`'s block in a script's CSV output.
fn block(csv: &str, name: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = csv.lines().collect();
    let start = lines
        .windows(2)
        .position(|w| w[0] == "marker" && w[1] == name)
        .unwrap_or_else(|| panic!("{name} not in the output"));
    lines[start + 3..]
        .iter()
        .take_while(|l| **l != "marker")
        .map(|l| fields(l))
        .collect()
}

fn close(got: &str, want: f64, what: &str) {
    let g: f64 = got
        .parse()
        .unwrap_or_else(|_| panic!("{what}: {got} is not a number"));
    assert!(
        (g - want).abs() <= 0.011,
        "{what}: got {g}, computed {want}"
    );
}

/// Q1's sums per group: quantity and price (hundredths), discounted price (1e-4), charge
/// (1e-6), rows.
type Q1Sums = (i128, i128, i128, i128, u64);

/// Q1, Q3 and Q18 computed straight from the generated rows, without SQL, and compared with the
/// cluster's answers.
fn check_against_hand_computed(data: &std::path::Path, csv: &str) {
    let lineitem = table_rows(data, "lineitem");
    // Q1: shipped by 1998-12-01 - 90 days.
    let mut q1: std::collections::BTreeMap<(String, String), Q1Sums> = Default::default();
    for l in &lineitem {
        if l[10].as_str() > "1998-09-02" {
            continue;
        }
        let (qty, price, disc, tax) = (cents(&l[4]), cents(&l[5]), cents(&l[6]), cents(&l[7]));
        let e = q1.entry((l[8].clone(), l[9].clone())).or_default();
        e.0 += qty;
        e.1 += price;
        e.2 += price * (100 - disc); // 1e-4
        e.3 += price * (100 - disc) * (100 + tax); // 1e-6
        e.4 += 1;
    }
    let got = block(csv, "Q1");
    assert_eq!(got.len(), q1.len(), "Q1 groups: {got:?}");
    for (row, ((flag, status), (qty, price, disc_price, charge, n))) in got.iter().zip(&q1) {
        assert_eq!((&row[0], &row[1]), (flag, status), "Q1 group order");
        close(&row[2], *qty as f64 / 100.0, "Q1 sum_qty");
        close(&row[3], *price as f64 / 100.0, "Q1 sum_base_price");
        close(&row[4], *disc_price as f64 / 1e4, "Q1 sum_disc_price");
        close(&row[5], *charge as f64 / 1e6, "Q1 sum_charge");
        assert_eq!(row[9], n.to_string(), "Q1 count_order of {flag}{status}");
    }

    let orders = table_rows(data, "orders");
    let customers = table_rows(data, "customer");
    // Q3: BUILDING customers' orders before 1995-03-15 with items shipped after it.
    let building: std::collections::HashSet<&str> = customers
        .iter()
        .filter(|c| c[6] == "BUILDING")
        .map(|c| c[0].as_str())
        .collect();
    let open: std::collections::HashMap<&str, (&str, &str)> = orders
        .iter()
        .filter(|o| building.contains(o[1].as_str()) && o[4].as_str() < "1995-03-15")
        .map(|o| (o[0].as_str(), (o[4].as_str(), o[7].as_str())))
        .collect();
    let mut revenue: std::collections::HashMap<&str, i128> = Default::default();
    for l in &lineitem {
        if open.contains_key(l[0].as_str()) && l[10].as_str() > "1995-03-15" {
            *revenue.entry(l[0].as_str()).or_default() += cents(&l[5]) * (100 - cents(&l[6]));
        }
    }
    let mut q3: Vec<(&str, i128)> = revenue.into_iter().collect();
    // dbgen's query text has no LIMIT (the spec reads the first 10 rows): all rows compare.
    q3.sort_by(|a, b| b.1.cmp(&a.1).then(open[a.0].0.cmp(open[b.0].0)));
    let got = block(csv, "Q3");
    assert_eq!(got.len(), q3.len(), "Q3 rows: {got:?}");
    for (row, (key, rev)) in got.iter().zip(&q3) {
        assert_eq!(&row[0], key, "Q3 order of rows");
        close(&row[1], *rev as f64 / 1e4, "Q3 revenue");
        assert_eq!(row[2], open[key].0, "Q3 o_orderdate");
    }

    // Q18: orders with more than 300 items in all.
    let mut quantity: std::collections::HashMap<&str, i128> = Default::default();
    for l in &lineitem {
        *quantity.entry(l[0].as_str()).or_default() += cents(&l[4]);
    }
    let names: std::collections::HashMap<&str, &str> = customers
        .iter()
        .map(|c| (c[0].as_str(), c[1].as_str()))
        .collect();
    let mut q18: Vec<(String, String, String, i128)> = orders
        .iter()
        .filter(|o| quantity.get(o[0].as_str()).copied().unwrap_or(0) > 300 * 100)
        .map(|o| {
            (
                names[o[1].as_str()].to_string(),
                o[0].clone(),
                o[4].clone(),
                cents(&o[3]),
            )
        })
        .collect();
    q18.sort_by(|a, b| b.3.cmp(&a.3).then(a.2.cmp(&b.2)));
    let got = block(csv, "Q18");
    assert_eq!(got.len(), q18.len(), "Q18 rows: {got:?}");
    assert!(!q18.is_empty(), "SF 0.01 has Q18 rows");
    for (row, (name, key, date, total)) in got.iter().zip(&q18) {
        assert_eq!((&row[0], &row[2], &row[3]), (name, key, date), "Q18 row");
        close(&row[4], *total as f64 / 100.0, "Q18 o_totalprice");
        close(
            &row[5],
            quantity[key.as_str()] as f64 / 100.0,
            "Q18 sum(l_quantity)",
        );
    }
}

/// `n` where `line` says `… n word …` (the `--stats` lines).
fn figure(line: &str, word: &str) -> usize {
    let words: Vec<&str> = line
        .split([' ', ',', '(', ')'])
        .filter(|w| !w.is_empty())
        .collect();
    words
        .iter()
        .position(|w| *w == word)
        .and_then(|i| words[i - 1].parse().ok())
        .unwrap_or(0)
}

#[test]
fn scans_split_along_blocks_run_next_to_their_replica_and_a_task_failing_four_times_fails_cleanly()
{
    // One replica per block: a task is data-local only on the one host holding its block.
    let mut opts = MiniClusterOptions::new(3, OCTET + 3);
    opts.replication = 1;
    let cluster = MiniCluster::start(opts);
    cluster.wait_nodemanagers(3, Duration::from_secs(20));
    // ~6 MB of CSV: six 1 MiB DFS blocks. Group g of row i is i % 7; value i.
    let rows = 400_000u64;
    let mut csv = String::from("id,grp,val,note\n");
    for i in 0..rows {
        csv.push_str(&format!("{i},{},{i},row number {i:08}\n", i % 7));
    }
    let local = cluster.dir().join("numbers.csv");
    std::fs::write(&local, &csv).unwrap();
    cluster.put(&local, "/numbers/numbers.csv");
    let blocks = csv.len().div_ceil(1 << 20);
    assert!(blocks >= 5, "{blocks} blocks");
    let ddl = "CREATE EXTERNAL TABLE numbers (id BIGINT, grp BIGINT, val BIGINT, note VARCHAR) STORED AS CSV LOCATION 'sheaf:///numbers/' OPTIONS ('format.has_header' 'true')";
    cluster.ok(&["sql", "--local", "-e", ddl]);

    let query =
        "SELECT grp, count(*) AS n, sum(val) AS total FROM numbers GROUP BY grp ORDER BY grp";
    let out = cluster.sheaf(&[
        "sql",
        "--stats",
        "--format",
        "csv",
        "-D",
        "sheaf.sql.locality-wait=30s",
        "-e",
        query,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", cluster.log_tails());
    // Every row read exactly once: the block boundaries cut lines, the ranges do not.
    let mut want = String::from("grp,n,total\n");
    for g in 0..7u64 {
        let members: Vec<u64> = (0..rows).filter(|i| i % 7 == g).collect();
        want.push_str(&format!(
            "{g},{},{}\n",
            members.len(),
            members.iter().sum::<u64>()
        ));
    }
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    // The scan stage has a task per block, each run on the host holding its block.
    let scan = stderr
        .lines()
        .find(|l| l.starts_with("stage 0:"))
        .unwrap_or_else(|| panic!("no stage figures: {stderr}"));
    let tasks = figure(scan, "tasks");
    assert_eq!(tasks, blocks, "one scan task per block: {scan}");
    assert_eq!(
        figure(scan, "data-local"),
        figure(scan, "attempts"),
        "not every scan attempt ran next to its block: {scan}"
    );

    // A group-by far over its tasks' memory budget spills on the executors and is right.
    let out = cluster.sheaf(&[
        "sql",
        "--stats",
        "--format",
        "csv",
        "-D",
        "sheaf.sql.task-memory=2m",
        "-e",
        "SELECT count(*) AS groups, sum(n) AS rows, sum(total) AS total FROM \
         (SELECT value % 500000 AS k, count(*) AS n, sum(value) AS total FROM range(1000000) GROUP BY value % 500000)",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "groups,rows,total\n500000,1000000,{}\n",
            (0..1_000_000u64).sum::<u64>()
        )
    );
    let spilled: usize = stderr
        .lines()
        .filter(|l| l.starts_with("stage "))
        .map(|l| {
            let words: Vec<&str> = l.split([' ', ',']).filter(|w| !w.is_empty()).collect();
            words
                .iter()
                .position(|w| *w == "spilled")
                .map(|i| usize::from(words[i - 2] != "0"))
                .unwrap_or(0)
        })
        .sum();
    assert!(spilled > 0, "no stage spilled: {stderr}");

    // `now()` is one instant for the whole query: the executors plan with the master's.
    let now = cluster.ok(&[
        "sql",
        "--format",
        "csv",
        "-e",
        "SELECT count(*) AS n FROM numbers WHERE now() > TIMESTAMP '2020-01-01 00:00:00' AND grp < 7",
    ]);
    assert_eq!(now, format!("n\n{rows}\n"));

    // A LEFT JOIN keeping the unmatched rows of its small side runs partitioned on the
    // executors, with the answer --local gives.
    let left_join = "SELECT a.grp, count(b.id) AS matched FROM (SELECT DISTINCT grp FROM numbers) a \
                     LEFT JOIN numbers b ON a.grp = b.grp AND b.id < 20 GROUP BY a.grp ORDER BY a.grp";
    let on_cluster = cluster.ok(&["sql", "--format", "csv", "-e", left_join]);
    assert_eq!(
        on_cluster,
        cluster.ok(&["sql", "--local", "--format", "csv", "-e", left_join])
    );
    assert_eq!(
        on_cluster,
        "grp,matched\n0,3\n1,3\n2,3\n3,3\n4,3\n5,3\n6,2\n"
    );

    // A join whose build partitions (750k rows of two i64 each) are larger than the tasks'
    // memory: the hash join runs out of memory on the executors, and the statement runs again
    // with sort-merge joins.
    let out = cluster.sheaf(&[
        "sql",
        "--format",
        "csv",
        "-D",
        "sheaf.sql.task-memory=12m",
        "-D",
        "sheaf.sql.broadcast-threshold=0",
        "-e",
        "SELECT count(*) AS n, sum(a.v + b.v) AS total FROM \
         (SELECT value AS id, value * 3 AS v FROM range(3000000)) a JOIN \
         (SELECT value AS id, value * 3 AS v FROM range(3000000)) b ON a.id = b.id",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", cluster.log_tails());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("n,total\n3000000,{}\n", 6 * (0..3_000_000u64).sum::<u64>())
    );
    let jobs = cluster.ok(&["job", "list", "--all"]);
    let job = jobs
        .lines()
        .filter(|l| l.contains("SQL sheaf-sql"))
        .filter_map(|l| l.split_whitespace().next())
        .max()
        .expect("a SQL session")
        .to_string();
    cluster.wait_for("the session history", Duration::from_secs(10), || {
        cluster.sheaf(&["job", "history", &job]).status.success()
    });
    let history = cluster.ok(&["job", "history", &job]);
    assert!(
        history.contains("ran again with sort-merge joins") && history.contains("SortMergeJoin"),
        "{history}"
    );

    // A malformed row in the fifth block: the error names the file and the row's line in it,
    // not its line within the block.
    let mut malformed = String::from("id,grp,val,note\n");
    for i in 0..rows {
        if i == 300_000 {
            malformed.push_str("oops\n");
        } else {
            malformed.push_str(&format!("{i},{},{i},row number {i:08}\n", i % 7));
        }
    }
    let malformed_local = cluster.dir().join("malformed.csv");
    std::fs::write(&malformed_local, &malformed).unwrap();
    cluster.put(&malformed_local, "/malformed/m.csv");
    let out = cluster.sheaf(&[
        "sql",
        "-e",
        "CREATE EXTERNAL TEMPORARY TABLE m (id BIGINT, grp BIGINT, val BIGINT, note VARCHAR) STORED AS CSV LOCATION 'sheaf:///malformed/' OPTIONS ('format.has_header' 'true'); \
         SELECT grp, count(*) FROM m GROUP BY grp",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the malformed table was read");
    // Header on line 1, row i on line i + 2.
    assert!(
        stderr.contains("sheaf:///malformed/m.csv") && stderr.contains("line 300002"),
        "{stderr}"
    );

    // A task that fails every attempt (a value that is no integer, in one block): the query
    // fails after 4 attempts with the task's error, and leaves no output and no stage files.
    let mut bad = String::from("id,grp,val,note\n");
    for i in 0..100_000u64 {
        let val = if i == 77_777 {
            "seventy".to_string()
        } else {
            i.to_string()
        };
        bad.push_str(&format!("{i},{},{val},row {i:08}\n", i % 7));
    }
    let bad_local = cluster.dir().join("bad.csv");
    std::fs::write(&bad_local, &bad).unwrap();
    cluster.put(&bad_local, "/bad/bad.csv");
    let out = cluster.sheaf(&[
        "sql",
        "-e",
        "CREATE EXTERNAL TEMPORARY TABLE bad (id BIGINT, grp BIGINT, val VARCHAR, note VARCHAR) STORED AS CSV LOCATION 'sheaf:///bad/' OPTIONS ('format.has_header' 'true'); \
         COPY (SELECT grp, sum(CAST(val AS BIGINT)) AS total FROM bad GROUP BY grp) TO 'sheaf:///out/bad/' STORED AS PARQUET",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the bad query succeeded");
    assert!(
        stderr.contains("failed 4 times") && stderr.contains("seventy"),
        "{stderr}"
    );
    let listing = cluster.sheaf(&["dfs", "ls", "-R", "/out"]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        !listing.contains("_SUCCESS") && !listing.contains("_temporary"),
        "{listing}"
    );
    cluster.wait_for("stage outputs removed", Duration::from_secs(10), || {
        shuffle_leftovers(&cluster).is_empty()
    });
}

/// The nightly ETL example (`sql/examples/nightly_etl.rs`, built with the tests).
fn nightly_etl_example() -> std::path::PathBuf {
    let bin = std::path::Path::new(common::mini_dfs::bin());
    let dir = bin.parent().expect("target dir");
    dir.join("examples").join("nightly_etl")
}

#[test]
fn the_nightly_etl_example_runs_its_dataset_actions_on_the_cluster() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET + 4));
    cluster.wait_nodemanagers(3, Duration::from_secs(20));
    // The example's inputs, locally and in the DFS.
    let input = cluster.dir().join("etl");
    let (sales, stores) = (input.join("sales"), input.join("stores"));
    std::fs::create_dir_all(&sales).unwrap();
    std::fs::create_dir_all(&stores).unwrap();
    let mut csv = String::from("sale_id,store_id,sale_date,amount\n");
    for i in 0..5000 {
        let day = ["2026-11-29", "2026-11-30", "2026-12-01"][i % 3];
        csv.push_str(&format!("{i},{},{day},{}\n", i % 5, (i % 17) as f64 - 1.5));
    }
    std::fs::write(sales.join("day.csv"), &csv).unwrap();
    std::fs::write(
        stores.join("stores.csv"),
        "id,region\n0,north\n1,south\n2,east\n3,west\n4,north\n",
    )
    .unwrap();
    cluster.put(&sales.join("day.csv"), "/etl/sales/day.csv");
    cluster.put(&stores.join("stores.csv"), "/etl/stores/stores.csv");

    let run = |envs: &[(&str, &std::path::Path)], args: &[String]| {
        let mut cmd = std::process::Command::new(nightly_etl_example());
        cmd.env_remove("SHEAF_CONF").env_remove("SHEAF_BIN");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.args(args).output().expect("run the example");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}\n{}", cluster.log_tails());
        // The first line says where the rows went; the rest is the table read back.
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (first, rest) = stdout.split_once('\n').unwrap_or_default();
        (first.to_string(), rest.to_string())
    };
    let local_out = cluster.dir().join("etl-out");
    let (_, want) = run(
        &[],
        &[
            format!("{}/", sales.display()),
            format!("{}/", stores.display()),
            local_out.display().to_string(),
        ],
    );
    let apps_before = cluster.ok(&["yarn", "app", "list"]);
    let bin = std::path::Path::new(common::mini_dfs::bin());
    let (written, got) = run(
        &[("SHEAF_CONF", &cluster.dfs.conf), ("SHEAF_BIN", bin)],
        &[
            "sheaf:///etl/sales/".into(),
            "sheaf:///etl/stores/".into(),
            "sheaf:///etl/out/".into(),
        ],
    );
    assert!(
        written.contains("rows written to sheaf:///etl/out/"),
        "{written}"
    );
    assert_eq!(got, want, "the cluster's rows differ from the local run's");
    assert!(
        want.contains("north") && want.contains("2026-11-29"),
        "{want}"
    );
    // The output is committed in the DFS, partitioned by date.
    let listing = cluster.ok(&["dfs", "ls", "/etl/out"]);
    assert!(
        listing.contains("_SUCCESS") && listing.contains("sale_date=2026-12-01"),
        "{listing}"
    );
    // The actions ran as a SQL session of their own on the cluster.
    let apps = cluster.ok(&["yarn", "app", "list"]);
    let sessions = |text: &str| text.matches("SQL sheaf-sql").count();
    assert_eq!(sessions(&apps), sessions(&apps_before) + 1, "{apps}");
}
