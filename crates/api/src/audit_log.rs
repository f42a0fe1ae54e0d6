//! Writes the audit log ([`crate::audit`]'s lines) to a file: `DATA_DIR/audit.log` by default
//! (`--audit-log PATH`, `-` for none), appended, created with mode 0600.
//!
//! A request never waits for the disk: it hands its line to a bounded queue
//! ([`QUEUE_LINES`]) and a thread of its own appends each line with one write, so each line
//! reaches the file whole and at once. When the queue is full (the disk is slower than the
//! requests) the line is dropped and counted (`flotilla_audit_dropped_lines_total` on
//! `/metrics`), as is a line the file refused; requests are never slowed or refused for it.
//! One log serves every region of the process (each line names its region).

use prometheus_client::metrics::counter::Counter;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

/// How many lines may wait for the writer.
pub const QUEUE_LINES: usize = 16_384;

/// Where the audit lines go.
pub struct AuditLog {
    tx: SyncSender<String>,
    dropped: Counter,
    path: PathBuf,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish()
    }
}

impl AuditLog {
    /// Opens `path` for appending (creating it and its directory, mode 0600) and starts the
    /// writer thread, which ends when the log is dropped.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(path)?;
        Ok(Self::to_writer(file, path.to_path_buf()))
    }

    /// A log writing to `out` (tests).
    pub fn to_writer(mut out: impl Write + Send + 'static, path: PathBuf) -> AuditLog {
        let (tx, rx) = sync_channel::<String>(QUEUE_LINES);
        let dropped = Counter::default();
        let lost = dropped.clone();
        let shown = path.display().to_string();
        let spawned = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                let mut failing = false;
                for line in rx {
                    match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                        Ok(()) => failing = false,
                        Err(e) => {
                            lost.inc();
                            if !failing {
                                tracing::error!(path = %shown, error = %e, "could not write the audit log");
                            }
                            failing = true;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the audit log's writer");
        }
        AuditLog { tx, dropped, path }
    }

    /// Queues one line (a [`crate::audit::line`]); drops and counts it when the queue is full.
    pub fn write(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }

    /// The lines dropped so far (a counter shared with `/metrics`).
    pub fn dropped(&self) -> Counter {
        self.dropped.clone()
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn lines_are_appended_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("audit.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let log = AuditLog::open(&path).unwrap();
        log.write("{\"a\":1}\n".into());
        log.write("{\"b\":2}\n".into());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text == "{\"old\":1}\n{\"a\":1}\n{\"b\":2}\n" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{text:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let other = dir.path().join("new.log");
            let _log = AuditLog::open(&other).unwrap();
            let mode = std::fs::metadata(&other).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// A writer that blocks until released: the disk is stuck.
    struct Stuck(Arc<Mutex<()>>);
    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _held = self.0.lock().unwrap();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_disk_drops_and_counts_lines_never_blocks() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let log = AuditLog::to_writer(Stuck(gate.clone()), "stuck".into());
        let started = std::time::Instant::now();
        for i in 0..(QUEUE_LINES + 500) {
            log.write(format!("{i}\n"));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // The writer holds one line; the queue the rest it can.
        let dropped = log.dropped().get();
        assert!((499..=501).contains(&dropped), "{dropped}");
        drop(held);
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_the_file_refuses_are_counted() {
        let log = AuditLog::to_writer(Broken, "broken".into());
        log.write("x\n".into());
        log.write("y\n".into());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.dropped().get() < 2 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
