//! Images: pulling a task's images under the configured pull behaviour, recording when each
//! image this agent pulled was last used, and removing the ones unused for the cleanup delay.
//!
//! What this is not: registry authentication ([`crate::registry`]) or the pull itself
//! ([`crate::runtime::Runtime::pull`]).
//!
//! Invariant: only images this agent pulled are ever removed, and only when no container
//! (of anyone) uses them.

use super::{lock, TaskOwner};
use crate::config::ImagePullBehavior;
use crate::failure::TaskFailure;
use crate::runtime::RuntimeError;
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
            let pulled = self.ensure_image(image).await;
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

    pub(super) async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        let rt = &self.inner.runtime;
        let present = rt.inspect_image(image).await?.is_some();
        let pulled_before = lock(&self.inner.pulled).contains_key(image);
        let must_pull = match self.inner.cfg.image_pull_behavior {
            ImagePullBehavior::PreferCached => !present,
            ImagePullBehavior::Once => !present || !pulled_before,
            ImagePullBehavior::Always | ImagePullBehavior::Default => true,
        };
        if must_pull {
            info!(image = %image, "pulling image");
            let auth = crate::registry::auth_for(self.inner.cfg.docker_config.as_deref(), image);
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
