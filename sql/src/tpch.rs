//! TPC-H for tests and `sheaf bench tpch`: the eight tables generated with the `tpchgen` crate
//! (dbgen's data, byte for byte), the 22 queries with the specification's validation parameters
//! substituted, and the DDL that registers the tables.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;
use tpchgen::csv::{
    CustomerCsv, LineItemCsv, NationCsv, OrderCsv, PartCsv, PartSuppCsv, RegionCsv, SupplierCsv,
};
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

/// The tables with their column definitions (TPC-H specification §1.4).
pub const TABLES: [(&str, &str); 8] = [
    ("nation", "n_nationkey BIGINT, n_name VARCHAR, n_regionkey BIGINT, n_comment VARCHAR"),
    ("region", "r_regionkey BIGINT, r_name VARCHAR, r_comment VARCHAR"),
    ("part", "p_partkey BIGINT, p_name VARCHAR, p_mfgr VARCHAR, p_brand VARCHAR, p_type VARCHAR, p_size INT, p_container VARCHAR, p_retailprice DECIMAL(15,2), p_comment VARCHAR"),
    ("supplier", "s_suppkey BIGINT, s_name VARCHAR, s_address VARCHAR, s_nationkey BIGINT, s_phone VARCHAR, s_acctbal DECIMAL(15,2), s_comment VARCHAR"),
    ("partsupp", "ps_partkey BIGINT, ps_suppkey BIGINT, ps_availqty INT, ps_supplycost DECIMAL(15,2), ps_comment VARCHAR"),
    ("customer", "c_custkey BIGINT, c_name VARCHAR, c_address VARCHAR, c_nationkey BIGINT, c_phone VARCHAR, c_acctbal DECIMAL(15,2), c_mktsegment VARCHAR, c_comment VARCHAR"),
    ("orders", "o_orderkey BIGINT, o_custkey BIGINT, o_orderstatus VARCHAR, o_totalprice DECIMAL(15,2), o_orderdate DATE, o_orderpriority VARCHAR, o_clerk VARCHAR, o_shippriority INT, o_comment VARCHAR"),
    ("lineitem", "l_orderkey BIGINT, l_partkey BIGINT, l_suppkey BIGINT, l_linenumber INT, l_quantity DECIMAL(15,2), l_extendedprice DECIMAL(15,2), l_discount DECIMAL(15,2), l_tax DECIMAL(15,2), l_returnflag VARCHAR, l_linestatus VARCHAR, l_shipdate DATE, l_commitdate DATE, l_receiptdate DATE, l_shipinstruct VARCHAR, l_shipmode VARCHAR, l_comment VARCHAR"),
];

/// Writes every table at `scale` as CSV with a header, `parts` files per table, into
/// `<dir>/<table>/part-<i>.csv`.
pub fn generate_csv(dir: &Path, scale: f64, parts: i32) -> std::io::Result<()> {
    let parts = parts.max(1);
    for (table, _) in TABLES {
        let table_dir = dir.join(table);
        std::fs::create_dir_all(&table_dir)?;
        // The two tiny tables are one file: dbgen does not split them.
        let n = if matches!(table, "nation" | "region") {
            1
        } else {
            parts
        };
        for part in 1..=n {
            let file = std::fs::File::create(table_dir.join(format!("part-{part}.csv")))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            write_part(&mut out, table, scale, part, n)?;
            out.flush()?;
        }
    }
    Ok(())
}

fn write_part(
    out: &mut impl Write,
    table: &str,
    sf: f64,
    part: i32,
    n: i32,
) -> std::io::Result<()> {
    macro_rules! rows {
        ($gen:expr, $csv:ident) => {{
            writeln!(out, "{}", $csv::header())?;
            for row in $gen.iter() {
                writeln!(out, "{}", $csv::new(row))?;
            }
        }};
    }
    match table {
        "nation" => rows!(NationGenerator::new(sf, part, n), NationCsv),
        "region" => rows!(RegionGenerator::new(sf, part, n), RegionCsv),
        "part" => rows!(PartGenerator::new(sf, part, n), PartCsv),
        "supplier" => rows!(SupplierGenerator::new(sf, part, n), SupplierCsv),
        "partsupp" => rows!(PartSuppGenerator::new(sf, part, n), PartSuppCsv),
        "customer" => rows!(CustomerGenerator::new(sf, part, n), CustomerCsv),
        "orders" => rows!(OrderGenerator::new(sf, part, n), OrderCsv),
        "lineitem" => rows!(LineItemGenerator::new(sf, part, n), LineItemCsv),
        other => {
            return Err(std::io::Error::other(format!(
                "unknown TPC-H table {other}"
            )));
        }
    }
    Ok(())
}

/// `CREATE EXTERNAL TABLE` statements for CSV tables under `location` (`…/<table>/`), named
/// `<prefix><table>`.
pub fn csv_ddl(location: &str, prefix: &str) -> Vec<String> {
    TABLES
        .iter()
        .map(|(table, columns)| {
            format!(
                "CREATE EXTERNAL TABLE {prefix}{table} ({columns}) STORED AS CSV LOCATION '{}/{table}/' OPTIONS ('format.has_header' 'true')",
                location.trim_end_matches('/')
            )
        })
        .collect()
}

