//! The checkpoint file's bytes.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"TDMKCKPT"
//!      8     4  format version, u32 little-endian (currently 2)
//!     12     8  payload length in bytes, u64 little-endian
//!     20     4  CRC-32 (IEEE) of the payload, u32 little-endian
//!     24     n  payload: the Checkpoint as pretty-printed JSON plus a newline
//! ```
//!
//! Version 2 added the job's semantics fingerprint and each sink file's identity
//! (device, inode). Version 1 files are still read: both fields are then absent
//! (`None`), and the next save writes version 2. Fields added since to the JSON
//! payload are optional and left out at their default (each sink's `tail`
//! checksum, `start_at_end`), so they need no new version: an older reader of
//! version 2 ignores them.
//!
//! JSON rather than bincode so an operator can look at it
//! (`tail -c +25 STATE_DIR/checkpoint | jq .`); the header makes every kind of
//! damage seen after crashes (NUL-filled blocks, short files, torn writes)
//! detectable before the payload is trusted.

use std::fmt;

use super::Checkpoint;

/// The first 8 bytes of every checkpoint file, so a file that is not one is told apart
/// before anything else is read.
pub(crate) const MAGIC: [u8; 8] = *b"TDMKCKPT";
/// The format version this build writes (the module docs say what each version added).
pub const VERSION: u32 = 2;
/// Versions [`decode`] reads: the current one and those it can upgrade.
pub const READABLE: std::ops::RangeInclusive<u32> = 1..=VERSION;
/// Bytes before the payload: magic, version, payload length and CRC-32.
pub(crate) const HEADER_LEN: usize = 24;

/// What is wrong with a checkpoint file's bytes.
#[derive(Debug)]
pub enum Damage {
    /// Zero bytes long.
    Empty,
    /// Every byte is NUL: typical of a crash on a filesystem that had extended the
    /// file but not yet written its data.
    NulFilled {
        /// The file's length in bytes.
        len: u64,
    },
    /// Shorter than its header says.
    Truncated {
        /// The file's length in bytes.
        len: u64,
        /// The length its header gives: header plus payload.
        expected: u64,
    },
    /// Does not start with the checkpoint magic: not a tidemark checkpoint, or overwritten.
    BadMagic,
    /// Written by a tidemark with a different checkpoint format.
    UnsupportedVersion {
        /// The version in its header (this build reads [`READABLE`]).
        found: u32,
    },
    /// Longer than its header says (appended to, or a torn rewrite).
    TrailingBytes {
        /// Bytes past the end its header gives.
        extra: u64,
    },
    /// The payload does not match its checksum.
    BadChecksum {
        /// The CRC-32 in the header.
        stored: u32,
        /// The CRC-32 of the payload as read.
        computed: u32,
    },
    /// The payload passed its checksum but is not a checkpoint this version understands.
    Undecodable(serde_json::Error),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Empty => write!(f, "the file is empty (0 bytes: truncated)"),
            Damage::NulFilled { len } => write!(
                f,
                "the file is filled with NUL bytes ({len} bytes of zeros; typical of a crash \
                 or power loss while it was being written)"
            ),
            Damage::Truncated { len, expected } => write!(
                f,
                "the file is truncated: it has {len} bytes, at least {expected} are expected"
            ),
            Damage::BadMagic => write!(
                f,
                "the file does not start with the tidemark checkpoint magic {:?} \
                 (it is not a checkpoint, or it was overwritten)",
                String::from_utf8_lossy(&MAGIC)
            ),
            Damage::UnsupportedVersion { found } => write!(
                f,
                "the file has checkpoint format version {found}, but this tidemark reads \
                 versions {} to {} (was it written by a newer tidemark release?)",
                READABLE.start(),
                READABLE.end()
            ),
            Damage::TrailingBytes { extra } => write!(
                f,
                "the file has {extra} unexpected bytes after the checkpoint (it was appended \
                 to or only partly rewritten)"
            ),
            Damage::BadChecksum { stored, computed } => write!(
                f,
                "the checksum does not match (stored {stored:08x}, computed {computed:08x}): \
                 the contents are damaged"
            ),
            Damage::Undecodable(e) => write!(f, "the contents cannot be decoded: {e}"),
        }
    }
}

/// Serialises `cp` with its header.
pub(crate) fn encode(cp: &Checkpoint) -> Result<Vec<u8>, serde_json::Error> {
    let mut payload = serde_json::to_vec_pretty(cp)?;
    payload.push(b'\n');
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Checks the header and checksum, then decodes the payload.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, Damage> {
    let len = bytes.len() as u64;
    if bytes.is_empty() {
        return Err(Damage::Empty);
    }
    // Checked first: a NUL-filled file would otherwise be reported as "bad magic",
    // which hides the usual cause.
    if bytes.iter().all(|&b| b == 0) {
        return Err(Damage::NulFilled { len });
    }
    // A short file that starts like a checkpoint is a truncated one; otherwise it
    // is something else altogether.
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(Damage::BadMagic);
    }
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(Damage::Truncated {
            len,
            expected: HEADER_LEN as u64,
        });
    };
    let version = u32::from_le_bytes(field(header, 8));
    if !READABLE.contains(&version) {
        return Err(Damage::UnsupportedVersion { found: version });
    }
    let payload_len = u64::from_le_bytes(field(header, 12));
    let stored = u32::from_le_bytes(field(header, 20));
    let expected = (HEADER_LEN as u64).saturating_add(payload_len);
    if len < expected {
        return Err(Damage::Truncated { len, expected });
    }
    if len > expected {
        return Err(Damage::TrailingBytes {
            extra: len - expected,
        });
    }
    let payload = &bytes[HEADER_LEN..];
    let computed = crc32fast::hash(payload);
    if computed != stored {
        return Err(Damage::BadChecksum { stored, computed });
    }
    serde_json::from_slice(payload).map_err(Damage::Undecodable)
}

/// `N` bytes of `header` from `at`; the header's length was checked by the caller.
fn field<const N: usize>(header: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&header[at..at + N]);
    out
}
