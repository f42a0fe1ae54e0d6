//! Task-level CPU and memory: one parent cgroup per task, shared by all its containers.
//!
//! What this is: when a task sets `cpu`/`memory`, the agent creates `/flotilla/<task id>`
//! (cgroupfs driver only) with the task's limits before creating any of its containers, and
//! creates every container (and the pause container) with that `cgroup_parent`, so the
//! kernel enforces one budget for the whole task. cgroup v1: `memory.limit_in_bytes` (and
//! `memory.memsw.limit_in_bytes`, so no swap), `cpu.cfs_period_us`/`cpu.cfs_quota_us`; v2:
//! `memory.max`, `memory.swap.max`, `cpu.max`. [`CgroupMode::detect`] chooses; with the systemd
//! driver, an unknown engine or a read-only `/sys/fs/cgroup` the agent falls back to limits on
//! each container ([`CgroupMode::PerContainer`]).
//!
//! What this is not: a cgroup manager for containers: runc creates and removes theirs.
//!
//! Invariant: the pure parts ([`cpu_quota_us`], [`v1_settings`], [`v2_settings`],
//! [`oom_kills`]) decide values; the I/O parts only write what they return.

use std::path::{Path, PathBuf};

/// The CFS period the agent uses, microseconds.
pub const CFS_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, microseconds.
pub const MIN_CFS_QUOTA_US: u64 = 1_000;
/// The directory under each hierarchy that holds the task cgroups.
pub const PARENT: &str = "flotilla";
/// Where cgroup file systems are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup version of the engine's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One hierarchy per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

/// How task-level limits are enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMode {
    /// A parent cgroup per task under `root`.
    Parent {
        /// The cgroup mount point (`/sys/fs/cgroup`).
        root: PathBuf,
        /// v1 or v2.
        version: CgroupVersion,
    },
    /// Each container without its own `memory` gets the task's memory as a hard limit.
    PerContainer {
        /// Why no parent cgroup can be used.
        why: String,
    },
}

/// A task's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskLimits {
    /// CPU units (1024 per core).
    pub cpu: Option<u32>,
    /// MiB.
    pub memory_mib: Option<u32>,
}

impl TaskLimits {
    /// Whether there is any limit to enforce.
    pub fn any(&self) -> bool {
        self.cpu.is_some() || self.memory_mib.is_some()
    }
}

/// The cgroup path (as Docker's `cgroup_parent` takes it) of a task.
pub fn task_path(task_id: &str) -> String {
    format!("/{PARENT}/{task_id}")
}

/// The CFS quota for `cpu` units: `cpu * period / 1024`, at least the kernel's minimum.
pub fn cpu_quota_us(cpu: u32) -> u64 {
    (u64::from(cpu) * CFS_PERIOD_US / 1024).max(MIN_CFS_QUOTA_US)
}

/// Bytes in `mib` MiB.
pub fn mib_bytes(mib: u32) -> u64 {
    u64::from(mib) * 1024 * 1024
}

/// cgroup v1 settings: (controller, file, value), in the order they must be written.
pub fn v1_settings(l: &TaskLimits) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = l.memory_mib {
        let b = mib_bytes(m).to_string();
        out.push(("memory", "memory.limit_in_bytes", b.clone()));
        out.push(("memory", "memory.memsw.limit_in_bytes", b));
    }
    if let Some(c) = l.cpu {
        out.push(("cpu", "cpu.cfs_period_us", CFS_PERIOD_US.to_string()));
        out.push(("cpu", "cpu.cfs_quota_us", cpu_quota_us(c).to_string()));
    }
    out
}

/// cgroup v2 settings: (file, value).
pub fn v2_settings(l: &TaskLimits) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = l.memory_mib {
        out.push(("memory.max", mib_bytes(m).to_string()));
        out.push(("memory.swap.max", "0".to_string()));
    }
    if let Some(c) = l.cpu {
        out.push(("cpu.max", format!("{} {CFS_PERIOD_US}", cpu_quota_us(c))));
    }
    out
}

/// The `oom_kill N` counter of a v1 `memory.oom_control` or a v2 `memory.events`.
pub fn oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "oom_kill").then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

