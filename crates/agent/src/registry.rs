//! Registry credentials for an image pull from the agent host's Docker client config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), as the Docker CLI finds them.
//!
//! What this is: the registry host of an image reference ([`registry_host`]); where the host's
//! config says that registry's credentials are ([`source_from_config`], pure): a credential
//! helper named for that registry in `credHelpers`, else the `credsStore` helper, else an
//! `auths` entry (`auth` = base64 `user:password`, or `username`/`password`); and running a
//! helper as the docker-credential-helpers protocol says ([`run_helper`]:
//! `docker-credential-<name> get`, the server URL on stdin, `{"ServerURL","Username","Secret"}`
//! on stdout; a user name of `<token>` makes the secret an identity token; "credentials not
//! found" means none).
//!
//! What this is not: a task's own `repositoryCredentials` (the server reads them from Secrets
//! Manager and they take precedence for that task: `engine::images`), nor ECR tokens. A
//! registry the config says nothing about is pulled anonymously; a helper that fails fails the
//! pull with a clear reason, never printing what the helper answered on success.

use crate::runtime::RegistryAuth;
use base64::Engine as _;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Docker Hub's key in `auths` (and the server URL its credentials are stored under).
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// The prefix of a credential helper's program name.
pub const HELPER_PREFIX: &str = "docker-credential-";

/// What a helper prints when it holds nothing for a server (docker-credential-helpers'
/// `ErrCredentialsNotFound`).
const NOT_FOUND: &str = "credentials not found in native keychain";

/// How long a helper may take to answer.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The user name with which a helper says its secret is an identity token.
const TOKEN_USER: &str = "<token>";

/// The registry host of an image reference (`docker.io` for Docker Hub images).
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// The server address credentials for `image`'s registry are stored under and sent with: Docker
/// Hub's URL, else the registry host.
pub fn server_address(image: &str) -> String {
    match registry_host(image) {
        "docker.io" => DOCKER_HUB.to_string(),
        host => host.to_string(),
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

/// Where the host's config says the credentials of a registry are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCredentials {
    /// In the config itself (`auths`).
    Inline(RegistryAuth),
    /// With a credential helper, `docker-credential-<name>`.
    Helper {
        /// The helper's name (after [`HELPER_PREFIX`]).
        name: String,
    },
    /// Nowhere: pull anonymously.
    None,
}

/// The config key `key` (`https://host/v1/`, `host`, `host/path`) names registry `host`.
fn key_names(key: &str, host: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    k == host || (host == "docker.io" && (key == DOCKER_HUB || k == "index.docker.io"))
}

/// Where a Docker config document says the credentials for `image` are, as the Docker CLI
/// decides: `credHelpers` for its registry, else `credsStore`, else `auths`.
pub fn source_from_config(config: &serde_json::Value, image: &str) -> HostCredentials {
    let host = registry_host(image);
    let helper = config
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(key, _)| key_names(key, host)))
        .and_then(|(_, name)| name.as_str())
        .or_else(|| config.get("credsStore").and_then(|s| s.as_str()))
        .filter(|name| !name.is_empty());
    if let Some(name) = helper {
        return HostCredentials::Helper {
            name: name.to_string(),
        };
    }
    match auth_from_config(config, image) {
        Some(auth) => HostCredentials::Inline(auth),
        None => HostCredentials::None,
    }
}

/// The `auths` entry for `image` in a Docker config document.
pub fn auth_from_config(config: &serde_json::Value, image: &str) -> Option<RegistryAuth> {
    let host = registry_host(image);
    let auths = config.get("auths")?.as_object()?;
    let entry = auths
        .iter()
        .find_map(|(key, v)| key_names(key, host).then_some(v))?;
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
        identity_token: None,
        server: server_address(image),
    })
}

/// Why a credential helper gave no credentials: the pull fails with this as its reason (Docker's
/// own wording, "error getting credentials - ...").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelperError {
    /// The name is not a program name (it would leave the helper's directory).
    #[error("error getting credentials - credential helper name {0:?} is not valid")]
    InvalidName(String),
    /// No such program on `PATH`.
    #[error("error getting credentials - {HELPER_PREFIX}{0}: executable file not found in $PATH")]
    NotFound(String),
    /// It could not be run.
    #[error("error getting credentials - {HELPER_PREFIX}{name}: {error}")]
    Spawn {
        /// The helper's name.
        name: String,
        /// What the system said.
        error: String,
    },
    /// It failed: its exit status and what it said (its output on failure is an error message,
    /// never the credentials).
    #[error("error getting credentials - err: {HELPER_PREFIX}{name} get: {status}, out: `{out}`")]
    Failed {
        /// The helper's name.
        name: String,
        /// Its exit status.
        status: String,
        /// Its output, trimmed.
        out: String,
    },
    /// It did not answer in time.
    #[error("error getting credentials - {HELPER_PREFIX}{name} get: no answer within {secs} s")]
    Timeout {
        /// The helper's name.
        name: String,
        /// The limit.
        secs: u64,
    },
    /// It answered something that is not the protocol's JSON (not repeated: it may hold a
    /// secret).
    #[error("error getting credentials - {HELPER_PREFIX}{name} get: the answer is not a JSON object with \"Username\" and \"Secret\"")]
    BadAnswer {
        /// The helper's name.
        name: String,
    },
}

