//! Cluster TLS: the CA that `sheaf format` creates and the mutual-TLS configurations every
//! endpoint is built from.
//!
//! A TLS directory holds `ca.pem` (+ `ca-key.pem` where certificates are issued) and one
//! certificate/key pair per identity: `daemon.pem`/`daemon-key.pem` for the daemons, and
//! `user.pem`/`user-key.pem` for the CLI — in the run dir, the admin (superuser) identity made
//! by `sheaf format`; in a directory made by `sheaf admin user add`, that user's. Each
//! certificate's subject carries its [`Identity`]; every certificate also carries the DNS name
//! [`CLUSTER_SERVER_NAME`], so peers are authenticated by the CA signature, not by IP address,
//! and the same certificates work on any loopback address or host.

use crate::identity::{os_user, Identity};
use crate::RpcError;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The server name every Sheaf certificate is issued for and every client verifies.
pub const CLUSTER_SERVER_NAME: &str = "sheaf.cluster";

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn material(path: &Path, reason: impl ToString) -> RpcError {
    RpcError::TlsMaterial {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn ca_params(cluster: &str) -> Result<CertificateParams, RpcError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Sheaf cluster CA ({cluster})"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

/// The cluster's certificate authority.
pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    /// Creates a fresh CA for the cluster named `cluster`.
    pub fn generate(cluster: &str) -> Result<ClusterCa, RpcError> {
        let key = KeyPair::generate().map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        let params = ca_params(cluster)?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA of a TLS directory (`ca.pem` and `ca-key.pem`) to issue certificates: only
    /// `sheaf format` and `sheaf admin` do this; no daemon holds the CA key.
    pub fn load(dir: &Path) -> Result<ClusterCa, RpcError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca-key.pem");
        let cert_pem =
            String::from_utf8(read_pem(&cert_path)?).map_err(|e| material(&cert_path, e))?;
        let key_pem =
            String::from_utf8(read_pem(&key_path)?).map_err(|e| material(&key_path, e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| material(&key_path, e))?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| material(&cert_path, e))?;
        Ok(ClusterCa { cert_pem, issuer })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `identity`, valid for the cluster name; returns (cert, key) PEM.
    pub fn issue(&self, identity: &Identity) -> Result<(String, String), RpcError> {
        let key = KeyPair::generate().map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        let mut params = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_string()])
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, identity.name.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, identity.role.as_str());
        // One OU, groups comma-separated: a distinguished name holds one value per type here.
        if !identity.groups.is_empty() {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, identity.groups.join(","));
        }
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes `identity`'s certificate and key as `<file>.pem`/`<file>-key.pem` (key 0600),
    /// with the CA certificate beside them, into `dir` (created 0700).
    pub fn write_identity(
        &self,
        dir: &Path,
        file: &str,
        identity: &Identity,
    ) -> Result<(), RpcError> {
        create_private_dir(dir)?;
        let ca = dir.join("ca.pem");
        if !ca.exists() {
            write_file(&ca, &self.cert_pem, false)?;
        }
        let (cert, key) = self.issue(identity)?;
        write_file(&dir.join(format!("{file}.pem")), &cert, false)?;
        write_file(&dir.join(format!("{file}-key.pem")), &key, true)?;
        Ok(())
    }

    /// Writes the CA, the daemons' identity and the admin identity (named after the OS user
    /// formatting the cluster, in the supergroup) into `dir`, keys mode 0600. Refuses to
    /// overwrite an existing CA: a new CA would lock out every existing certificate.
    pub fn create_dir(cluster: &str, dir: &Path) -> Result<(), RpcError> {
        if dir.join("ca.pem").exists() {
            return Err(material(
                &dir.join("ca.pem"),
                "already exists (the cluster is already formatted)",
            ));
        }
        create_private_dir(dir)?;
        let ca = ClusterCa::generate(cluster)?;
        write_file(&dir.join("ca.pem"), &ca.cert_pem, false)?;
        write_file(
            &dir.join("ca-key.pem"),
            &ca.issuer.key().serialize_pem(),
            true,
        )?;
        ca.write_identity(dir, "daemon", &Identity::daemon("sheaf"))?;
        let admin = os_user();
        ca.write_identity(
            dir,
            "user",
            &Identity::user(&admin, &[admin.as_str(), crate::identity::SUPERGROUP]),
        )?;
        Ok(())
    }
}

