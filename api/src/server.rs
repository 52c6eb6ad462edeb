//! The control API's HTTP server.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /jobs` (body: the job's TOML) | 201 [`JobSummary`]; 400 invalid job (with `diagnostics`); 409 duplicate name, or the cluster's job limit reached; 413 body too large |
//! | `GET /jobs` | 200 `[JobSummary]` |
//! | `GET /jobs/{name}` | 200 [`JobStatus`](crate::JobStatus); 404 unknown name |
//! | `DELETE /jobs/{name}` | 200 [`Stopped`]; 404 unknown name |
//! | `GET /healthz` | 200 [`Health`](crate::Health) when ok, else 503; never needs the token, so it counts failed jobs and names none |
//! | `GET /metrics` | 200 the jobs' self-metrics in the Prometheus text format (OpenMetrics when asked for), from [`JobControl::metrics`]; needs the token like every route but `/healthz` (its labels name the jobs' files), or the scrape-only token ([`ServeOptions::metrics_auth`]), which no other route accepts |
//!
//! Connections are served as [`crate::connections`] describes (header-read
//! timeout, connection cap, request timeout → 503).
//!
//! Every error is JSON [`ErrorBody`] whose `error` says what to do. Unknown routes
//! answer 404, known routes with another method 405. Every route but `/healthz`
//! answers 401 without the right `Authorization: Bearer` header ([`Auth`]).
//!
//! `POST /jobs?file=NAME` names the job file in the diagnostics of an invalid job
//! (default `<submitted job>`), so a client can show the same text as
//! `tidemark validate NAME`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection, StringRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::auth::Auth;
use crate::connections::ConnectionOptions;
use crate::control::{ControlError, JobControl};
use crate::model::{ErrorBody, JobSummary, Stopped};
use crate::token::TOKEN_ENV;

/// Largest request body accepted by default (1 MiB); job files are far smaller.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How jobs are named in diagnostics when the request does not say (`?file=`).
pub const SUBMITTED_JOB: &str = "<submitted job>";

const ROUTES: &str =
    "POST /jobs, GET /jobs, GET /jobs/{name}, DELETE /jobs/{name}, GET /healthz, GET /metrics";

/// Turns submitted TOML into a [`Job`](tidemark_jobs::Job), or into the diagnostics a
/// 400 answer carries: `(text, display_path)`, like [`tidemark_jobs::submitted`].
pub type Validator =
    Arc<dyn Fn(&str, &str) -> Result<tidemark_jobs::Job, tidemark_jobs::Diagnostics> + Send + Sync>;

/// Server settings beyond the listener, the cluster and the shutdown signal.
#[derive(Clone)]
pub struct ServeOptions {
    /// The token requests must send.
    pub auth: Auth,
    /// A scrape-only token: accepted for `GET /metrics` and nothing else (the
    /// `auth` token is accepted there too). Prometheus holds it, not the token
    /// that submits and stops jobs.
    pub metrics_auth: Option<Auth>,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// How `POST /jobs` validates. By default [`tidemark_jobs::submitted`] allowing
    /// no variable: every path must be absolute, and any `${NAME}` is refused. A
    /// cluster plugs in the variables it allows and its roots checks, whose
    /// problems then reach the user as 400 diagnostics. Runs on the blocking pool.
    pub validate: Validator,
    /// Timeouts and the connection cap ([`ConnectionOptions::default`]).
    pub connections: ConnectionOptions,
}

impl ServeOptions {
    /// The defaults, with `auth`.
    pub fn new(auth: Auth) -> Self {
        ServeOptions {
            auth,
            metrics_auth: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            connections: ConnectionOptions::default(),
            validate: Arc::new(|text, file| {
                let none = tidemark_jobs::Env::process().allowing(Vec::<String>::new());
                tidemark_jobs::submitted(text, file, &none)
            }),
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("auth", &self.auth)
            .field("metrics_auth", &self.metrics_auth)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting,
/// lets requests in flight finish, and returns. Uses [`ServeOptions::new`]`(auth)`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Arc<dyn JobControl>,
    auth: Auth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, control, ServeOptions::new(auth), shutdown).await
}

/// [`serve`] with every option.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    control: Arc<dyn JobControl>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "control API listening");
    }
    let connections = options.connections;
    crate::connections::serve(listener, router(control, options), connections, shutdown).await
}

/// The API as an axum [`Router`], for embedding in another server. It applies the
/// request timeout; the header timeout and the connection cap are the server's
/// ([`serve_with`] applies them).
pub fn router(control: Arc<dyn JobControl>, options: ServeOptions) -> Router {
    let max_body = options.max_body_bytes;
    let request_timeout = options.connections.request_timeout;
    let state = AppState {
        control,
        options: Arc::new(options),
    };
    Router::new()
        .route("/jobs", post(submit).get(list))
        .route("/jobs/{name}", get(status).delete(stop))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            request_timeout,
            crate::connections::request_timeout,
        ))
        .with_state(state)
}

#[derive(Clone)]
struct AppState {
    control: Arc<dyn JobControl>,
    options: Arc<ServeOptions>,
}

