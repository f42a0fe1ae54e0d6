//! The web console's HTTP side, served under `/console/` on the API's own listener by
//! `flotilla server` and `flotilla dev`. The pages themselves are `flotilla_console`'s (pure);
//! this module signs people in, checks every request's session and every form's CSRF token,
//! and turns each page and action into API calls ([`client`]) made with the signed-in key
//! through the API's own path.
//!
//! - `GET /console/signin`, `POST /console/signin` (an access key pair, checked against the
//!   server's configured keys), `POST /console/signout`.
//! - `GET /console/clusters`, `/console/clusters/{cluster}`,
//!   `/console/clusters/{cluster}/services/{service}`, `/console/clusters/{cluster}/tasks/{task}`,
//!   `/console/task-definitions`, `/console/task-definitions/{family:revision}`.
//! - `POST /console/clusters/{cluster}/services` (CreateService),
//!   `POST /console/clusters/{cluster}/services/{service}/desired-count` (UpdateService),
//!   `POST /console/clusters/{cluster}/tasks/{task}/stop` (StopTask).
//!
//! The session cookie is signed with a key derived from the installation's secrets key
//! ([`flotilla_seal::Key::derive`]), so every replica accepts it and it outlives a restart; a
//! server without one draws a random key (sessions end when it stops). A session is valid while
//! it has not expired and its access key is still one of the server's.
//!
//! Every answer carries a Content-Security-Policy that runs only the console's own script (by
//! its hash), no framing, and `Cache-Control: no-store`. A `POST` whose `Origin` is another site
//! is refused before anything else.
//!
//! The console serves the region of the `Api` whose router it is in: a browser's request is not
//! signed, so it reaches the primary region ([`crate::regions`]).

pub mod client;
mod handlers;
pub mod read;

use crate::context::Api;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use flotilla_console::session::{self, SessionKey};
use flotilla_console::Viewer;
use flotilla_sigv4::Credential;
use sha2::Digest as _;
use std::sync::Arc;

/// The console's state: the region's API, the session key, and the page headers.
pub struct Console {
    api: Arc<Api>,
    key: SessionKey,
    csp: HeaderValue,
}

impl Console {
    /// The console of `api`.
    pub fn new(api: Arc<Api>) -> Self {
        let key = match api.task_credentials() {
            Some(c) => SessionKey::new(*c.key.derive("flotilla console session")),
            None => SessionKey::new(rand::random()),
        };
        let script = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(
            flotilla_console::layout::LIVE_SCRIPT.as_bytes(),
        ));
        let csp = format!(
            "default-src 'none'; script-src 'sha256-{script}'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        Console {
            api,
            key,
            csp: HeaderValue::from_str(&csp)
                .unwrap_or(HeaderValue::from_static("default-src 'none'")),
        }
    }
}

/// The console's routes, served by [`crate::router`].
pub fn routes(api: Arc<Api>) -> Router {
    let console = Arc::new(Console::new(api));
    Router::new()
        .route("/console", get(handlers::home))
        .route("/console/", get(handlers::home))
        .route(
            "/console/signin",
            get(handlers::signin_page).post(handlers::signin),
        )
        .route("/console/signout", post(handlers::signout))
        .route("/console/clusters", get(handlers::clusters))
        .route("/console/clusters/{cluster}", get(handlers::cluster))
        .route(
            "/console/clusters/{cluster}/services",
            post(handlers::create_service),
        )
        .route(
            "/console/clusters/{cluster}/services/{service}",
            get(handlers::service),
        )
        .route(
            "/console/clusters/{cluster}/services/{service}/desired-count",
            post(handlers::desired_count),
        )
        .route(
            "/console/clusters/{cluster}/tasks/{task}",
            get(handlers::task),
        )
        .route(
            "/console/clusters/{cluster}/tasks/{task}/stop",
            post(handlers::stop_task),
        )
        .route("/console/task-definitions", get(handlers::task_definitions))
        .route(
            "/console/task-definitions/{name}",
            get(handlers::task_definition),
        )
        .route("/console/{*rest}", get(handlers::not_found))
        .with_state(console)
}

/// A signed-in request: the session's cookie value, the key it signs with, and the viewer.
struct SignedIn {
    cookie: String,
    credential: Credential,
    viewer: Viewer,
}

impl Console {
    /// The session of a request: its cookie verified at the API's clock, its access key still
    /// one of the server's. `None` sends the browser to sign in.
    fn session(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let value = cookies
            .filter_map(session::cookie_value)
            .next()?
            .to_string();
        let s = session::verify(&self.key, &value, self.api.clock.now()).ok()?;
        let credential = self
            .api
            .config
            .credentials
            .iter()
            .find(|c| c.access_key_id == s.access_key_id)?
            .clone();
        Some(SignedIn {
            viewer: Viewer {
                access_key_id: s.access_key_id,
                csrf: session::csrf_token(&self.key, &value),
            },
            cookie: value,
            credential,
        })
    }

    /// A page: HTML with the console's headers.
    fn html(&self, status: StatusCode, body: String) -> Response {
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        self.secure(h);
        resp
    }

    /// The headers every console answer carries.
    fn secure(&self, h: &mut HeaderMap) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
    }

    /// `303 See Other` to `to` (a console path), optionally setting a cookie.
    fn redirect(&self, to: &str, cookie: Option<String>) -> Response {
        let mut resp = StatusCode::SEE_OTHER.into_response();
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(to) {
            h.insert(header::LOCATION, v);
        }
        if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::SET_COOKIE, c);
        }
        self.secure(h);
        resp
    }
}

/// Whether a `POST` comes from a page of this server: its `Origin`, when the browser sent one,
/// names the `Host` it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://").map(|(_, rest)| rest));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_posts_from_this_host_are_taken() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
    }
}