impl CgroupMode {
    /// Chooses the mode from the engine's cgroup driver and version (Docker info) and whether
    /// the agent can create cgroups under `root`.
    pub fn detect(driver: &str, version: &str, root: &Path) -> CgroupMode {
        if driver != "cgroupfs" {
            return CgroupMode::PerContainer {
                why: format!("the Docker cgroup driver is {driver:?}, not cgroupfs"),
            };
        }
        let version = match version {
            "1" => CgroupVersion::V1,
            "2" => CgroupVersion::V2,
            other => {
                return CgroupMode::PerContainer {
                    why: format!("unknown cgroup version {other:?}"),
                }
            }
        };
        let dirs: Vec<PathBuf> = match version {
            CgroupVersion::V1 => ["memory", "cpu"]
                .iter()
                .map(|c| root.join(c).join(PARENT))
                .collect(),
            CgroupVersion::V2 => vec![root.join(PARENT)],
        };
        for d in &dirs {
            let probe = d.join(format!(".probe-{}", std::process::id()));
            let ok = std::fs::create_dir_all(d).is_ok() && std::fs::create_dir(&probe).is_ok();
            let _ = std::fs::remove_dir(&probe);
            if !ok {
                return CgroupMode::PerContainer {
                    why: format!("cannot create cgroups under {}", d.display()),
                };
            }
        }
        CgroupMode::Parent {
            root: root.to_path_buf(),
            version,
        }
    }

    /// Creates the task's cgroup with its limits (idempotent).
    pub fn create(&self, task_id: &str, limits: &TaskLimits) -> Result<(), String> {
        let CgroupMode::Parent { root, version } = self else {
            return Ok(());
        };
        let rel = task_path(task_id);
        let rel = rel.trim_start_matches('/');
        let write = |p: PathBuf, v: &str| {
            std::fs::write(&p, v).map_err(|e| format!("write {v} to {}: {e}", p.display()))
        };
        match version {
            CgroupVersion::V1 => {
                for c in ["memory", "cpu"] {
                    let d = root.join(c).join(rel);
                    std::fs::create_dir_all(&d)
                        .map_err(|e| format!("create {}: {e}", d.display()))?;
                }
                for (c, f, v) in v1_settings(limits) {
                    let p = root.join(c).join(rel).join(f);
                    match f {
                        // The memory limit may not exceed the memsw limit: it is written
                        // again after memsw (raising both works, lowering both works).
                        "memory.limit_in_bytes" => {
                            let _ = std::fs::write(&p, &v);
                        }
                        "memory.memsw.limit_in_bytes" => {
                            if p.exists() {
                                write(p, &v)?;
                            }
                            write(root.join(c).join(rel).join("memory.limit_in_bytes"), &v)?;
                        }
                        _ => write(p, &v)?,
                    }
                }
            }
            CgroupVersion::V2 => {
                let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu +memory");
                let _ = std::fs::write(
                    root.join(PARENT).join("cgroup.subtree_control"),
                    "+cpu +memory",
                );
                let d = root.join(rel);
                std::fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
                for (f, v) in v2_settings(limits) {
                    let p = d.join(f);
                    if f == "memory.swap.max" && !p.exists() {
                        continue;
                    }
                    write(p, &v)?;
                }
                let _ = std::fs::write(d.join("cgroup.subtree_control"), "+cpu +memory");
            }
        }
        Ok(())
    }

    /// Whether the task's cgroup shows that the kernel killed a process for memory.
    pub fn oom_killed(&self, task_id: &str) -> bool {
        let CgroupMode::Parent { root, version } = self else {
            return false;
        };
        let rel = task_path(task_id);
        let rel = rel.trim_start_matches('/');
        match version {
            CgroupVersion::V1 => {
                let d = root.join("memory").join(rel);
                let counter = std::fs::read_to_string(d.join("memory.oom_control"))
                    .ok()
                    .and_then(|t| oom_kills(&t))
                    .unwrap_or(0);
                // v1 counts kills in the victim's own cgroup, which runc removes with the
                // container: the task cgroup shows it reached its limit instead.
                let failed = ["memory.failcnt", "memory.memsw.failcnt"]
                    .iter()
                    .any(|f| read_u64(&d.join(f)).unwrap_or(0) > 0);
                let limit = read_u64(&d.join("memory.limit_in_bytes"));
                let max = read_u64(&d.join("memory.max_usage_in_bytes"));
                let at_limit = matches!((limit, max), (Some(l), Some(m)) if m >= l);
                counter > 0 || failed || at_limit
            }
            CgroupVersion::V2 => {
                std::fs::read_to_string(root.join(rel).join("memory.events"))
                    .ok()
                    .and_then(|t| oom_kills(&t))
                    .unwrap_or(0)
                    > 0
            }
        }
    }

