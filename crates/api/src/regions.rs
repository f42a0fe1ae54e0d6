//! Several regions on one endpoint. Each region the installation serves is a whole [`Api`] of
//! its own (ECS and the services beside it, on the region's own store, with its own ARNs and
//! controllers); [`Regions::router`] sends each request to the region its SigV4 credential
//! scope names (the `Authorization` header's `Credential=AKID/DATE/REGION/SERVICE/...`), as
//! AWS's regional endpoints are told apart by their host names.
//!
//! - A request without a SigV4 scope (`/healthz`, `/readyz`, `/metrics`, or a request that is
//!   not signed, which is then refused) goes to the primary region (`--region`).
//! - A request scoped to a region that is not served goes to the primary region too, whose
//!   edge refuses it once its signature is verified: AWS's `InvalidSignatureException`
//!   "Credential should be scoped to a valid region, not 'REGION'. " in the shape of the
//!   service it is for ([`crate::server`] checks the scope's region of every request against its
//!   own region).
//! - With [`Regions::with_any`] (`flotilla dev`) any well-formed region name
//!   ([`is_region_name`]) is served: its `Api` is opened on its first request.
//!
//! Why an `Api` per region rather than a region inside every handler: the region is part of
//! every ARN, store key and controller's work, so a per-region `Api` keeps every handler,
//! controller and service exactly as it is, and a region's state can never leak into another.

use crate::context::Api;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use flotilla_edge::{Call, EdgeError, Marker, Reply, Service};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tower::ServiceExt;

/// Opens a region's `Api` on its first request ([`Regions::with_any`]).
#[async_trait::async_trait]
pub trait OpenRegion: Send + Sync {
    /// The `Api` of `region` (a name [`is_region_name`] accepts), ready to serve.
    async fn open(&self, region: &str) -> Result<Arc<Api>, String>;
}

/// One served region: its `Api` and the router serving it.
#[derive(Clone)]
struct Served {
    api: Arc<Api>,
    router: Router,
}

impl Served {
    fn new(api: Arc<Api>) -> Self {
        Served {
            router: crate::router(api.clone()),
            api,
        }
    }
}

/// The regions an installation serves, by name.
pub struct Regions {
    primary: Served,
    others: RwLock<BTreeMap<String, Served>>,
    any: Option<Arc<dyn OpenRegion>>,
    opening: tokio::sync::Mutex<()>,
}

impl Regions {
    /// Serves `primary` (its region is the one of its ARN context) and, so far, no other
    /// region. Starts its controllers ([`crate::router`]), so needs a Tokio runtime.
    pub fn new(primary: Arc<Api>) -> Self {
        Regions {
            primary: Served::new(primary),
            others: RwLock::new(BTreeMap::new()),
            any: None,
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// Builder: also serves the region of `api`.
    pub fn with_region(self, api: Arc<Api>) -> Self {
        let name = api.config.arns.region.clone();
        self.others
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, Served::new(api));
        self
    }

    /// Builder: serves any region, opening its `Api` with `open` on its first request.
    pub fn with_any(mut self, open: Arc<dyn OpenRegion>) -> Self {
        self.any = Some(open);
        self
    }

    /// The primary region's `Api`.
    pub fn primary(&self) -> &Arc<Api> {
        &self.primary.api
    }

    /// Every region's `Api` open now, the primary first.
    pub fn apis(&self) -> Vec<Arc<Api>> {
        let others = self.others.read().unwrap_or_else(|e| e.into_inner());
        std::iter::once(self.primary.api.clone())
            .chain(others.values().map(|s| s.api.clone()))
            .collect()
    }

    /// Stops every region's controllers ([`Api::stop_background`]).
    pub async fn stop_background(&self) {
        for api in self.apis() {
            api.stop_background().await;
        }
    }

    fn served(&self, region: &str) -> Option<Served> {
        if region == self.primary.api.config.arns.region {
            return Some(self.primary.clone());
        }
        let others = self.others.read().unwrap_or_else(|e| e.into_inner());
        others.get(region).cloned()
    }

    /// The router of `region` (the primary's when there is none or it is not served, whose
    /// edge refuses it); `Err` when a region could not be opened.
    async fn pick(&self, region: Option<&str>) -> Result<Router, String> {
        let Some(region) = region else {
            return Ok(self.primary.router.clone());
        };
        if let Some(s) = self.served(region) {
            return Ok(s.router);
        }
        let Some(open) = self.any.as_ref().filter(|_| is_region_name(region)) else {
            return Ok(self.primary.router.clone());
        };
        // One opening at a time, so a region is opened once however many requests race.
        let _opening = self.opening.lock().await;
        if let Some(s) = self.served(region) {
            return Ok(s.router);
        }
        let api = open.open(region).await?;
        tracing::info!(region, "serving a new region");
        let served = Served::new(api);
        self.others
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(region.to_string(), served.clone());
        Ok(served.router)
    }

    /// The HTTP router of the installation: every request to its region's router.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(dispatch).with_state(self)
    }
}

