//! The test stack itself: the real Prometheus, Alertmanager and promtool start
//! and answer (scripts/test provides them). If this fails, the other stack tests
//! would too, for the same reason — it says which program is missing or broken.

mod stack;

#[test]
fn prometheus_starts_on_a_port_of_its_own_and_answers_a_query() {
    let prom = stack::prometheus(
        "global: {}\n",
        None,
        &["--web.enable-remote-write-receiver"],
    );
    assert_ne!(prom.port, 0);
    let now = jiff::Timestamp::now().as_second();
    // A constant query answers without data: the HTTP API works.
    let (status, body) = prom.get(&format!("/api/v1/query?query=vector(7)&time={now}"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"7\""), "{body}");
}

#[test]
fn alertmanager_starts_and_lists_no_alerts() {
    let am = stack::alertmanager("route:\n  receiver: none\nreceivers:\n  - name: none\n");
    let (status, body) = am.get("/api/v2/alerts");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.trim(), "[]");
}

#[test]
fn promtool_runs() {
    let out = std::process::Command::new(stack::promtool())
        .arg("--version")
        .output()
        .expect("promtool runs");
    assert!(out.status.success(), "{out:?}");
}
