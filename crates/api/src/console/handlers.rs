//! The console's handlers: check the session (and, for a form, its origin and CSRF token), make
//! the page's API calls, render the page. An action that the API refuses shows the page again
//! with the API's error (and what the form held); one that succeeds redirects to the page of
//! what it changed (`303 See Other`), so reloading never repeats it.

use super::client::{ApiError, Client};
use super::{read, same_origin, Console, SignedIn};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use flotilla_console::forms::{self, Fields};
use flotilla_console::layout::{self, Notice, Page};
use flotilla_console::pages::{self, cluster::ClusterView, service::ServiceView, task::TaskView};
use flotilla_console::session;
use sha2::Digest as _;
use std::sync::Arc;

type C = State<Arc<Console>>;

impl Console {
    fn client(self: &Arc<Self>, s: &SignedIn) -> Client {
        Client::new(self.api.clone(), s.credential.clone())
    }

    /// Sends a browser without a session to the sign-in page, to come back to `uri`.
    fn to_signin(&self, uri: &Uri) -> Response {
        let next = flotilla_console::html::segment(uri.path());
        self.redirect(&format!("/console/signin?next={next}"), None)
    }

    /// A page saying what went wrong.
    fn error_page(&self, s: &SignedIn, e: &ApiError) -> Response {
        let not_found = e.code.ends_with("NotFoundException")
            || (e.code == "InvalidParameterException" && e.message.contains("does not exist"));
        let status = if not_found {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST)
        };
        let html = layout::page(
            &s.viewer,
            Page {
                title: if not_found { "Not found" } else { "Error" },
                crumbs: vec![("/console/clusters".into(), "Clusters".into())],
                body: "<p><a href=\"/console/clusters\">Back to the clusters</a></p>".into(),
                notice: Some(notice(e)),
            },
        );
        self.html(status, html)
    }

    /// A refused form (another site's, or without this session's token).
    fn forbidden(&self) -> Response {
        self.html(
            StatusCode::FORBIDDEN,
            "<!doctype html><title>Forbidden</title><p>This form was not sent from a page of this console session. <a href=\"/console/clusters\">Back to the console</a></p>".into(),
        )
    }

    /// The session of a form's request, when it comes from this site with this session's CSRF
    /// token; otherwise the answer to send (boxed: it is large).
    fn form_session(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        fields: &Fields,
    ) -> Result<SignedIn, Box<Response>> {
        if !same_origin(headers) {
            return Err(Box::new(self.forbidden()));
        }
        let Some(s) = self.session(headers) else {
            return Err(Box::new(self.to_signin(uri)));
        };
        let token = fields.get("csrf").map(String::as_str).unwrap_or_default();
        if !session::check_csrf(&self.key, &s.cookie, token) {
            return Err(Box::new(self.forbidden()));
        }
        Ok(s)
    }
}

