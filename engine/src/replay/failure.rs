//! Why a replay stopped before the end of its range: the first failure a
//! worker's source met. It keeps its cause (the parser's build error, the I/O
//! error) so the report says why, not only that it failed.

use std::io;
use std::path::PathBuf;

use tidemark_sources::file::EscapedPath;
use tidemark_sources::parse::BuildError;

/// The first failure of a replay's source; it ends the replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayFailure {
    /// The job's parse settings cannot make a parser for the fields its rules use.
    #[error("cannot build the job's line parser: {0}")]
    Parser(#[source] BuildError),
    /// A planned segment's file could not be opened.
    #[error("cannot open {}: {source}{hint}", EscapedPath(path))]
    Open {
        /// The segment's file.
        path: PathBuf,
        /// Why the open failed.
        #[source]
        source: io::Error,
        /// What to do about it (empty when there is nothing to add).
        hint: &'static str,
    },
    /// Reading a planned segment failed (not a damaged gzip: that ends only its file).
    #[error("reading {} failed: {source}{hint}", EscapedPath(path))]
    Read {
        /// The segment's file.
        path: PathBuf,
        /// Why the read failed.
        #[source]
        source: io::Error,
        /// What to do about it (empty when there is nothing to add).
        hint: &'static str,
    },
}

/// A planned range that is no longer there means the file was truncated in place
/// (copytruncate) after planning.
pub(crate) fn changed_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::UnexpectedEof => {
            " (the file became shorter after the replay was planned, e.g. by copytruncate; run the replay again)"
        }
        _ => "",
    }
}
