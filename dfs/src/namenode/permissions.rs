//! HDFS permissions: who may do what to an inode, checked on every client operation.
//!
//! The rules are HDFS's (`FSPermissionChecker`): the owner's, group's or others' bits apply,
//! in that order, never more than one class; every ancestor directory needs `x` (traverse);
//! creating, deleting or renaming needs `w` on the parent; a sticky parent (`/tmp`) lets only
//! the owner of the entry or of the parent delete or rename it; the superuser and members of
//! the supergroup pass every check. The caller is whoever the verified certificate names.

use crate::namenode::namespace::Inode;
use crate::protocol::NamenodeError;

/// The sticky bit (`/tmp`'s `t`).
pub const STICKY: u16 = 0o1000;

/// The principal a request comes from, as the permission checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User name.
    pub user: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// Passes every check (the superuser, the supergroup, a cluster daemon).
    pub superuser: bool,
}

impl Caller {
    /// A caller with no privileges beyond its name and groups.
    pub fn user(user: &str, groups: &[&str]) -> Caller {
        Caller {
            user: user.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            superuser: false,
        }
    }

    /// The superuser.
    pub fn superuser(user: &str) -> Caller {
        Caller {
            user: user.to_string(),
            groups: Vec::new(),
            superuser: true,
        }
    }

    /// Whether the caller belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// An access a check asks for (rwx bits of one class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access(u16);

impl Access {
    /// `r--`.
    pub const READ: Access = Access(0o4);
    /// `-w-`.
    pub const WRITE: Access = Access(0o2);
    /// `--x`.
    pub const EXECUTE: Access = Access(0o1);
    /// `r-x` (list a directory's subtree).
    pub const READ_EXECUTE: Access = Access(0o5);
    /// `-wx` (change a directory's entries: HDFS needs traverse on it as well).
    pub const WRITE_EXECUTE: Access = Access(0o3);
    /// `rwx` (delete a directory's subtree).
    pub const ALL: Access = Access(0o7);

    /// Hadoop's name for the access, as its error messages show it.
    fn name(self) -> &'static str {
        match self.0 {
            0o4 => "READ",
            0o2 => "WRITE",
            0o1 => "EXECUTE",
            0o5 => "READ_EXECUTE",
            0o3 => "WRITE_EXECUTE",
            _ => "ALL",
        }
    }
}

/// `-rw-r--r--` / `drwxr-xr-x` / `drwxrwxrwt`, as `ls` and HDFS's errors print modes.
pub fn mode_string(is_dir: bool, mode: u16) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        if shift == 0 && mode & STICKY != 0 {
            s.push(if x { 't' } else { 'T' });
        } else {
            s.push(if x { 'x' } else { '-' });
        }
    }
    s
}

/// HDFS's denial: `Permission denied: user=bob, access=READ, inode="/x":alice:alice:-rw-------`.
pub fn denied(caller: &Caller, access: Access, path: &str, inode: &Inode) -> NamenodeError {
    NamenodeError::PermissionDenied(format!(
        "user={}, access={}, inode=\"{path}\":{}:{}:{}",
        caller.user,
        access.name(),
        inode.owner,
        inode.group,
        mode_string(inode.is_dir(), inode.mode)
    ))
}

/// Whether `caller` has `access` on `inode` by its mode bits (one class: owner, else group,
/// else others — an owner without a bit is refused even if others have it, as in HDFS).
pub fn permits(caller: &Caller, inode: &Inode, access: Access) -> bool {
    if caller.superuser {
        return true;
    }
    let class = if inode.owner == caller.user {
        (inode.mode >> 6) & 0o7
    } else if caller.in_group(&inode.group) {
        (inode.mode >> 3) & 0o7
    } else {
        inode.mode & 0o7
    };
    class & access.0 == access.0
}

/// Checks `access` on `inode` at `path`.
pub fn check(
    caller: &Caller,
    path: &str,
    inode: &Inode,
    access: Access,
) -> Result<(), NamenodeError> {
    if permits(caller, inode, access) {
        Ok(())
    } else {
        Err(denied(caller, access, path, inode))
    }
}

/// Checks traverse (`x`) on every directory of `ancestors` (path, inode), root first.
pub fn check_traverse(caller: &Caller, ancestors: &[(String, Inode)]) -> Result<(), NamenodeError> {
    for (path, inode) in ancestors {
        if inode.is_dir() {
            check(caller, path, inode, Access::EXECUTE)?;
        }
    }
    Ok(())
}

