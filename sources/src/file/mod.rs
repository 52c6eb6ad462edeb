//! Finding file groups: live files and their rotated siblings. Reading them is
//! [`crate::tail`]'s job. [`roots`]: the folders a job may read from, enforced
//! on real paths (symlinks resolved) by discovery and by every open.
//! [`EscapedPath`]: how every log line names a file.

pub mod discover;
mod escape;
pub mod kernel_fs;
mod looked;
mod real;
pub mod roots;
pub mod walk;

pub use discover::{discover, discover_archive, ArchiveFiles, Discovered, FileGroup, RotatedFile};
pub use escape::EscapedPath;
pub use real::{normalize, real_path, RealPaths};
pub use roots::{outside_error, AllowedRoots, Outside};
