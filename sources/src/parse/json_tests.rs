use super::*;
use proptest::prelude::*;
use serde_json::Value;

fn run(names: &[&str], line: &str) -> Result<Vec<Option<String>>, LineError> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut p = JsonParser::new(&names);
    let mut spans = vec![Span::Missing; names.len()];
    let mut scratch = String::new();
    p.parse(line, &mut spans, &mut scratch)?;
    Ok(spans
        .iter()
        .map(|s| s.resolve(line, &scratch).map(str::to_string))
        .collect())
}

fn some(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|s| s.map(str::to_string)).collect()
}

#[test]
fn typical_line() {
    let line = r#"{"time":"2026-11-20T10:01:02.345Z","level":"info","msg":"request done","http":{"method":"GET","status":200,"latency_ms":12.5},"user":{"id":42,"tags":["a","b"]},"ok":true,"err":null}"#;
    let got = run(
        &[
            "time",
            "http.status",
            "http.method",
            "http.latency_ms",
            "user.tags",
            "ok",
            "err",
            "nope",
            "http.nope",
            "user",
        ],
        line,
    )
    .unwrap();
    assert_eq!(
        got,
        some(&[
            Some("2026-11-20T10:01:02.345Z"),
            Some("200"),
            Some("GET"),
            Some("12.5"),
            Some(r#"["a","b"]"#),
            Some("true"),
            None,
            None,
            None,
            Some(r#"{"id":42,"tags":["a","b"]}"#),
        ])
    );
}

#[test]
fn escapes_and_dotted_keys() {
    let line = r#" { "m\u0073g" : "a \"quoted\" line\n\u00e9\ud83d\ude00\ud800x" , "http.status": "503", "a": {"b": {"c": -1.5e3}} } "#;
    let got = run(&["msg", "http.status", "a.b.c", "a.b"], line).unwrap();
    assert_eq!(
        got,
        some(&[
            Some("a \"quoted\" line\né😀\u{fffd}x"),
            Some("503"),
            Some("-1.5e3"),
            Some(r#"{"c": -1.5e3}"#),
        ])
    );
    // Last occurrence wins.
    assert_eq!(
        run(&["a"], r#"{"a":1,"a":"two"}"#).unwrap(),
        some(&[Some("two")])
    );
    assert_eq!(run(&["a"], r#"{"a":1,"a":null}"#).unwrap(), some(&[None]));
    // A path through a non-object is just missing.
    assert_eq!(
        run(&["a.b"], r#"{"a":[{"b":1}],"c":"a.b"}"#).unwrap(),
        some(&[None])
    );
    // Raw control characters inside strings are tolerated.
    assert_eq!(
        run(&["a"], "{\"a\":\"x\ty\"}").unwrap(),
        some(&[Some("x\ty")])
    );
}

#[test]
fn errors() {
    for bad in [
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{\"a\":1 \"b\":2}",
        "{a:1}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":-}",
        "{\"a\":tru}",
        "{\"a\":\"x}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{\"a\":[1,2}",
        "{\"a\":{\"b\":1]}",
        "{'a':1}",
        "plain text line",
        "{\"a\":[1,]}",
        "{\"a\":1e}",
        "{\"a\":NaN}",
    ] {
        assert_eq!(run(&["a", "a.b"], bad), Err(LineError::BadJson), "{bad}");
    }
    for not_obj in ["[1,2]", "\"str\"", "12", "null", " true ", "[{\"a\":1}]"] {
        assert_eq!(
            run(&["a"], not_obj),
            Err(LineError::NotAnObject),
            "{not_obj}"
        );
    }
    assert_eq!(run(&["a"], "{}").unwrap(), some(&[None]));
}

#[test]
fn deep_nesting_does_not_recurse() {
    let deep = format!(
        "{{\"a\":{}{}}}",
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    assert!(run(&["a", "t"], &deep).is_ok());
    let open = format!("{{\"a\":{}", "{\"k\":".repeat(500_000));
    assert_eq!(run(&["a"], &open), Err(LineError::BadJson));
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,8}|[\"\\\\\\n\\t\u{1}é😀]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[abcx]|b\\.c", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, k| v.as_object()?.get(k))
}

fn expected(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

proptest! {
    #[test]
    fn agrees_with_serde_json(
        m in prop::collection::btree_map("[abcx]", json_value(), 0..6),
        pretty: bool,
    ) {
        let v = Value::Object(m.into_iter().collect());
        let line = if pretty {
            serde_json::to_string_pretty(&v).unwrap().replace('\n', " ")
        } else {
            v.to_string()
        };
        let names = ["a", "b", "a.b", "a.c", "b.a.c", "x.x.x"];
        let got = run(&names, &line).unwrap();
        if !pretty {
            for (n, g) in names.iter().zip(&got) {
                prop_assert_eq!(g, &expected(lookup(&v, n)), "{} in {}", n, line);
            }
        }
    }

    #[test]
    fn mutations_agree_with_serde_json(
        m in prop::collection::btree_map("[abcx]", json_value(), 0..4),
        at in any::<prop::sample::Index>(),
        ins in prop::sample::select(vec!["", "\"", "{", "}", "[", "]", ",", ":", "1", "-", "\\", "e", "n", " "]),
        del in 0usize..3,
    ) {
        let line = Value::Object(m.into_iter().collect()).to_string();
        let cut = at.index(line.len() + 1);
        let mut cut = cut.min(line.len());
        while !line.is_char_boundary(cut) { cut -= 1; }
        let mut end = (cut + del).min(line.len());
        while !line.is_char_boundary(end) { end += 1; }
        let mutated = format!("{}{}{}", &line[..cut], ins, &line[end..]);
        let ours = run(&["a", "b.c"], &mutated);
        let theirs = serde_json::from_str::<Value>(&mutated);
        match (&ours, &theirs) {
            (Ok(_), Ok(v)) => prop_assert!(v.is_object()),
            (Err(LineError::NotAnObject), Ok(v)) => prop_assert!(!v.is_object()),
            (Err(LineError::BadJson), Err(_)) => {}
            // Leniencies: raw control characters, and numbers too big for f64.
            (Ok(_), Err(e)) => prop_assert!(
                mutated.bytes().any(|c| c < 0x20) || e.to_string().contains("number out of range"),
                "{} on {}", e, mutated
            ),
            _ => prop_assert!(false, "{:?} vs {:?} on {}", ours, theirs, mutated),
        }
    }
}
