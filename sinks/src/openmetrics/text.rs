//! OpenMetrics 1.0 text pieces: a series' name and labels, a value, a timestamp.
//!
//! What Prometheus's parser (`promtool tsdb create-blocks-from openmetrics`,
//! model/textparse/openmetricsparse.go) reads back exactly:
//! - label values in double quotes with `\\`, `\"` and `\n` escaped (the only
//!   escapes it undoes; any other character, tab included, is written as is);
//! - values through Go's `strconv.ParseFloat` (correctly rounded), so Rust's
//!   shortest round-trip form reads back as the same f64; `NaN`, `+Inf`, `-Inf`
//!   as OpenMetrics spells them;
//! - timestamps in seconds, which it turns into milliseconds with
//!   `int64(seconds * 1000)` — a truncation, so only whole seconds (every
//!   window boundary: window sizes are whole seconds) are sure to come back as
//!   the same millisecond; a fractional millisecond time is written with its
//!   three decimals anyway.

use std::fmt::Write;

use tidemark_engine::{Labels, Value};

/// `{a="1",b="x\"y"}`, or nothing for no labels: the part of a sample line
/// between the metric name and the value.
pub fn labels(labels: &Labels, out: &mut String) {
    labels_with(labels, &[], out)
}

/// [`labels`] with `external` (sorted by name) added, as Prometheus adds its
/// external labels: a label the series has itself keeps its own value. An empty
/// value is no label (as in Prometheus, which would drop it, and then the
/// external label would not apply): it is left out, and an external label of
/// that name applies.
pub fn labels_with(labels: &Labels, external: &[(String, String)], out: &mut String) {
    let mut own = labels.iter().filter(|(_, v)| !v.is_empty()).peekable();
    let mut ext = external
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(_, v)| !v.is_empty())
        .peekable();
    let mut first = true;
    loop {
        let (k, v) = match (own.peek(), ext.peek()) {
            (None, None) => break,
            (Some(_), None) => own.next(),
            (None, Some(_)) => ext.next(),
            (Some(&(a, _)), Some(&(b, _))) if a < b => own.next(),
            (Some(&(a, _)), Some(&(b, _))) if b < a => ext.next(),
            (Some(_), Some(_)) => {
                ext.next();
                own.next()
            }
        }
        .unwrap_or_default();
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        label_value(v, out);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

/// A label value's escapes (without the quotes).
pub fn label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample's value. Counts and whole numbers print as integers (as in the JSONL
/// output); other floats in the shortest form that reads back as the same f64,
/// with an exponent when very large or small (never 300 zeros).
pub fn value(v: Value, out: &mut String) {
    match v {
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f == f64::INFINITY => out.push_str("+Inf"),
        Value::Float(f) if f == f64::NEG_INFINITY => out.push_str("-Inf"),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
            let _ = write!(out, "{}", f as i64);
        }
        Value::Float(f) if (1e-5..1e16).contains(&f.abs()) => {
            let _ = write!(out, "{f}");
        }
        Value::Float(f) => {
            let _ = write!(out, "{f:e}");
        }
    }
}

