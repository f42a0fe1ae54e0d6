//! Images: pulling a task's images under the configured pull behaviour, recording when each
//! image this agent pulled was last used, and removing the ones unused for the cleanup delay.
//!
//! Credentials for a pull: the task's own, when a container of that image has
//! `repositoryCredentials` (the server read them with the task's secrets), else the host's
//! Docker config ([`crate::registry::host_auth`]: `credHelpers`, `credsStore`, `auths`), else
//! none.
//!
//! What this is not: reading the host's Docker config and running its credential helpers
//! ([`crate::registry`]) or the pull itself ([`crate::runtime::Runtime::pull`]).
//!
//! Invariant: only images this agent pulled are ever removed, and only when no container
//! (of anyone) uses them.

use super::{lock, TaskOwner};
use crate::config::ImagePullBehavior;
use crate::failure::TaskFailure;
use crate::runtime::{RegistryAuth, RuntimeError};
use flotilla_model::status::ContainerStatus;
use tracing::{info, warn};

impl TaskOwner {
    /// failed (the task is then stopping).
    pub(super) async fn pull_images(&mut self) -> bool {
        let rt = self.inner.runtime.clone();
        if self.p.pull_started_at.is_none() {
            self.p.pull_started_at = Some(self.inner.now_epoch());
            self.persist();
            self.report();
        }
        let mut images: Vec<(String, String)> = vec![];
        for c in self
            .ctrs
            .iter()
            .filter(|c| c.runtime_id.is_none() && c.status == ContainerStatus::Pending)
        {
            let image = c.def.image.clone().unwrap_or_default();
            if !images.iter().any(|(i, _)| *i == image) {
                images.push((image, c.name.clone()));
            }
        }
        for (image, first) in &images {
            let task_auth = self.task_auth(image);
            let pulled = self.ensure_image(image, task_auth).await;
            if let Err(e) = pulled {
                // Every container of that image gets the reason.
                let failure = TaskFailure::Pull(e);
                let reason = failure.to_string();
                for c in self
                    .ctrs
                    .iter_mut()
                    .filter(|c| c.def.image.as_deref() == Some(image))
                {
                    c.reason = Some(reason.clone());
                    self.p
                        .container_reasons
                        .insert(c.name.clone(), reason.clone());
                }
                self.fail_start(Some(first), failure);
                self.p.pull_stopped_at = Some(self.inner.now_epoch());
                self.persist();
                return false;
            }
            let digest = rt
                .inspect_image(image)
                .await
                .ok()
                .flatten()
                .and_then(|i| i.digest);
            for c in self
                .ctrs
                .iter_mut()
                .filter(|c| c.def.image.as_deref() == Some(image))
            {
                c.image_digest = digest.clone();
            }
        }
        if self.p.pull_stopped_at.is_none() || !images.is_empty() {
            self.p.pull_stopped_at = Some(self.inner.now_epoch());
        }
        true
    }

    /// The task's own credentials for `image`: those of the first container of that image
    /// whose `repositoryCredentials` the server read.
    fn task_auth(&self, image: &str) -> Option<RegistryAuth> {
        let secrets = self.secrets.as_deref().unwrap_or_default();
        self.ctrs
            .iter()
            .filter(|c| c.def.image.as_deref() == Some(image))
            .find_map(|c| {
                let creds = secrets
                    .iter()
                    .find(|s| s.name == c.name)?
                    .registry_auth
                    .as_ref()?;
                Some(RegistryAuth {
                    username: creds.username.0.clone(),
                    password: creds.password.0.clone(),
                    identity_token: None,
                    server: crate::registry::server_address(image),
                })
            })
    }

    /// Makes `image` present as the pull behaviour says, pulling with `task_auth` (the task's
    /// `repositoryCredentials`) when given, else with what the host's Docker config gives.
    pub(super) async fn ensure_image(
        &self,
        image: &str,
        task_auth: Option<RegistryAuth>,
    ) -> Result<(), RuntimeError> {
        let rt = &self.inner.runtime;
        let present = rt.inspect_image(image).await?.is_some();
        let pulled_before = lock(&self.inner.pulled).contains_key(image);
        let must_pull = match self.inner.cfg.image_pull_behavior {
            ImagePullBehavior::PreferCached => !present,
            ImagePullBehavior::Once => !present || !pulled_before,
            ImagePullBehavior::Always | ImagePullBehavior::Default => true,
        };
        if must_pull {
            let (auth, credentials) = match task_auth {
                Some(auth) => (Some(auth), "the task's repositoryCredentials"),
                None => {
                    let host =
                        crate::registry::host_auth(self.inner.cfg.docker_config.as_deref(), image)
                            .await
                            .map_err(|e| RuntimeError::Pull {
                                image: image.to_string(),
                                message: e.to_string(),
                            });
                    match host {
                        Ok(Some(auth)) => (Some(auth), "the host's Docker config"),
                        Ok(None) => (None, "none"),
                        Err(e)
                            if present
                                && self.inner.cfg.image_pull_behavior
                                    == ImagePullBehavior::Default =>
                        {
                            warn!(image = %image, error = %e, "no credentials; using the cached image");
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            info!(image = %image, credentials, "pulling image");
            match rt.pull(image, auth.as_ref()).await {
                Ok(()) => {
                    let mut pulled = lock(&self.inner.pulled);
                    pulled.insert(image.to_string(), self.inner.now_epoch());
                    if let Err(e) = self.inner.data.save_pulled_images(&pulled) {
                        warn!(error = %e, "cannot save pulled images");
                    }
                }
                Err(e)
                    if present
                        && self.inner.cfg.image_pull_behavior == ImagePullBehavior::Default =>
                {
                    warn!(image = %image, error = %e, "pull failed; using the cached image");
                }
                Err(e) => return Err(e),
            }
        } else {
            let mut pulled = lock(&self.inner.pulled);
            if let Some(t) = pulled.get_mut(image) {
                *t = self.inner.now_epoch();
            }
        }
        Ok(())
    }

    pub(super) async fn cleanup_images(&self) {
        let rt = &self.inner.runtime;
        let delay = self.inner.cfg.cleanup_delay.as_secs_f64();
        let candidates: Vec<String> = lock(&self.inner.pulled)
            .iter()
            .filter(|(_, used)| **used + delay <= self.inner.now_epoch())
            .map(|(i, _)| i.clone())
            .collect();
        for image in candidates {
            if matches!(rt.image_in_use(&image).await, Ok(false)) {
                info!(image = %image, "removing unused image");
                if rt.remove_image(&image).await.is_ok() {
                    let mut pulled = lock(&self.inner.pulled);
                    pulled.remove(&image);
                    let _ = self.inner.data.save_pulled_images(&pulled);
                }
            }
        }
    }
}
