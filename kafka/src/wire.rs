//! What an agent's Kafka record carries, and how a consumer reads it back.
//!
//! One record per log line (so standard tools show lines, and other consumers can read
//! the topic), keyed `host/group` so that a file group's lines land, in order, on one
//! partition ([`crate::partition`]). Headers say where the line came from and its place in
//! the group's sequence:
//!
//! | header | value |
//! |---|---|
//! | `tm-v` | format version, `1` |
//! | `tm-kind` | `line` or `heartbeat` |
//! | `tm-host`, `tm-group` | the host and the file group (its live path) |
//! | `tm-epoch` | 16 hex digits, drawn when the agent first saw the group (a new one after its state was lost) |
//! | `tm-seq` | decimal: the line's number in the group (from 1); for a heartbeat, the last line sent |
//! | `tm-file` | the file's identity, for diagnostics (`line` only) |
//! | `tm-at` | a heartbeat's wall time, milliseconds since the Unix epoch |
//!
//! A consumer keeps, per (host, group), the epoch and the highest sequence it has taken:
//! a record at or below it is a resend (the agent restarted from a checkpoint older than
//! the broker's log) and is dropped; a gap means lines were lost and is reported. A
//! record without `tm-v` is not from an agent: [`AgentRecord::Foreign`].

use thiserror::Error;

/// The header names (see the module's table).
pub mod header {
    /// Format version.
    pub const VERSION: &str = "tm-v";
    /// `line` or `heartbeat`.
    pub const KIND: &str = "tm-kind";
    /// The host the line was read on.
    pub const HOST: &str = "tm-host";
    /// The file group (its live path on the agent).
    pub const GROUP: &str = "tm-group";
    /// The group's sequence epoch (16 hex digits).
    pub const EPOCH: &str = "tm-epoch";
    /// The line's sequence number in its group, or a heartbeat's last sent line.
    pub const SEQ: &str = "tm-seq";
    /// The identity of the file the line was read from.
    pub const FILE: &str = "tm-file";
    /// A heartbeat's wall time, ms since the Unix epoch.
    pub const AT: &str = "tm-at";
}

/// The only format version this build writes and reads.
pub const VERSION: &str = "1";

/// Where a group's records come from: host, group and the epoch of its sequence.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId {
    /// The host the group's files are on.
    pub host: String,
    /// The group's live path on that host.
    pub group: String,
    /// Drawn when the agent first saw the group; a new epoch restarts the sequence.
    pub epoch: u64,
}

impl GroupId {
    /// The record key: `host/group`. The partition is chosen from it.
    pub fn key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.host.len() + 1 + self.group.len());
        key.extend_from_slice(self.host.as_bytes());
        key.push(b'/');
        key.extend_from_slice(self.group.as_bytes());
        key
    }
}

/// A group as a record names it, borrowed from the record (decoding allocates
/// nothing; [`GroupRef::to_owned`] when it must be kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupRef<'a> {
    /// The host the group's files are on.
    pub host: &'a str,
    /// The group's live path on that host.
    pub group: &'a str,
    /// The epoch of its sequence.
    pub epoch: u64,
}

impl GroupRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> GroupId {
        GroupId {
            host: self.host.to_owned(),
            group: self.group.to_owned(),
            epoch: self.epoch,
        }
    }
}

impl GroupId {
    /// Borrowed, as a decoded record names it.
    pub fn as_ref(&self) -> GroupRef<'_> {
        GroupRef {
            host: &self.host,
            group: &self.group,
            epoch: self.epoch,
        }
    }
}

/// A record as read from the topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentRecord<'a> {
    /// One line of a group, without its line terminator.
    Line {
        /// Its group.
        group: GroupRef<'a>,
        /// Its number in the group's sequence (from 1).
        seq: u64,
        /// The identity of the file it was read from (diagnostics).
        file: &'a str,
        /// The line's bytes.
        line: &'a [u8],
    },
    /// The group was at its end, every line up to `seq` sent, at wall time `at_ms`.
    Heartbeat {
        /// Its group.
        group: GroupRef<'a>,
        /// The last line sent (0: none yet in this epoch).
        seq: u64,
        /// Wall time of the observation, ms since the Unix epoch.
        at_ms: i64,
    },
    /// Not written by a tidemark agent (no `tm-v` header): the payload as it is.
    Foreign {
        /// The record's value (empty for a null value).
        payload: &'a [u8],
    },
}