fn notice(e: &ApiError) -> Notice {
    Notice::Error {
        code: e.code.clone(),
        message: e.message.clone(),
    }
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// `/console/`: the clusters, or the sign-in page.
pub(super) async fn home(State(c): C, headers: HeaderMap) -> Response {
    match c.session(&headers) {
        Some(_) => c.redirect("/console/clusters", None),
        None => c.redirect("/console/signin", None),
    }
}

/// The sign-in page.
pub(super) async fn signin_page(State(c): C, Query(q): Query<Fields>) -> Response {
    let next = session::safe_next(q.get("next").map(String::as_str));
    c.html(StatusCode::OK, layout::signin(None, next))
}

/// Signs in with an access key pair of the server's configured keys.
pub(super) async fn signin(State(c): C, headers: HeaderMap, Form(f): Form<Fields>) -> Response {
    if !same_origin(&headers) {
        return c.forbidden();
    }
    let next = session::safe_next(f.get("next").map(String::as_str)).to_string();
    let akid = f.get("accessKeyId").map(|s| s.trim()).unwrap_or_default();
    let secret = f
        .get("secretAccessKey")
        .map(String::as_str)
        .unwrap_or_default();
    let known = c
        .api
        .config
        .credentials
        .iter()
        .find(|k| k.access_key_id == akid);
    // Compared whether or not the key exists, so the time taken does not tell.
    let matches = same_secret(
        known.map(|k| k.secret_access_key.as_str()).unwrap_or("\0"),
        secret,
    );
    if known.is_none() || !matches || akid.is_empty() {
        tracing::info!(access_key_id = %akid, "console sign-in refused");
        return c.html(
            StatusCode::UNAUTHORIZED,
            layout::signin(
                Some("The access key ID and secret access key are not a key pair of this server."),
                &next,
            ),
        );
    }
    let value = session::issue(&c.key, akid, c.api.clock.now(), rand::random());
    tracing::info!(access_key_id = %akid, "console sign-in");
    c.redirect(
        &next,
        Some(session::set_cookie(&value, session::SESSION_SECONDS)),
    )
}

/// Signs out: the browser's cookie is removed.
pub(super) async fn signout(
    State(c): C,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Fields>,
) -> Response {
    if let Err(resp) = c.form_session(&headers, &uri, &f) {
        return *resp;
    }
    c.redirect("/console/signin", Some(session::clear_cookie()))
}

/// Any other console path.
pub(super) async fn not_found(State(c): C, headers: HeaderMap, uri: Uri) -> Response {
    let Some(s) = c.session(&headers) else {
        return c.to_signin(&uri);
    };
    c.error_page(
        &s,
        &ApiError {
            code: "NotFoundException".into(),
            message: format!("The console has no page {}.", uri.path()),
            status: 404,
        },
    )
}

/// The cluster list.
pub(super) async fn clusters(State(c): C, headers: HeaderMap, uri: Uri) -> Response {
    let Some(s) = c.session(&headers) else {
        return c.to_signin(&uri);
    };
    let client = c.client(&s);
    let result = async {
        let mut all = Vec::new();
        for cluster in read::clusters(&client).await? {
            let name = cluster.cluster_name.clone().unwrap_or_default();
            let instances = read::instances(&client, &name).await?;
            all.push(pages::clusters::ClusterSummary {
                capacity: flotilla_console::capacity::of_cluster(&instances),
                cluster,
            });
        }
        Ok::<_, ApiError>(pages::clusters::render(&s.viewer, &all))
    }
    .await;
    match result {
        Ok(html) => c.html(StatusCode::OK, html),
        Err(e) => c.error_page(&s, &e),
    }
}

async fn cluster_page(
    c: &Console,
    client: &Client,
    s: &SignedIn,
    name: &str,
    form: &Fields,
    notice: Option<Notice>,
) -> Result<String, ApiError> {
    let cluster = read::cluster(client, name).await?;
    let name = cluster.cluster_name.clone().unwrap_or_default();
    let services = read::services(client, &name).await?;
    let tasks = read::tasks(client, &name, None).await?;
    let instances = read::instances(client, &name).await?;
    let task_definitions = read::task_definitions(client).await?;
    let utilization =
        read::utilization(c.api.plane.metrics.as_ref(), &name, None, c.api.clock.now()).await;
    Ok(pages::cluster::render(
        &s.viewer,
        &ClusterView {
            cluster: &cluster,
            services: &services,
            tasks: &tasks,
            instances: &instances,
            task_definitions: &task_definitions,
            utilization: &utilization,
            form,
        },
        notice,
    ))
}

/// One cluster.
pub(super) async fn cluster(
    State(c): C,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return c.to_signin(&uri);
    };
    let client = c.client(&s);
    match cluster_page(&c, &client, &s, &name, &Fields::new(), None).await {
        Ok(html) => c.html(StatusCode::OK, html),
        Err(e) => c.error_page(&s, &e),
    }
}

/// Creates a service (CreateService) from the cluster page's form.
pub(super) async fn create_service(
    State(c): C,
    Path(cluster): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Fields>,
) -> Response {
    let s = match c.form_session(&headers, &uri, &f) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let client = c.client(&s);
    let created = match forms::create_service(&cluster, &f) {
        Ok(input) => client
            .ecs("CreateService", input)
            .await
            .map_err(|e| notice(&e)),
        Err(e) => Err(Notice::Error {
            code: "InvalidForm".into(),
            message: e.to_string(),
        }),
    };
    match created {
        Ok(out) => {
            let name = out["service"]["serviceName"].as_str().unwrap_or_default();
            c.redirect(&pages::service_href(&cluster, name), None)
        }
        Err(n) => match cluster_page(&c, &client, &s, &cluster, &f, Some(n)).await {
            Ok(html) => c.html(StatusCode::BAD_REQUEST, html),
            Err(e) => c.error_page(&s, &e),
        },
    }
}

