//! Phase 1: TOML syntax, unknown keys and value types.

use std::ops::Range;

use serde::de::{self, Deserialize, Visitor};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::Report;
use super::names::{did_you_mean, list};
use crate::model::{
    AlertFile, BasicAuthFile, HostFile, JobFile, MetricFile, ParseFile, RuleFile, SinkFile,
    SourceFile, TimestampFile, WindowFile,
};

/// Parses the file into the model, or records why it cannot be read as a job file.
pub(crate) fn parse_file(r: &mut Report<'_>) -> Option<JobFile> {
    let (root, errors) = DeTable::parse_recoverable(r.text);
    if !errors.is_empty() {
        syntax_errors(r, errors);
        return None;
    }
    check_keys(r, root.get_ref());
    if !r.diags.is_empty() {
        return None;
    }
    match JobFile::deserialize(toml::de::Deserializer::from(root)) {
        Ok(file) => Some(file),
        Err(e) => {
            let reparsed = DeTable::parse(r.text);
            let root = reparsed.as_ref().map(|t| t.get_ref()).ok();
            type_error(r, root, &e);
            None
        }
    }
}

fn syntax_errors(r: &mut Report<'_>, mut errors: Vec<toml::de::Error>) {
    errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    let mut last_line = 0;
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        let (line, _) = r.position(span.start);
        if line == last_line {
            continue; // later errors on the same line are usually knock-on effects
        }
        last_line = line;
        let found = r.text.get(span.clone()).unwrap_or("").trim();
        let msg = e.message().trim();
        let message = if msg == "duplicate key" && !found.is_empty() {
            format!("invalid TOML: `{found}` is defined twice")
        } else {
            format!("invalid TOML: {msg}")
        };
        r.span(span, message, syntax_hint(msg, found));
    }
}

fn syntax_hint(msg: &str, found: &str) -> Option<String> {
    let bare_word = !found.is_empty()
        && found
            .chars()
            .all(|c| c.is_alphanumeric() || "_-./:*".contains(c));
    if msg.contains("quoted") || msg.contains("invalid boolean") {
        return Some(if bare_word {
            format!("text values must be in double quotes: \"{found}\"")
        } else {
            "text values must be in double quotes, e.g. kind = \"file\"".to_string()
        });
    }
    let hint = if msg.starts_with("duplicate key") {
        "a key or [table] may appear only once; tables that repeat use double brackets, like [[metric]]"
    } else if msg.starts_with("unclosed table") {
        "table headers look like [source] or [[metric]]"
    } else if msg.starts_with("unclosed array") {
        "close the list with `]`, e.g. include = [\"/var/log/app/*.log\"]"
    } else if msg.contains("basic string") || msg.contains("literal string") {
        "close the string with a matching quote on the same line (use \"\"\" for text spanning lines)"
    } else if msg.starts_with("key with no value") {
        "write settings as key = value"
    } else if msg.starts_with("unexpected key or value") {
        "put each key = value on its own line"
    } else {
        return None;
    };
    Some(hint.to_string())
}

/// The field names a derived `Deserialize` struct accepts.
fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldsOf(&mut fields));
    fields
}

struct FieldsOf<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldsOf<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields captured"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn child<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t DeTable<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .and_then(|(_, v)| v.get_ref().as_table())
}

fn children<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Vec<&'t DeTable<'i>> {
    let items = table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .and_then(|(_, v)| v.get_ref().as_array());
    items
        .map(|a| a.iter().filter_map(|v| v.get_ref().as_table()).collect())
        .unwrap_or_default()
}

