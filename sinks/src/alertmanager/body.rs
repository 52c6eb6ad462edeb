//! The request body of Alertmanager's `POST /api/v2/alerts`: a JSON array of
//! "postable alerts" (Alertmanager's OpenAPI spec, `postableAlert`), with
//! exactly its field names: `labels`, `annotations`, `startsAt`, `endsAt`,
//! `generatorURL`; times in RFC 3339.

use serde_json::{Map, Value};

/// One alert as sent: what [`super::book::Book`] says about an instance at the
/// instant of sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Postable {
    /// `alertname` and the instance's labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Sorted by name.
    pub annotations: Vec<(String, String)>,
    /// Ms since the Unix epoch.
    pub starts_ms: i64,
    /// Ms since the Unix epoch: in the future while the alert fires (it is valid
    /// until then unless re-sent), the end of its last window once resolved.
    pub ends_ms: i64,
}

/// A time as Alertmanager reads it: RFC 3339 in UTC, milliseconds when not
/// whole seconds (`2026-12-04T17:13:54.246Z`). `None` outside the years
/// -9999..=9999, which no event time reaches.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    let t = jiff::Timestamp::from_millisecond(ms).ok()?;
    Some(if ms.rem_euclid(1000) == 0 {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    })
}

/// The JSON array for `alerts`, all pointing at `generator_url`. An alert
/// whose time cannot be written is left out and returned by its labels, for
/// the caller to count and log.
pub fn encode(alerts: &[Postable], generator_url: &str) -> (String, Vec<String>) {
    let mut out = Vec::with_capacity(alerts.len());
    let mut left_out = Vec::new();
    for a in alerts {
        let (Some(starts), Some(ends)) = (rfc3339_ms(a.starts_ms), rfc3339_ms(a.ends_ms)) else {
            left_out.push(format!("{:?}", a.labels));
            continue;
        };
        let pairs = |kv: &[(String, String)]| -> Value {
            Value::Object(
                kv.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<Map<_, _>>(),
            )
        };
        let mut o = Map::new();
        o.insert("labels".into(), pairs(&a.labels));
        o.insert("annotations".into(), pairs(&a.annotations));
        o.insert("startsAt".into(), Value::String(starts));
        o.insert("endsAt".into(), Value::String(ends));
        o.insert("generatorURL".into(), Value::String(generator_url.into()));
        out.push(Value::Object(o));
    }
    (Value::Array(out).to_string(), left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_the_v2_field_names_and_rfc3339_times() {
        let a = Postable {
            labels: vec![
                ("alertname".into(), "HighErrors".into()),
                ("status".into(), "503".into()),
            ],
            annotations: vec![("summary".into(), "503 errors at 120/min".into())],
            starts_ms: 1_764_868_440_000,
            ends_ms: 1_764_868_680_250,
        };
        let (body, left_out) = encode(&[a], "http://tidemark.example/jobs/nginx");
        assert!(left_out.is_empty());
        let v: Value = serde_json::from_str(&body).unwrap();
        let expected = serde_json::json!([{
            "labels": {"alertname": "HighErrors", "status": "503"},
            "annotations": {"summary": "503 errors at 120/min"},
            "startsAt": "2025-12-04T17:14:00Z",
            "endsAt": "2025-12-04T17:18:00.250Z",
            "generatorURL": "http://tidemark.example/jobs/nginx",
        }]);
        assert_eq!(v, expected);
        // Every key, and no other, of the v2 API's postableAlert.
        let keys: Vec<&str> = v[0]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut keys = keys;
        keys.sort();
        assert_eq!(
            keys,
            [
                "annotations",
                "endsAt",
                "generatorURL",
                "labels",
                "startsAt"
            ]
        );
    }

    #[test]
    fn times_read_back_as_rfc3339() {
        for ms in [0, 1, 999, 1_000, -1, 1_764_868_440_123] {
            let s = rfc3339_ms(ms).unwrap();
            let back: jiff::Timestamp = s.parse().unwrap();
            assert_eq!(back.as_millisecond(), ms, "{s}");
            assert!(s.ends_with('Z'), "{s}");
        }
        assert_eq!(rfc3339_ms(i64::MAX), None);
        let far = Postable {
            labels: vec![("alertname".into(), "X".into())],
            annotations: vec![],
            starts_ms: i64::MAX,
            ends_ms: 0,
        };
        let (body, left_out) = encode(&[far], "x");
        assert_eq!(body, "[]");
        assert_eq!(left_out.len(), 1);
    }
}