/// A helper's successful answer to `get` for `server`: credentials, with the secret as an
/// identity token when the user name is `<token>`.
pub fn parse_helper_answer(
    name: &str,
    server: &str,
    stdout: &[u8],
) -> Result<RegistryAuth, HelperError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(stdout).map_err(|_| HelperError::BadAnswer {
        name: name.to_string(),
    })?;
    Ok(if answer.username == TOKEN_USER {
        RegistryAuth {
            username: String::new(),
            password: String::new(),
            identity_token: Some(answer.secret),
            server: server.to_string(),
        }
    } else {
        RegistryAuth {
            username: answer.username,
            password: answer.secret,
            identity_token: None,
            server: server.to_string(),
        }
    })
}

/// `docker-credential-<name>` in the directories of `path` (a `PATH` value).
fn find_helper(name: &str, path: &OsStr) -> Result<PathBuf, HelperError> {
    if name.contains('/') || name.contains('\0') || name == "." || name == ".." {
        return Err(HelperError::InvalidName(name.to_string()));
    }
    let program = format!("{HELPER_PREFIX}{name}");
    std::env::split_paths(path)
        .map(|dir| dir.join(&program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| HelperError::NotFound(name.to_string()))
}

/// Runs `docker-credential-<name> get` (found on `path`, a `PATH` value) with `server` on its
/// standard input: the credentials, or `None` when it holds none for that server.
pub async fn run_helper(
    name: &str,
    server: &str,
    path: &OsStr,
) -> Result<Option<RegistryAuth>, HelperError> {
    use tokio::io::AsyncWriteExt as _;
    let program = find_helper(name, path)?;
    let spawn_error = |e: std::io::Error| HelperError::Spawn {
        name: name.to_string(),
        error: e.to_string(),
    };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status, not this write.
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| HelperError::Timeout {
            name: name.to_string(),
            secs: HELPER_TIMEOUT.as_secs(),
        })?
        .map_err(spawn_error)?;
    if output.status.success() {
        return parse_helper_answer(name, server, &output.stdout).map(Some);
    }
    let out = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if out == NOT_FOUND {
        return Ok(None);
    }
    let out = if out.is_empty() {
        String::from_utf8_lossy(&output.stderr).trim().to_string()
    } else {
        out
    };
    Err(HelperError::Failed {
        name: name.to_string(),
        status: output.status.to_string(),
        out,
    })
}

/// The credentials the host's Docker config (`config_path`, else the default) gives for
/// `image`'s registry, running a credential helper when it names one; `None` when there is no
/// config or it says nothing for that registry.
pub async fn host_auth(
    config_path: Option<&Path>,
    image: &str,
) -> Result<Option<RegistryAuth>, HelperError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    host_auth_on(config_path, image, &path).await
}