/// Milliseconds since the epoch as OpenMetrics seconds: `1795168920`, or
/// `1795168920.5` when not a whole second.
pub fn timestamp(ms: i64, out: &mut String) {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (secs, frac) = (abs / 1000, abs % 1000);
    if frac == 0 {
        let _ = write!(out, "{sign}{secs}");
    } else {
        let digits = format!("{frac:03}");
        let _ = write!(out, "{sign}{secs}.{}", digits.trim_end_matches('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(v: Value) -> String {
        let mut s = String::new();
        value(v, &mut s);
        s
    }

    fn ts(ms: i64) -> String {
        let mut s = String::new();
        timestamp(ms, &mut s);
        s
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline_only() {
        let mut s = String::new();
        labels(
            &Labels::from_pairs(&[("path", "a\\b\"c\nd\te"), ("host", "web-1")]),
            &mut s,
        );
        // Sorted by name; tab kept as is (the parser takes anything but `"`, `\` and newline).
        assert_eq!(s, "{host=\"web-1\",path=\"a\\\\b\\\"c\\nd\te\"}");
        let mut none = String::new();
        labels(&Labels::default(), &mut none);
        assert_eq!(none, "");
    }

    #[test]
    fn external_labels_are_merged_in_order_and_never_override_a_series_own() {
        let ext = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let with = |own: &[(&str, &str)], external: &[(&str, &str)]| {
            let mut s = String::new();
            labels_with(&Labels::from_pairs(own), &ext(external), &mut s);
            s
        };
        assert_eq!(
            with(
                &[("host", "web-1"), ("status", "200")],
                &[("a", "x"), ("region", "e\"u"), ("z", "1")]
            ),
            "{a=\"x\",host=\"web-1\",region=\"e\\\"u\",status=\"200\",z=\"1\"}"
        );
        assert_eq!(
            with(&[("host", "web-1")], &[("host", "other")]),
            "{host=\"web-1\"}"
        );
        assert_eq!(with(&[], &[("cluster", "eu")]), "{cluster=\"eu\"}");
        assert_eq!(with(&[], &[]), "");
    }

    /// Prometheus drops a label with an empty value: an empty own value is no
    /// label, so the external one applies (before: the empty value won, then
    /// Prometheus dropped it and the series had neither); none is written empty.
    #[test]
    fn an_empty_label_value_is_absent_and_the_external_label_applies() {
        let external = vec![("region".to_string(), "eu".to_string())];
        let mut s = String::new();
        let own = Labels::from_pairs(&[("host", "web-1"), ("region", ""), ("path", "")]);
        labels_with(&own, &external, &mut s);
        assert_eq!(s, "{host=\"web-1\",region=\"eu\"}");
        s.clear();
        let blank = vec![("zone".to_string(), String::new())];
        labels_with(&Labels::from_pairs(&[("status", "")]), &blank, &mut s);
        assert_eq!(s, "");
    }

    #[test]
    fn values_read_back_exactly_and_special_values_are_spelled_as_openmetrics_wants() {
        assert_eq!(val(Value::Int(1234)), "1234");
        assert_eq!(val(Value::Int(u64::MAX)), "18446744073709551615");
        assert_eq!(val(Value::Float(1234.0)), "1234");
        assert_eq!(val(Value::Float(-0.0)), "0");
        assert_eq!(val(Value::Float(0.1 + 0.2)), "0.30000000000000004");
        assert_eq!(val(Value::Float(0.042)), "0.042");
        assert_eq!(val(Value::Float(f64::NAN)), "NaN");
        assert_eq!(val(Value::Float(f64::INFINITY)), "+Inf");
        assert_eq!(val(Value::Float(f64::NEG_INFINITY)), "-Inf");
        assert_eq!(val(Value::Float(1e300)), "1e300");
        assert_eq!(val(Value::Float(2.5e-7)), "2.5e-7");
        assert_eq!(
            val(Value::Float(f64::MIN_POSITIVE)),
            "2.2250738585072014e-308"
        );
        // Every finite float reads back as itself (Go's ParseFloat rounds
        // correctly, as Rust's parse does).
        let mut x = 0x1234_5678_9abc_def0_u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            let s = val(Value::Float(f));
            let back: f64 = s.parse().unwrap();
            assert!(back == f, "{f:?} printed {s} read back {back:?}");
        }
    }

    #[test]
    fn timestamps_are_seconds() {
        assert_eq!(ts(1_795_168_920_000), "1795168920");
        assert_eq!(ts(1_795_168_920_500), "1795168920.5");
        assert_eq!(ts(1_795_168_920_007), "1795168920.007");
        assert_eq!(ts(0), "0");
        assert_eq!(ts(-1_500), "-1.5");
        assert_eq!(ts(-2_000), "-2");
    }
}
