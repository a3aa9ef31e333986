//! Who a peer is, read from its verified certificate: Sheaf's answer to a Kerberos principal.
//!
//! The cluster CA writes the identity into the certificate's subject: the name in the common
//! name (CN), the role in the organization (O: `user` or `daemon`) and the groups, comma-separated,
//! in the organizational unit (OU). A server reads it from the certificate the TLS handshake already
//! verified against the cluster CA, so no request needs to say who sent it and none is believed
//! when it does.

use crate::RpcError;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

/// The group whose members are superusers (HDFS's `dfs.permissions.superusergroup` default).
pub const SUPERGROUP: &str = "supergroup";

/// The OS user running this process: `$USER`, else `$LOGNAME`, else `root` (empty values
/// count as unset). The admin identity `sheaf format` makes is named after it.
pub fn os_user() -> String {
    os_user_from(|name| std::env::var(name).ok())
}

/// [`os_user`] over any environment.
pub fn os_user_from(var: impl Fn(&str) -> Option<String>) -> String {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|name| var(name).filter(|v| !v.is_empty()))
        .next()
        .unwrap_or_else(|| "root".to_string())
}

/// What kind of principal a certificate was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A person or a job's owner: may use the DFS and submit applications, within permissions.
    User,
    /// A cluster daemon (NameNode, DataNode, ResourceManager, NodeManager): may register,
    /// heartbeat and report, and acts for the cluster itself.
    Daemon,
}

impl Role {
    /// The subject's O value for this role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Daemon => "daemon",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "daemon" => Some(Role::Daemon),
            _ => None,
        }
    }
}

/// A principal: its name, groups and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The user (or daemon) name, e.g. `alice` or `datanode`.
    pub name: String,
    /// Groups the user belongs to, the primary one first (HDFS gives new files the parent's
    /// group, so the order only matters for display).
    pub groups: Vec<String>,
    /// What the certificate was issued for.
    pub role: Role,
}

impl Identity {
    /// A user identity.
    pub fn user(name: &str, groups: &[&str]) -> Identity {
        Identity {
            name: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            role: Role::User,
        }
    }

    /// A daemon identity.
    pub fn daemon(name: &str) -> Identity {
        Identity {
            name: name.to_string(),
            groups: Vec::new(),
            role: Role::Daemon,
        }
    }

    /// Whether the identity is a superuser: a cluster daemon or a member of the supergroup.
    pub fn is_superuser(&self) -> bool {
        self.role == Role::Daemon || self.in_group(SUPERGROUP)
    }

    /// Whether the identity belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Reads the identity from a certificate's subject.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Result<Identity, RpcError> {
        let bad = |why: &str| RpcError::Identity(why.to_string());
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| bad(&format!("unreadable certificate: {e}")))?;
        let subject = parsed.subject();
        let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| {
            attr.as_str()
                .map(str::to_string)
                .map_err(|_| bad("a subject field is not text"))
        };
        let name = match subject.iter_common_name().next() {
            Some(cn) => text(cn)?,
            None => return Err(bad("the certificate names no one (no CN)")),
        };
        let role = match subject.iter_organization().next() {
            Some(o) => {
                let o = text(o)?;
                Role::parse(&o).ok_or_else(|| bad(&format!("unknown role '{o}'")))?
            }
            None => return Err(bad("the certificate has no role (no O)")),
        };
        let mut groups = Vec::new();
        for ou in subject.iter_organizational_unit() {
            groups.extend(
                text(ou)?
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_string),
            );
        }
        if name.is_empty() {
            return Err(bad("the certificate's name is empty"));
        }
        Ok(Identity { name, groups, role })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.role {
            Role::User => write!(f, "user {}", self.name),
            Role::Daemon => write!(f, "daemon {}", self.name),
        }
    }
}

/// Whether `name` can be a user or group name: what HDFS and POSIX accept, without anything a
/// shell or a path would read specially.
pub fn valid_principal_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with(['-', '.'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterCa;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_os_user_comes_from_user_then_logname_then_root() {
        assert_eq!(
            os_user_from(env(&[("USER", "alice"), ("LOGNAME", "bob")])),
            "alice"
        );
        assert_eq!(
            os_user_from(env(&[("USER", ""), ("LOGNAME", "bob")])),
            "bob"
        );
        assert_eq!(os_user_from(env(&[("USER", "")])), "root");
    }

    #[test]
    fn an_issued_certificate_carries_name_role_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        ClusterCa::create_dir("t", dir.path()).unwrap();
        let ca = ClusterCa::load(dir.path()).unwrap();
        let alice = Identity::user("alice", &["alice", "analysts"]);
        let out = dir.path().join("alice");
        ca.write_identity(&out, "user", &alice).unwrap();
        let loaded = crate::TlsIdentity::load(&out, "user").unwrap();
        assert_eq!(loaded.identity().unwrap(), alice);
        let daemon = crate::TlsIdentity::load(dir.path(), "daemon").unwrap();
        assert_eq!(daemon.identity().unwrap().role, Role::Daemon);
        let admin = crate::TlsIdentity::load(dir.path(), "user")
            .unwrap()
            .identity()
            .unwrap();
        assert!(
            admin.is_superuser() && admin.role == Role::User,
            "{admin:?}"
        );
        assert!(!alice.is_superuser());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&out), 0o700);
            assert_eq!(mode(&out.join("user-key.pem")), 0o600);
            assert_eq!(mode(&dir.path().join("ca-key.pem")), 0o600);
        }
    }

    #[test]
    fn names_a_shell_or_a_path_would_read_specially_are_refused() {
        assert!(valid_principal_name("alice") && valid_principal_name("svc_etl-2"));
        for bad in ["", "-x", ".x", "a/b", "a b", "a:b"] {
            assert!(!valid_principal_name(bad), "{bad}");
        }
    }
}
