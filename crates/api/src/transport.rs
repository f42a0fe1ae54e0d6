//! How this server is reached and how it reaches the other replicas: the scheme it serves
//! (`http` or `https`: what `DiscoverPollEndpoint` and `ExecuteCommand`'s `streamUrl` answer),
//! and the TLS trust of its calls to other replicas (Logs forwarding, metric queries, the Exec
//! relay), whose URLs (`replicas/ID` records) say `http://` or `https://` themselves.

use flotilla_tls::ClientTls;

/// This server's transport.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// Whether this server is served over TLS.
    pub tls: bool,
    /// Whom calls to other replicas trust (`None`: no replica is `https://`; should one be,
    /// the call fails, trusting no one).
    pub peers: Option<ClientTls>,
}

impl Transport {
    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// `wss` or `ws`.
    pub fn ws_scheme(&self) -> &'static str {
        if self.tls {
            "wss"
        } else {
            "ws"
        }
    }

    /// An HTTP client for calls to other replicas: TLS with [`Transport::peers`]' trust.
    pub fn http_client(&self) -> reqwest::Client {
        peer_client(self.peers.as_ref())
    }

    /// The connector of WebSockets to other replicas (the Exec relay): rustls with
    /// [`Transport::peers`]' trust (none: a `wss://` replica is refused, trusting no one; a
    /// `ws://` one is plain either way).
    pub fn ws_connector(&self) -> tokio_tungstenite::Connector {
        let tls = match &self.peers {
            Some(t) => Some(t.clone()),
            None => ClientTls::trust_nothing().ok(),
        };
        match tls {
            Some(t) => tokio_tungstenite::Connector::Rustls(t.config()),
            None => tokio_tungstenite::Connector::Plain,
        }
    }
}

/// An HTTP client whose `https://` calls trust `tls` (none: any `https://` call fails).
pub fn peer_client(tls: Option<&ClientTls>) -> reqwest::Client {
    let tls = match tls {
        Some(t) => Some(t.clone()),
        None => ClientTls::trust_nothing().ok(),
    };
    let builder = reqwest::Client::builder();
    let builder = match tls {
        Some(t) => builder.use_preconfigured_tls((*t.config()).clone()),
        None => builder,
    };
    match builder.build() {
        Ok(c) => c,
        Err(e) => {
            // Only if the TLS backend cannot start: calls to https:// replicas then fail.
            tracing::warn!(error = %e, "the client for other replicas has no TLS configuration");
            reqwest::Client::default()
        }
    }
}

/// `(scheme, host[:port])` of a replica's URL (`http://h:p`, `https://h:p`; a URL without a
/// scheme is `http`).
pub fn split_url(url: &str) -> (&'static str, &str) {
    let url = url.trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("https://") {
        ("https", rest)
    } else {
        ("http", url.strip_prefix("http://").unwrap_or(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_url_says_its_scheme() {
        assert_eq!(
            split_url("https://10.0.0.1:8443/"),
            ("https", "10.0.0.1:8443")
        );
        assert_eq!(split_url("http://10.0.0.1:8080"), ("http", "10.0.0.1:8080"));
        assert_eq!(split_url("h:1"), ("http", "h:1"));
        let t = Transport::default();
        assert_eq!((t.scheme(), t.ws_scheme()), ("http", "ws"));
        let t = Transport {
            tls: true,
            peers: None,
        };
        assert_eq!((t.scheme(), t.ws_scheme()), ("https", "wss"));
    }
}
