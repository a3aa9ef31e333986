//! The Hadoop shell as scripts spell it: `sheaf dfs -ls /` is `sheaf dfs ls /`, `sheaf fs …` is
//! `sheaf dfs …` (`hadoop fs`), and Hadoop's generic options (GenericOptionsParser) come before
//! the verb: `-D key=value`, `-fs sheaf://host:port`, `-conf FILE`. The command line is rewritten
//! into Sheaf's spelling before clap parses it; the generic options are returned separately.
//!
//! `-D` takes Sheaf's own keys as `section.key` (`-D dfs.block-size=1048576`, the `[dfs]
//! block-size` of `config/sheaf.toml`) and Hadoop's names for the keys Sheaf has
//! (`dfs.blocksize`, `dfs.replication`, `fs.permissions.umask-mode`, `fs.defaultFS`, …).

use sheaf_dfs::uri::DfsUri;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Hadoop's single-dash long flags of the verbs → clap's spelling.
const LONG_FLAGS: &[(&str, &str)] = &[
    ("-skipTrash", "--skip-trash"),
    ("-immediate", "--immediate"),
    ("-nl", "--nl"),
    ("-skip-empty-file", "--skip-empty-file"),
    ("-name", "--name"),
    ("-iname", "--iname"),
    ("-print", "--print"),
    ("-print0", "--print0"),
];

/// The sections of `sheaf.toml` a `-D section.key` may set.
const SECTIONS: &[&str] = &[
    "cluster",
    "namenode",
    "datanode",
    "dfs",
    "resourcemanager",
    "nodemanager",
    "yarn",
];

/// How a Hadoop key's value becomes Sheaf's.
#[derive(Clone, Copy)]
enum Unit {
    /// As written.
    Same,
    /// Hadoop's size syntax (`128m`) → bytes.
    Size,
    /// Minutes → milliseconds.
    Minutes,
}

/// Hadoop's name of a key → Sheaf's (section, key) and how its value converts.
const HADOOP_KEYS: &[(&str, &str, &str, Unit)] = &[
    ("dfs.blocksize", "dfs", "block-size", Unit::Size),
    ("dfs.block.size", "dfs", "block-size", Unit::Size),
    ("dfs.replication", "dfs", "replication", Unit::Same),
    ("fs.permissions.umask-mode", "dfs", "umask", Unit::Same),
    ("dfs.umaskmode", "dfs", "umask", Unit::Same),
    (
        "dfs.client-write-packet-size",
        "dfs",
        "packet-size",
        Unit::Size,
    ),
    (
        "fs.trash.interval",
        "dfs",
        "trash-interval-ms",
        Unit::Minutes,
    ),
];

/// One `-D`: a configuration key to set, or the default file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Define {
    /// `[section] key = value`.
    Key {
        /// The `sheaf.toml` section.
        section: String,
        /// The key in it.
        key: String,
        /// The value, as written (sizes converted to bytes).
        value: String,
    },
    /// `fs.defaultFS`: the NameNode to use.
    DefaultFs(SocketAddr),
}

/// The generic options found before the verb.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GenericOptions {
    /// `-D key=value`, in order.
    pub defines: Vec<Define>,
    /// `-conf FILE`.
    pub conf: Option<PathBuf>,
}