/// A record that claims to be an agent's (it has `tm-v`) but cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// A version this build does not read.
    #[error(
        "record format version {0:?} is not one this tidemark reads (it reads {VERSION}). \
         hint: upgrade the cluster before the agents"
    )]
    Version(String),
    /// A header the record's kind needs is missing.
    #[error(
        "header {0} is missing; the record was not written by a tidemark agent of this version"
    )]
    Missing(&'static str),
    /// A header's value is not what it should be.
    #[error("header {name} = {value:?} is not {what}")]
    Bad {
        /// The header.
        name: &'static str,
        /// Its value, lossily as text.
        value: String,
        /// What it should be.
        what: &'static str,
    },
}

/// The headers of a record the agent writes, formatted as they are handed over
/// ([`RecordHeaders::each`]): nothing is allocated per record (the agent writes one
/// per line), numbers are formatted on the stack.
#[derive(Clone, Copy, Debug)]
pub enum RecordHeaders<'a> {
    /// A line's: its group, its number in the group, the identity of its file.
    Line {
        /// Its group.
        group: &'a GroupId,
        /// Its number in the group's sequence (from 1).
        seq: u64,
        /// The identity of the file it was read from.
        file: &'a str,
    },
    /// A heartbeat's: its group, the last line sent, its wall time.
    Heartbeat {
        /// Its group.
        group: &'a GroupId,
        /// The last line sent.
        seq: u64,
        /// Wall time, ms since the Unix epoch.
        at_ms: i64,
    },
}

impl RecordHeaders<'_> {
    /// Folds each header (name, value) into `acc`, in the order written — a fold
    /// rather than a callback so that a builder taken by value (rdkafka's
    /// `OwnedHeaders::insert`) can be threaded through.
    pub fn fold<T>(&self, acc: T, mut put: impl FnMut(T, &'static str, &[u8]) -> T) -> T {
        let (group, kind, seq) = match *self {
            RecordHeaders::Line { group, seq, .. } => (group, "line", seq),
            RecordHeaders::Heartbeat { group, seq, .. } => (group, "heartbeat", seq),
        };
        let acc = put(acc, header::VERSION, VERSION.as_bytes());
        let acc = put(acc, header::KIND, kind.as_bytes());
        let acc = put(acc, header::HOST, group.host.as_bytes());
        let acc = put(acc, header::GROUP, group.group.as_bytes());
        let acc = put(acc, header::EPOCH, &hex16_digits(group.epoch));
        let acc = put(acc, header::SEQ, itoa::Buffer::new().format(seq).as_bytes());
        match *self {
            RecordHeaders::Line { file, .. } => put(acc, header::FILE, file.as_bytes()),
            RecordHeaders::Heartbeat { at_ms, .. } => put(
                acc,
                header::AT,
                itoa::Buffer::new().format(at_ms).as_bytes(),
            ),
        }
    }

    /// Owned (name, value) pairs, in the order written.
    pub fn to_vec(&self) -> Vec<(&'static str, Vec<u8>)> {
        self.fold(Vec::with_capacity(7), |mut headers, name, value| {
            headers.push((name, value.to_vec()));
            headers
        })
    }
}

/// `epoch` as 16 lowercase hex digits (`{:016x}`).
fn hex16_digits(epoch: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, d) in out.iter_mut().enumerate() {
        *d = b"0123456789abcdef"[(epoch >> (60 - 4 * i)) as usize & 0xf];
    }
    out
}

/// The headers of a line record, in the order written.
pub fn line_headers(group: &GroupId, seq: u64, file: &str) -> Vec<(&'static str, Vec<u8>)> {
    RecordHeaders::Line { group, seq, file }.to_vec()
}

/// The headers of a heartbeat record (its value is empty).
pub fn heartbeat_headers(group: &GroupId, seq: u64, at_ms: i64) -> Vec<(&'static str, Vec<u8>)> {
    RecordHeaders::Heartbeat { group, seq, at_ms }.to_vec()
}