/// [`host_auth`] with the helpers found on `path` (a `PATH` value).
pub async fn host_auth_on(
    config_path: Option<&Path>,
    image: &str,
    path: &OsStr,
) -> Result<Option<RegistryAuth>, HelperError> {
    let Some(file) = config_path
        .map(Path::to_path_buf)
        .or_else(default_config_path)
    else {
        return Ok(None);
    };
    let Ok(bytes) = std::fs::read(file) else {
        return Ok(None);
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(None);
    };
    match source_from_config(&doc, image) {
        HostCredentials::Inline(auth) => Ok(Some(auth)),
        HostCredentials::None => Ok(None),
        HostCredentials::Helper { name } => run_helper(&name, &server_address(image), path).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

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
        assert_eq!(
            source_from_config(&cfg, "other.io/x"),
            HostCredentials::None
        );
        assert!(matches!(
            source_from_config(&cfg, "reg.example.com/a"),
            HostCredentials::Inline(_)
        ));
    }

    #[test]
    fn helpers_are_chosen_as_the_docker_cli_chooses_them() {
        let helper = |name: &str| HostCredentials::Helper { name: name.into() };
        let cfg = serde_json::json!({
            "auths": {"reg.example.com": {}, "plain.io": {"username": "u", "password": "p"}},
            "credsStore": "desktop",
            "credHelpers": {"reg.example.com": "ecr-login", "https://index.docker.io/v1/": "hub"}
        });
        // credHelpers for the registry first, then credsStore for every other one (an `auths`
        // entry then only says a login happened).
        assert_eq!(
            source_from_config(&cfg, "reg.example.com/a:1"),
            helper("ecr-login")
        );
        assert_eq!(source_from_config(&cfg, "busybox"), helper("hub"));
        assert_eq!(source_from_config(&cfg, "plain.io/x"), helper("desktop"));
        let cfg = serde_json::json!({
            "auths": {"plain.io": {"username": "u", "password": "p"}},
            "credsStore": "",
            "credHelpers": {"reg.example.com": "pass"}
        });
        assert_eq!(
            source_from_config(&cfg, "reg.example.com/a"),
            helper("pass")
        );
        assert!(matches!(
            source_from_config(&cfg, "plain.io/x"),
            HostCredentials::Inline(_)
        ));
        assert_eq!(
            source_from_config(&cfg, "127.0.0.1:5000/x"),
            HostCredentials::None
        );
    }

    #[test]
    fn helper_answers_are_credentials_or_identity_tokens() {
        let a = parse_helper_answer(
            "x",
            "reg.io",
            br#"{"ServerURL":"reg.io","Username":"u","Secret":"s"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                a.username.as_str(),
                a.password.as_str(),
                a.identity_token,
                a.server.as_str()
            ),
            ("u", "s", None, "reg.io")
        );
        let t = parse_helper_answer("x", "reg.io", br#"{"Username":"<token>","Secret":"tok"}"#)
            .unwrap();
        assert_eq!(t.identity_token.as_deref(), Some("tok"));
        assert!(t.username.is_empty() && t.password.is_empty());
        let e = parse_helper_answer("x", "reg.io", br#"{"Username":"u","Password":"leak-me"}"#)
            .unwrap_err();
        assert!(!e.to_string().contains("leak-me"), "{e}");
    }

    /// A directory holding `docker-credential-<name>` scripts, to use as `PATH`.
    fn helpers_dir(scripts: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in scripts {
            let path = dir.path().join(format!("{HELPER_PREFIX}{name}"));
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[tokio::test]
    async fn helpers_run_with_the_server_on_stdin() {
        let dir = helpers_dir(&[
            // Answers for one server only, as a store would; checks it was asked `get`.
            (
                "good",
                r#"[ "$1" = get ] || exit 3
server=$(cat)
if [ "$server" = "127.0.0.1:5000" ]; then
  printf '{"ServerURL":"%s","Username":"puller","Secret":"pw-%s"}' "$server" "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi"#,
            ),
            ("broken", "echo 'error talking to the keychain' >&2; exit 2"),
            ("loud", "echo 'store is locked'; exit 1"),
            ("garbled", "echo 'user=puller secret=hunter2'"),
            (
                "token",
                r#"cat >/dev/null; echo '{"Username":"<token>","Secret":"id-tok"}'"#,
            ),
        ]);
        let path = dir.path().as_os_str();
        let a = run_helper("good", "127.0.0.1:5000", path)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str(), a.server.as_str()),
            ("puller", "pw-127.0.0.1:5000", "127.0.0.1:5000")
        );
        assert_eq!(run_helper("good", "other.io", path).await.unwrap(), None);
        let t = run_helper("token", DOCKER_HUB, path)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.identity_token.as_deref(), Some("id-tok"));

        let e = run_helper("broken", "reg.io", path).await.unwrap_err();
        assert!(
            matches!(&e, HelperError::Failed { out, .. } if out == "error talking to the keychain"),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with(
                "error getting credentials - err: docker-credential-broken get: exit status: 2"
            ),
            "{e}"
        );
        let e = run_helper("loud", "reg.io", path).await.unwrap_err();
        assert!(e.to_string().ends_with("out: `store is locked`"), "{e}");
        let e = run_helper("garbled", "reg.io", path).await.unwrap_err();
        assert_eq!(
            e,
            HelperError::BadAnswer {
                name: "garbled".into()
            }
        );
        assert!(!e.to_string().contains("hunter2"));
        let e = run_helper("absent", "reg.io", path).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "error getting credentials - docker-credential-absent: executable file not found in $PATH"
        );
        assert!(matches!(
            run_helper("../good", "reg.io", path).await,
            Err(HelperError::InvalidName(_))
        ));
    }

    #[tokio::test]
    async fn the_host_config_runs_its_helpers() {
        let dir = helpers_dir(&[(
            "store",
            r#"cat >/dev/null; echo '{"Username":"from-store","Secret":"s"}'"#,
        )]);
        let cfg = dir.path().join("config.json");
        std::fs::write(
            &cfg,
            r#"{"auths": {"127.0.0.1:5000": {}}, "credsStore": "store"}"#,
        )
        .unwrap();
        let path = dir.path().as_os_str();
        let a = host_auth_on(Some(&cfg), "127.0.0.1:5000/app", path)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.username.as_str(), a.server.as_str()),
            ("from-store", "127.0.0.1:5000")
        );
        // A helper that is not there fails the pull, rather than pulling anonymously.
        std::fs::write(&cfg, r#"{"credHelpers": {"127.0.0.1:5000": "gone"}}"#).unwrap();
        assert_eq!(
            host_auth_on(Some(&cfg), "127.0.0.1:5000/app", path).await,
            Err(HelperError::NotFound("gone".into()))
        );
        assert_eq!(host_auth_on(Some(&cfg), "busybox", path).await, Ok(None));
        // No config file, or one that is not JSON: anonymous.
        let missing = dir.path().join("none.json");
        assert_eq!(
            host_auth_on(Some(&missing), "127.0.0.1:5000/app", path).await,
            Ok(None)
        );
        std::fs::write(&missing, "not json").unwrap();
        assert_eq!(
            host_auth_on(Some(&missing), "127.0.0.1:5000/app", path).await,
            Ok(None)
        );
    }
}
