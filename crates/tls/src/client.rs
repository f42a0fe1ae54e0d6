//! The clients' side: whom an agent, the CLI or a replica calling another trusts when it opens
//! an `https://` (or `wss://`) URL. Either the certificates of one CA file (as the aws CLI's
//! `--ca-bundle` replaces its bundle, the file alone is trusted), or the system's roots
//! (`rustls-native-certs`: `/etc/ssl/certs`, `SSL_CERT_FILE`, `SSL_CERT_DIR`).
//!
//! The server is verified as rustls verifies it (webpki: the chain up to a trusted root, the
//! name or IP address of the URL in the certificate, validity dates). No client certificate is
//! sent: who calls is proven by SigV4.

use crate::server::{certificates, read};
use crate::TlsError;
use rustls::{ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the trusted roots came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// A CA file.
    CaFile(PathBuf),
    /// The system's root certificates.
    System,
    /// None: every server is refused ([`ClientTls::trust_nothing`]).
    Nothing,
}

/// A client's TLS configuration.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    roots: Roots,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA file when one is given, else the system's roots.
    pub fn load(ca_file: Option<&Path>) -> Result<Self, TlsError> {
        match ca_file {
            Some(path) => Self::from_ca_pem(&read(path, "CA file")?, path),
            None => Self::system(),
        }
    }

    /// Trusts the certificates of a PEM text (`path` only names it in errors).
    pub fn from_ca_pem(pem: &[u8], path: &Path) -> Result<Self, TlsError> {
        let mut store = RootCertStore::empty();
        for cert in certificates(pem, path, "CA file")? {
            store.add(cert).map_err(|e| TlsError::BadCa {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        Self::with_roots(store, Roots::CaFile(path.to_path_buf()))
    }

    /// Trusts the system's root certificates; an error when there are none.
    pub fn system() -> Result<Self, TlsError> {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let reason = if found.errors.is_empty() {
                "none found".to_string()
            } else {
                found
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(TlsError::NoSystemRoots { reason });
        }
        Self::with_roots(store, Roots::System)
    }

    /// Trusts no server: for a client none of whose URLs is `https://`, so that a TLS
    /// connection it was never meant to make fails rather than trusting anyone.
    pub fn trust_nothing() -> Result<Self, TlsError> {
        Self::with_roots(RootCertStore::empty(), Roots::Nothing)
    }

    fn with_roots(store: RootCertStore, roots: Roots) -> Result<Self, TlsError> {
        let path = match &roots {
            Roots::CaFile(p) => p.clone(),
            Roots::System => PathBuf::from("(system roots)"),
            Roots::Nothing => PathBuf::from("(no roots)"),
        };
        // No ALPN: hyper-rustls sets its own, and every other client speaks HTTP/1.1 anyway.
        let config = ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::BadCa {
                path,
                reason: e.to_string(),
            })?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
            roots,
        })
    }

    /// The rustls configuration (for reqwest's `use_preconfigured_tls`, tokio-tungstenite's
    /// `Connector::Rustls`, hyper-rustls).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// Where the roots came from.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }
}

/// Whether any of `urls` is `https://` or `wss://` (a client then needs a [`ClientTls`]).
pub fn any_tls<'a>(urls: impl IntoIterator<Item = &'a str>) -> bool {
    urls.into_iter().any(|u| {
        let u = u.trim().to_ascii_lowercase();
        u.starts_with("https://") || u.starts_with("wss://")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::tests::issue;

    #[test]
    fn a_ca_file_is_trusted_alone_and_a_wrong_one_is_named() {
        let (_, _, ca) = issue(&["localhost"]);
        let tls = ClientTls::from_ca_pem(ca.as_bytes(), Path::new("/x/ca.pem")).unwrap();
        assert_eq!(tls.roots(), &Roots::CaFile(PathBuf::from("/x/ca.pem")));
        let e = ClientTls::from_ca_pem(b"not pem", Path::new("/x/ca.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CA file /x/ca.pem holds no PEM certificate"),
            "{e}"
        );
        let e = ClientTls::load(Some(Path::new("/nonexistent/ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("reading the CA file /nonexistent/ca.pem"),
            "{e}"
        );
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = ClientTls::from_ca_pem(garbage.as_bytes(), Path::new("/x/ca.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be trusted as a CA"), "{e}");
    }

    #[test]
    fn https_and_wss_urls_need_tls() {
        assert!(any_tls(["http://a:1", "HTTPS://b"]));
        assert!(any_tls(["wss://a/x"]));
        assert!(!any_tls(["http://a:1", "ws://b"]));
        assert!(!any_tls([]));
    }
}
