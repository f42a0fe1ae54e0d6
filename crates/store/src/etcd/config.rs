//! Where an etcd-backed store lives: the endpoints and the key prefix of one installation,
//! parsed from `etcd://h1:2379,h2:2379,h3:2379/flotilla`.
//!
//! The path names the installation: every key Flotilla writes is stored under `/<path>/`, so
//! several installations can share one etcd cluster without seeing each other's keys (as long as
//! no installation's path is a path prefix of another's: `/a` and `/a/b` would overlap).
//!
//! This module only parses and validates; it opens no connection.

use std::fmt;

/// The port etcd serves clients on when a host names none.
pub const DEFAULT_CLIENT_PORT: u16 = 2379;

/// The endpoints and key prefix of one Flotilla installation on etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs, `http://host:port`, in the order given.
    pub endpoints: Vec<String>,
    /// The installation's path without slashes at either end (`flotilla`, `prod/eu`).
    pub path: String,
}

/// Why an etcd store URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid etcd store URL {url:?}: {reason} (expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX, e.g. etcd://127.0.0.1:2379/flotilla)")]
pub struct InvalidEtcdUrl {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl EtcdConfig {
    /// Parses `etcd://h1[:port],h2[:port]/path`. A host without a port gets
    /// [`DEFAULT_CLIENT_PORT`]; IPv6 hosts go in brackets (`[::1]:2379`); the path is required
    /// and may have several segments (`/prod/eu`).
    pub fn parse(url: &str) -> Result<Self, InvalidEtcdUrl> {
        let bad = |reason: &str| InvalidEtcdUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("the scheme must be etcd://"))?;
        let (hosts, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("the key prefix path is missing"))?;
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Err(bad("the key prefix path is empty"));
        }
        if path.split('/').any(str::is_empty) {
            return Err(bad("the key prefix path has an empty segment"));
        }
        if path.contains(['?', '#']) {
            return Err(bad("query strings and fragments are not supported"));
        }
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            endpoints.push(endpoint(host).map_err(|r| bad(&r))?);
        }
        Ok(EtcdConfig {
            endpoints,
            path: path.to_owned(),
        })
    }

    /// The byte prefix of every key of this installation: `/<path>/`.
    pub fn key_prefix(&self) -> String {
        format!("/{}/", self.path)
    }
}

/// `host[:port]` to `http://host:port`.
fn endpoint(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("a host is empty".into());
    }
    if host.contains(['@', ' ']) {
        return Err(format!("host {host:?} is not a host:port pair"));
    }
    // `[v6]:port`, `[v6]`, `name:port`, `name`.
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("host {host:?} has an unclosed '['"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("host {host:?}: expected ':' after ']'"))?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n.to_owned(), Some(p)),
            None => (host.to_owned(), None),
        }
    };
    if name.is_empty() || name == "[]" {
        return Err(format!("host {host:?} has no name"));
    }
    let port = match port {
        None => DEFAULT_CLIENT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("host {host:?} has an invalid port {p:?} (1-65535)"))?,
    };
    Ok(format!("http://{name}:{port}"))
}

impl fmt::Display for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.trim_start_matches("http://"))
            .collect();
        write!(f, "etcd://{}/{}", hosts.join(","), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, endpoints: &[&str], path: &str) {
        let cfg = EtcdConfig::parse(url).unwrap();
        assert_eq!(cfg.endpoints, endpoints, "{url}");
        assert_eq!(cfg.path, path, "{url}");
    }

    #[test]
    fn parses_hosts_ports_and_path() {
        check(
            "etcd://h1:2379,h2:2379,h3:2379/flotilla",
            &["http://h1:2379", "http://h2:2379", "http://h3:2379"],
            "flotilla",
        );
        check("etcd://h1/flotilla", &["http://h1:2379"], "flotilla");
        check(
            "etcd://127.0.0.1:23790/prod/eu/",
            &["http://127.0.0.1:23790"],
            "prod/eu",
        );
        check(
            "etcd://[::1]:2400,[fe80::1]/f",
            &["http://[::1]:2400", "http://[fe80::1]:2379"],
            "f",
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for url in [
            "http://h1:2379/flotilla",
            "etcd://h1:2379",
            "etcd://h1:2379/",
            "etcd://h1:2379//",
            "etcd://h1:2379/a//b",
            "etcd:///flotilla",
            "etcd://h1:2379,/flotilla",
            "etcd://h1:0/flotilla",
            "etcd://h1:99999/flotilla",
            "etcd://h1:x/flotilla",
            "etcd://[::1/flotilla",
            "etcd://user@h1/flotilla",
            "etcd://h1/flotilla?x=1",
        ] {
            let err = EtcdConfig::parse(url).unwrap_err();
            assert_eq!(err.url, url);
        }
    }

    #[test]
    fn key_prefix_and_display_round_trip() {
        let cfg = EtcdConfig::parse("etcd://a:1,b/x/y").unwrap();
        assert_eq!(cfg.key_prefix(), "/x/y/");
        assert_eq!(cfg.to_string(), "etcd://a:1,b:2379/x/y");
        assert_eq!(EtcdConfig::parse(&cfg.to_string()).unwrap(), cfg);
    }
}