/// An error answer: a status and an [`ErrorBody`].
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                diagnostics: None,
            },
        }
    }

    fn internal(what: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {what}; see the cluster's log for details"),
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Duplicate(name) => ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "a job named `{name}` is already running; stop it first \
                     (`tidemark job stop {name}`) or give the new job another name"
                ),
            ),
            ControlError::NotFound(name) => unknown_job(&name),
            ControlError::JobLimit { limit } => ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "the cluster already has {limit} job{}, its limit; stop a job first \
                     (`tidemark job list`, `tidemark job stop NAME`), or start the cluster's \
                     process 0 with a larger --max-jobs (now {limit})",
                    if limit == 1 { "" } else { "s" }
                ),
            ),
            ControlError::NotAllowed(msg) => ApiError::new(StatusCode::FORBIDDEN, msg),
            ControlError::OverLimit(msg) => ApiError::new(StatusCode::BAD_REQUEST, msg),
            ControlError::Unavailable(msg) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the cluster is unavailable: {msg}; retry when GET /healthz reports ok"),
            ),
            ControlError::Internal(msg) => ApiError::internal(msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn unknown_job(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no job named `{name}`; `tidemark job list` shows the cluster's jobs"),
    )
}

/// Runs a cluster call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "control API handler failed");
        ApiError::internal("the cluster's handler for this request failed")
    })
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if state.options.auth.allows(given) {
        return next.run(request).await;
    }
    let scrape = request.method() == axum::http::Method::GET && request.uri().path() == "/metrics";
    let scraper = state.options.metrics_auth.as_ref();
    if scrape && scraper.is_some_and(|a| a.allows(given)) {
        return next.run(request).await;
    }
    let what = if given.is_some() {
        "the API token in the Authorization header is not accepted"
    } else {
        "this API requires a token"
    };
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!(
            "{what}; send the cluster's token as `Authorization: Bearer <token>` \
             (`tidemark job` reads it from --token-file, ${TOKEN_ENV}, or the file \
             `api-token` in the cluster's state folder)"
        ),
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
struct SubmitParams {
    /// How diagnostics name the job file.
    file: Option<String>,
}

async fn submit(
    State(state): State<AppState>,
    params: Result<Query<SubmitParams>, QueryRejection>,
    body: Result<String, StringRejection>,
) -> Result<(StatusCode, Json<JobSummary>), ApiError> {
    let params = params.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{}; the only query parameter is `file`", e.body_text()),
        )
    })?;
    let text = body.map_err(|e| body_error(&e, state.options.max_body_bytes))?;
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is empty; send the job file's TOML text as the body \
             (`tidemark job submit JOB.toml`)",
        ));
    }
    let display = params
        .0
        .file
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| SUBMITTED_JOB.to_string());
    let control = state.control.clone();
    let options = state.options.clone();
    let summary = blocking(move || {
        let job = (options.validate)(&text, &display).map_err(|diags| {
            let n = diags.len();
            ApiError {
                status: StatusCode::BAD_REQUEST,
                body: ErrorBody {
                    error: format!(
                        "the job is invalid ({n} problem{}); fix the job file and submit it \
                         again; `tidemark validate FILE` checks it locally",
                        if n == 1 { "" } else { "s" }
                    ),
                    diagnostics: Some(diags.to_string()),
                },
            }
        })?;
        let name = job.name.clone();
        let summary = control.submit(job, text)?;
        tracing::info!(job = %name, "job submitted");
        Ok::<_, ApiError>(summary)
    })
    .await??;
    Ok((StatusCode::CREATED, Json(summary)))
}

fn body_error(e: &StringRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {}; a job file must be smaller than that",
                human_bytes(limit)
            ),
        )
    } else if matches!(e, StringRejection::InvalidUtf8(_)) {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is not UTF-8 text; save the job file as UTF-8 and submit it again",
        )
    } else {
        ApiError::new(
            e.status(),
            format!("could not read the request body: {}", e.body_text()),
        )
    }
}

fn human_bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    const KIB: usize = 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<JobSummary>>, ApiError> {
    let control = state.control.clone();
    Ok(Json(blocking(move || control.list()).await?))
}

fn job_name(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(name)| name).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{}; a job name uses letters, digits, `_` and `-`",
                e.body_text()
            ),
        )
    })
}

async fn status(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = job_name(path)?;
    let control = state.control.clone();
    let lookup = name.clone();
    match blocking(move || control.status(&lookup)).await? {
        Some(status) => Ok(Json(status).into_response()),
        None => Err(unknown_job(&name)),
    }
}

async fn stop(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Stopped>, ApiError> {
    let name = job_name(path)?;
    let control = state.control.clone();
    let target = name.clone();
    blocking(move || control.stop(&target)).await??;
    tracing::info!(job = %name, "job stopped");
    Ok(Json(Stopped {
        name,
        stopped: true,
    }))
}

async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    let control = state.control.clone();
    let health = blocking(move || control.health()).await?;
    let code = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, Json(health)).into_response())
}

async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let control = state.control.clone();
    let render: crate::metrics::Render = Arc::new(move |accept| control.metrics(accept));
    crate::metrics::scrape(render, headers).await
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "there is no endpoint `{method} {}`; the API serves {ROUTES}",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "`{method}` is not allowed on `{}`; the API serves {ROUTES}",
            uri.path()
        ),
    )
}

/// A server running on its own thread (with its own tokio runtime), for a
/// synchronous program such as a cluster member. Dropping the handle shuts the
/// server down gracefully and waits for it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl ServerHandle {
    /// Binds `addr` (port 0 picks a free port) and starts serving. Fails when the
    /// address cannot be bound.
    pub fn start(
        addr: SocketAddr,
        control: Arc<dyn JobControl>,
        options: ServeOptions,
    ) -> io::Result<ServerHandle> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tidemark-api")
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tidemark-api".into())
            .spawn(move || {
                runtime.block_on(serve_with(listener, control, options, async move {
                    let _ = rx.await;
                }))
            })?;
        Ok(ServerHandle {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address the server listens on (with the port chosen when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for requests in flight, and returns the server's result.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the control API thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "control API stopped with an error");
        }
    }
}