/// Reports every key that the model does not know, with the keys allowed there.
fn check_keys(r: &mut Report<'_>, root: &DeTable<'_>) {
    check_table(
        r,
        root,
        fields_of::<JobFile>(),
        "at the top level of the file",
    );
    if let Some(source) = child(root, "source") {
        check_table(r, source, fields_of::<SourceFile>(), "in [source]");
        if let Some(host) = child(source, "host") {
            check_table(
                r,
                host,
                fields_of::<HostFile>(),
                "in the [source] host table",
            );
        }
    }
    if let Some(parse) = child(root, "parse") {
        check_table(r, parse, fields_of::<ParseFile>(), "in [parse]");
        if let Some(ts) = child(parse, "timestamp") {
            check_table(
                r,
                ts,
                fields_of::<TimestampFile>(),
                "in the [parse] timestamp table",
            );
        }
    }
    if let Some(window) = child(root, "window") {
        check_table(r, window, fields_of::<WindowFile>(), "in [window]");
    }
    for t in children(root, "metric") {
        check_table(r, t, fields_of::<MetricFile>(), "in [[metric]]");
    }
    for t in children(root, "rule") {
        check_table(r, t, fields_of::<RuleFile>(), "in [[rule]]");
    }
    for t in children(root, "sink") {
        check_table(r, t, fields_of::<SinkFile>(), "in [[sink]]");
        if let Some(auth) = child(t, "basic_auth") {
            check_table(
                r,
                auth,
                fields_of::<BasicAuthFile>(),
                "in a sink's basic_auth",
            );
        }
    }
    for t in children(root, "alert") {
        check_table(r, t, fields_of::<AlertFile>(), "in [[alert]]");
    }
}

fn check_table(r: &mut Report<'_>, table: &DeTable<'_>, allowed: &[&str], place: &str) {
    for (key, _) in table.iter() {
        let name: &str = key.get_ref();
        if !allowed.contains(&name) {
            let suggestion = did_you_mean(name, allowed.iter().copied());
            r.span(
                key.span(),
                format!("unknown key `{name}` {place}"),
                format!(
                    "{suggestion}allowed keys {place}: {}",
                    list(allowed.iter().copied())
                ),
            );
        }
    }
}

/// The key path (array positions left out) and the TOML type of the deepest value
/// whose span contains `target`.
fn find_in_value(
    v: &Spanned<DeValue<'_>>,
    target: usize,
    path: &mut Vec<String>,
) -> Option<&'static str> {
    let deeper = match v.get_ref() {
        DeValue::Table(t) => find_in_table(t, target, path),
        DeValue::Array(items) => items
            .iter()
            .find_map(|item| find_in_value(item, target, path)),
        _ => None,
    };
    let span = v.span();
    deeper.or_else(|| {
        (span.start == target || span.contains(&target)).then(|| v.get_ref().type_str())
    })
}

fn find_in_table(t: &DeTable<'_>, target: usize, path: &mut Vec<String>) -> Option<&'static str> {
    for (k, v) in t.iter() {
        path.push(k.get_ref().to_string());
        if let Some(found) = find_in_value(v, target, path) {
            return Some(found);
        }
        path.pop();
    }
    None
}

/// How a table at `path` is written in the file: `[source]`, `[[metric]]`, ...
fn table_name(path: &[String]) -> String {
    match path {
        [] => "the top level of the file".to_string(),
        [one] if matches!(one.as_str(), "metric" | "rule" | "sink") => format!("[[{one}]]"),
        _ => format!("[{}]", path.join(".")),
    }
}

fn type_error(r: &mut Report<'_>, root: Option<&DeTable<'_>>, e: &toml::de::Error) {
    let span: Range<usize> = e.span().unwrap_or(0..0);
    let mut path = Vec::new();
    let found_type = root.and_then(|root| find_in_table(root, span.start, &mut path));
    let msg = e.message().trim();
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        let place = table_name(&path);
        let message = if path.is_empty() {
            format!("missing required key `{field}` at {place}")
        } else {
            format!("missing required key `{field}` in {place}")
        };
        r.span(span, message, missing_hint(&path, field));
        return;
    }
    let key = match path.split_last() {
        Some((last, [])) => format!("`{last}`"),
        Some((last, parent)) => format!("`{last}` in {}", table_name(parent)),
        None => "a value".to_string(),
    };
    if let Some((found, expected)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|m| m.rsplit_once(", expected "))
    {
        let expected = match expected {
            e if e.starts_with("struct ") => "a table",
            "a sequence" => "a list",
            "f64" | "f32" => "a number",
            "i64" => "a whole number",
            e => e,
        };
        // serde calls TOML tables and date-times "map".
        let found = match found_type {
            Some("datetime") if found.starts_with("map") => "a date-time",
            _ if found.starts_with("map") => "a table",
            _ => found,
        };
        let last = path.last().map_or("", String::as_str);
        let hint = match last {
            "size" | "max_out_of_orderness" | "idle_timeout" | "max_clock_skew" | "max_jump"
            | "max_clock_lag" | "poll_interval" | "rotated_tail_wait" => Some(format!(
                "write durations as quoted strings with a unit, e.g. {last} = \"30s\""
            )),
            "read_chunk" | "max_line_bytes" | "fingerprint_bytes" => Some(format!(
                "write sizes as quoted strings with a unit, e.g. {last} = \"1MiB\""
            )),
            "rate_limit" => Some("write a rate as a quoted string, e.g. rate_limit = \"5MiB/s\"".to_string()),
            "max_series" => Some("write a whole number without quotes, e.g. max_series = 100000".to_string()),
            "quantiles" => Some(
                "write quantiles as numbers between 0 and 1, e.g. quantiles = [0.5, 0.99]".to_string(),
            ),
            "host" => Some(
                "write host = { value = \"web-1\" }, host = { field = \"hostname\" } or host = { path_regex = \"/logs/(?P<host>[^/]+)/\" }".to_string(),
            ),
            "timestamp" => Some(
                "write timestamp = { field = \"time\", format = \"rfc3339\" }".to_string(),
            ),
            "metric" | "rule" | "sink" if expected == "a list" => Some(format!(
                "declare each {last} in its own [[{last}]] table (with double brackets)"
            )),
            _ if expected == "a list" => {
                Some(format!("write a list in brackets, e.g. {last} = [\"...\"]"))
            }
            _ if expected == "a table" => Some(format!("write it as a [{}] table", path.join("."))),
            _ if expected == "a string" => Some("put text values in double quotes".to_string()),
            _ => None,
        };
        r.span(
            span,
            format!("wrong type for {key}: expected {expected}, found {found}"),
            hint,
        );
    } else {
        r.span(span, format!("invalid value for {key}: {msg}"), None);
    }
}