    /// Removes the task's cgroup from every hierarchy (once its containers are gone; a busy
    /// cgroup stays and the error is returned).
    pub fn remove(&self, task_id: &str) -> Result<(), String> {
        let CgroupMode::Parent { root, version } = self else {
            return Ok(());
        };
        let rel = task_path(task_id);
        let rel = rel.trim_start_matches('/');
        let dirs: Vec<PathBuf> = match version {
            CgroupVersion::V2 => vec![root.join(rel)],
            // runc creates the path in every hierarchy; symlinked ones (cpu,cpuacct) are the
            // same directory.
            CgroupVersion::V1 => std::fs::read_dir(root)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path().join(rel))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut first_err = None;
        for d in dirs {
            if d.exists() {
                if let Err(e) = std::fs::remove_dir(&d) {
                    first_err.get_or_insert(format!("remove {}: {e}", d.display()));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_values() {
        assert_eq!(cpu_quota_us(1024), 100_000);
        assert_eq!(cpu_quota_us(256), 25_000);
        assert_eq!(cpu_quota_us(4096), 400_000);
        assert_eq!(cpu_quota_us(2), MIN_CFS_QUOTA_US);
        assert_eq!(mib_bytes(256), 268_435_456);
        let l = TaskLimits {
            cpu: Some(512),
            memory_mib: Some(512),
        };
        assert_eq!(
            v1_settings(&l),
            vec![
                ("memory", "memory.limit_in_bytes", "536870912".to_string()),
                (
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    "536870912".to_string()
                ),
                ("cpu", "cpu.cfs_period_us", "100000".to_string()),
                ("cpu", "cpu.cfs_quota_us", "50000".to_string()),
            ]
        );
        assert_eq!(
            v2_settings(&l),
            vec![
                ("memory.max", "536870912".to_string()),
                ("memory.swap.max", "0".to_string()),
                ("cpu.max", "50000 100000".to_string()),
            ]
        );
        assert!(v2_settings(&TaskLimits::default()).is_empty());
        assert!(!TaskLimits::default().any());
        assert_eq!(task_path("abc"), "/flotilla/abc");
    }

    #[test]
    fn oom_counters_parse() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            oom_kills("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n"),
            Some(1)
        );
        assert_eq!(oom_kills("oom_kill_disable 0\n"), None);
    }

    #[test]
    fn systemd_and_unwritable_roots_fall_back() {
        assert!(matches!(
            CgroupMode::detect("systemd", "2", Path::new("/sys/fs/cgroup")),
            CgroupMode::PerContainer { .. }
        ));
        assert!(matches!(
            CgroupMode::detect("cgroupfs", "1", Path::new("/proc/definitely/not/here")),
            CgroupMode::PerContainer { .. }
        ));
        // A writable fake v2 root works and the files are written.
        let dir = tempfile::tempdir().unwrap();
        let mode = CgroupMode::detect("cgroupfs", "2", dir.path());
        assert!(matches!(mode, CgroupMode::Parent { .. }), "{mode:?}");
        let l = TaskLimits {
            cpu: Some(1024),
            memory_mib: Some(64),
        };
        mode.create("t1", &l).unwrap();
        let d = dir.path().join("flotilla/t1");
        assert_eq!(
            std::fs::read_to_string(d.join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.max")).unwrap(),
            "100000 100000"
        );
        assert!(!mode.oom_killed("t1"));
        std::fs::write(d.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        assert!(mode.oom_killed("t1"));
    }
}
