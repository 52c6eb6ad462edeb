//! Golden tests: every `tests/golden/invalid/NAME.toml` must be rejected with exactly the
//! diagnostics in `NAME.expected` (the `Display` output plus a final newline).
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files after an intended change.
//! Jobs are validated with a fixed environment (only `LOG_ROOT=/srv/logs` is set), not
//! the process's, so `${NAME}` cases give the same output everywhere.

use std::fs;
use std::path::Path;

use tidemark_jobs::Env;

#[test]
fn invalid_jobs_give_the_expected_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/invalid");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "expected at least 15 golden cases, found {}",
        cases.len()
    );

    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(case).unwrap();
        let display = format!("tests/golden/invalid/{name}");
        let env = Env::from_vars([("LOG_ROOT", "/srv/logs")]);
        let actual =
            match tidemark_jobs::from_str_with_env(&text, &display, Path::new("/jobs"), &env) {
                Ok(_) => format!("<{name} was accepted>\n"),
                Err(d) => format!("{d}\n"),
            };
        let expected_path = case.with_extension("expected");
        if update {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "--- {name}: expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    for expected in fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
        if expected.extension().is_some_and(|e| e == "expected")
            && !expected.with_extension("toml").exists()
        {
            failures.push(format!("{} has no .toml", expected.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) differ (UPDATE_GOLDEN=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
