//! `tidemark validate` on agent files (told by their `[agent]` table) and `tidemark
//! agent` on an invalid one: no broker needed.
use std::process::Command;

fn tidemark(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const AGENT: &str =
    "[agent]\nhost = \"web-1\"\nstate_dir = \"state\"\nbrokers = \"127.0.0.1:9092\"\n\
topic = \"logs\"\n\n[source]\nkind = \"file\"\ninclude = [\"logs/*.log\"]\n";

#[test]
fn validate_checks_agent_files_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, AGENT).unwrap();
    let p = path.to_str().unwrap();
    let (code, out, err) = tidemark(&["validate", p]);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");

    let bad = AGENT.replace(
        "topic = \"logs\"",
        "topic = \"logs\"\nmax_in_flight = 0\n[agent.options]\nacks = \"1\"",
    );
    std::fs::write(&path, bad).unwrap();
    let (code, _, err) = tidemark(&["validate", p]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("agent.toml:6:17: error: max_in_flight = 0 is out of range"),
        "{err}"
    );
    assert!(err.contains("option \"acks\" cannot be set"), "{err}");
    // `tidemark agent` refuses it the same way, before touching the state folder.
    let (code, _, err2) = tidemark(&["agent", p]);
    assert_eq!((code, err2), (2, err));
    assert!(!dir.path().join("state").exists());

    // With [agent], job keys are mistakes of an agent file...
    std::fs::write(&path, format!("name = \"j\"\n{AGENT}")).unwrap();
    let (code, _, err) = tidemark(&["validate", p]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid agent file") && err.contains("name"),
        "{err}"
    );
    // ...and without it, the file is checked as a job.
    std::fs::write(&path, "name = \"j\"\n").unwrap();
    let (code, _, err) = tidemark(&["validate", p]);
    assert_eq!(code, 2);
    assert!(err.contains("missing required key `source`"), "{err}");
}
