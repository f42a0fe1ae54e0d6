//! The server's side: a certificate chain and its private key, PEM, turned into a rustls
//! [`ServerConfig`]. [`ServerTls::from_pem`] is pure (bytes in); [`ServerTls::load`] reads the
//! two files. Every failure is a [`TlsError`] naming the file: unreadable, no certificate, no
//! key, damaged PEM, or a key that is not the certificate's.
//!
//! The server speaks HTTP/1.1 only (ALPN `http/1.1`): the AWS CLI, the SDKs and WebSocket
//! clients (agent sessions, ECS Exec) all use it.

use crate::TlsError;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The server's TLS configuration.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    cert_path: PathBuf,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ServerTls")
            .field("cert", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// Reads `path`, naming it as `what` when it cannot be read.
pub(crate) fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM text, in order; an error when there is none or one is damaged.
pub(crate) fn certificates(
    pem: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

impl ServerTls {
    /// Reads the certificate chain (the server's certificate first, then any intermediates)
    /// and its private key (PKCS#8, PKCS#1 or SEC1), both PEM.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = read(cert, "TLS certificate")?;
        let key_pem = read(key, "TLS private key")?;
        Self::from_pem(&cert_pem, cert, &key_pem, key)
    }

    /// The configuration of a chain and key given as PEM text; the paths only name them in
    /// errors.
    pub fn from_pem(
        cert_pem: &[u8],
        cert_path: &Path,
        key_pem: &[u8],
        key_path: &Path,
    ) -> Result<Self, TlsError> {
        let chain = certificates(cert_pem, cert_path, "TLS certificate")?;
        let key = match PrivateKeyDer::from_pem_slice(key_pem) {
            Ok(k) => k,
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                return Err(TlsError::NoPrivateKey {
                    path: key_path.to_path_buf(),
                })
            }
            Err(e) => {
                return Err(TlsError::BadPem {
                    what: "TLS private key",
                    path: key_path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
        let mut config = ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rejected {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    TlsError::KeyMismatch {
                        cert: cert_path.to_path_buf(),
                        key: key_path.to_path_buf(),
                    }
                }
                other => TlsError::Rejected {
                    cert: cert_path.to_path_buf(),
                    key: key_path.to_path_buf(),
                    reason: other.to_string(),
                },
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            cert_path: cert_path.to_path_buf(),
        })
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::tests::issue;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let (cert, key, _) = issue(&["localhost"]);
        let tls =
            ServerTls::from_pem(cert.as_bytes(), &p("c.pem"), key.as_bytes(), &p("k.pem")).unwrap();
        assert_eq!(tls.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(!format!("{tls:?}").contains("PRIVATE"));
    }

    #[test]
    fn every_wrong_file_is_named_with_what_is_wrong() {
        let (cert, key, _) = issue(&["localhost"]);
        let (_, other_key, _) = issue(&["localhost"]);
        let err = |c: &str, k: &str| {
            ServerTls::from_pem(
                c.as_bytes(),
                &p("/etc/c.pem"),
                k.as_bytes(),
                &p("/etc/k.pem"),
            )
            .unwrap_err()
            .to_string()
        };
        let e = err("", &key);
        assert!(e.contains("/etc/c.pem holds no PEM certificate"), "{e}");
        let e = err(&key, &key);
        assert!(e.contains("/etc/c.pem holds no PEM certificate"), "{e}");
        let e = err(&cert, &cert);
        assert!(e.contains("/etc/k.pem holds no PEM private key"), "{e}");
        let e = err(&cert, "hello");
        assert!(e.contains("/etc/k.pem holds no PEM private key"), "{e}");
        let e = err(&cert, &other_key);
        assert!(
            e.contains("/etc/k.pem does not belong to the certificate /etc/c.pem"),
            "{e}"
        );
        let damaged = cert.replace("-----END CERTIFICATE-----", "");
        let e = err(&damaged, &key);
        assert!(e.contains("/etc/c.pem is not valid PEM"), "{e}");
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = err(garbage, &key);
        assert!(e.contains("cannot be used"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = ServerTls::load(&dir.path().join("nope.pem"), &dir.path().join("k.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("reading the TLS certificate "), "{e}");
        assert!(e.contains("nope.pem"), "{e}");
    }
}
