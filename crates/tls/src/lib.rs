//! TLS for every Flotilla endpoint that crosses a network: rustls with the *ring* provider
//! (no OpenSSL, nothing but the C compiler to build).
//!
//! - [`ServerTls`]: the server's certificate chain and key (`flotilla server --tls-cert FILE
//!   --tls-key FILE`, PEM), checked when loaded, with a message naming the file for every way it
//!   can be wrong.
//! - [`ClientTls`]: whom agents, the CLI and replicas calling each other trust: a CA file
//!   (`--ca-file`, `FLOTILLA_CA_FILE`, `AWS_CA_BUNDLE`), else the system's roots.
//! - [`listen`]: the rule that keeps plain HTTP on loopback unless the operator says otherwise
//!   (pure).
//! - [`dev`]: the local CA and server certificate `flotilla dev --tls` generates once into its
//!   data directory (keys 0600).
//! - [`incoming`]: TLS handshakes off the accept loop, so a slow or silent client never holds up
//!   the next connection.
//!
//! What this is not: client certificates (agents prove who they are with SigV4, not mTLS), or
//! TLS for the load balancer data plane (`flotilla-lb`), whose listeners are plain HTTP/TCP as
//! an ALB's or NLB's HTTP/TCP listeners are.

pub mod client;
pub mod dev;
pub mod incoming;
pub mod listen;
pub mod server;

pub use client::ClientTls;
pub use server::ServerTls;
pub use {rustls, tokio_rustls};

use std::path::PathBuf;
use std::sync::Arc;

/// The crypto provider every configuration here is built with: *ring*, named explicitly so a
/// second provider compiled in by another crate can never make the choice ambiguous.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What went wrong with a certificate, a key or a CA file: each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading the {what} {}: {source}", path.display())]
    Read {
        /// What the file was meant to be ("TLS certificate", "TLS private key", "CA file").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written (the generated CA and certificate).
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error("the {what} {} holds no PEM certificate (expected one or more -----BEGIN CERTIFICATE----- blocks)", path.display())]
    NoCertificate {
        /// "TLS certificate" or "CA file".
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file holds no PEM private key.
    #[error("the TLS private key {} holds no PEM private key (expected -----BEGIN PRIVATE KEY-----, -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The file's PEM is damaged.
    #[error("the {what} {} is not valid PEM: {reason}", path.display())]
    BadPem {
        /// What the file was meant to be.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's words.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("the TLS private key {} does not belong to the certificate {} (its public key is another one)", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate or key (an unsupported key type, a malformed
    /// certificate).
    #[error("the TLS certificate {} and key {} cannot be used: {reason}", cert.display(), key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' words.
        reason: String,
    },
    /// A CA certificate could not be used as a trust anchor.
    #[error("the CA file {} holds a certificate that cannot be trusted as a CA: {reason}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No CA file was given and the system has no root certificates.
    #[error("no CA file was given and the system has no root certificates to verify the server with ({reason}): give --ca-file FILE (or FLOTILLA_CA_FILE / AWS_CA_BUNDLE)")]
    NoSystemRoots {
        /// What loading them said.
        reason: String,
    },
    /// Generating the local CA or certificate failed.
    #[error("generating the local TLS certificate: {0}")]
    Generate(String),
}
