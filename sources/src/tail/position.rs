//! Where a file group's stream stands: file identities and resumable positions.
//!
//! These are the types checkpoints store, so they are plain serde data.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which file this is, independent of its name: `(device, inode)` plus a
/// fingerprint of its first bytes (so a reused inode with new content, or a file
/// truncated and rewritten, is a different file). For gzip files the fingerprint
/// is of the *decompressed* first bytes, so `NAME.1` compressed into `NAME.2.gz`
/// is still recognised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// Hash of the first `fingerprint_len` (uncompressed) bytes.
    pub fingerprint: u64,
    /// How many bytes the fingerprint covers: the configured size, or less when
    /// the file was shorter (it is extended as the file grows).
    pub fingerprint_len: u32,
}

/// The files a tailer holds open, by (device, inode): the one it reads and the
/// one set aside (see `Tailer::held_inodes`).
pub type HeldInodes = [Option<(u64, u64)>; 2];

/// A file a tailer left: the path it had then, its identity and its birth
/// time (see `Tailer::take_left`).
pub type Left = (PathBuf, FileId, Option<std::time::SystemTime>);

/// A point in a group's stream: the start of a line in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file: FileId,
    /// The path the file had when the position was taken (a hint: files move).
    pub path: PathBuf,
    /// Byte offset of a line start, in uncompressed bytes.
    pub offset: u64,
    /// Whether the file is gzip-compressed (offsets count decompressed bytes).
    pub gzip: bool,
}