/// The sticky-bit rule for removing or renaming `child` out of `parent`: a sticky parent
/// allows it only to the child's owner, the parent's owner and the superuser.
pub fn check_sticky(
    caller: &Caller,
    parent: &Inode,
    child_path: &str,
    child: &Inode,
) -> Result<(), NamenodeError> {
    if caller.superuser
        || parent.mode & STICKY == 0
        || child.owner == caller.user
        || parent.owner == caller.user
    {
        return Ok(());
    }
    Err(NamenodeError::PermissionDenied(format!(
        "user={} is not the owner of inode={child_path} (its parent is sticky)",
        caller.user
    )))
}

/// Who may change an inode's mode: its owner and the superuser.
pub fn check_owner(caller: &Caller, path: &str, inode: &Inode) -> Result<(), NamenodeError> {
    if caller.superuser || inode.owner == caller.user {
        return Ok(());
    }
    Err(NamenodeError::PermissionDenied(format!(
        "user={} is not the owner of inode={path}",
        caller.user
    )))
}

/// Who may change an inode's owner or group (HDFS's `setOwner`): only the superuser changes
/// the owner; the owner may change the group to one it belongs to.
pub fn check_set_owner(
    caller: &Caller,
    path: &str,
    inode: &Inode,
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(), NamenodeError> {
    if caller.superuser {
        return Ok(());
    }
    if owner.is_some_and(|o| o != inode.owner) {
        return Err(NamenodeError::PermissionDenied(format!(
            "user={}: only the superuser may change the owner of {path}",
            caller.user
        )));
    }
    check_owner(caller, path, inode)?;
    if let Some(g) = group {
        if !caller.in_group(g) {
            return Err(NamenodeError::PermissionDenied(format!(
                "user={} does not belong to {g}",
                caller.user
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(owner: &str, group: &str, mode: u16, dir: bool) -> Inode {
        Inode {
            id: 2,
            parent: 1,
            name: "x".into(),
            owner: owner.into(),
            group: group.into(),
            mode,
            mtime_ms: 0,
            atime_ms: 0,
            file: (!dir).then(|| crate::namenode::namespace::FileData {
                replication: 1,
                block_size: 1,
                blocks: vec![],
                under_construction: None,
            }),
        }
    }

    #[test]
    fn one_class_applies_owner_then_group_then_others() {
        let alice = Caller::user("alice", &["alice", "staff"]);
        let bob = Caller::user("bob", &["bob", "staff"]);
        let eve = Caller::user("eve", &["eve"]);
        let f = inode("alice", "staff", 0o640, false);
        assert!(permits(&alice, &f, Access::READ) && permits(&alice, &f, Access::WRITE));
        assert!(permits(&bob, &f, Access::READ) && !permits(&bob, &f, Access::WRITE));
        assert!(!permits(&eve, &f, Access::READ));
        // An owner without the bit is refused even though others have it.
        let odd = inode("alice", "staff", 0o047, false);
        assert!(!permits(&alice, &odd, Access::READ));
        assert!(permits(&eve, &odd, Access::ALL));
        assert!(permits(
            &Caller::superuser("root"),
            &inode("alice", "alice", 0, false),
            Access::ALL
        ));
    }

    #[test]
    fn denials_read_like_hdfs() {
        let bob = Caller::user("bob", &["bob"]);
        let f = inode("alice", "alice", 0o600, false);
        let e = check(&bob, "/user/alice/secret", &f, Access::READ).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Permission denied: user=bob, access=READ, inode=\"/user/alice/secret\":alice:alice:-rw-------"
        );
        assert_eq!(mode_string(true, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(true, 0o1770), "drwxrwx--T");
    }

    #[test]
    fn sticky_parents_protect_other_users_entries() {
        let tmp = inode("root", "supergroup", 0o1777, true);
        let bobs = inode("bob", "bob", 0o644, false);
        assert!(check_sticky(&Caller::user("alice", &[]), &tmp, "/tmp/b", &bobs).is_err());
        assert!(check_sticky(&Caller::user("bob", &[]), &tmp, "/tmp/b", &bobs).is_ok());
        let open = inode("root", "supergroup", 0o777, true);
        assert!(check_sticky(&Caller::user("alice", &[]), &open, "/tmp/b", &bobs).is_ok());
    }

    #[test]
    fn only_the_superuser_gives_files_away() {
        let alice = Caller::user("alice", &["alice", "staff"]);
        let f = inode("alice", "alice", 0o644, false);
        assert!(check_set_owner(&alice, "/f", &f, Some("bob"), None).is_err());
        assert!(check_set_owner(&alice, "/f", &f, None, Some("staff")).is_ok());
        assert!(check_set_owner(&alice, "/f", &f, None, Some("wheel")).is_err());
        assert!(
            check_set_owner(&Caller::superuser("root"), "/f", &f, Some("bob"), Some("x")).is_ok()
        );
    }
}