/// Creates `dir` (and parents) readable by its owner only: it holds private keys.
fn create_private_dir(dir: &Path) -> Result<(), RpcError> {
    std::fs::create_dir_all(dir).map_err(|e| material(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| material(dir, e))?;
    }
    Ok(())
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), RpcError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path).map_err(|e| material(path, e))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| material(path, e))?;
    f.sync_all().map_err(|e| material(path, e))?;
    Ok(())
}

/// A certificate chain, its private key and the cluster CA: everything one endpoint needs.
#[derive(Clone)]
pub struct TlsIdentity {
    certs: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    roots: Arc<RootCertStore>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, RpcError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => material(
            path,
            "not found (run `sheaf format`, or point tls_dir at the cluster's certificates)",
        ),
        _ => material(path, e),
    })
}

impl TlsIdentity {
    /// Loads role `role` (`daemon` or `user`) from a TLS directory made by [`ClusterCa::create_dir`].
    pub fn load(dir: &Path, role: &str) -> Result<TlsIdentity, RpcError> {
        Self::load_files(
            &dir.join("ca.pem"),
            &dir.join(format!("{role}.pem")),
            &dir.join(format!("{role}-key.pem")),
        )
    }

    /// Loads an identity from explicit files.
    pub fn load_files(ca: &Path, cert: &Path, key: &Path) -> Result<TlsIdentity, RpcError> {
        let mut roots = RootCertStore::empty();
        let ca_bytes = read_pem(ca)?;
        for c in rustls_pemfile::certs(&mut &ca_bytes[..]) {
            let c = c.map_err(|e| material(ca, e))?;
            roots.add(c).map_err(|e| material(ca, e))?;
        }
        if roots.is_empty() {
            return Err(material(ca, "holds no certificate"));
        }
        let cert_bytes = read_pem(cert)?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_bytes[..])
            .collect::<Result<_, _>>()
            .map_err(|e| material(cert, e))?;
        if certs.is_empty() {
            return Err(material(cert, "holds no certificate"));
        }
        let key_bytes = read_pem(key)?;
        let key_der = rustls_pemfile::private_key(&mut &key_bytes[..])
            .map_err(|e| material(key, e))?
            .ok_or_else(|| material(key, "holds no private key"))?;
        Ok(TlsIdentity {
            certs,
            key: Arc::new(key_der),
            roots: Arc::new(roots),
        })
    }

    /// The identity this certificate was issued for.
    pub fn identity(&self) -> Result<Identity, RpcError> {
        Identity::from_certificate(&self.certs[0])
    }

    /// A server config that requires a client certificate signed by the cluster CA.
    pub fn server_config(&self) -> Result<ServerConfig, RpcError> {
        let provider = crypto_provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()
                .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        cfg.alpn_protocols = vec![crate::alpn()];
        Ok(cfg)
    }

    /// A client config that presents our certificate and trusts only the cluster CA.
    pub fn client_config(&self) -> Result<ClientConfig, RpcError> {
        let mut cfg = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        cfg.alpn_protocols = vec![crate::alpn()];
        Ok(cfg)
    }

    /// A client config that trusts the cluster CA but presents NO certificate: what an outsider
    /// has. Exists so tests can prove such a client is refused.
    pub fn anonymous_client_config(&self) -> Result<ClientConfig, RpcError> {
        let mut cfg = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = vec![crate::alpn()];
        Ok(cfg)
    }
}

/// The default TLS directory of a pseudo-distributed cluster run dir.
pub fn tls_dir_in(run_dir: &Path) -> PathBuf {
    run_dir.join("tls")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_writes_loadable_identities_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        ClusterCa::create_dir("test", dir.path()).unwrap();
        let daemon = TlsIdentity::load(dir.path(), "daemon").unwrap();
        daemon.server_config().unwrap();
        daemon.client_config().unwrap();
        TlsIdentity::load(dir.path(), "user")
            .unwrap()
            .client_config()
            .unwrap();
        let again = ClusterCa::create_dir("test", dir.path());
        assert!(again.unwrap_err().to_string().contains("already exists"));
    }

    #[test]
    fn missing_material_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = TlsIdentity::load(dir.path(), "user")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ca.pem") && err.contains("sheaf format"),
            "{err}"
        );
    }
}
