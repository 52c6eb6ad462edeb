//! Text forms shared by every sink: times, values and labels.

use std::sync::Arc;
use tidemark_engine::alert_event::AlertChange;

use tidemark_engine::labels::KeyNames;
use tidemark_engine::{ClosedWindow, Labels, Series, Value};

/// `2026-11-20T10:01:00Z`. Windows are whole seconds, so no fraction is printed.
pub fn rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => ms.to_string(),
    }
}

/// Where JSON text goes: a `String`, or the byte buffer a file sink writes
/// whole (no UTF-8 check of what is appended: every piece is text already).
pub trait Out {
    /// Appends `s`.
    fn put(&mut self, s: &str);
    /// Appends ASCII bytes (`bytes.is_ascii()`).
    fn put_ascii(&mut self, bytes: &[u8]);
    /// Appends `args` formatted.
    fn put_fmt(&mut self, args: std::fmt::Arguments<'_>);
    /// Makes room for `n` more bytes.
    fn room(&mut self, n: usize);
}

impl Out for String {
    #[inline]
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
    #[inline]
    fn put_ascii(&mut self, bytes: &[u8]) {
        // ASCII is UTF-8: the check passes (and cannot drop a byte that is).
        self.push_str(std::str::from_utf8(bytes).unwrap_or_default());
    }
    fn put_fmt(&mut self, args: std::fmt::Arguments<'_>) {
        let _ = std::fmt::Write::write_fmt(self, args);
    }
    #[inline]
    fn room(&mut self, n: usize) {
        self.reserve(n);
    }
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
    #[inline]
    fn put_ascii(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn put_fmt(&mut self, args: std::fmt::Arguments<'_>) {
        /// Formats straight into the buffer (no `String` per number).
        struct Bytes<'a>(&'a mut Vec<u8>);
        impl std::fmt::Write for Bytes<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
        let _ = std::fmt::Write::write_fmt(&mut Bytes(self), args);
    }
    #[inline]
    fn room(&mut self, n: usize) {
        self.reserve(n);
    }
}

/// Counts print as integers; so does any float that is a whole number (a sum of
/// byte counts), so the same quantity never prints two ways. Other floats print in
/// the shortest form that reads back exactly; non-finite values as `null`.
pub fn value<O: Out>(v: Value, out: &mut O) {
    match v {
        Value::Int(i) => out.put(itoa::Buffer::new().format(i)),
        Value::Float(f) if !f.is_finite() => out.put("null"),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
            out.put(itoa::Buffer::new().format(f as i64))
        }
        Value::Float(f) => float(f, out),
    }
}

/// A finite float that is not a whole number below 2^53, as `{f}` prints it
/// (the shortest digits that read back exactly, never an exponent). Ryu finds
/// those digits in a fraction of the time `core::fmt` takes (quantiles and
/// sums are a good part of a wide job's records), and prints them the same
/// way when they are at most 15 significant digits: then no other string of
/// as few digits reads back as `f` (the doubles round to is narrower than
/// their spacing), so the two cannot pick differently. With more, two
/// candidates can tie (ryu picks the even one, `{f}` does not: 1.2e15 + 1/3
/// printed .2 and .3), and where ryu would print an exponent, or `.0` after a
/// whole number, `{f}` prints it.
#[inline]
fn float<O: Out>(f: f64, out: &mut O) {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(f);
    if s.contains('e') || s.ends_with(".0") || significant_digits(s) > 15 {
        out.put_fmt(format_args!("{f}"));
    } else {
        out.put(s);
    }
}

/// The digits of a decimal number from its first that is not 0.
fn significant_digits(s: &str) -> usize {
    let digits = s.bytes().filter(u8::is_ascii_digit);
    digits.skip_while(|&b| b == b'0').count()
}

