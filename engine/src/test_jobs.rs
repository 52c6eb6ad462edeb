//! Jobs shared by the engine's unit tests.

use std::path::Path;

use tidemark_jobs::Job;

/// A small nginx job (one counter, one rule) over files that do not exist: for
/// tests of starting, state folders and checkpoints, which read no lines.
pub(crate) fn nowhere_nginx() -> Job {
    let text = r#"
name = "j"
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
[[rule]]
record = "all:reqs"
expr = "sum(reqs)"
"#;
    tidemark_jobs::from_str(text, "j.toml", Path::new("/")).unwrap()
}