async fn service_page(
    c: &Console,
    client: &Client,
    s: &SignedIn,
    cluster: &str,
    name: &str,
    notice: Option<Notice>,
) -> Result<String, ApiError> {
    let cl = read::cluster(client, cluster).await?;
    let cluster = cl.cluster_name.as_deref().unwrap_or(cluster);
    let service = read::service(client, cluster, name).await?;
    let name = service.service_name.clone().unwrap_or_default();
    let tasks = read::tasks(client, cluster, Some(&name)).await?;
    let utilization = read::utilization(
        c.api.plane.metrics.as_ref(),
        cluster,
        Some(&name),
        c.api.clock.now(),
    )
    .await;
    Ok(pages::service::render(
        &s.viewer,
        &ServiceView {
            cluster,
            service: &service,
            tasks: &tasks,
            utilization: &utilization,
        },
        notice,
    ))
}

/// One service.
pub(super) async fn service(
    State(c): C,
    Path((cluster, name)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return c.to_signin(&uri);
    };
    let client = c.client(&s);
    match service_page(&c, &client, &s, &cluster, &name, None).await {
        Ok(html) => c.html(StatusCode::OK, html),
        Err(e) => c.error_page(&s, &e),
    }
}

/// Sets a service's desired count (UpdateService).
pub(super) async fn desired_count(
    State(c): C,
    Path((cluster, name)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Fields>,
) -> Response {
    let s = match c.form_session(&headers, &uri, &f) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let client = c.client(&s);
    let updated = match forms::desired_count(&cluster, &name, &f) {
        Ok(input) => client
            .ecs("UpdateService", input)
            .await
            .map(|_| ())
            .map_err(|e| notice(&e)),
        Err(e) => Err(Notice::Error {
            code: "InvalidForm".into(),
            message: e.to_string(),
        }),
    };
    match updated {
        Ok(()) => c.redirect(&pages::service_href(&cluster, &name), None),
        Err(n) => match service_page(&c, &client, &s, &cluster, &name, Some(n)).await {
            Ok(html) => c.html(StatusCode::BAD_REQUEST, html),
            Err(e) => c.error_page(&s, &e),
        },
    }
}

async fn task_page(
    client: &Client,
    s: &SignedIn,
    cluster: &str,
    id: &str,
    notice: Option<Notice>,
) -> Result<String, ApiError> {
    let cl = read::cluster(client, cluster).await?;
    let cluster = cl.cluster_name.as_deref().unwrap_or(cluster);
    let task = read::task(client, cluster, id).await?;
    let td_arn = task.task_definition_arn.clone().unwrap_or_default();
    let logs = match read::task_definition(client, &td_arn).await {
        Ok((td, _)) => read::logs(client, &task, &td).await,
        Err(_) => Vec::new(),
    };
    Ok(pages::task::render(
        &s.viewer,
        &TaskView {
            cluster,
            task: &task,
            logs: &logs,
        },
        notice,
    ))
}

/// One task.
pub(super) async fn task(
    State(c): C,
    Path((cluster, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return c.to_signin(&uri);
    };
    let client = c.client(&s);
    match task_page(&client, &s, &cluster, &id, None).await {
        Ok(html) => c.html(StatusCode::OK, html),
        Err(e) => c.error_page(&s, &e),
    }
}

/// Stops a task (StopTask).
pub(super) async fn stop_task(
    State(c): C,
    Path((cluster, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Fields>,
) -> Response {
    let s = match c.form_session(&headers, &uri, &f) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let client = c.client(&s);
    match client
        .ecs("StopTask", forms::stop_task(&cluster, &id))
        .await
    {
        Ok(_) => c.redirect(&pages::task_href(&cluster, &id), None),
        Err(e) => match task_page(&client, &s, &cluster, &id, Some(notice(&e))).await {
            Ok(html) => c.html(StatusCode::BAD_REQUEST, html),
            Err(e) => c.error_page(&s, &e),
        },
    }
}

/// The task definition list.
pub(super) async fn task_definitions(State(c): C, headers: HeaderMap, uri: Uri) -> Response {
    let Some(s) = c.session(&headers) else {
        return c.to_signin(&uri);
    };
    let client = c.client(&s);
    match read::task_definitions(&client).await {
        Ok(names) => c.html(
            StatusCode::OK,
            pages::task_definitions::render_list(&s.viewer, &names),
        ),
        Err(e) => c.error_page(&s, &e),
    }
}

/// One task definition.
pub(super) async fn task_definition(
    State(c): C,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return c.to_signin(&uri);
    };
    let client = c.client(&s);
    match read::task_definition(&client, &name).await {
        Ok((td, json)) => c.html(
            StatusCode::OK,
            pages::task_definitions::render_one(&s.viewer, &td, &json),
        ),
        Err(e) => c.error_page(&s, &e),
    }
}
