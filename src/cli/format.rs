//! How the CLI shows DFS metadata, in Hadoop's formats: `ls` lines, permissions, sizes, times
//! and `stat` formats. Pure functions; `sheaf dfs`, `fsck`, `dfsadmin` and `sheaf job` use them.

use sheaf_dfs::protocol::{FileKind, FileStatus};

/// The `ls` lines for `entries`, columns padded to the widest value like Hadoop.
pub fn listing_lines(entries: &[FileStatus], human: bool, atime: bool) -> Vec<String> {
    let repl = |s: &FileStatus| {
        if s.kind == FileKind::Directory {
            "-".to_string()
        } else {
            s.replication.to_string()
        }
    };
    let size = |s: &FileStatus| {
        if human {
            human_size(s.len)
        } else {
            s.len.to_string()
        }
    };
    let w_repl = entries
        .iter()
        .map(|s| repl(s).len())
        .max()
        .unwrap_or(1)
        .max(3);
    let w_owner = entries.iter().map(|s| s.owner.len()).max().unwrap_or(0);
    let w_group = entries.iter().map(|s| s.group.len()).max().unwrap_or(0);
    let w_size = entries.iter().map(|s| size(s).len()).max().unwrap_or(0);
    entries
        .iter()
        .map(|s| {
            format!(
                "{} {:>w_repl$} {:<w_owner$} {:<w_group$} {:>w_size$} {} {}",
                permissions(s),
                repl(s),
                s.owner,
                s.group,
                size(s),
                local_time(if atime { s.atime_ms } else { s.mtime_ms }, false),
                s.path
            )
        })
        .collect()
}

/// `drwxr-xr-x` / `-rw-r--r--`.
pub fn permissions(s: &FileStatus) -> String {
    let mut out = String::with_capacity(10);
    out.push(if s.kind == FileKind::Directory {
        'd'
    } else {
        '-'
    });
    for shift in [6u16, 3, 0] {
        let bits = (s.mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

/// Hadoop's human-readable sizes: `16`, `1.5 K`, `128 M`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return n.to_string();
    }
    let mut unit = 0;
    let mut value = n as f64 / 1024.0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let shift = 10 * (unit as u32 + 1);
    if n & ((1u64 << shift) - 1) == 0 {
        format!("{} {}", n >> shift, UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `yyyy-MM-dd HH:mm` (or with `:ss`) in local time.
pub fn local_time(ms: u64, seconds: bool) -> String {
    let secs = (ms / 1000) as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; a zeroed tm is a valid initial value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return "1970-01-01 00:00".into();
    }
    let base = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    );
    if seconds {
        format!("{base}:{:02}", tm.tm_sec)
    } else {
        base
    }
}

/// `yyyy-MM-dd HH:mm:ss` in UTC (Hadoop's `stat %y`).
pub fn utc_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Hadoop's `stat` format: `%a %A %b %F %g %n %o %r %u %y %Y` (and `\n`, `\t`).
pub fn format_stat(format: &str, s: &FileStatus) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
            continue;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('a') => out.push_str(&format!("{:o}", s.mode)),
            Some('A') => out.push_str(&permissions(s)),
            Some('b') => out.push_str(&s.len.to_string()),
            Some('F') => out.push_str(if s.kind == FileKind::Directory {
                "directory"
            } else {
                "regular file"
            }),
            Some('g') => out.push_str(&s.group),
            Some('n') => out.push_str(sheaf_dfs::path::file_name(&s.path)),
            Some('o') => out.push_str(&s.block_size.to_string()),
            Some('r') => out.push_str(&s.replication.to_string()),
            Some('u') => out.push_str(&s.owner),
            Some('y') => out.push_str(&utc_time(s.mtime_ms)),
            Some('Y') => out.push_str(&s.mtime_ms.to_string()),
            Some('x') => out.push_str(&utc_time(s.atime_ms)),
            Some('X') => out.push_str(&s.atime_ms.to_string()),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: FileKind, len: u64) -> FileStatus {
        FileStatus {
            path: "/d/f".into(),
            kind,
            len,
            replication: if kind == FileKind::File { 3 } else { 0 },
            block_size: 1 << 20,
            mtime_ms: 1_700_000_000_000,
            atime_ms: 0,
            owner: "alice".into(),
            group: "supergroup".into(),
            mode: if kind == FileKind::File { 0o644 } else { 0o755 },
        }
    }

    #[test]
    fn ls_lines_have_hadoop_columns() {
        let lines = listing_lines(
            &[status(FileKind::Directory, 0), status(FileKind::File, 1234)],
            false,
            false,
        );
        assert!(
            lines[0].starts_with("drwxr-xr-x   - alice supergroup    0 "),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("-rw-r--r--   3 alice supergroup 1234 "),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(" /d/f"));
    }

    #[test]
    fn human_sizes_like_hadoop() {
        assert_eq!(human_size(16), "16");
        assert_eq!(human_size(1536), "1.5 K");
        assert_eq!(human_size(128 << 20), "128 M");
    }

    #[test]
    fn stat_formats() {
        let s = status(FileKind::File, 42);
        assert_eq!(
            format_stat("%b %F %g %n %o %r %u", &s),
            "42 regular file supergroup f 1048576 3 alice"
        );
        assert_eq!(format_stat("%Y", &s), "1700000000000");
        assert_eq!(format_stat("%y", &s), "2023-11-14 22:13:20");
    }
}