/// A JSON string literal. Runs of characters that need no escape (nearly all
/// of them) are copied whole rather than pushed one `char` at a time: a
/// high-cardinality window prints millions of label values.
pub fn json_str<O: Out>(s: &str, out: &mut O) {
    let bytes = s.as_bytes();
    if !needs_a_look(bytes) {
        // Nearly every label name and value: one reserve, three copies.
        out.room(bytes.len() + 2);
        out.put("\"");
        out.put(s);
        out.put("\"");
        return;
    }
    out.put("\"");
    // `s[copied..i]` is still to be copied; `i` is always at a char boundary when
    // a character is escaped (an ASCII byte or the lead byte of U+2028/U+2029).
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs a look.
        if let Some(word) = bytes[i..].first_chunk::<8>() {
            if !may_escape(u64::from_le_bytes(*word)) {
                i += 8;
                continue;
            }
        } else {
            // Under 8 bytes left (all of a short label name or value): padded
            // with a byte that needs no escape, checked as one word too.
            let mut word = [b'a'; 8];
            word[..bytes.len() - i].copy_from_slice(&bytes[i..]);
            if !may_escape(u64::from_le_bytes(word)) {
                break;
            }
        }
        let b = bytes[i];
        let escape = match b {
            b'"' | b'\\' | 0..=0x1f => true,
            // U+2028 and U+2029 (E2 80 A8/A9): valid JSON, but not JavaScript.
            0xe2 => {
                bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9))
            }
            _ => false,
        };
        if !escape {
            i += 1;
            continue;
        }
        out.put(&s[copied..i]);
        let c = s[i..].chars().next().unwrap_or_default();
        match c {
            '"' => out.put("\\\""),
            '\\' => out.put("\\\\"),
            '\n' => out.put("\\n"),
            '\r' => out.put("\\r"),
            '\t' => out.put("\\t"),
            c => out.put_fmt(format_args!("\\u{:04x}", c as u32)),
        }
        i += c.len_utf8();
        copied = i;
    }
    out.put(&s[copied..]);
    out.put("\"");
}

/// Whether some byte of `bytes` may need an escape ([`may_escape`], a word at
/// a time; the last bytes padded with a byte that needs none).
#[inline]
fn needs_a_look(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    if words.by_ref().any(|w| {
        w.first_chunk::<8>()
            .is_some_and(|w| may_escape(u64::from_le_bytes(*w)))
    }) {
        return true;
    }
    let tail = words.remainder();
    let mut word = [b'a'; 8];
    word[..tail.len()].copy_from_slice(tail);
    !tail.is_empty() && may_escape(u64::from_le_bytes(word))
}

/// Whether any byte of `w` is below 0x20, `"`, `\\` or 0xE2 (the lead byte of
/// U+2028/U+2029). Each test is the exact "some byte is zero" check on a
/// transformed word, so a `false` is never wrong.
fn may_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    // A byte below 0x20: `hasless(w, 0x20)`, exact for bounds up to 0x80.
    w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0
        || zero_byte(w ^ (ONES * u64::from(b'"')))
        || zero_byte(w ^ (ONES * u64::from(b'\\')))
        || zero_byte(w ^ (ONES * 0xe2))
}

/// One JSON Lines record (with its newline), in the schema of docs/design.md, *3. Output schema*
/// (in full: docs/output.md).
pub fn jsonl_record<O: Out>(w: &ClosedWindow, s: &Series, start: &str, end: &str, out: &mut O) {
    jsonl_head(&s.record, start, end, out);
    jsonl_rest(s, out);
    let _ = w;
}

/// What every record of `record` in the window `[start, end)` begins with, up
/// to its labels: a sink renders it once per record name and window, not once
/// per series.
pub fn jsonl_head<O: Out>(record: &str, start: &str, end: &str, out: &mut O) {
    out.put("{\"start\":\"");
    out.put(start);
    out.put("\",\"end\":\"");
    out.put(end);
    out.put("\",\"record\":");
    json_str(record, out);
    out.put(",\"labels\":{");
}

/// A record after its [`jsonl_head`]: its labels, value and newline.
///
/// Labels are written from their encoding's bytes ([`Labels::byte_pairs`]): a
/// part of ASCII that needs no escape (nearly every label name and value) is
/// copied as it is, found a word at a time; any other goes through
/// [`json_str`] as text.
pub fn jsonl_rest<O: Out>(s: &Series, out: &mut O) {
    // The labels' encoding is as long as their text plus 4 bytes per part:
    // room for the quotes, `:` and `,` of every pair.
    out.room(s.labels.encoded_len() + 32);
    // Each pair `"k":"v"` with its separators in as few appends as may be:
    // `"`, k, `":"`, v and `"` when both are plain (most pairs).
    for (i, (k, v)) in s.labels.byte_pairs().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        match (plain_ascii(k), plain_ascii(v)) {
            (true, true) => {
                out.put(if i > 0 { ",\"" } else { "\"" });
                out.put_ascii(k);
                out.put("\":\"");
                out.put_ascii(v);
                out.put("\"");
            }
            _ => {
                out.put(sep);
                json_part(k, out);
                out.put(":");
                json_part(v, out);
            }
        }
    }
    out.put("},\"value\":");
    value(s.value, out);
    out.put("}\n");
}

/// One metric's label names rendered for [`jsonl_rest_keyed`], kept by a
/// sink from record to record: a window's host records of one metric share
/// their names ([`Labels::key_names`]), rendered once rather than checked and
/// copied piece by piece for every record.
#[derive(Default)]
pub struct RenderedNames {
    /// The names rendered (held, so no other names can take their address).
    names: Option<Arc<KeyNames>>,
    /// Per name: `"name":"` (escaped as [`json_str`] does), after a `,` for
    /// all but the first.
    heads: Vec<String>,
}

