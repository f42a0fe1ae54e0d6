//! Choosing a backend by URL: `memory:`, `sqlite://PATH`, `etcd://h1:2379,h2:2379/PREFIX`.
//!
//! [`StoreUrl`] parses (it implements `FromStr`, so a command line can take it as an argument)
//! and [`open`] opens the backend it names with its default options, as one `Arc<dyn Store>`.
//! It opens nothing by itself and knows no defaults of the server (the data directory of the
//! embedded store stays the caller's choice).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::etcd::{ElectionOptions, EtcdConfig, EtcdOptions, EtcdStore, InvalidEtcdUrl};
use crate::{
    Election, Embedded, MemoryStore, SoleLeader, SqliteStore, Store, StoreError, Topology,
};

/// Which backend, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:`: [`MemoryStore`], lost on exit.
    Memory,
    /// `sqlite://PATH`: [`SqliteStore`] in the directory `PATH` (`sqlite:///var/lib/flotilla`
    /// is absolute, `sqlite://data` relative).
    Sqlite(PathBuf),
    /// `etcd://h1:2379,h2:2379,h3:2379/flotilla`: [`EtcdStore`].
    Etcd(EtcdConfig),
}

/// Why a store URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStoreUrl {
    /// A scheme no backend has.
    #[error("unknown store URL {0:?}: expected memory:, sqlite://PATH or etcd://HOST:PORT[,HOST:PORT...]/PREFIX")]
    UnknownScheme(String),
    /// `sqlite://` without a path.
    #[error("store URL {0:?} names no directory: expected sqlite://PATH")]
    EmptySqlitePath(String),
    /// A malformed etcd URL.
    #[error(transparent)]
    Etcd(#[from] InvalidEtcdUrl),
}

impl FromStr for StoreUrl {
    type Err = InvalidStoreUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory:" || s == "memory://" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(InvalidStoreUrl::EmptySqlitePath(s.to_owned()));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("etcd://") {
            return Ok(StoreUrl::Etcd(EtcdConfig::parse(s)?));
        }
        Err(InvalidStoreUrl::UnknownScheme(s.to_owned()))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory:"),
            StoreUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StoreUrl::Etcd(c) => c.fmt(f),
        }
    }
}

impl StoreUrl {
    /// The store of another region of the installation this URL names: each region has a
    /// store of its own beside the installation's (which stays the primary region's), so its
    /// keys, watches, revisions and leader election never mix with another region's and the
    /// store's contract is unchanged. `memory:` is a new memory store; `sqlite://PATH` the
    /// directory `PATH/regions/REGION`; `etcd://HOSTS/PATH` the same cluster under
    /// `/PATH/regions/REGION/` (inside the installation's prefix, which holds no other key
    /// under `regions/`, so removing an installation's prefix removes its regions too).
    /// `region` is a region name (`eu-west-1`: letters, digits and dashes), which the caller
    /// checks.
    pub fn for_region(&self, region: &str) -> StoreUrl {
        match self {
            StoreUrl::Memory => StoreUrl::Memory,
            StoreUrl::Sqlite(dir) => StoreUrl::Sqlite(dir.join("regions").join(region)),
            StoreUrl::Etcd(cfg) => StoreUrl::Etcd(EtcdConfig {
                endpoints: cfg.endpoints.clone(),
                path: format!("{}/regions/{region}", cfg.path),
            }),
        }
    }
}

/// Opens the backend `url` names, with its default options.
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Sqlite(dir) => {
            let dir = dir.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir))
                .await
                .map_err(|e| StoreError::Backend(format!("opening SQLite: {e}")))??;
            Arc::new(store)
        }
        StoreUrl::Etcd(cfg) => {
            Arc::new(EtcdStore::connect(cfg.clone(), EtcdOptions::default()).await?)
        }
    })
}

/// A store opened for one server replica: the store, its leader election and its
/// [`Topology`].
pub type Replica = (Arc<dyn Store>, Arc<dyn Election>, Arc<dyn Topology>);

/// Opens the backend `url` names (as [`open`]) together with its leader election for the
/// replica named `id` and its topology: [`SoleLeader`] and [`Embedded`] for the embedded
/// stores (one server owns them), an [`crate::etcd::EtcdElection`] with `election` options
/// and the [`EtcdStore`] itself on etcd.
pub async fn open_replica(
    url: &StoreUrl,
    id: &str,
    election: ElectionOptions,
) -> Result<Replica, StoreError> {
    Ok(match url {
        StoreUrl::Etcd(cfg) => {
            let store = EtcdStore::connect(cfg.clone(), EtcdOptions::default()).await?;
            let e = store.election(id, election);
            (Arc::new(store.clone()), Arc::new(e), Arc::new(store))
        }
        other => {
            let kind = match other {
                StoreUrl::Memory => "memory",
                _ => "sqlite",
            };
            (
                open(other).await?,
                Arc::new(SoleLeader::new(id)),
                Arc::new(Embedded(kind)),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_has_its_own_store_beside_the_installations() {
        assert_eq!(StoreUrl::Memory.for_region("eu-west-1"), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::Sqlite("/var/lib/flotilla".into()).for_region("eu-west-1"),
            StoreUrl::Sqlite("/var/lib/flotilla/regions/eu-west-1".into())
        );
        let etcd: StoreUrl = "etcd://a:1,b:2/prod/flotilla".parse().unwrap();
        let StoreUrl::Etcd(cfg) = etcd.for_region("eu-west-1") else {
            panic!("not etcd");
        };
        assert_eq!(cfg.key_prefix(), "/prod/flotilla/regions/eu-west-1/");
        assert_eq!(cfg.endpoints, vec!["http://a:1", "http://b:2"]);
    }

    #[test]
    fn parses_every_scheme() {
        assert_eq!("memory:".parse::<StoreUrl>().unwrap(), StoreUrl::Memory);
        assert_eq!(
            "sqlite:///var/lib/flotilla".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/var/lib/flotilla".into())
        );
        assert_eq!(
            "sqlite://data".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("data".into())
        );
        let etcd: StoreUrl = "etcd://a:1,b:2/flotilla".parse().unwrap();
        assert_eq!(etcd.to_string(), "etcd://a:1,b:2/flotilla");
        assert!(matches!(
            "sqlite://".parse::<StoreUrl>(),
            Err(InvalidStoreUrl::EmptySqlitePath(_))
        ));
        assert!(matches!(
            "etcd://a:1".parse::<StoreUrl>(),
            Err(InvalidStoreUrl::Etcd(_))
        ));
        assert!(matches!(
            "postgres://x".parse::<StoreUrl>(),
            Err(InvalidStoreUrl::UnknownScheme(_))
        ));
    }

    #[tokio::test]
    async fn opens_memory_and_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        for url in [StoreUrl::Memory, StoreUrl::Sqlite(dir.path().to_owned())] {
            let store = open(&url).await.unwrap();
            assert_eq!(store.revision().await.unwrap(), 0, "{url}");
        }
    }
}
