//! The clap arguments of every `sheaf dfs` command.

/// `put`.
#[derive(clap::Args)]
pub struct PutArgs {
    /// Overwrite existing files.
    #[arg(short = 'f')]
    pub(super) force: bool,
    /// Local sources (`-` for stdin) then the DFS destination.
    #[arg(required = true, num_args = 2..)]
    pub(super) paths: Vec<String>,
}

/// `get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// Overwrite existing local files.
    #[arg(short = 'f')]
    pub(super) force: bool,
    /// DFS sources then the local destination.
    #[arg(required = true, num_args = 2..)]
    pub(super) paths: Vec<String>,
}

/// Commands taking only paths.
#[derive(clap::Args)]
pub struct PathsArgs {
    /// DFS paths.
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}

/// `ls`.
#[derive(clap::Args)]
pub struct LsArgs {
    /// Recurse into subdirectories.
    #[arg(short = 'R')]
    pub(super) recursive: bool,
    /// Human-readable sizes (1.5 K, 128 M).
    #[arg(short = 'h')]
    pub(super) human: bool,
    /// Directories are listed as plain files, not their contents.
    #[arg(short = 'd')]
    pub(super) directories: bool,
    /// Sort by modification time, most recent first.
    #[arg(short = 't')]
    pub(super) by_time: bool,
    /// Sort by size, largest first.
    #[arg(short = 'S')]
    pub(super) by_size: bool,
    /// Reverse the order.
    #[arg(short = 'r')]
    pub(super) reverse: bool,
    /// Access time instead of modification time (shown, and sorted by with `-t`).
    #[arg(short = 'u')]
    pub(super) atime: bool,
    /// Paths only.
    #[arg(short = 'C')]
    pub(super) paths_only: bool,
    /// `?` for non-printable characters in names.
    #[arg(short = 'q')]
    pub(super) quote: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub(super) help: Option<bool>,
    /// DFS paths (default `/`).
    pub(super) paths: Vec<String>,
}

/// `mkdir`.
#[derive(clap::Args)]
pub struct MkdirArgs {
    /// Create parents as needed; no error if the directory exists.
    #[arg(short = 'p')]
    pub(super) parents: bool,
    /// Directories to create.
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}

/// `rm`.
#[derive(clap::Args)]
pub struct RmArgs {
    /// Delete directories and their contents.
    #[arg(short = 'r', short_alias = 'R')]
    pub(super) recursive: bool,
    /// No error for missing paths.
    #[arg(short = 'f')]
    pub(super) force: bool,
    /// Delete at once instead of moving to the trash (Hadoop's `-skipTrash`).
    #[arg(long = "skip-trash")]
    pub(super) skip_trash: bool,
    /// Paths to delete.
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}

/// `mv`.
#[derive(clap::Args)]
pub struct MvArgs {
    /// Sources then the destination.
    #[arg(required = true, num_args = 2..)]
    pub(super) paths: Vec<String>,
}

/// `cp`.
#[derive(clap::Args)]
pub struct CpArgs {
    /// Overwrite the destination.
    #[arg(short = 'f')]
    pub(super) force: bool,
    /// Sources then the destination.
    #[arg(required = true, num_args = 2..)]
    pub(super) paths: Vec<String>,
}

/// `stat`.
#[derive(clap::Args)]
pub struct StatArgs {
    /// `[FORMAT] PATH…`: a first argument with `%` is the format (default `%y`).
    #[arg(required = true)]
    pub(super) args: Vec<String>,
}

/// `du`.
#[derive(clap::Args)]
pub struct DuArgs {
    /// One summary line per argument.
    #[arg(short = 's')]
    pub(super) summary: bool,
    /// Human-readable sizes.
    #[arg(short = 'h')]
    pub(super) human: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub(super) help: Option<bool>,
    /// DFS paths (default `/`).
    pub(super) paths: Vec<String>,
}

/// `df`.
#[derive(clap::Args)]
pub struct DfArgs {
    /// Human-readable sizes.
    #[arg(short = 'h')]
    pub(super) human: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub(super) help: Option<bool>,
    /// A path naming the cluster (default `/`).
    pub(super) paths: Vec<String>,
}

/// `setrep`.
#[derive(clap::Args)]
pub struct SetrepArgs {
    /// Wait until every block has the new replication.
    #[arg(short = 'w')]
    pub(super) wait: bool,
    /// The new replication.
    pub(super) replication: u16,
    /// Files or directories (recursively).
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}

