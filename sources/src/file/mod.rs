//! Finding file groups: live files and their rotated siblings. Reading them is
//! [`crate::tail`]'s job.

pub mod discover;

pub use discover::{discover, discover_archive, FileGroup, RotatedFile};
