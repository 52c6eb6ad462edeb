//! Regression (review R14k): librdkafka options are passed through from job and agent
//! files, and librdkafka `dlopen()`s `plugin.library.paths` as soon as the option is set —
//! at validation — so a job file (one submitted to a cluster member included) could run
//! native code in tidemark. Such options are refused before anything reaches librdkafka.

use std::process::Command;

#[test]
fn a_job_files_kafka_options_cannot_load_a_shared_library() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("PWNED");
    let src = dir.path().join("evil.c");
    let so = dir.path().join("evil.so");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void pwn(void) {{\n  \
             FILE *f = fopen(\"{}\", \"w\"); if (f) {{ fputs(\"ran\", f); fclose(f); }}\n}}\n\
             int conf_init(void *c, void **o, char *e, unsigned long n) {{ return 0; }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .expect("this test needs a C compiler (cc) to build its shared library");
    assert!(cc.success());
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"web\"\n[source]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopic = \"logs\"\n\
             [source.options]\n\"plugin.library.paths\" = \"{}\"\n\
             [parse]\nformat = \"nginx\"\n[window]\nsize = \"1m\"\n\
             [[metric]]\nname = \"n\"\nkind = \"counter\"\n\
             [[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\nseries = \"hosts\"\n",
            so.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("validate")
        .arg(&job)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !marker.exists(),
        "`tidemark validate` ran the job's shared library (exit {}); stderr:\n{stderr}",
        out.status
    );
    assert!(
        !out.status.success() && stderr.contains("plugin.library.paths"),
        "plugin.library.paths was accepted:\n{stderr}"
    );
}
