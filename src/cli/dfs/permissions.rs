//! `chmod`, `chown` and `chgrp`, with Hadoop's argument forms (`-R`, octal or symbolic modes,
//! `OWNER[:GROUP]`). The NameNode decides who may: these only ask.

use super::args::{ChgrpArgs, ChmodArgs, ChownArgs};
use super::{connect_expanded, DfsUri};
use anyhow::{anyhow, bail};
use sheaf_dfs::client::DfsClient;
use sheaf_dfs::protocol::{FileKind, FileStatus};

/// A mode change: octal (`644`, `1777`) or symbolic (`u+x,go-w`, `a=rX`, `+t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ModeChange {
    /// Set these bits.
    Octal(u16),
    /// Apply these clauses in order.
    Symbolic(Vec<Clause>),
}

/// One symbolic clause: who, how, which bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Clause {
    who: u16,
    op: char,
    perms: String,
}

impl ModeChange {
    /// Parses Hadoop's `chmod` mode argument.
    pub(super) fn parse(s: &str) -> anyhow::Result<ModeChange> {
        if !s.is_empty() && s.chars().all(|c| c.is_digit(8)) {
            let mode = u16::from_str_radix(s, 8).map_err(|e| anyhow!("{s}: {e}"))?;
            if mode > 0o1777 {
                bail!("chmod: {s}: mode out of range (at most 1777)");
            }
            return Ok(ModeChange::Octal(mode));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let at = part.find(['+', '-', '=']).ok_or_else(|| {
                anyhow!("chmod: {s}: not an octal or symbolic mode (e.g. 644, u+x, go-w)")
            })?;
            let (who_s, rest) = part.split_at(at);
            let mut who = 0u16;
            for c in who_s.chars() {
                who |= match c {
                    'u' => 0o700,
                    'g' => 0o070,
                    'o' => 0o007,
                    'a' => 0o777,
                    _ => bail!("chmod: {s}: '{c}' is not one of u, g, o, a"),
                };
            }
            if who == 0 {
                who = 0o777;
            }
            let op = rest.chars().next().unwrap_or('+');
            let perms = rest[1..].to_string();
            if let Some(bad) = perms.chars().find(|c| !"rwxXt".contains(*c)) {
                bail!("chmod: {s}: '{bad}' is not one of r, w, x, X, t");
            }
            clauses.push(Clause { who, op, perms });
        }
        Ok(ModeChange::Symbolic(clauses))
    }

    /// The new mode of an entry whose mode is `mode`.
    pub(super) fn apply(&self, mode: u16, is_dir: bool) -> u16 {
        let clauses = match self {
            ModeChange::Octal(m) => return *m,
            ModeChange::Symbolic(c) => c,
        };
        let mut mode = mode;
        for clause in clauses {
            let mut bits = 0u16;
            let mut sticky = false;
            for p in clause.perms.chars() {
                match p {
                    'r' => bits |= 0o444,
                    'w' => bits |= 0o222,
                    'x' => bits |= 0o111,
                    // X: execute for directories, or where someone may execute already.
                    'X' if is_dir || mode & 0o111 != 0 => bits |= 0o111,
                    't' => sticky = true,
                    _ => {}
                }
            }
            bits &= clause.who;
            match clause.op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !clause.who) | bits,
            }
            if sticky {
                match clause.op {
                    '-' => mode &= !0o1000,
                    _ => mode |= 0o1000,
                }
            }
        }
        mode
    }
}

/// `OWNER[:GROUP]`, `:GROUP` or `OWNER:` as Hadoop's `chown` takes them.
pub(super) fn parse_owner(spec: &str) -> anyhow::Result<(Option<String>, Option<String>)> {
    let (owner, group) = match spec.split_once(':') {
        Some((o, g)) => (o, Some(g)),
        None => (spec, None),
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let (owner, group) = (some(owner), group.and_then(some));
    if owner.is_none() && group.is_none() {
        bail!("chown: '{spec}': give OWNER, OWNER:GROUP or :GROUP");
    }
    Ok((owner, group))
}

/// Every path under `root` (itself first), as `-R` visits them.
async fn visit(
    client: &DfsClient,
    root: &DfsUri,
    recursive: bool,
) -> anyhow::Result<Vec<FileStatus>> {
    let Some(top) = client.status(&root.path).await? else {
        bail!("{}: No such file or directory", root.path);
    };
    let mut out = vec![top];
    let mut i = 0;
    while recursive && i < out.len() {
        if out[i].kind == FileKind::Directory {
            let children = client.list(&out[i].path).await?;
            out.extend(children);
        }
        i += 1;
    }
    Ok(out)
}

/// `sheaf dfs chmod [-R] MODE PATH…`.
pub(super) async fn chmod(a: ChmodArgs) -> anyhow::Result<()> {
    let change = ModeChange::parse(&a.mode)?;
    let (client, paths) = connect_expanded(&a.paths).await?;
    for p in &paths {
        for entry in visit(&client, p, a.recursive).await? {
            let mode = change.apply(entry.mode, entry.kind == FileKind::Directory);
            client.set_permission(&entry.path, mode).await?;
        }
    }
    Ok(())
}

/// `sheaf dfs chown [-R] OWNER[:GROUP] PATH…`.
pub(super) async fn chown(a: ChownArgs) -> anyhow::Result<()> {
    let (owner, group) = parse_owner(&a.owner)?;
    let (client, paths) = connect_expanded(&a.paths).await?;
    for p in &paths {
        for entry in visit(&client, p, a.recursive).await? {
            client
                .set_owner(&entry.path, owner.as_deref(), group.as_deref())
                .await?;
        }
    }
    Ok(())
}

/// `sheaf dfs chgrp [-R] GROUP PATH…`.
pub(super) async fn chgrp(a: ChgrpArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_expanded(&a.paths).await?;
    for p in &paths {
        for entry in visit(&client, p, a.recursive).await? {
            client.set_owner(&entry.path, None, Some(&a.group)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic_modes_apply_as_in_hadoop() {
        assert_eq!(ModeChange::parse("600").unwrap().apply(0o755, false), 0o600);
        assert_eq!(
            ModeChange::parse("1777").unwrap().apply(0o755, true),
            0o1777
        );
        assert_eq!(
            ModeChange::parse("go-w").unwrap().apply(0o777, false),
            0o755
        );
        assert_eq!(
            ModeChange::parse("u+x,g=r").unwrap().apply(0o644, false),
            0o744
        );
        assert_eq!(ModeChange::parse("a=rX").unwrap().apply(0o600, true), 0o555);
        assert_eq!(
            ModeChange::parse("a=rX").unwrap().apply(0o600, false),
            0o444
        );
        assert_eq!(ModeChange::parse("+t").unwrap().apply(0o777, true), 0o1777);
        assert_eq!(ModeChange::parse("o-t").unwrap().apply(0o1777, true), 0o777);
        assert!(ModeChange::parse("9").is_err());
        assert!(ModeChange::parse("u+q").is_err());
        assert!(ModeChange::parse("z+r").is_err());
    }

    #[test]
    fn owner_specs_name_an_owner_a_group_or_both() {
        assert_eq!(parse_owner("alice").unwrap(), (Some("alice".into()), None));
        assert_eq!(
            parse_owner("alice:staff").unwrap(),
            (Some("alice".into()), Some("staff".into()))
        );
        assert_eq!(parse_owner(":staff").unwrap(), (None, Some("staff".into())));
        assert!(parse_owner(":").is_err());
    }
}