/// `test`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(false)))]
pub struct TestArgs {
    /// The path exists.
    #[arg(short = 'e', group = "what")]
    pub(super) exists: bool,
    /// The path is a directory.
    #[arg(short = 'd', group = "what")]
    pub(super) dir: bool,
    /// The path is a file.
    #[arg(short = 'f', group = "what")]
    pub(super) file: bool,
    /// The path is a non-empty file.
    #[arg(short = 's', group = "what")]
    pub(super) non_empty: bool,
    /// The path is a zero-length file.
    #[arg(short = 'z', group = "what")]
    pub(super) zero: bool,
    /// The path to test.
    pub(super) path: String,
}

/// `count`.
#[derive(clap::Args)]
pub struct CountArgs {
    /// Quota columns too (`none`/`inf`: Sheaf has no quotas yet).
    #[arg(short = 'q')]
    pub(super) quotas: bool,
    /// Human-readable sizes.
    #[arg(short = 'h')]
    pub(super) human: bool,
    /// A header line.
    #[arg(short = 'v')]
    pub(super) header: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub(super) help: Option<bool>,
    /// DFS paths.
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}

/// `rmdir`.
#[derive(clap::Args)]
pub struct RmdirArgs {
    /// A directory that is not empty is left alone without an error.
    #[arg(long = "ignore-fail-on-non-empty")]
    pub(super) ignore_non_empty: bool,
    /// Directories to delete (they must be empty).
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}

/// `getmerge`.
#[derive(clap::Args)]
pub struct GetmergeArgs {
    /// A newline after each file.
    #[arg(long = "nl")]
    pub(super) newline: bool,
    /// Empty files add nothing (not even the `-nl` newline).
    #[arg(long = "skip-empty-file")]
    pub(super) skip_empty: bool,
    /// DFS sources (files, or directories whose files are merged in name order), then the
    /// local destination file.
    #[arg(required = true, num_args = 2..)]
    pub(super) paths: Vec<String>,
}

/// `find`.
#[derive(clap::Args)]
pub struct FindArgs {
    /// Paths whose file name matches this glob (Hadoop's `-name`).
    #[arg(long)]
    pub(super) name: Option<String>,
    /// Like `-name`, ignoring case (Hadoop's `-iname`).
    #[arg(long)]
    pub(super) iname: Option<String>,
    /// Print each match on a line (the default; Hadoop's `-print`).
    #[arg(long)]
    pub(super) print: bool,
    /// Print each match followed by a NUL (Hadoop's `-print0`).
    #[arg(long)]
    pub(super) print0: bool,
    /// Where to look (default: the home directory, Hadoop's working directory).
    pub(super) paths: Vec<String>,
}

/// `expunge`.
#[derive(clap::Args)]
pub struct ExpungeArgs {
    /// Delete everything in the trash now, not only checkpoints older than the interval
    /// (Hadoop's `-immediate`).
    #[arg(long)]
    pub(super) immediate: bool,
}

/// `head`.
#[derive(clap::Args)]
pub struct HeadArgs {
    /// The file.
    pub(super) path: String,
}

/// `tail`.
#[derive(clap::Args)]
pub struct TailArgs {
    /// Keep printing data appended (polls once a second).
    #[arg(short = 'f')]
    pub(super) follow: bool,
    /// The file.
    pub(super) path: String,
}

/// `chmod`.
#[derive(clap::Args)]
pub struct ChmodArgs {
    /// Apply to every entry under each directory too.
    #[arg(short = 'R')]
    pub(super) recursive: bool,
    /// Octal (`640`, `1777`) or symbolic (`u+x,go-w`, `a=rX`, `+t`).
    pub(super) mode: String,
    /// Paths (globs allowed).
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}

/// `chown`.
#[derive(clap::Args)]
pub struct ChownArgs {
    /// Apply to every entry under each directory too.
    #[arg(short = 'R')]
    pub(super) recursive: bool,
    /// `OWNER`, `OWNER:GROUP` or `:GROUP`.
    pub(super) owner: String,
    /// Paths (globs allowed).
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}

/// `chgrp`.
#[derive(clap::Args)]
pub struct ChgrpArgs {
    /// Apply to every entry under each directory too.
    #[arg(short = 'R')]
    pub(super) recursive: bool,
    /// The new group.
    pub(super) group: String,
    /// Paths (globs allowed).
    #[arg(required = true)]
    pub(super) paths: Vec<String>,
}