/// The region in a request's SigV4 credential scope.
fn scope_region(req: &Request) -> Option<&str> {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(flotilla_sigv4::scope_region)
}

async fn dispatch(State(regions): State<Arc<Regions>>, req: Request) -> Response {
    let region = scope_region(&req).map(str::to_string);
    match regions.pick(region.as_deref()).await {
        Ok(router) => match router.oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(message) => {
            tracing::error!(region = ?region, error = %message, "could not open a region");
            let body = serde_json::json!({
                "__type": "ServiceUnavailableException",
                "message": format!("The region could not be opened: {message}"),
            });
            let mut resp = Response::new(Body::from(body.to_string()));
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static(flotilla_sigv4::target::JSON_CONTENT_TYPE),
            );
            resp
        }
    }
}

/// Whether `name` has the form of an AWS region name: two letters, one or more words, a number
/// (`us-east-1`, `us-gov-west-1`, `ap-southeast-2`), at most 32 characters. Only such names
/// are served (a region's name is part of its store's name).
pub fn is_region_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let lower = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    name.len() <= 32
        && parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(lower)
        && parts
            .last()
            .is_some_and(|n| (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A service served in one region only (Elastic Load Balancing, whose listeners share one
/// address, is served in the primary region): in any other region every call is refused with
/// [`EdgeError::NotInRegion`] in the service's own shape, naming the region that serves it.
pub struct OnlyIn {
    inner: Arc<dyn Service>,
    region: String,
}

impl OnlyIn {
    /// `inner`, refused in every region but `region` (the caller registers it in the others).
    pub fn new(inner: Arc<dyn Service>, region: impl Into<String>) -> Self {
        OnlyIn {
            inner,
            region: region.into(),
        }
    }
}

#[async_trait::async_trait]
impl Service for OnlyIn {
    fn title(&self) -> &'static str {
        self.inner.title()
    }
    fn signing_name(&self) -> &'static str {
        self.inner.signing_name()
    }
    fn marker(&self) -> Marker {
        self.inner.marker()
    }
    fn has_operation(&self, name: &str) -> bool {
        self.inner.has_operation(name)
    }
    async fn call(&self, call: Call<'_>) -> Reply {
        self.inner.reject(&EdgeError::NotInRegion {
            message: format!(
                "{} is served in region {} only by this installation, not in {}.",
                self.inner.title(),
                self.region,
                call.caller.region
            ),
        })
    }
    fn reject(&self, error: &EdgeError) -> Reply {
        self.inner.reject(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_have_aws_form() {
        for ok in [
            "us-east-1",
            "eu-west-3",
            "ap-southeast-2",
            "us-gov-west-1",
            "il-central-1",
            "us-isob-east-1",
        ] {
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "east-1",
            "US-EAST-1",
            "us-east-100",
            "us--1",
            "us-east-1/..",
            "../x-y-1",
            "us-east-1 ",
            "us-ea5t-1",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }
}
