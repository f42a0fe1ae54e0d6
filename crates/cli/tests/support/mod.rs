//! Starts a real `flotilla dev` process for a test and builds an AWS SDK client pointed at it.

#![allow(clippy::expect_used)] // Test support: a failure to start the server must fail the test loudly.
#![allow(dead_code)] // Shared by several test binaries; each uses a part.

mod sdk;
pub use sdk::sdk;
#[allow(unused_imports)] // Only the test binaries that call a region other than us-east-1.
pub use sdk::sdk_in;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Access key the test servers accept.
pub const AKID: &str = "AKIDFLOTILLATEST";
/// Secret of [`AKID`].
pub const SECRET: &str = "flotilla-test-secret";

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `flotilla dev` on a free port with a fresh data directory.
pub fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["dev", "--no-agent", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("AWS_ACCESS_KEY_ID", AKID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("flotilla binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut endpoint = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        if let Some(addr) = line.strip_prefix("listening on ") {
            endpoint = Some(addr.to_string());
            break;
        }
    }
    Server {
        child,
        endpoint: endpoint.expect("server printed its address"),
        _dir: dir,
    }
}

/// An `aws-sdk-ecs` client for a server.
pub fn client(server: &Server) -> aws_sdk_ecs::Client {
    sdk(&server.endpoint, AKID, SECRET, None)
}
