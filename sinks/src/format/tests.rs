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

/// Floats print as `{f}` prints them, whichever way they are formatted:
/// every power of ten's neighbourhood where ryu turns to exponents, whole
/// numbers past 2^53, subnormals, and a million bit patterns (xorshift, seed
/// printed).
#[test]
fn floats_print_as_display_prints_them() {
    let check = |f: f64| {
        if !f.is_finite() {
            return;
        }
        let mut s = String::new();
        value(Value::Float(f), &mut s);
        let want = if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
            format!("{}", f as i64)
        } else {
            format!("{f}")
        };
        assert_eq!(s, want, "bits {:#x}", f.to_bits());
    };
    for e in -330..=310 {
        let p = 10f64.powi(e);
        for m in [1.0, 1.5, 9.999_999, 0.999_999_9, 1.000_000_1, 3.0, 7.25] {
            check(m * p);
            check(-m * p);
            check(m * p + p / 3.0);
        }
    }
    for f in [
        5e-324,
        2.2e-308,
        0.1,
        0.2,
        0.3,
        1.0 / 3.0,
        9.007_199_254_740_993e15,
        1e16 + 2.0,
        123456.789,
    ] {
        check(f);
        check(-f);
    }
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("floats_print_as_display_prints_them: seed {seed}");
    let mut x = seed;
    for _ in 0..1_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        check(f64::from_bits(x));
        // Values of the size quantiles and sums have.
        check((x >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((x % 12) as i32 - 6));
    }
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
