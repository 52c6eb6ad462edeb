//! `${NAME}` in a job: expanded in paths, archive globs, sinks and a fixed host
//! value before they are resolved, and every error pointing at the reference.

use super::*;

fn env_vars() -> crate::env::Env {
    crate::env::Env::from_vars([("LOG_ROOT", "/srv/logs"), ("REL", "logs"), ("EMPTY", "")])
}

fn ok_env(text: &str) -> Job {
    match from_str_with_env(text, "job.toml", Path::new("/base"), &env_vars()) {
        Ok(job) => job,
        Err(d) => panic!("unexpected errors:\n{d}"),
    }
}

fn errors_env(text: &str) -> Vec<Diagnostic> {
    match from_str_with_env(text, "job.toml", Path::new("/base"), &env_vars()) {
        Ok(job) => panic!("accepted: {job:?}"),
        Err(d) => d.into_vec(),
    }
}

/// The minimal job with its `include` line replaced by `source_lines`.
fn with_source(source_lines: &str, rest: &str) -> String {
    format!(
        "{}{rest}",
        MINIMAL.replace("include = [\"logs/*.log\"]", source_lines)
    )
}

#[test]
fn env_vars_expand_in_every_path_before_resolving() {
    let text = with_source(
        "include = [\"${LOG_ROOT}/nginx/*.log\", \"${REL}/*.log\", \"/a/$$x\"]\n\
         exclude = [\"${LOG_ROOT}/nginx/*.gz\"]\n\
         archive = [\"${LOG_ROOT}/old/*.gz\"]",
        "[[sink]]\nkind = \"jsonl\"\npath = \"${REL}/out.jsonl\"\nseries = \"hosts\"\n",
    );
    let job = ok_env(&text);
    assert_eq!(
        job.source.include,
        ["/srv/logs/nginx/*.log", "/base/logs/*.log", "/a/$x"]
    );
    assert_eq!(job.source.exclude, ["/srv/logs/nginx/*.gz"]);
    assert_eq!(job.source.archive, ["/srv/logs/old/*.gz"]);
    assert!(
        matches!(&job.sinks[0].kind, SinkKind::Jsonl(p) if p == Path::new("/base/logs/out.jsonl"))
    );
}

#[test]
fn env_var_errors_point_at_the_reference() {
    let text = with_source(
        "include = [\"/x/${NOPE}/*.log\", \"${}\", \"${1X}/a\", '${LOG_ROOT', \"$LOG_ROOT/a\", \"${EMPTY}/a\"]",
        HOSTS_SINK,
    );
    let errs = errors_env(&text);
    let line = text.lines().position(|l| l.starts_with("include")).unwrap() + 1;
    let found: Vec<(usize, usize, &str)> = errs
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                line,
                16,
                "environment variable `NOPE` (used in include) is not set"
            ),
            (line, 33, "`${}` in include names no environment variable"),
            (
                line,
                40,
                "`${1X}` in include is not a valid environment variable reference"
            ),
            (line, 51, "`${` in include is not closed with `}`"),
            (
                line,
                65,
                "`$` in include must start `${NAME}` or be written `$$`"
            ),
            (
                line,
                80,
                "environment variable `EMPTY` (used in include) is set but empty"
            ),
        ],
        "{errs:#?}"
    );
    assert_eq!(
        errs[0].hint.as_deref(),
        Some("set NOPE in the environment tidemark runs in (in a cluster: of every member, since each expands paths from its own environment), or write the path out")
    );
    assert!(errs[4].hint.as_deref().unwrap().contains("`${LOG_ROOT}`"));
}

#[test]
fn env_var_errors_in_exclude_archive_and_sinks() {
    let text = with_source(
        "include = [\"/a/*.log\"]\nexclude = [\"${A}\"]\narchive = [\"${B}/*.gz\"]",
        "[[sink]]\nkind = \"jsonl\"\npath = \"${C}/out.jsonl\"\nseries = \"hosts\"\n",
    );
    let errs = errors_env(&text);
    let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "environment variable `A` (used in exclude) is not set",
            "environment variable `B` (used in archive) is not set",
            "environment variable `C` (used in the jsonl sink path) is not set",
        ]
    );
    // With escapes in the TOML string the column falls back to the value's start.
    let text = with_source("include = [\"/\\u0061/${A}\"]", HOSTS_SINK);
    let errs = errors_env(&text);
    assert_eq!(errs[0].column, 12, "{errs:#?}");
}

/// The minimal job with `host = { KEY = VALUE }` (VALUE written as a TOML basic
/// string), validated with `env`.
fn with_host(key: &str, value: &str, env: &crate::env::Env) -> Result<Job, Vec<Diagnostic>> {
    let text = with_source(
        &format!("include = [\"/a/*.log\"]\nhost = {{ {key} = \"{value}\" }}"),
        HOSTS_SINK,
    );
    from_str_with_env(&text, "job.toml", Path::new("/base"), env).map_err(|d| d.into_vec())
}

fn host_value(job: &Job) -> &str {
    match &job.source.host {
        HostFrom::Value(v) => v,
        other => panic!("not a fixed host: {other:?}"),
    }
}

