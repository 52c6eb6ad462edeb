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
        Value::Float(f) => out.put_fmt(format_args!("{f}")),
    }
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
mod tests {
    use super::*;
    use tidemark_engine::Origin;

    #[test]
    fn values() {
        let f = |v| {
            let mut s = String::new();
            value(v, &mut s);
            s
        };
        assert_eq!(f(Value::Int(1234)), "1234");
        assert_eq!(f(Value::Float(1234.0)), "1234");
        assert_eq!(f(Value::Float(0.042)), "0.042");
        assert_eq!(f(Value::Float(-2.5)), "-2.5");
        assert_eq!(f(Value::Float(f64::NAN)), "null");
        assert_eq!(f(Value::Float(1e300)), format!("{}", 1e300));
    }

    /// The escaping of every character that needs it, in runs of others, read
    /// back by serde_json and compared with its own escaping.
    #[test]
    fn json_strings_escape_what_json_and_javascript_need() {
        let f = |v: &str| {
            let mut s = String::new();
            json_str(v, &mut s);
            s
        };
        assert_eq!(f(""), "\"\"");
        assert_eq!(f("plain /path?q=1"), "\"plain /path?q=1\"");
        assert_eq!(
            f("a\"b\\c\nd\re\tf\u{1}g\u{1f}h\u{2028}i\u{2029}j\u{e9}\u{2027}\u{20ac}"),
            "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\\u2028i\\u2029j\u{e9}\u{2027}\u{20ac}\""
        );
        // Each escaped character at every offset of a word, amid clean bytes,
        // and in the last few bytes of a string (its tail under a word).
        for c in ['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{2028}', '\u{2029}'] {
            for (at, tail) in (0..17).flat_map(|at| {
                ["\u{e9}b".repeat(5), String::new(), "b".into(), "bc".into()].map(|t| (at, t))
            }) {
                let v = format!("{}{c}{tail}", "a".repeat(at));
                let mut want = String::from("\"");
                for ch in v.chars() {
                    match ch {
                        '"' => want.push_str("\\\""),
                        '\\' => want.push_str("\\\\"),
                        '\n' => want.push_str("\\n"),
                        c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                            want.push_str(&format!("\\u{:04x}", c as u32))
                        }
                        c => want.push(c),
                    }
                }
                want.push('"');
                assert_eq!(f(&v), want, "{v:?}");
            }
        }
        for v in [
            "\u{2028}",
            "x\u{2029}",
            "\"\"",
            "\u{e2}\u{80}",
            "\u{7f}\u{0}",
            "\u{1F600}\\",
        ] {
            let back: String = serde_json::from_str(&f(v)).unwrap();
            assert_eq!(back, v, "{}", f(v));
        }
    }

    /// A record's labels written from their bytes are what writing each name
    /// and value as text gives ([`json_str`] of [`Labels::iter`]'s pairs): for
    /// parts with every character that needs an escape at every offset of a
    /// word, non-ASCII text (and U+2028/U+2029), and the empty string.
    #[test]
    fn labels_from_their_bytes_print_as_their_text() {
        let mut parts: Vec<String> = vec![String::new(), "200".into(), "web-1".into()];
        for c in [
            '"', '\\', '\n', '\u{0}', '\u{1f}', '\u{7f}', '\u{e9}', '\u{2028}', '\u{2029}',
        ] {
            for at in 0..18 {
                parts.push(format!("{}{c}{}", "a".repeat(at), "b".repeat(at % 5)));
            }
        }
        for (i, v) in parts.iter().enumerate() {
            let name = &parts[(i * 7) % parts.len()];
            let labels = Labels::from_pairs(&[("host", "web-1"), (name.as_str(), v.as_str())]);
            let s = Series {
                record: "r".into(),
                labels: labels.clone(),
                value: Value::Float(0.25),
                origin: Origin::Host,
            };
            let mut want = String::new();
            for (n, (k, v)) in labels.iter().enumerate() {
                if n > 0 {
                    want.push(',');
                }
                json_str(k, &mut want);
                want.push(':');
                json_str(v, &mut want);
            }
            want.push_str("},\"value\":0.25}\n");
            let mut bytes: Vec<u8> = Vec::new();
            jsonl_rest(&s, &mut bytes);
            assert_eq!(String::from_utf8(bytes).unwrap(), want, "{v:?}");
            let mut text = String::new();
            jsonl_rest(&s, &mut text);
            assert_eq!(text, want, "{v:?}");
        }
    }

    /// A host record whose labels are read from its series key prints what
    /// the same labels encoded print, for names and values needing escapes
    /// (the parts above), records of different names in turn (each set
    /// rendered again) and a key missing a part.
    #[test]
    fn labels_read_from_a_key_print_as_encoded_ones() {
        use tidemark_engine::key::SeriesKey;
        let mut parts: Vec<String> = vec![String::new(), "200".into(), "web-1".into()];
        for c in ['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{e9}', '\u{2028}'] {
            for at in 0..10 {
                parts.push(format!("{}{c}{}", "a".repeat(at), "b".repeat(at % 5)));
            }
        }
        let layout = |names: &[&str]| {
            let mut sorted: Vec<(String, usize)> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), i))
                .collect();
            sorted.sort();
            Arc::new(KeyNames::new(&sorted))
        };
        let mut rendered = RenderedNames::default();
        for (i, v) in parts.iter().enumerate() {
            let odd = &parts[(i * 7) % parts.len()];
            let name = format!("x{odd}");
            let sets = [
                layout(&["host", "remote_addr"]),
                layout(&["host", &name]),
                layout(&["host", "status", "method"]),
            ];
            for (n, names) in sets.iter().enumerate() {
                let values = ["web-1", v.as_str(), odd.as_str()];
                let mut key = Vec::new();
                for part in &values[..names.names().count()] {
                    key.extend_from_slice(&(part.len() as u32).to_le_bytes());
                    key.extend_from_slice(part.as_bytes());
                }
                if (i + n) % 5 == 0 {
                    // Missing its last part: read as empty, either way.
                    let cut = key.len() - 4 - values[names.names().count() - 1].len();
                    key.truncate(cut);
                }
                let keyed = Labels::of_key(names, SeriesKey::from(key));
                let encoded = Labels::from_pairs(&keyed.to_vec());
                let rec = |labels: Labels| Series {
                    record: "r".into(),
                    labels,
                    value: Value::Float(0.25),
                    origin: Origin::Host,
                };
                let mut want: Vec<u8> = Vec::new();
                jsonl_rest(&rec(encoded), &mut want);
                let mut got: Vec<u8> = Vec::new();
                jsonl_rest_keyed(&rec(keyed.clone()), &mut rendered, &mut got);
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(want.clone()).unwrap()
                );
                let mut text = String::new();
                jsonl_rest_keyed(&rec(keyed), &mut rendered, &mut text);
                assert_eq!(text.as_bytes(), want);
            }
        }
    }

    #[test]
    fn an_alert_change_is_one_json_line() {
        use tidemark_engine::alert_event::{AlertChange, AlertInstance, AlertState};
        let change = AlertChange {
            instance: AlertInstance {
                alert: "HighErrorRate".into(),
                labels: Labels::from_pairs(&[("status", "503"), ("severity", "page")]),
                annotations: vec![("summary".into(), "503 at 12.5/min".into())],
                value: 12.5,
                firing_since_ms: 1_795_168_860_000,
            },
            state: AlertState::Resolved,
        };
        let mut out = String::new();
        jsonl_alert(
            &change,
            "2026-11-20T10:05:00Z",
            "2026-11-20T10:06:00Z",
            &mut out,
        );
        assert_eq!(
            out,
            "{\"alert\":\"HighErrorRate\",\"state\":\"resolved\",\"start\":\"2026-11-20T10:05:00Z\",\"end\":\"2026-11-20T10:06:00Z\",\"since\":\"2026-11-20T10:01:00Z\",\"labels\":{\"severity\":\"page\",\"status\":\"503\"},\"value\":12.5,\"annotations\":{\"summary\":\"503 at 12.5/min\"}}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["labels"]["status"], "503");
        // A series that was absent has no value.
        let mut absent = change.clone();
        absent.instance.value = f64::NAN;
        out.clear();
        jsonl_alert(&absent, "a", "b", &mut out);
        assert!(out.contains("\"value\":null,"), "{out}");
    }

    #[test]
    fn record_matches_design_schema() {
        let w = ClosedWindow {
            start_ms: 1_795_168_860_000,
            end_ms: 1_795_168_920_000,
            series: vec![],
        };
        let s = Series {
            record: "status:http_requests:sum1m".into(),
            labels: Labels::from_pairs(&[("status", "2\"00")]),
            value: Value::Int(1234),
            origin: Origin::Rule,
        };
        let mut out = String::new();
        jsonl_record(&w, &s, &rfc3339(w.start_ms), &rfc3339(w.end_ms), &mut out);
        assert_eq!(
            out,
            "{\"start\":\"2026-11-20T10:01:00Z\",\"end\":\"2026-11-20T10:02:00Z\",\"record\":\"status:http_requests:sum1m\",\"labels\":{\"status\":\"2\\\"00\"},\"value\":1234}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["labels"]["status"], "2\"00");
    }
}
