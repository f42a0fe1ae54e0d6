//! The state of the in-memory runtime behind its one lock: containers, images (local and in
//! the registry), volumes, networks, scripts, injected errors and the calls received.

use super::calls::{Call, Op};
use super::container::Container;
use super::script::Script;
use crate::runtime::{ImageInfo, NetworkInfo, RuntimeError, VolumeSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

pub(super) type Edit = Arc<dyn Fn(&mut Script) + Send + Sync>;

#[derive(Default)]
pub(super) struct Model {
    pub(super) seq: u64,
    pub(super) images: BTreeMap<String, ImageInfo>,
    pub(super) registry: BTreeMap<String, ImageInfo>,
    /// Images of `registry` that only these credentials (user name, password) may pull.
    pub(super) private: BTreeMap<String, (String, String)>,
    pub(super) containers: Vec<Container>,
    pub(super) volumes: BTreeMap<String, VolumeSpec>,
    pub(super) networks: BTreeMap<String, NetworkInfo>,
    pub(super) scripts: BTreeMap<String, Edit>,
    pub(super) injected: Vec<(Op, RuntimeError)>,
    pub(super) calls: Vec<(Instant, Call)>,
    /// Whether `calls` is kept (not on a simulated host).
    pub(super) log_calls: bool,
    pub(super) next_port: u16,
    /// Execs, by id.
    pub(super) execs: BTreeMap<String, super::ExecRecord>,
}

impl Model {
    pub(super) fn find(&mut self, key: &str) -> Option<&mut Container> {
        let at = self.position(key)?;
        self.containers.get_mut(at)
    }

    /// Docker's lookup: full id, name, or a unique id prefix.
    pub(super) fn position(&self, key: &str) -> Option<usize> {
        let key = key.trim_start_matches('/');
        if let Some(i) = self
            .containers
            .iter()
            .position(|c| c.id == key || c.spec.name == key)
        {
            return Some(i);
        }
        let mut prefixed = self
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| !key.is_empty() && c.id.starts_with(key));
        match (prefixed.next(), prefixed.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    pub(super) fn settle(&mut self, now: Instant) {
        for c in &mut self.containers {
            c.settle(now);
        }
    }

    pub(super) fn record(&mut self, call: Call) {
        if self.log_calls {
            self.calls.push((Instant::now(), call));
        }
    }

    pub(super) fn take_injected(&mut self, op: Op) -> Result<(), RuntimeError> {
        match self.injected.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(self.injected.remove(i).1),
            None => Ok(()),
        }
    }

    pub(super) fn new_id(&mut self, salt: &str) -> String {
        self.seq += 1;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seq;
        for b in salt.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}{:048x}", self.seq)
    }

    pub(super) fn in_use(&self, image: &str) -> bool {
        let image = normalize(image);
        self.containers
            .iter()
            .any(|c| normalize(&c.spec.image) == image)
    }
}

/// `name` -> `name:latest`, as Docker reads an image reference without a tag or digest.
pub(super) fn normalize(image: &str) -> String {
    let (_, tag) = crate::docker::split_tag(image);
    if image.contains('@') || image.ends_with(&format!(":{tag}")) {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

pub(super) fn no_such_container(key: &str) -> String {
    format!("No such container: {key}")
}
