//! Cluster TLS: the CA that `sheaf format` creates and the mutual-TLS configurations every
//! endpoint is built from.
//!
//! A TLS directory holds `ca.pem` (+ `ca-key.pem` where certificates are issued) and one
//! certificate/key pair per role: `daemon.pem`/`daemon-key.pem` for NameNode, DataNodes and the
//! other daemons, `user.pem`/`user-key.pem` for the CLI. Every certificate carries the DNS name
//! [`CLUSTER_SERVER_NAME`]; peers are authenticated by the CA signature, not by IP address,
//! so the same certificates work on any loopback address or host.

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

    /// Issues a certificate for `common_name` (e.g. "daemon", "user") valid for the cluster name.
    pub fn issue(&self, common_name: &str) -> Result<(String, String), RpcError> {
        let key = KeyPair::generate().map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        let mut params = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_string()])
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes the CA and a certificate per role (`daemon`, `user`) into `dir`, keys mode 0600.
    /// Refuses to overwrite an existing CA: a new CA would lock out every existing certificate.
    pub fn create_dir(cluster: &str, dir: &Path) -> Result<(), RpcError> {
        if dir.join("ca.pem").exists() {
            return Err(material(
                &dir.join("ca.pem"),
                "already exists (the cluster is already formatted)",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| material(dir, e))?;
        let ca = ClusterCa::generate(cluster)?;
        write_file(&dir.join("ca.pem"), &ca.cert_pem, false)?;
        write_file(
            &dir.join("ca-key.pem"),
            &ca.issuer.key().serialize_pem(),
            true,
        )?;
        for role in ["daemon", "user"] {
            let (cert, key) = ca.issue(role)?;
            write_file(&dir.join(format!("{role}.pem")), &cert, false)?;
            write_file(&dir.join(format!("{role}-key.pem")), &key, true)?;
        }
        Ok(())
    }
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
