//! Durability: a transaction `SqliteStore` acknowledged survives `kill -9` of the process.
//!
//! The test re-executes its own binary in "writer" mode (selected by the `CHILD_ENV` variable):
//! the child opens a store in the given directory and runs concurrent single-key puts as fast as
//! it can, printing `ACK <key> <revision>` to stdout only after each put was acknowledged. The
//! parent collects those lines for a while, SIGKILLs the child mid-flight, reopens the store and
//! checks that every acknowledged key is there with its value. Several rounds, each in a fresh
//! directory, and one round reopening a store that already survived a kill.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flotilla_store::{SqliteStore, Store, Txn, TxnOutcome};

const CHILD_ENV: &str = "FLOTILLA_STORE_DURABILITY_CHILD";
const TEST_NAME: &str = "acknowledged_writes_survive_kill_9";
const WRITERS: usize = 16;

fn value_for(key: &str) -> Vec<u8> {
    format!("value of {key}").into_bytes()
}

/// Child mode: write until killed (or, as a safety net, for 60 s).
fn child(dir: &str, tag: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = std::sync::Arc::new(SqliteStore::open(std::path::Path::new(dir)).unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            let tag = tag.to_owned();
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("{tag}/w{w:02}/{i:08}");
                    let out = store.txn(Txn::new().put(&key, value_for(&key))).await;
                    match out {
                        Ok(TxnOutcome::Committed { revision }) => {
                            let mut stdout = std::io::stdout().lock();
                            writeln!(stdout, "ACK {key} {revision}").unwrap();
                            stdout.flush().unwrap();
                        }
                        other => panic!("put failed: {other:?}"),
                    }
                    i += 1;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Runs one child writing under `tag` into `dir` for `run`, kills it, returns the acknowledged
/// (key, revision) pairs.
fn run_and_kill(dir: &std::path::Path, tag: &str, run: Duration) -> Vec<(String, u64)> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env("FLOTILLA_STORE_DURABILITY_TAG", tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (key, rev) = rest.rsplit_once(' ').unwrap();
                tx.send((key.to_owned(), rev.parse::<u64>().unwrap()))
                    .unwrap();
            }
        }
    });
    // Wait for the first acknowledgement (the child has to start), then let it run.
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    std::thread::sleep(run);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "child exited on its own: {status:?}");
    reader.join().unwrap();
    let mut acked = vec![first];
    acked.extend(rx.try_iter());
    acked
}

async fn verify(dir: &std::path::Path, acked: &[(String, u64)]) -> u64 {
    let store = SqliteStore::open(dir).unwrap();
    let revision = store.revision().await.unwrap();
    let max_acked = acked.iter().map(|(_, r)| *r).max().unwrap();
    assert!(
        revision >= max_acked,
        "store at revision {revision} but revision {max_acked} was acknowledged"
    );
    for (key, rev) in acked {
        let kv = store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged key {key} (revision {rev}) lost"));
        assert_eq!(kv.value, value_for(key), "{key}");
        assert_eq!(kv.mod_revision, *rev, "{key}");
    }
    // The store is still writable and continues from its revision.
    let out = store
        .txn(Txn::new().put("after-crash", vec![1]))
        .await
        .unwrap();
    assert_eq!(
        out,
        TxnOutcome::Committed {
            revision: revision + 1
        }
    );
    revision + 1
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let tag = std::env::var("FLOTILLA_STORE_DURABILITY_TAG").unwrap();
        child(&dir, &tag);
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Three rounds in fresh directories.
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let acked = run_and_kill(dir.path(), "r", Duration::from_millis(1200));
        assert!(acked.len() > 10, "round {round}: only {} acks", acked.len());
        rt.block_on(verify(dir.path(), &acked));
        eprintln!(
            "round {round}: {} acknowledged puts survived kill -9",
            acked.len()
        );
    }
    // And a store that already survived one kill survives another.
    let dir = tempfile::tempdir().unwrap();
    let first = run_and_kill(dir.path(), "a", Duration::from_millis(500));
    let rev = rt.block_on(verify(dir.path(), &first));
    let second = run_and_kill(dir.path(), "b", Duration::from_millis(500));
    assert!(second.iter().all(|(_, r)| *r > rev));
    rt.block_on(verify(dir.path(), &second));
    rt.block_on(verify(dir.path(), &first));
}
