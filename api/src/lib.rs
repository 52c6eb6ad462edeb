//! tidemark's cluster control API.
//!
//! * [`server`]: the HTTP/JSON server process 0 of a cluster runs (`POST /jobs`,
//!   `GET /jobs`, `GET /jobs/{name}`, `DELETE /jobs/{name}`, `GET /healthz`).
//! * [`control`]: the [`JobControl`] trait the server drives; the cluster implements
//!   it, tests use an in-memory mock.
//! * [`client`]: the blocking client `tidemark job submit|list|status|stop` uses.
//! * [`auth`]: bearer-token loading and the loopback rule.
//! * [`model`]: the JSON bodies both sides exchange.

pub mod auth;
pub mod client;
pub mod control;
pub mod model;
pub mod server;

pub use auth::{load_token, require_token_for, Auth, TokenError, TOKEN_ENV};
pub use client::{Client, ClientError};
pub use control::{ControlError, JobControl};
pub use model::{ClosedWindow, ErrorBody, Health, JobState, JobStatus, JobSummary, Stopped};
pub use server::{
    serve, serve_with, ServeOptions, ServerHandle, Validator, DEFAULT_MAX_BODY_BYTES,
};
