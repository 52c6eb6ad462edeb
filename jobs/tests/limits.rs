//! Limits that keep one job file from hurting the process that checks it (issue 10
//! §1): names the state folder cannot hold, and bodies that would take long to check.

use std::path::Path;

use tidemark_jobs::{from_str_with_env, Env, MAX_JOB_NAME_BYTES};

fn job_named(name: &str) -> String {
    format!(
        "name = \"{name}\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n\
         [parse]\nformat = \"json\"\n[[metric]]\nname = \"lines\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n"
    )
}

fn validate(text: &str) -> Result<tidemark_jobs::Job, tidemark_jobs::Diagnostics> {
    from_str_with_env(text, "job.toml", Path::new("/jobs"), &Env::from_vars::<&str, &str>([]))
}

#[test]
fn job_name_too_long_for_the_state_folder_is_refused() {
    // A 300-character name passed validation, then the cluster could not create
    // its state files (ENAMETOOLONG) and answered 503.
    let long = "a".repeat(300);
    let diags = validate(&job_named(&long)).expect_err("a 300-character name was accepted");
    assert_eq!(diags.len(), 1, "{diags}");
    let d = &diags[0];
    assert_eq!((d.line, d.column), (1, 8), "{diags}");
    assert_eq!(
        d.message,
        format!("job name is 300 characters long; the limit is {MAX_JOB_NAME_BYTES}")
    );
    assert!(
        d.hint.as_deref().is_some_and(|h| h.contains("shorter name")),
        "{diags}"
    );
    // The limit itself is fine, one more is not.
    validate(&job_named(&"b".repeat(MAX_JOB_NAME_BYTES))).expect("a name at the limit");
    validate(&job_named(&"b".repeat(MAX_JOB_NAME_BYTES + 1)))
        .expect_err("a name one past the limit");
    // Room for the longest file tidemark names after a job: `.NAME.toml.tmp`.
    const { assert!(MAX_JOB_NAME_BYTES + ".toml.tmp".len() + 1 <= 255) };
}
