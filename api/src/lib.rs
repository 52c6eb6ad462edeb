//! tidemark's cluster control API.
//!
//! * [`server`]: the HTTP/JSON server process 0 of a cluster runs (`POST /jobs`,
//!   `GET /jobs`, `GET /jobs/{name}`, `DELETE /jobs/{name}`, `GET /healthz`).
//! * [`control`]: the [`JobControl`] trait the server drives; the cluster implements
//!   it, tests use an in-memory mock.
//! * [`client`]: the blocking client `tidemark job submit|list|status|stop` uses.
//! * [`connections`]: the limits that keep stalled clients from freezing the API.
//! * [`listener`]: who listens on the API's port, checked before the client sends
//!   the token to an address of this host.
//! * [`metrics`]: `GET /metrics`, alone (`tidemark run --metrics-addr`) or on the API.
//! * [`auth`]: the bearer-token check every route but `/healthz` needs.
//! * [`token`]: where the token comes from (`--token-file`, `$TIDEMARK_API_TOKEN`,
//!   or the file a member creates in its state folder).
//! * [`model`]: the JSON bodies both sides exchange.

pub mod auth;
pub mod client;
pub mod connections;
pub mod control;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod model;
pub mod server;
pub mod token;

pub use auth::Auth;
pub use client::{Client, ClientError};
pub use connections::ConnectionOptions;
pub use control::{ControlError, JobControl};
pub use health::HealthServer;
pub use metrics::MetricsServer;
pub use model::{
    ClosedWindow, ErrorBody, Health, HealthStatus, JobState, JobStatus, JobSummary, Stopped,
};
pub use server::{
    serve, serve_with, ServeOptions, ServerHandle, Validator, DEFAULT_MAX_BODY_BYTES,
};
pub use token::{
    client_token, load_token, member_token, TokenError, TokenSource, STATE_TOKEN_FILE, TOKEN_ENV,
};
