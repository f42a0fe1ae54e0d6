//! Registry credentials from the agent host's Docker client config (`~/.docker/config.json`).
//!
//! What this is: find the registry host of an image reference and the matching `auths` entry
//! (`auth` = base64 `user:password`, or `username`/`password`).
//!
//! What this is not: credential helpers (`credsStore`, `credHelpers`) and ECR tokens are not
//! supported; an image without an entry is pulled anonymously.

use crate::runtime::RegistryAuth;
use base64::Engine as _;
use std::path::{Path, PathBuf};

/// Docker Hub's key in `auths`.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// The registry host of an image reference (`docker.io` for Docker Hub images).
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// The default config path: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("DOCKER_CONFIG") {
        return Some(Path::new(&d).join("config.json"));
    }
    std::env::var("HOME")
        .ok()
        .map(|h| Path::new(&h).join(".docker").join("config.json"))
}

/// Finds credentials for `image` in a Docker config document.
pub fn auth_from_config(config: &serde_json::Value, image: &str) -> Option<RegistryAuth> {
    let host = registry_host(image);
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(key, v)| {
        let k = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let k = k.split('/').next().unwrap_or(k);
        let matches =
            k == host || (host == "docker.io" && (key == DOCKER_HUB || k == "index.docker.io"));
        matches.then_some(v)
    })?;
    let (username, password) = if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        (u.to_string(), p.to_string())
    } else {
        (
            entry.get("username")?.as_str()?.to_string(),
            entry.get("password")?.as_str()?.to_string(),
        )
    };
    Some(RegistryAuth {
        username,
        password,
        server: if host == "docker.io" {
            DOCKER_HUB.to_string()
        } else {
            host.to_string()
        },
    })
}

/// Reads the config file (if any) and finds credentials for `image`.
pub fn auth_for(config_path: Option<&Path>, image: &str) -> Option<RegistryAuth> {
    let path = config_path
        .map(Path::to_path_buf)
        .or_else(default_config_path)?;
    let bytes = std::fs::read(path).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    auth_from_config(&doc, image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_credentials_by_registry_host() {
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("flotilla/busybox:latest"), "docker.io");
        assert_eq!(registry_host("localhost:5000/x"), "localhost:5000");
        assert_eq!(registry_host("reg.example.com/a/b:1"), "reg.example.com");
        let cfg = serde_json::json!({"auths": {
            "reg.example.com": {"auth": base64::engine::general_purpose::STANDARD.encode("u:p:w")},
            "https://index.docker.io/v1/": {"username": "hub", "password": "pw"}
        }});
        let a = auth_from_config(&cfg, "reg.example.com/a/b:1").unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p:w"));
        let h = auth_from_config(&cfg, "library/busybox").unwrap();
        assert_eq!(h.username, "hub");
        assert_eq!(h.server, DOCKER_HUB);
        assert!(auth_from_config(&cfg, "other.io/x").is_none());
    }
}
