//! File sources: discovery of file groups and reading them in rotation order.

pub mod discover;
pub mod reader;

pub use discover::{discover, FileGroup, RotatedFile};
pub use reader::{GroupReader, LineOrigin, ReadCounters, ReadStatus, DEFAULT_MAX_LINE_BYTES};