fn missing_hint(path: &[String], field: &str) -> Option<String> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let hint = match (p.as_slice(), field) {
        ([], "name") => "add name = \"my-job\" at the top of the file",
        ([], "source") => {
            "add a [source] table, e.g. [source] kind = \"file\" include = [\"/var/log/app/*.log\"]"
        }
        ([], "parse") => {
            "add a [parse] table with format = \"nginx\", \"json\", \"logfmt\" or \"regex\""
        }
        (["source"], "kind") => "add kind = \"file\"",
        (["source"], "include") => "add include = [\"/var/log/app/*.log\"]: the live files to read",
        (["parse"], "format") => "add format = \"nginx\", \"json\", \"logfmt\" or \"regex\"",
        (["parse", "timestamp"], "field") => {
            "name the field that holds the event time, e.g. field = \"time\""
        }
        (["metric"], "name") => "give the metric a name, e.g. name = \"http_requests_total\"",
        (["metric"], "kind") => "add kind = \"counter\", \"sum\", \"gauge\" or \"histogram\"",
        (["rule"], "record") => "name the output series, e.g. record = \"job:http_requests:sum1m\"",
        (["rule"], "expr") => {
            "add the expression, e.g. expr = \"sum by (status) (http_requests_total)\""
        }
        (["sink"], "kind") => {
            "add kind = \"jsonl\", \"stdout\", \"prometheus_remote_write\" or \"alertmanager\""
        }
        (["alert"], "name") => "name the alert, e.g. name = \"HighErrorRate\"",
        (["alert"], "expr") => {
            "add the condition, e.g. expr = 'status:http_requests:sum1m{status=~\"5..\"} > 100'"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_the_model() {
        assert_eq!(
            fields_of::<JobFile>(),
            &["name", "source", "parse", "window", "metric", "rule", "sink", "alert"]
        );
        assert_eq!(
            fields_of::<HostFile>(),
            &["path_regex", "field", "value", "header"]
        );
        assert_eq!(
            &fields_of::<SinkFile>()[..4],
            &["kind", "path", "series", "alerts"]
        );
        assert!(fields_of::<SinkFile>().contains(&"queue_capacity"));
        assert!(fields_of::<AlertFile>().contains(&"keep_firing_for"));
        // `archive` is a known key of [source], so a typo of it gets a suggestion.
        assert!(fields_of::<SourceFile>().contains(&"archive"));
    }
}
