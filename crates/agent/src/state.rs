//! What the agent keeps in its data directory, so a restart loses nothing.
//!
//! Layout of `DIR`:
//! - `identity.json`: the EC2-style instance id (generated once) and the container instance
//!   ARN the server gave at the first registration;
//! - `tasks/<task id>.json`: per task, the last assignment and what the owner decided that
//!   Docker cannot tell (that a stop began and why, pull times);
//! - `images.json`: images this agent pulled, for cleanup;
//! - `credentials.json` (mode 0600): the agent's own credentials, when it joined with a token
//!   ([`crate::identity::AgentCredentials`]): a restarted agent signs with them again.
//!
//! What this is not: the source of truth about containers: Docker is (containers carry labels);
//! this only fills in what Docker cannot know.
//!
//! Invariant: every file is written atomically (temporary file, fsync, rename), so a crash
//! leaves the old or the new content, never a torn one. These records derive `Serialize`: they
//! are the agent's private on-disk format; a new field must be `#[serde(default)]`.

use flotilla_model::shapes::TaskStopCode;
use flotilla_protocol::TaskAssignment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An I/O error on the data directory.
#[derive(Debug, thiserror::Error)]
#[error("data directory {path}: {source}")]
pub struct StateError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError {
        path: path.to_path_buf(),
        source,
    }
}

/// The instance's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceIdentity {
    /// `i-` and 17 hex digits, generated once.
    pub ec2_instance_id: String,
    /// The container instance ARN, once registered.
    #[serde(default)]
    pub container_instance_arn: Option<String>,
}

/// What the owner of a task persists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedTask {
    /// The highest-version assignment seen.
    pub assignment: TaskAssignment,
    /// The task decided to stop (the stop must be finished after a restart).
    #[serde(default)]
    pub stopping: bool,
    /// Stop code decided by the agent or asked for by the server.
    #[serde(default)]
    pub stop_code: Option<TaskStopCode>,
    /// Stopped reason.
    #[serde(default)]
    pub stopped_reason: Option<String>,
    /// Container reasons decided by the agent (failed pulls, failed starts), by name.
    #[serde(default)]
    pub container_reasons: BTreeMap<String, String>,
    /// Docker ids of the containers created so far, by name.
    #[serde(default)]
    pub container_ids: BTreeMap<String, String>,
    /// Pull start, epoch seconds.
    #[serde(default)]
    pub pull_started_at: Option<f64>,
    /// Pull end.
    #[serde(default)]
    pub pull_stopped_at: Option<f64>,
    /// When RUNNING was reached.
    #[serde(default)]
    pub started_at: Option<f64>,
    /// The Docker id of the awsvpc task's pause container, once created.
    #[serde(default)]
    pub pause_id: Option<String>,
    /// The pause container was removed (the task's address is released).
    #[serde(default)]
    pub deprovisioned: bool,
    /// When every container had stopped.
    #[serde(default)]
    pub execution_stopped_at: Option<f64>,
    /// The `awslogs` stream of each container that has one, once opened, by name.
    #[serde(default)]
    pub log_streams: BTreeMap<String, flotilla_logs::query::StreamRef>,
    /// The ids in the task endpoint's URIs its containers were created with (kept, since the
    /// containers keep them in their environment across agent restarts).
    #[serde(default)]
    pub endpoint: EndpointIds,
}

/// The ids a task's containers reach the task endpoint with, and the MAC addresses of its
/// bridge containers (what the NAT rules match). None is a secret: the credentials themselves
/// are only in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIds {
    /// Each container's metadata id (`/v4/ID`), by name.
    #[serde(default)]
    pub containers: BTreeMap<String, String>,
    /// The task's credentials id (`/v2/credentials/ID`), when it has a role.
    #[serde(default)]
    pub credentials: Option<String>,
    /// The MAC address each bridge container was created with, by name.
    #[serde(default)]
    pub macs: BTreeMap<String, String>,
}

/// The exclusive hold of one agent process on a data directory (`agent.lock` with its pid).
/// Released when dropped; a lock left by a dead process is taken over.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Another live agent holds the data directory.
#[derive(Debug, thiserror::Error)]
#[error("data directory {path} is in use by the agent with pid {pid}; each agent needs its own --data-dir")]
pub struct LockedError {
    /// The lock file.
    pub path: PathBuf,
    /// The holder.
    pub pid: u32,
}

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Held by a live process.
    #[error(transparent)]
    Locked(#[from] LockedError),
    /// I/O.
    #[error(transparent)]
    Io(#[from] StateError),
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// Writes a file atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err(&tmp))?;
    f.write_all(bytes).map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err(path))?;
    Ok(())
}

/// The file of the agent's own credentials.
const CREDENTIALS_FILE: &str = "credentials.json";

/// [`write_atomic`] for a file only its owner may read (0600 from its creation, so the content
/// is never readable by others, even for a moment).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err(&tmp))?;
    f.write_all(bytes).map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err(path))?;
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(path)(e)),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StateError {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    write_atomic(path, &bytes)
}

/// A fresh `i-` + 17 hex digit id.
pub fn new_ec2_instance_id() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let hex: String = (0..17)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!("i-{hex}")
}