#[test]
fn env_vars_expand_in_a_fixed_host_value() {
    let env = env_vars();
    let ok = |value: &str| match with_host("value", value, &env) {
        Ok(job) => host_value(&job).to_string(),
        Err(d) => panic!("{value}: {d:#?}"),
    };
    assert_eq!(ok("web-${REL}"), "web-logs");
    assert_eq!(ok("${REL}${REL}"), "logslogs");
    assert_eq!(ok("web-1"), "web-1");
    assert_eq!(ok("a$$b"), "a$b");
    assert_eq!(ok("$${REL}"), "${REL}");
    // Each member validates with its own environment, so labels its own host.
    for h in ["web-1", "web-2"] {
        let env = crate::env::Env::from_vars([("HOST_LABEL", h)]);
        let job = with_host("value", "${HOST_LABEL}", &env).unwrap();
        assert_eq!(host_value(&job), h);
    }
    // A value is not expanded again.
    let env = crate::env::Env::from_vars([("H", "${X}")]);
    assert_eq!(
        host_value(&with_host("value", "${H}", &env).unwrap()),
        "${X}"
    );
}

#[test]
fn env_var_errors_in_a_fixed_host_value_name_it() {
    let env = env_vars();
    let errs = |value: &str| -> Vec<(usize, String)> {
        match with_host("value", value, &env) {
            Ok(job) => panic!("{value} accepted: {job:?}"),
            Err(d) => d.into_iter().map(|d| (d.column, d.message)).collect(),
        }
    };
    // `host = { value = "` is 18 characters: the value starts at column 19.
    assert_eq!(
        errs("web-${NOPE}"),
        [(
            23,
            "environment variable `NOPE` (used in the host value) is not set".to_string()
        )]
    );
    assert_eq!(
        errs("${EMPTY}"),
        [(
            19,
            "environment variable `EMPTY` (used in the host value) is set but empty".to_string()
        )]
    );
    assert_eq!(
        errs("$HOST_LABEL"),
        [(
            19,
            "`$` in the host value must start `${NAME}` or be written `$$`".to_string()
        )]
    );
    assert_eq!(
        errs("${1X}"),
        [(
            19,
            "`${1X}` in the host value is not a valid environment variable reference".to_string()
        )]
    );
    assert_eq!(
        errs("a${"),
        [(
            20,
            "`${` in the host value is not closed with `}`".to_string()
        )]
    );
    assert_eq!(
        errs("${}"),
        [(
            19,
            "`${}` in the host value names no environment variable".to_string()
        )]
    );
    // Every problem is reported, with the same hints as in paths.
    let all = with_host("value", "${A}-${B}", &env).unwrap_err();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        all[0].hint.as_deref(),
        Some("set A in the environment tidemark runs in (in a cluster: of every member, since each expands paths from its own environment), or write the path out")
    );
    // A value that expands to nothing visible is no host name.
    let env = crate::env::Env::from_vars([("SPACE", " ")]);
    let blank = with_host("value", "${SPACE}", &env).unwrap_err();
    assert_eq!(
        blank[0].message,
        "the host value `${SPACE}` expands to ` `, which is blank"
    );
}

#[test]
fn path_regex_and_field_hosts_are_not_expanded() {
    let env = crate::env::Env::empty();
    let job = with_host("path_regex", "^/a/(?P<host>[^/]+)$", &env).unwrap();
    assert!(
        matches!(&job.source.host, HostFrom::PathRegex(re) if re.as_str() == "^/a/(?P<host>[^/]+)$")
    );
    let job = with_host("field", "${H}", &env).unwrap();
    assert!(matches!(&job.source.host, HostFrom::Field(f) if f == "${H}"));
}

#[test]
fn archive_pattern_errors_after_expansion_map_back() {
    let env = crate::env::Env::from_vars([("BAD", "/a/[x")]);
    let text = with_source(
        "include = [\"/a/*.log\"]\narchive = [\"${LOG_ROOT}/b[0-9.gz\", \"${BAD}/c\"]",
        HOSTS_SINK,
    );
    let errs = errors_env(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(
        errs[1].message,
        "environment variable `BAD` (used in archive) is not set"
    );
    // `[` is byte 13 of `${LOG_ROOT}/b[0-9.gz`, which starts at column 13.
    assert_eq!(errs[0].column, 26, "{errs:#?}");
    assert_eq!(
        errs[0].message,
        "archive glob `${LOG_ROOT}/b[0-9.gz` (expanded: `/srv/logs/b[0-9.gz`) is not a valid pattern: invalid range pattern"
    );
    let errs = match from_str_with_env(&text, "job.toml", Path::new("/base"), &env) {
        Ok(job) => panic!("accepted: {job:?}"),
        Err(d) => d.into_vec(),
    };
    // LOG_ROOT is unset there; the bad value of BAD is reported at its `${`.
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[1].message.contains("(expanded: `/a/[x/c`)"),
        "{errs:#?}"
    );
    assert_eq!(errs[1].column, 37, "{errs:#?}");
}

#[test]
fn sinks_that_expand_to_the_same_file_collide() {
    let text = with(
        "[[sink]]\nkind = \"jsonl\"\npath = \"${REL}/o.jsonl\"\nseries = \"hosts\"\n\
         [[sink]]\nkind = \"jsonl\"\npath = \"logs/o.jsonl\"\nseries = \"hosts\"\n",
    );
    let errs = errors_env(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0]
        .message
        .starts_with("two sinks write to the same file"));
}
