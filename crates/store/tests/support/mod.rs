//! Real etcd processes for the store's tests: one member ([`EtcdServer::start`]) or a
//! three-member cluster ([`EtcdCluster::start`]) on free loopback ports, each member with its
//! own temporary data directory, killed (SIGKILL) when dropped.
//!
//! The `etcd` binary comes from Debian's `etcd-server` package (`scripts/test` installs it);
//! `FLOTILLA_ETCD` overrides its path. A missing binary fails the test loudly: these tests are
//! never skipped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flotilla_store::etcd::{EtcdConfig, EtcdOptions, EtcdStore};
use flotilla_store::Store;

/// How long a member may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn etcd_binary() -> PathBuf {
    if let Ok(p) = std::env::var("FLOTILLA_ETCD") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("etcd");
        if p.is_file() {
            return p;
        }
    }
    for p in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "the etcd binary was not found (PATH, /usr/bin, FLOTILLA_ETCD): install Debian's \
         etcd-server package (scripts/test does); the etcd store tests never skip"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where temporary data directories go: tmpfs when there is one (fsync is then cheap, which
/// keeps the conformance suite fast), else the system temp dir.
fn temp_root(fast: bool) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if fast && shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// One etcd member process.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    dir: tempfile::TempDir,
    initial_cluster: String,
    child: Option<Child>,
}

impl Member {
    fn new(name: &str, fast: bool) -> Self {
        Member {
            name: name.to_owned(),
            client_port: free_port(),
            peer_port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("flotilla-etcd-")
                .tempdir_in(temp_root(fast))
                .unwrap(),
            initial_cluster: String::new(),
            child: None,
        }
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// Starts (or restarts, on its kept data directory) the process.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new(etcd_binary())
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.client_url()])
            .args(["--advertise-client-urls", &self.client_url()])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.peer_url()])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "flotilla-test"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start etcd: {e}"));
        self.child = Some(child);
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the process with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("member not running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGSTOP: the member keeps its sockets open but answers nothing (a frozen member).
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Member::freeze`].
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// The tail of this member's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a starting etcd member answers.
enum Ready {
    Yes,
    PortTaken,
}

/// One single-member etcd.
pub struct EtcdServer {
    pub member: Member,
}

impl EtcdServer {
    /// Starts a fresh member on a tmpfs data directory and waits until it answers.
    /// A member whose ports were taken between choosing them and etcd binding them (another
    /// test's process got there first) is started again on other ports, at most 5 times.
    pub async fn start() -> Self {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut member = Member::new("solo", true);
            member.initial_cluster = format!("solo={}", member.peer_url());
            member.spawn();
            let server = EtcdServer { member };
            match server.ready_or_port_taken().await {
                Ready::Yes => return server,
                Ready::PortTaken if attempt < 5 => continue,
                Ready::PortTaken => panic!(
                    "etcd could not bind its ports in 5 attempts:\n{}",
                    server.member.log_tail()
                ),
            }
        }
    }

    /// Waits until the member answers, or its log says a port was already in use.
    async fn ready_or_port_taken(&self) -> Ready {
        let store = self.store("ready-probe", EtcdOptions::default()).await;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if store.revision().await.is_ok() {
                return Ready::Yes;
            }
            if self.member.log_tail().contains("address already in use") {
                return Ready::PortTaken;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within {START_TIMEOUT:?}:\n{}",
                self.member.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("etcd://127.0.0.1:{}/{path}", self.member.client_port)
    }

    /// A store on this server under `/<path>/`.
    pub async fn store(&self, path: &str, opts: EtcdOptions) -> EtcdStore {
        EtcdStore::connect(EtcdConfig::parse(&self.url(path)).unwrap(), opts)
            .await
            .unwrap()
    }

    pub async fn wait_ready(&self) {
        let store = self.store("ready-probe", EtcdOptions::default()).await;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if store.revision().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within {START_TIMEOUT:?}:\n{}",
                self.member.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill(&mut self) {
        self.member.kill();
    }

    pub async fn restart(&mut self) {
        self.member.spawn();
        self.wait_ready().await;
    }
}

/// A three-member etcd cluster on loopback.
pub struct EtcdCluster {
    pub members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts three members on disk-backed data directories and waits for a leader.
    pub async fn start() -> Self {
        let mut members: Vec<Member> = (0..3)
            .map(|i| Member::new(&format!("m{i}"), false))
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster = initial.clone();
            m.spawn();
        }
        let cluster = EtcdCluster { members };
        let deadline = Instant::now() + START_TIMEOUT;
        while cluster.leader().await.is_none() {
            assert!(
                Instant::now() < deadline,
                "no etcd leader within {START_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
    }

    pub fn url(&self, path: &str) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect();
        format!("etcd://{}/{path}", hosts.join(","))
    }

    /// The index of the member that is leader, asked of every running member through the
    /// maintenance status API (`etcdctl endpoint status`); `None` while there is none.
    pub async fn leader(&self) -> Option<usize> {
        for (i, m) in self.members.iter().enumerate() {
            let opts = etcd_client::ConnectOptions::new()
                .with_timeout(Duration::from_millis(500))
                .with_connect_timeout(Duration::from_millis(300));
            let Ok(mut client) = etcd_client::Client::connect([m.client_url()], Some(opts)).await
            else {
                continue;
            };
            let Ok(status) = client.status().await else {
                continue;
            };
            let me = status.header().map(|h| h.member_id());
            if status.leader() != 0 && me == Some(status.leader()) {
                return Some(i);
            }
        }
        None
    }
}

/// A TCP proxy in front of one member that the test can cut (every open connection is dropped
/// and new ones are closed at once) and heal: a dropped connection without killing etcd.
pub struct Proxy {
    pub port: u16,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    cut: bool,
    pipes: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(target_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState::default()));
        let st = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if st.lock().unwrap().cut {
                    drop(inbound);
                    continue;
                }
                let pipe = tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                st.lock().unwrap().pipes.push(pipe);
            }
        });
        Proxy {
            port,
            state,
            accept,
        }
    }

    /// Drops every connection and refuses new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        let mut st = self.state.lock().unwrap();
        st.cut = true;
        for p in st.pipes.drain(..) {
            p.abort();
        }
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