/// `CREATE EXTERNAL TABLE` statements for Parquet tables under `location`.
pub fn parquet_ddl(location: &str) -> Vec<String> {
    TABLES
        .iter()
        .map(|(table, _)| {
            format!(
                "CREATE EXTERNAL TABLE {table} STORED AS PARQUET LOCATION '{}/{table}/'",
                location.trim_end_matches('/')
            )
        })
        .collect()
}

/// The validation parameters of each query (TPC-H specification §2.4, "Validation").
fn parameters(query: usize) -> &'static [&'static str] {
    match query {
        1 => &["90"],
        2 => &["15", "BRASS", "EUROPE"],
        3 => &["BUILDING", "1995-03-15"],
        4 => &["1993-07-01"],
        5 => &["ASIA", "1994-01-01"],
        6 => &["1994-01-01", "0.06", "24"],
        7 => &["FRANCE", "GERMANY"],
        8 => &["BRAZIL", "AMERICA", "ECONOMY ANODIZED STEEL"],
        9 => &["green"],
        10 => &["1993-10-01"],
        11 => &["GERMANY", "0.0001"],
        12 => &["MAIL", "SHIP", "1994-01-01"],
        13 => &["special", "requests"],
        14 => &["1995-09-01"],
        15 => &["1996-01-01"],
        16 => &[
            "Brand#45",
            "MEDIUM POLISHED",
            "49",
            "14",
            "23",
            "45",
            "19",
            "3",
            "36",
            "9",
        ],
        17 => &["Brand#23", "MED BOX"],
        18 => &["300"],
        19 => &["Brand#12", "Brand#23", "Brand#34", "1", "10", "20"],
        20 => &["forest", "1994-01-01", "CANADA"],
        21 => &["SAUDI ARABIA"],
        22 => &["13", "31", "23", "29", "30", "18", "17"],
        _ => &[],
    }
}

/// Query `n` (1..=22) as statements ready to run; the statement whose rows are the answer is the
/// one [`answer_statement`] names (Q15 creates and drops a view around its select).
pub fn query(n: usize) -> Option<Vec<String>> {
    let text = tpchgen::q_and_a::queries::query(n as i32)?;
    let params = parameters(n);
    let mut sql = text.replace("revenue:s", "revenue0");
    // dbgen's `interval ':1' day (3)` (a precision) is not SQL every parser takes.
    sql = sql.replace("day (3)", "day");
    // Longest placeholder first, so `:10` is not read as `:1` followed by `0`.
    for i in (1..=params.len()).rev() {
        sql = sql.replace(&format!(":{i}"), params[i - 1]);
    }
    Some(
        crate::script::split_statements(&sql)
            .into_iter()
            .map(|s| s.text)
            .collect(),
    )
}

/// Which statement of [`query`]`(n)` returns the answer.
pub fn answer_statement(n: usize) -> usize {
    if n == 15 {
        1
    } else {
        0
    }
}

/// A canonical text of result rows for comparing two runs: every row rendered, rows sorted (ties in
/// an ORDER BY may come in any order), floats rounded to 2 decimals.
pub fn canonical_rows(batches: &[datafusion::arrow::array::RecordBatch]) -> String {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for r in 0..batch.num_rows() {
            let mut line = String::new();
            for (i, f) in formatters.iter().enumerate() {
                if i > 0 {
                    line.push('|');
                }
                let cell = f.value(r).to_string();
                match cell.parse::<f64>() {
                    Ok(v) if cell.contains('.') || cell.contains('e') => {
                        let _ = write!(line, "{v:.2}");
                    }
                    _ => line.push_str(&cell),
                }
            }
            rows.push(line);
        }
    }
    rows.sort();
    rows.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_has_its_parameters_substituted() {
        for n in 1..=22 {
            let statements = query(n).unwrap();
            assert!(!statements.is_empty());
            for s in &statements {
                let placeholder = s
                    .char_indices()
                    .any(|(i, c)| c == ':' && s[i + 1..].starts_with(|d: char| d.is_ascii_digit()));
                assert!(!placeholder, "Q{n} still has a placeholder: {s}");
            }
        }
        assert_eq!(query(15).unwrap().len(), 3);
        assert!(query(16).unwrap()[0].contains("(49, 14, 23, 45, 19, 3, 36, 9)"));
    }

    #[test]
    fn generated_csv_has_a_header_and_the_spec_row_counts() {
        let dir = tempfile::tempdir().unwrap();
        generate_csv(dir.path(), 0.001, 2).unwrap();
        let lines = |t: &str| -> usize {
            std::fs::read_dir(dir.path().join(t))
                .unwrap()
                .map(|e| {
                    std::fs::read_to_string(e.unwrap().path())
                        .unwrap()
                        .lines()
                        .count()
                        - 1
                })
                .sum()
        };
        assert_eq!(lines("nation"), 25);
        assert_eq!(lines("region"), 5);
        assert_eq!(lines("supplier"), 10);
        assert_eq!(lines("customer"), 150);
        assert_eq!(lines("orders"), 1500);
    }
}
