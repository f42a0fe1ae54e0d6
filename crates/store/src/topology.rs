//! What a store can tell about itself and about the server replicas of its installation, for
//! `FlotillaAdmin.Status` (`flotilla status`).
//!
//! - [`Embedded`] (memory, SQLite): one server owns the store, so there is one replica (the
//!   server knows itself; nothing is written) and no members.
//! - [`crate::EtcdStore`]: each replica records itself under a key attached to an etcd lease
//!   it keeps alive ([`Topology::announce`]), so a dead replica's record disappears when its
//!   lease lapses; the members are the etcd cluster's, as it reports them.

use async_trait::async_trait;

use crate::StoreError;

/// One member of the store's cluster, as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name (empty while a newly added member has not started).
    pub name: String,
    /// The URLs it serves clients on.
    pub client_urls: Vec<String>,
}

/// What a store tells about itself and its installation's replicas.
#[async_trait]
pub trait Topology: Send + Sync + 'static {
    /// `memory`, `sqlite` or `etcd`.
    fn kind(&self) -> &'static str;

    /// Whether replicas record themselves in the store (else only the asking server is known).
    fn shared(&self) -> bool;

    /// Keeps `key` = `value` in the store while this process lives and reaches it, refreshed
    /// periodically (etcd: on a lease of `ttl`); gone once that stops. Nothing for an embedded
    /// store. The task ends with the returned handle's abort.
    fn announce(&self, key: String, value: Vec<u8>) -> Option<tokio::task::JoinHandle<()>>;

    /// The store's cluster members; `None` when it has none (embedded).
    async fn members(&self) -> Result<Option<Vec<Member>>, StoreError>;
}

/// The topology of a store one server owns (memory, SQLite).
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static str);

#[async_trait]
impl Topology for Embedded {
    fn kind(&self) -> &'static str {
        self.0
    }

    fn shared(&self) -> bool {
        false
    }

    fn announce(&self, _key: String, _value: Vec<u8>) -> Option<tokio::task::JoinHandle<()>> {
        None
    }

    async fn members(&self) -> Result<Option<Vec<Member>>, StoreError> {
        Ok(None)
    }
}
