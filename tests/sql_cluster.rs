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
    let distributed = cluster.ok(&["sql", "--format", "csv", "-f", script]);
    let (local, distributed) = (per_query(&local), per_query(&distributed));
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
    let mut cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET + 1));
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
    cluster.kill_nodemanager(victim);
    cluster.kill_containers_of(victim);
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
        let n = |word: &str| -> usize {
            let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
            words
                .iter()
                .position(|w| *w == word)
                .and_then(|i| words[i - 1].parse().ok())
                .unwrap_or(0)
        };
        tasks += n("tasks");
        attempts += n("attempts");
    }
    assert!(tasks > 0, "no stage figures: {stderr}");
    assert!(
        attempts > tasks,
        "nothing ran again ({attempts} attempts for {tasks} tasks): {stderr}"
    );
}