/// Reads a record from its headers (name, value; a null value as `None`) and its value.
/// The last header of a name wins, as in Kafka's `Headers.lastHeader`.
pub fn decode<'a, I>(headers: I, payload: &'a [u8]) -> Result<AgentRecord<'a>, WireError>
where
    I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
{
    let mut found = Found::default();
    for (name, value) in headers {
        let slot = match name {
            header::VERSION => &mut found.version,
            header::KIND => &mut found.kind,
            header::HOST => &mut found.host,
            header::GROUP => &mut found.group,
            header::EPOCH => &mut found.epoch,
            header::SEQ => &mut found.seq,
            header::FILE => &mut found.file,
            header::AT => &mut found.at,
            _ => continue,
        };
        *slot = Some(value.unwrap_or_default());
    }
    let Some(version) = found.version else {
        return Ok(AgentRecord::Foreign { payload });
    };
    if version != VERSION.as_bytes() {
        return Err(WireError::Version(lossy(version)));
    }
    let group = GroupRef {
        host: text(header::HOST, found.host)?,
        group: text(header::GROUP, found.group)?,
        epoch: match found.epoch.and_then(hex16) {
            Some(epoch) => epoch,
            None => {
                let value = text(header::EPOCH, found.epoch)?;
                return Err(bad(header::EPOCH, value, "16 hex digits"));
            }
        },
    };
    // Every record passes here, twice in a finite run (the discovery pass and the
    // reading): the numbers and the kind are read from the bytes as they are, and
    // only a value that is not what it should be goes through `text`, for its error.
    let seq = match found.seq.and_then(decimal) {
        Some(seq) => seq,
        None => number(header::SEQ, found.seq)?,
    };
    let kind = match found.kind {
        Some(b"line") => "line",
        Some(b"heartbeat") => "heartbeat",
        other => text(header::KIND, other)?,
    };
    match kind {
        "line" => Ok(AgentRecord::Line {
            group,
            seq,
            file: text(header::FILE, found.file)?,
            line: payload,
        }),
        "heartbeat" => {
            let value = text(header::AT, found.at)?;
            let at_ms = value
                .parse()
                .map_err(|_| bad(header::AT, value, "milliseconds since the Unix epoch"))?;
            Ok(AgentRecord::Heartbeat { group, seq, at_ms })
        }
        other => Err(bad(header::KIND, other, "line or heartbeat")),
    }
}

#[derive(Default)]
struct Found<'a> {
    version: Option<&'a [u8]>,
    kind: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    group: Option<&'a [u8]>,
    epoch: Option<&'a [u8]>,
    seq: Option<&'a [u8]>,
    file: Option<&'a [u8]>,
    at: Option<&'a [u8]>,
}

fn text<'a>(name: &'static str, value: Option<&'a [u8]>) -> Result<&'a str, WireError> {
    let value = value.ok_or(WireError::Missing(name))?;
    std::str::from_utf8(value).map_err(|_| WireError::Bad {
        name,
        value: lossy(value),
        what: "UTF-8 text",
    })
}

fn number(name: &'static str, value: Option<&[u8]>) -> Result<u64, WireError> {
    let value = text(name, value)?;
    // `parse` alone would take "+5"; a sequence is written as plain digits.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(name, value, "a decimal number"));
    }
    value
        .parse()
        .map_err(|_| bad(name, value, "a number below 2^64"))
}

/// 16 hex digits (either case), as `u64::from_str_radix` reads them.
fn hex16(value: &[u8]) -> Option<u64> {
    if value.len() != 16 {
        return None;
    }
    value.iter().try_fold(0u64, |n, b| {
        let d = (*b as char).to_digit(16)?;
        Some(n << 4 | u64::from(d))
    })
}

/// Plain decimal digits below 2^64 (`None` for anything else, "+5" included).
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn bad(name: &'static str, value: &str, what: &'static str) -> WireError {
    WireError::Bad {
        name,
        value: value.to_owned(),
        what,
    }
}

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

#[cfg(test)]
mod tests;
