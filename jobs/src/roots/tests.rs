//! Tests of the roots checks.

use super::*;
use crate::env::Env;
use crate::validate::from_str_with_env;

/// A job reading `include` (and `archive`), validated with an empty environment.
fn job(include: &[&str], exclude: &[&str], archive: &[&str]) -> Job {
    let list = |l: &[&str]| {
        l.iter()
            .map(|g| format!("{g:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [{}]\nexclude = [{}]\narchive = [{}]\n\
         [parse]\nformat = \"json\"\n[[metric]]\nname = \"n\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"jsonl\"\npath = \"/out/j.jsonl\"\nseries = \"hosts\"\n",
        list(include),
        list(exclude),
        list(archive)
    );
    from_str_with_env(&text, "j.toml", Path::new("/jobs"), &Env::empty())
        .unwrap_or_else(|d| panic!("{d}"))
}

fn roots(rs: &[&str]) -> Vec<PathBuf> {
    rs.iter().map(PathBuf::from).collect()
}

/// The problem kinds found for one include glob.
fn include(glob: &str, rs: &[&str]) -> Option<RootProblemKind> {
    match check_roots(&job(&[glob], &[], &[]), &roots(rs)) {
        Ok(()) => None,
        Err(e) => {
            assert_eq!(e.problems.len(), 1, "{e}");
            assert_eq!(e.problems[0].key, "include");
            Some(e.problems[0].kind.clone())
        }
    }
}

fn outside(prefix: &str) -> Option<RootProblemKind> {
    Some(RootProblemKind::Outside {
        prefix: PathBuf::from(prefix),
    })
}

#[test]
fn no_roots_allow_anything() {
    let j = job(&["/etc/*", "/var/log/../etc/passwd"], &[], &["rel/*.gz"]);
    assert_eq!(check_roots(&j, &[]), Ok(()));
}

#[test]
fn globs_under_a_root_are_allowed() {
    let r = &["/var/log"];
    assert_eq!(include("/var/log/nginx/*/access.log", r), None);
    assert_eq!(include("/var/log/*.log", r), None);
    assert_eq!(include("/var/log/**/x.log", r), None);
    assert_eq!(include("/var/log/app.log", r), None);
    assert_eq!(include("/var/log", r), None);
    assert_eq!(include("/var/./log//app/*.log", r), None);
    // Relative globs were resolved against the job file's folder.
    assert_eq!(include("logs/*.log", &["/jobs"]), None);
    assert_eq!(include("/srv/x/*", &["/var/log", "/srv"]), None);
}

#[test]
fn parent_components_are_rejected_anywhere() {
    let r = &["/var/log"];
    assert_eq!(
        include("/var/log/../etc/*", r),
        Some(RootProblemKind::ParentDir)
    );
    assert_eq!(
        include("/var/log/*/../../etc/passwd", r),
        Some(RootProblemKind::ParentDir)
    );
    assert_eq!(
        include("/var/log/app/..", r),
        Some(RootProblemKind::ParentDir)
    );
    // Resolved against the job folder, then rejected.
    assert_eq!(
        include("../logs/*.log", &["/"]),
        Some(RootProblemKind::ParentDir)
    );
    // `..` inside a name is just a name.
    assert_eq!(include("/var/log/a..b/*.log", r), None);
    assert_eq!(include("/var/log/...", r), None);
}

#[test]
fn roots_contain_by_component_not_by_string() {
    let r = &["/var/log"];
    assert_eq!(include("/var/logs/x", r), outside("/var/logs/x"));
    assert_eq!(include("/var/log2/*.log", r), outside("/var/log2"));
    assert_eq!(include("/var/lo", r), outside("/var/lo"));
    assert_eq!(include("/var", r), outside("/var"));
}

#[test]
fn a_wildcard_ends_the_literal_part() {
    let r = &["/var/log"];
    assert_eq!(include("/var/log*/x", r), outside("/var"));
    assert_eq!(include("/var/lo?/x", r), outside("/var"));
    assert_eq!(include("/var/[l]og/x", r), outside("/var"));
    assert_eq!(include("/*/log/x", r), outside("/"));
    assert_eq!(include("/**/x.log", r), outside("/"));
    // The root `/` allows everything.
    assert_eq!(include("/*/log/x", &["/"]), None);
    assert_eq!(include("/**/x.log", &["/"]), None);
}

#[test]
fn roots_are_normalised() {
    assert_eq!(include("/var/log/x/*.log", &["/var/log/"]), None);
    assert_eq!(include("/var/log/x/*.log", &["/var//log/."]), None);
    assert_eq!(
        include("/var/logs/x", &["/var/log/"]),
        outside("/var/logs/x")
    );
    // A root that is relative or climbs allows nothing.
    assert_eq!(include("/var/log/x", &["var/log"]), outside("/var/log/x"));
    assert_eq!(
        include("/etc/x", &["/var/log/../../etc"]),
        outside("/etc/x")
    );
}

#[test]
fn exclude_and_archive_are_checked_and_every_problem_is_listed() {
    let j = job(
        &["/var/log/*.log", "/etc/*"],
        &["/var/log/../x"],
        &["/archive/*.gz", "/var/log/old/*.gz"],
    );
    let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
    let found: Vec<(&str, &str)> = e
        .problems
        .iter()
        .map(|p| (p.key, p.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("include", "/etc/*"),
            ("exclude", "/var/log/../x"),
            ("archive", "/archive/*.gz")
        ]
    );
    assert_eq!(e.job, "j");
}

#[test]
fn sinks_are_not_restricted_but_must_be_absolute() {
    let mut j = job(&["/var/log/*.log"], &[], &[]);
    assert_eq!(check_roots(&j, &roots(&["/var/log"])), Ok(()));
    j.sinks[0].kind = SinkKind::Jsonl(PathBuf::from("out/j.jsonl"));
    let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].key, "jsonl sink");
    assert_eq!(e.problems[0].kind, RootProblemKind::Relative);
}

