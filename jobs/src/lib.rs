//! Job definitions: the TOML v1 model ([`model`]), its validation ([`validate`]) and
//! the checked [`Job`] everything else is built from.

pub mod duration;
pub mod expr;
pub mod job;
pub mod model;
pub mod validate;

pub use job::*;
pub use validate::{from_str, load, Diagnostic, Diagnostics};
