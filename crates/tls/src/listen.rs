//! Which transport a listener may use: TLS anywhere, plain HTTP only on a loopback address
//! unless the operator passes [`INSECURE_HTTP_FLAG`]. Pure: an address and two flags in, a
//! [`Transport`] or a refusal out.
//!
//! Why: every request body (secret values, task role credentials, container environments)
//! crosses the wire as it is; SigV4 proves who signed a request but hides nothing in it. On
//! 127.0.0.1 nothing leaves the machine; anywhere else that is the operator's explicit choice.

use std::net::{IpAddr, SocketAddr};

/// The flag that allows plain HTTP on an address other than loopback.
pub const INSECURE_HTTP_FLAG: &str = "--insecure-http";

/// How the listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS (a certificate was given or generated).
    Tls,
    /// Plain HTTP on a loopback address: nothing leaves the machine.
    PlainLoopback,
    /// Plain HTTP on another address, because the operator passed [`INSECURE_HTTP_FLAG`].
    PlainInsecure,
}

impl Transport {
    /// The URL scheme clients use: `https` or `http`.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Tls => "https",
            Transport::PlainLoopback | Transport::PlainInsecure => "http",
        }
    }

    /// Whether it is TLS.
    pub fn is_tls(self) -> bool {
        self == Transport::Tls
    }
}

/// Plain HTTP on an address that is not loopback, without [`INSECURE_HTTP_FLAG`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to serve plain HTTP on {addr}, which is not a loopback address: requests and answers \
     (secret values, task credentials) would cross the network in clear. Give a certificate with \
     --tls-cert FILE --tls-key FILE (or `flotilla dev --tls`), listen on 127.0.0.1, or pass \
     {INSECURE_HTTP_FLAG} to serve plain HTTP there anyway"
)]
pub struct PlainRefused {
    /// The address asked for.
    pub addr: SocketAddr,
}

/// Whether `ip` is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The transport of a listener on `addr`, with TLS or not, given [`INSECURE_HTTP_FLAG`] or not.
pub fn decide(addr: SocketAddr, tls: bool, insecure_http: bool) -> Result<Transport, PlainRefused> {
    if tls {
        Ok(Transport::Tls)
    } else if is_loopback(addr.ip()) {
        Ok(Transport::PlainLoopback)
    } else if insecure_http {
        Ok(Transport::PlainInsecure)
    } else {
        Err(PlainRefused { addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn plain_http_is_allowed_on_loopback_only_unless_the_operator_says_so() {
        for a in [
            "127.0.0.1:8080",
            "127.9.8.7:1",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert_eq!(
                decide(addr(a), false, false),
                Ok(Transport::PlainLoopback),
                "{a}"
            );
        }
        for a in [
            "0.0.0.0:8080",
            "10.77.0.11:8080",
            "[::]:8080",
            "192.168.1.2:443",
        ] {
            let err = decide(addr(a), false, false).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(INSECURE_HTTP_FLAG), "{text}");
            assert!(text.contains("--tls-cert"), "{text}");
            assert!(
                text.contains(a.trim_start_matches('[').split(']').next().unwrap()),
                "{text}"
            );
            assert_eq!(decide(addr(a), false, true), Ok(Transport::PlainInsecure));
            assert_eq!(decide(addr(a), true, false), Ok(Transport::Tls));
        }
        assert_eq!(Transport::Tls.scheme(), "https");
        assert_eq!(Transport::PlainInsecure.scheme(), "http");
    }

    proptest! {
        #[test]
        fn tls_is_always_allowed_and_plain_only_on_loopback_or_when_allowed(
            octets in any::<[u8; 4]>(), port in any::<u16>(), insecure in any::<bool>()
        ) {
            let a = SocketAddr::from((octets, port));
            prop_assert_eq!(decide(a, true, insecure), Ok(Transport::Tls));
            match decide(a, false, insecure) {
                Ok(Transport::PlainLoopback) => prop_assert_eq!(octets[0], 127),
                Ok(Transport::PlainInsecure) => prop_assert!(insecure && octets[0] != 127),
                Ok(Transport::Tls) => prop_assert!(false, "TLS without a certificate"),
                Err(e) => {
                    prop_assert!(!insecure && octets[0] != 127);
                    prop_assert_eq!(e.addr, a);
                }
            }
        }
    }
}