/// Rewrites `argv` of `sheaf [--conf F] [--identity D] dfs|fs [generic options] -verb …` into
/// `sheaf … dfs verb …`; `is_verb` says which names are `sheaf dfs` verbs. Other commands
/// pass through untouched.
pub fn rewrite(
    mut argv: Vec<OsString>,
    is_verb: impl Fn(&str) -> bool,
) -> Result<(Vec<OsString>, GenericOptions), String> {
    let mut options = GenericOptions::default();
    // Skip the program name and the global flags before the command.
    let mut i = 1;
    while let Some(arg) = argv.get(i).and_then(|a| a.to_str()) {
        if arg == "--conf" || arg == "--identity" {
            i += 2;
        } else if arg.starts_with("--conf=") || arg.starts_with("--identity=") {
            i += 1;
        } else {
            break;
        }
    }
    match argv.get(i).and_then(|a| a.to_str()) {
        Some("dfs") => {}
        Some("fs") => argv[i] = "dfs".into(),
        _ => return Ok((argv, options)),
    }
    let verb_at = i + 1;
    while let Some(arg) = argv
        .get(verb_at)
        .and_then(|a| a.to_str())
        .map(str::to_string)
    {
        let value = |argv: &Vec<OsString>| -> Result<String, String> {
            argv.get(verb_at + 1)
                .and_then(|a| a.to_str())
                .map(str::to_string)
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        let (taken, define) = match arg.as_str() {
            "-D" => (2, Some(value(&argv)?)),
            d if d.starts_with("-D") && d.len() > 2 => (1, Some(d[2..].to_string())),
            "-fs" => {
                let fs = value(&argv)?;
                options.defines.push(Define::DefaultFs(default_fs(&fs)?));
                (2, None)
            }
            "-conf" => {
                options.conf = Some(PathBuf::from(value(&argv)?));
                (2, None)
            }
            "-jt" | "-files" | "-libjars" | "-archives" | "-tokenCacheFile" => {
                return Err(format!(
                    "{arg} is a generic option of MapReduce jobs, not of the DFS shell"
                ))
            }
            _ => break,
        };
        if let Some(d) = define {
            options.defines.push(parse_define(&d)?);
        }
        argv.drain(verb_at..verb_at + taken);
    }
    for arg in argv.iter_mut().skip(verb_at + 1) {
        if let Some((_, long)) = LONG_FLAGS.iter().find(|(h, _)| arg.to_str() == Some(h)) {
            *arg = long.into();
        }
    }
    if let Some(verb) = argv.get(verb_at).and_then(|a| a.to_str()) {
        let bare = verb.strip_prefix('-').unwrap_or(verb);
        let bare = match bare {
            // Hadoop's `-help [verb]` and `-usage [verb]`: clap's help of the verb.
            "help" | "usage" => "help",
            b => b,
        };
        if verb.starts_with('-') && !verb.starts_with("--") && (bare == "help" || is_verb(bare)) {
            argv[verb_at] = bare.into();
        }
    }
    Ok((argv, options))
}

/// Parses `key=value` of a `-D`.
pub fn parse_define(text: &str) -> Result<Define, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("-D {text}: expected KEY=VALUE"))?;
    let (key, value) = (key.trim(), value.trim());
    if matches!(key, "fs.defaultFS" | "fs.default.name") {
        return Ok(Define::DefaultFs(default_fs(value)?));
    }
    if let Some((_, section, sheaf_key, unit)) = HADOOP_KEYS.iter().find(|(k, ..)| *k == key) {
        let value = match unit {
            Unit::Same => value.to_string(),
            Unit::Size => parse_size(value).ok_or_else(|| {
                format!("-D {key}={value}: not a size (bytes, or with a k/m/g/t suffix)")
            })?,
            Unit::Minutes => value
                .parse::<f64>()
                .ok()
                .filter(|m| *m >= 0.0)
                .map(|m| ((m * 60_000.0) as u64).to_string())
                .ok_or_else(|| format!("-D {key}={value}: not a number of minutes"))?,
        };
        return Ok(Define::Key {
            section: section.to_string(),
            key: sheaf_key.to_string(),
            value,
        });
    }
    match key.split_once('.') {
        Some((section, k)) if SECTIONS.contains(&section) && !k.is_empty() => Ok(Define::Key {
            section: section.to_string(),
            key: k.to_string(),
            value: value.to_string(),
        }),
        _ => Err(format!(
            "-D {key}: not a configuration key Sheaf knows (use SECTION.KEY of config/sheaf.toml, e.g. dfs.block-size, or one of Hadoop's fs.defaultFS, {})",
            HADOOP_KEYS
                .iter()
                .map(|(k, ..)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The NameNode of `-fs sheaf://host:port` (or `fs.defaultFS`).
fn default_fs(uri: &str) -> Result<SocketAddr, String> {
    let parsed = DfsUri::parse(uri).map_err(|e| format!("-fs {uri}: {e}"))?;
    match (parsed.namenode, uri.starts_with("sheaf://")) {
        (Some(addr), true) => Ok(addr),
        _ => Err(format!(
            "-fs {uri}: expected sheaf://HOST:PORT (the NameNode's address)"
        )),
    }
}

/// Hadoop's size syntax: bytes, or a number with a binary suffix (`k`, `m`, `g`, `t`, `p`).
fn parse_size(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let (digits, shift) = match lower.char_indices().last()? {
        (i, 'k') => (&lower[..i], 10),
        (i, 'm') => (&lower[..i], 20),
        (i, 'g') => (&lower[..i], 30),
        (i, 't') => (&lower[..i], 40),
        (i, 'p') => (&lower[..i], 50),
        _ => (lower.as_str(), 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift).map(|b| b.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn verbs(v: &str) -> bool {
        ["ls", "put", "cat", "rm"].contains(&v)
    }

    fn rewritten(s: &str) -> (String, GenericOptions) {
        let (argv, o) = rewrite(args(s), verbs).unwrap();
        let joined: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into()).collect();
        (joined.join(" "), o)
    }

    #[test]
    fn dash_verbs_and_the_fs_alias_become_sheaf_verbs() {
        assert_eq!(rewritten("sheaf dfs -ls /").0, "sheaf dfs ls /");
        assert_eq!(rewritten("sheaf fs -cat /a").0, "sheaf dfs cat /a");
        assert_eq!(rewritten("sheaf fs ls -R /").0, "sheaf dfs ls -R /");
        assert_eq!(
            rewritten("sheaf --conf c.toml dfs -rm -r /x").0,
            "sheaf --conf c.toml dfs rm -r /x"
        );
        assert_eq!(rewritten("sheaf dfs -help put").0, "sheaf dfs help put");
        assert_eq!(rewritten("sheaf dfs -usage").0, "sheaf dfs help");
        // Not a verb: left for clap to refuse with its own message.
        assert_eq!(rewritten("sheaf dfs -nosuch /").0, "sheaf dfs -nosuch /");
        // Other commands are untouched, their flags included.
        assert_eq!(rewritten("sheaf sql -e x").0, "sheaf sql -e x");
        assert_eq!(rewritten("sheaf job run -D a=b").0, "sheaf job run -D a=b");
    }

    #[test]
    fn generic_options_before_the_verb_are_taken_out() {
        let (argv, o) = rewritten(
            "sheaf dfs -D dfs.replication=2 -Ddfs.blocksize=2m -conf /etc/s.toml -fs sheaf://127.0.0.1:9000 -put a /b",
        );
        assert_eq!(argv, "sheaf dfs put a /b");
        assert_eq!(o.conf, Some(PathBuf::from("/etc/s.toml")));
        assert_eq!(
            o.defines,
            vec![
                Define::Key {
                    section: "dfs".into(),
                    key: "replication".into(),
                    value: "2".into()
                },
                Define::Key {
                    section: "dfs".into(),
                    key: "block-size".into(),
                    value: (2u64 << 20).to_string()
                },
                Define::DefaultFs("127.0.0.1:9000".parse().unwrap()),
            ]
        );
        // After the verb, `-D` is the verb's business.
        assert_eq!(rewritten("sheaf dfs -ls -D x").0, "sheaf dfs ls -D x");
        // Hadoop's single-dash long flags of the verbs.
        assert_eq!(
            rewritten("sheaf dfs -rm -r -skipTrash /x").0,
            "sheaf dfs rm -r --skip-trash /x"
        );
        assert_eq!(
            rewritten("sheaf dfs -find / -iname x -print0").0,
            "sheaf dfs -find / --iname x --print0"
        );
        let (_, o) = rewritten("sheaf dfs -D fs.trash.interval=1.5 -expunge -immediate");
        assert_eq!(
            o.defines,
            vec![Define::Key {
                section: "dfs".into(),
                key: "trash-interval-ms".into(),
                value: "90000".into()
            }]
        );
    }

    #[test]
    fn bad_generic_options_are_clear_errors() {
        let err = |s: &str| rewrite(args(s), verbs).unwrap_err();
        assert!(err("sheaf dfs -D nokey -ls /").contains("expected KEY=VALUE"));
        assert!(err("sheaf dfs -D mapred.x=1 -ls /").contains("not a configuration key"));
        assert!(err("sheaf dfs -D dfs.blocksize=lots -ls /").contains("not a size"));
        assert!(err("sheaf dfs -fs hdfs://h:1 -ls /").contains("-fs hdfs://h:1"));
        assert!(err("sheaf dfs -fs /local -ls /").contains("expected sheaf://HOST:PORT"));
        assert!(err("sheaf dfs -conf").contains("-conf needs a value"));
        assert!(err("sheaf dfs -libjars x.jar -ls /").contains("MapReduce jobs"));
    }
}