impl RenderedNames {
    /// The heads of `names`, rendered now unless they are the last ones.
    fn of(&mut self, names: &Arc<KeyNames>) -> &[String] {
        if !self.names.as_ref().is_some_and(|n| Arc::ptr_eq(n, names)) {
            self.heads.clear();
            for (i, name) in names.names().enumerate() {
                let mut head = String::from(if i > 0 { "," } else { "" });
                json_str(name, &mut head);
                head.push_str(":\"");
                self.heads.push(head);
            }
            self.names = Some(names.clone());
        }
        &self.heads
    }
}

/// [`jsonl_rest`], the same bytes, with the label names of a host series
/// read from its key taken from `rendered` (each value copied as it is when
/// it needs no escape, as there); labels held encoded go to [`jsonl_rest`].
pub fn jsonl_rest_keyed<O: Out>(s: &Series, rendered: &mut RenderedNames, out: &mut O) {
    let Some(names) = s.labels.key_names() else {
        return jsonl_rest(s, out);
    };
    out.room(s.labels.encoded_len() + 32);
    let heads = rendered.of(names);
    for ((_, v), head) in s.labels.byte_pairs().zip(heads) {
        if plain_ascii(v) {
            out.put(head);
            out.put_ascii(v);
            out.put("\"");
        } else {
            // The head without the value's opening quote: `json_part` writes it.
            out.put(head.strip_suffix('"').unwrap_or(head));
            json_part(v, out);
        }
    }
    out.put("},\"value\":");
    value(s.value, out);
    out.put("}\n");
}

/// A label part's bytes as a JSON string literal: copied as they are when
/// they are ASCII and need no escape; else read as text (a part that is not
/// UTF-8, which only a damaged key could give, reads as empty, as
/// [`Labels::iter`] reads it) and escaped by [`json_str`].
#[inline]
fn json_part<O: Out>(part: &[u8], out: &mut O) {
    if plain_ascii(part) {
        out.put("\"");
        out.put_ascii(part);
        out.put("\"");
    } else {
        json_str(std::str::from_utf8(part).unwrap_or_default(), out);
    }
}

/// Whether every byte of `bytes` is ASCII that a JSON string holds as it is
/// (none below 0x20, no `"` or `\\`), a word at a time.
#[inline]
fn plain_ascii(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    if words.by_ref().any(|w| {
        w.first_chunk::<8>()
            .is_none_or(|w| !plain_word(u64::from_le_bytes(*w)))
    }) {
        return false;
    }
    let tail = words.remainder();
    let mut word = [b'a'; 8];
    word[..tail.len()].copy_from_slice(tail);
    plain_word(u64::from_le_bytes(word))
}

/// Whether no byte of `w` is 0x80 or above, below 0x20, `"` or `\\` (each
/// test exact: a `true` is never wrong).
#[inline]
fn plain_word(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    // With no high bit set, `hasless(w, 0x20)` is exact.
    w & HIGH == 0
        && w.wrapping_sub(ONES * 0x20) & HIGH == 0
        && !zero_byte(w ^ (ONES * u64::from(b'"')))
        && !zero_byte(w ^ (ONES * u64::from(b'\\')))
}

/// One alert transcript line (with its newline): an instance's change at the
/// window `[start, end)` (docs/alerts.md). `since` is when it started firing.
pub fn jsonl_alert<O: Out>(change: &AlertChange, start: &str, end: &str, out: &mut O) {
    let i = &change.instance;
    out.put("{\"alert\":");
    json_str(&i.alert, out);
    out.put(",\"state\":\"");
    out.put(change.state.as_str());
    out.put("\",\"start\":\"");
    out.put(start);
    out.put("\",\"end\":\"");
    out.put(end);
    out.put("\",\"since\":\"");
    out.put(&rfc3339(i.firing_since_ms));
    out.put("\",\"labels\":{");
    for (n, (k, v)) in i.labels.iter().enumerate() {
        if n > 0 {
            out.put(",");
        }
        json_str(k, out);
        out.put(":");
        json_str(v, out);
    }
    out.put("},\"value\":");
    value(Value::Float(i.value), out);
    out.put(",\"annotations\":{");
    for (n, (k, v)) in i.annotations.iter().enumerate() {
        if n > 0 {
            out.put(",");
        }
        json_str(k, out);
        out.put(":");
        json_str(v, out);
    }
    out.put("}}\n");
}

/// `status="200", host="web-1"`.
pub fn labels_text(labels: &Labels) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        json_str(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests;