#[test]
fn a_remote_write_secret_file_must_be_inside_the_read_roots() {
    let mut j = job(&["/var/log/*.log"], &[], &[]);
    let rw = |auth| {
        SinkKind::RemoteWrite(Box::new(crate::job::RemoteWrite {
            url: "http://p:9090/api/v1/write".into(),
            timestamp: crate::job::SampleTime::End,
            external_labels: vec![],
            auth: Some(auth),
            timeout: crate::job::RemoteWrite::DEFAULT_TIMEOUT,
            max_samples_per_send: 10,
            queue_capacity: 100,
            min_backoff: crate::job::RemoteWrite::DEFAULT_MIN_BACKOFF,
            max_backoff: crate::job::RemoteWrite::DEFAULT_MAX_BACKOFF,
        }))
    };
    use crate::job::RemoteWriteAuth::*;
    j.sinks[0].kind = rw(BearerTokenFile("/var/log/secrets/token".into()));
    assert_eq!(check_roots(&j, &roots(&["/var/log"])), Ok(()));
    j.sinks[0].kind = rw(BearerTokenFile("/etc/shadow".into()));
    let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
    assert_eq!(e.problems[0].key, "bearer_token_file");
    assert_eq!(e.problems[0].kind, outside("/etc/shadow").unwrap());
    let (message, _) = e.problems[0].describe(&e.roots);
    assert!(
        message.contains("bearer_token_file `/etc/shadow`"),
        "{message}"
    );
    j.sinks[0].kind = rw(Basic {
        username: "u".into(),
        password_file: "/var/log/*".into(),
    });
    let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
    assert_eq!(e.problems[0].key, "basic_auth password_file");
}

#[test]
fn an_alertmanager_secret_file_must_be_inside_the_read_roots() {
    let mut j = job(&["/var/log/*.log"], &[], &[]);
    let am = |auth| {
        SinkKind::Alertmanager(Box::new(crate::job::Alertmanager {
            url: "http://am:9093".into(),
            resend_interval: crate::job::Alertmanager::DEFAULT_RESEND_INTERVAL,
            timeout: crate::job::Alertmanager::DEFAULT_TIMEOUT,
            generator_url: None,
            auth: Some(auth),
        }))
    };
    use crate::job::RemoteWriteAuth::*;
    j.sinks[0].kind = am(BearerTokenFile("/var/log/secrets/token".into()));
    assert_eq!(check_roots(&j, &roots(&["/var/log"])), Ok(()));
    j.sinks[0].kind = am(BearerTokenFile("/etc/shadow".into()));
    let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
    assert_eq!(e.problems[0].key, "bearer_token_file");
    let (message, _) = e.problems[0].describe(&e.roots);
    assert!(
        message.contains("bearer_token_file `/etc/shadow`"),
        "{message}"
    );
}

