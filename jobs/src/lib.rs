//! Job definitions: the TOML v1 model ([`model`]), its validation ([`validate`]) and
//! the checked [`Job`] everything else is built from. Paths and a fixed host value may
//! use `${NAME}` ([`env`](mod@env)); [`roots`] checks a job against the folders a
//! cluster allows reading and writing.

pub mod alert;
pub mod brokers;
pub mod duration;
pub mod env;
pub mod expr;
pub mod job;
pub mod kafka_options;
pub mod model;
pub mod roots;
pub mod validate;

pub use env::Env;
pub use job::*;
pub use roots::{check_output_roots, check_roots, RootProblem, RootProblemKind, RootsError};
pub use validate::{
    from_str, from_str_with_env, load, load_with_env, submitted, Diagnostic, Diagnostics,
    MAX_JOB_NAME_BYTES,
};