impl DataDir {
    /// Opens (creating) the directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        let tasks = root.join("tasks");
        std::fs::create_dir_all(&tasks).map_err(err(&tasks))?;
        Ok(Self { root })
    }

    /// Takes the directory for this process (see [`DirLock`]).
    pub fn lock(&self) -> Result<DirLock, LockError> {
        let path = self.root.join("agent.lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .map_err(err(&path))?;
                    return Ok(DirLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid: Option<u32> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    match pid {
                        Some(pid)
                            if pid == std::process::id()
                                || Path::new(&format!("/proc/{pid}")).exists() =>
                        {
                            return Err(LockedError { path, pid }.into());
                        }
                        // A dead holder (or a torn file): take over.
                        _ => std::fs::remove_file(&path).map_err(err(&path))?,
                    }
                }
                Err(e) => return Err(StateError { path, source: e }.into()),
            }
        }
        Err(StateError {
            path,
            source: std::io::Error::other("lock contended"),
        }
        .into())
    }

    /// The root path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads the identity, creating (and saving) a new one the first time.
    pub fn identity(&self) -> Result<InstanceIdentity, StateError> {
        let path = self.root.join("identity.json");
        if let Some(id) = read_json(&path)? {
            return Ok(id);
        }
        let id = InstanceIdentity {
            ec2_instance_id: new_ec2_instance_id(),
            container_instance_arn: None,
        };
        write_json(&path, &id)?;
        Ok(id)
    }

    /// Saves the identity.
    pub fn save_identity(&self, id: &InstanceIdentity) -> Result<(), StateError> {
        write_json(&self.root.join("identity.json"), id)
    }

    fn task_path(&self, task_arn: &str) -> PathBuf {
        let id: String = crate::spec::task_id(task_arn)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join("tasks").join(format!("{id}.json"))
    }

    /// Saves a task's state.
    pub fn save_task(&self, t: &PersistedTask) -> Result<(), StateError> {
        write_json(&self.task_path(&t.assignment.task_arn), t)
    }

    /// Forgets a task.
    pub fn remove_task(&self, task_arn: &str) -> Result<(), StateError> {
        let p = self.task_path(task_arn);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(&p)(e)),
        }
    }

    /// Every saved task (unreadable files are skipped and logged).
    pub fn tasks(&self) -> Result<Vec<PersistedTask>, StateError> {
        let dir = self.root.join("tasks");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(err(&dir))? {
            let path = entry.map_err(err(&dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read_json::<PersistedTask>(&path) {
                Ok(Some(t)) => out.push(t),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping unreadable task state"),
            }
        }
        Ok(out)
    }

    /// The agent's own credentials, if it joined with a token.
    pub fn agent_credentials(
        &self,
    ) -> Result<Option<crate::identity::AgentCredentials>, StateError> {
        read_json(&self.root.join(CREDENTIALS_FILE))
    }

    /// Saves the agent's own credentials, readable by its user only (0600).
    pub fn save_agent_credentials(
        &self,
        c: &crate::identity::AgentCredentials,
    ) -> Result<(), StateError> {
        let path = self.root.join(CREDENTIALS_FILE);
        let bytes = serde_json::to_vec_pretty(c).map_err(|e| StateError {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        write_private(&path, &bytes)
    }

    /// Where the agent's own credentials are kept.
    pub fn agent_credentials_path(&self) -> PathBuf {
        self.root.join(CREDENTIALS_FILE)
    }

    /// Images this agent pulled, with when they were last used (epoch seconds).
    pub fn pulled_images(&self) -> Result<BTreeMap<String, f64>, StateError> {
        Ok(read_json(&self.root.join("images.json"))?.unwrap_or_default())
    }

    /// Saves the pulled images.
    pub fn save_pulled_images(&self, images: &BTreeMap<String, f64>) -> Result<(), StateError> {
        write_json(&self.root.join("images.json"), images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agent_per_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        let held = d.lock().unwrap();
        assert!(matches!(d.lock(), Err(LockError::Locked(_))));
        drop(held);
        let again = d.lock().unwrap();
        drop(again);
        // A lock left by a dead process is taken over.
        std::fs::write(dir.path().join("agent.lock"), "999999999").unwrap();
        assert!(d.lock().is_ok());
    }

    #[test]
    fn agent_credentials_are_kept_for_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        assert_eq!(d.agent_credentials().unwrap(), None);
        let c = crate::identity::AgentCredentials {
            access_key_id: "AGNTAAAAAAAAAAAAAAAA".into(),
            secret_access_key: "secret".into(),
            container_instance_arn: "arn:aws:ecs:us-east-1:0:container-instance/c/i".into(),
            cluster: "c".into(),
        };
        d.save_agent_credentials(&c).unwrap();
        d.save_agent_credentials(&c).unwrap();
        assert_eq!(d.agent_credentials().unwrap(), Some(c));
        let mode = std::fs::metadata(d.agent_credentials_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn identity_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        let a = d.identity().unwrap();
        assert!(a.ec2_instance_id.starts_with("i-"));
        assert_eq!(a.ec2_instance_id.len(), 19);
        let mut b = DataDir::open(dir.path()).unwrap().identity().unwrap();
        assert_eq!(a, b);
        b.container_instance_arn = Some("arn".into());
        d.save_identity(&b).unwrap();
        assert_eq!(d.identity().unwrap(), b);
    }
}