#[test]
fn sinks_must_write_strictly_inside_an_output_root() {
    let mut j = job(&["/var/log/*.log"], &[], &[]);
    let out = roots(&["/srv/out/", "/data"]);
    let problem = |j: &Job| {
        check_output_roots(j, &out)
            .err()
            .map(|e| e.problems[0].kind.clone())
    };
    for ok in [
        "/srv/out/j.jsonl",
        "/srv/out/./team/j.jsonl",
        "/data/j.jsonl",
    ] {
        j.sinks[0].kind = SinkKind::Jsonl(PathBuf::from(ok));
        assert_eq!(problem(&j), None, "{ok}");
    }
    for (bad, kind) in [
        ("/etc/profile", RootProblemKind::OutsideOutputRoots),
        ("/srv/outside/j.jsonl", RootProblemKind::OutsideOutputRoots),
        ("/srv/out", RootProblemKind::OutsideOutputRoots),
        (
            "/srv/out/../state/submitted/x.toml",
            RootProblemKind::ParentDir,
        ),
        ("out/j.jsonl", RootProblemKind::Relative),
    ] {
        j.sinks[0].kind = SinkKind::Jsonl(PathBuf::from(bad));
        assert_eq!(problem(&j), Some(kind), "{bad}");
    }
    j.sinks[0].kind = SinkKind::Jsonl(PathBuf::from("/etc/profile"));
    let e = check_output_roots(&j, &out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "job `j`: error: the jsonl sink path `/etc/profile` is outside the folders this cluster writes to (its output roots): /srv/out/, /data\n  \
         hint: write the sink inside an output root, e.g. \"/srv/out/NAME.jsonl\"; or start the cluster's process 0 with --output-root for a folder that should hold it"
    );
    // Read roots and stdout sinks do not matter; no output roots allow any absolute path.
    assert_eq!(check_output_roots(&j, &[]), Ok(()));
    j.sinks[0].kind = SinkKind::Stdout;
    assert_eq!(check_output_roots(&j, &out), Ok(()));
}

#[test]
fn relative_globs_are_rejected() {
    let mut j = job(&["/var/log/*.log"], &[], &[]);
    j.source.include = vec!["logs/*.log".to_string()];
    let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
    assert_eq!(e.problems[0].kind, RootProblemKind::Relative);
}

#[test]
fn messages_name_the_glob_and_the_roots() {
    let j = job(&["/var/log*/x", "/srv/a.log"], &[], &[]);
    let e = check_roots(&j, &roots(&["/var/log", "/data/"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "job `j`: error: include glob `/var/log*/x` may read outside the roots this cluster allows: /var/log, /data/ (its part before the first wildcard, `/var`, is inside none of them)\n  \
         hint: read only files under an allowed root, with the wildcards below the root (e.g. \"ROOT/app/*.log\"); or start every cluster member with --allow-root for a folder that holds these files\n\
         job `j`: error: include glob `/srv/a.log` may read outside the roots this cluster allows: /var/log, /data/\n  \
         hint: read only files under an allowed root, with the wildcards below the root (e.g. \"ROOT/app/*.log\"); or start every cluster member with --allow-root for a folder that holds these files"
    );
    let d = e.to_diagnostics("job.toml");
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].file, "job.toml");
    assert_eq!(d[0].line, 0);
    let j = job(&["/var/log/../etc/*"], &[], &[]);
    let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
    assert!(e.to_string().contains(
        "include glob `/var/log/../etc/*` has a `..` component, which is not allowed when the cluster restricts reads to /var/log"
    ), "{e}");
}
