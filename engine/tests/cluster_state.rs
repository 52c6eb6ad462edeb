//! A cluster job's sinks may not write into the cluster's state folder: its kept
//! jobs (`submitted/`), its identity (`member`), its API token, any job's
//! checkpoint. Only the job's output roots inside it are for output.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark_engine::cluster::{self, ClusterOptions, JobState, MakeOutput, Validate};
use tidemark_engine::Sinks;

fn job(name: &str, sink: &Path) -> String {
    format!(
        r#"name = "{name}"
[source]
kind = "file"
include = ["/nowhere/*.log"]
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "{}"
series = "hosts"
"#,
        sink.display()
    )
}

#[test]
fn a_cluster_job_cannot_write_into_the_cluster_state_folder() {
    let d = tempfile::tempdir().unwrap();
    let state = std::fs::canonicalize(d.path()).unwrap().join("state");
    let validate: Validate = Arc::new(|toml: &str| {
        tidemark_jobs::from_str(toml, "submitted.toml", Path::new("/")).map_err(|e| e.to_string())
    });
    let make_output: MakeOutput = Arc::new(|_, _| Ok(Sinks::default()));
    let (member, workers) = cluster::start(ClusterOptions {
        peers: None,
        process: 0,
        processes: 1,
        workers: 1,
        state_dir: state.clone(),
        checkpoint_interval: Duration::from_secs(1),
        make_output,
        validate: validate.clone(),
        max_jobs: 100,
        max_open_files: 1 << 20,
        state_lock: cluster::lock_state_folder(&state).unwrap(),
    })
    .unwrap();
    let targets = [
        ("kept", state.join("submitted/kept.jsonl")),
        ("member", state.join("member")),
        ("token", state.join("api-token")),
    ];
    for (name, sink) in &targets {
        let toml = job(name, sink);
        member.submit(&validate(&toml).unwrap(), &toml).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for (name, sink) in &targets {
        let info = loop {
            let info = member.registry().get(name).expect("listed");
            if info.state == JobState::Failed || Instant::now() > deadline {
                break info;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            info.state,
            JobState::Failed,
            "{}: a sink in the state folder was accepted",
            sink.display()
        );
        let why = info.error.unwrap_or_default();
        assert!(why.contains("state folder"), "{why}");
    }
    member.shutdown();
    workers.join().unwrap().unwrap();
}
