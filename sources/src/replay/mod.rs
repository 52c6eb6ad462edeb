//! Historical replay support: finding a time range inside archived log files.
//!
//! [`search`] locates byte offsets by timestamp in a *plain* (uncompressed) log
//! file with O(log n) bounded reads: where a range starts ([`seek_to_time`]),
//! where it can stop ([`end_offset`]), a file's first and last times
//! ([`time_span`], to skip files wholly outside a range), and cut points for
//! reading a big byte range as parallel segments ([`split_points`]).
//!
//! Logs are *nearly sorted*: within one file each line's time is at least the
//! largest time of the lines before it minus `d` (the job's
//! `max_out_of_orderness`). Every search takes `d` and is correct for any file
//! that keeps that bound: it never skips a line of the range. Malformed lines
//! (no parseable timestamp, invalid UTF-8, over-long) are skipped while
//! searching and never make a search wrong, only possibly less tight.
//!
//! Gzip-compressed files (`.gz`, see [`is_gzip`]) cannot be searched: a byte
//! offset in the compressed stream says nothing about the lines around it.
//! Callers scan them sequentially from the start, filtering lines by time.
//! [`TimeIndex::open`] refuses them; [`gzip_first_time`] gives the time a
//! gzip file starts at.
//!
//! [`range`] reads a segment: the lines of `[start, end)` of a plain file
//! ([`RangeReader::plain`]) or every line of a gzip file
//! ([`RangeReader::gzip`]).

mod files;
mod lines;
pub mod range;
pub mod search;

pub use range::{gzip_first_time, gzip_first_time_file, RangeReader};
pub use search::{
    end_offset, is_gzip, is_gzip_file, seek_to_time, span_overlaps, split_points, time_span,
    Accept, SearchStats, TimeIndex, DEFAULT_PROBE_BYTES,
};
