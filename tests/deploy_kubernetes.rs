//! deploy/: the Kubernetes example and the image build file agree with tidemark and
//! with each other (issue 14). Without a cluster or kubectl:
//!
//! - every job and agent file shipped in deploy/ passes `tidemark validate`, and the
//!   job files are accepted by a member started with the StatefulSet's own rules
//!   (`--allow-kafka-brokers`, `--job-secret-env`), through `tidemark job submit` as
//!   the submitter Job runs it;
//! - a password option's value is always a `${NAME}`, never the password;
//! - every manifest parses; the hosts list agrees with the StatefulSet's replicas,
//!   `--processes`, its headless Service's name and port, and the namespace;
//! - every `--flag` in a container's args exists in that subcommand's `--help`; every
//!   file an arg names under a ConfigMap mount is one of that ConfigMap's files; every
//!   `${NAME}` a shipped file uses is in its container's environment;
//! - the Dockerfile installs every build package .ci/run installs, and builds as CI
//!   does (`--release --locked`).
//!
//! `kubectl kustomize deploy/kubernetes` renders the whole (deploy/README.md); this
//! test does not need kubectl.

mod deploy_support;
mod member;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use deploy_support::*;
use member::api::Setup;
use member::{text, tidemark};

#[test]
fn every_job_and_agent_file_in_deploy_is_valid() {
    let files = files_with_ext(&deploy(), "toml");
    assert!(
        files
            .iter()
            .any(|f| is_agent_file(&std::fs::read_to_string(f).unwrap()))
            && files
                .iter()
                .any(|f| !is_agent_file(&std::fs::read_to_string(f).unwrap())),
        "deploy/ should ship an agent file and a job file: {files:?}"
    );
    let env = dummy_env(&files);
    for f in &files {
        let o = tidemark()
            .arg("validate")
            .arg(f)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: {}", f.display(), text(&o));
        let t = std::fs::read_to_string(f).unwrap();
        let secrets = secret_option_values(&t);
        for (key, value) in &secrets {
            if key == "sasl.username" {
                continue; // a name, not a secret, in these examples
            }
            let var = value.strip_prefix("${").and_then(|v| v.strip_suffix('}'));
            assert!(
                var.is_some_and(|v| !v.is_empty()),
                "{}: {key} = {value:?}: a password goes in a Secret, as \"${{NAME}}\"",
                f.display()
            );
        }
        if t.contains("kind = \"kafka\"") || is_agent_file(&t) {
            assert!(
                secrets.iter().any(|(k, _)| k == "sasl.password"),
                "{}: the example should show the password from a Secret",
                f.display()
            );
        }
    }
}

#[test]
fn the_job_files_are_accepted_by_a_member_with_the_statefulsets_rules() {
    let docs = manifests();
    let sts = find(&docs, "StatefulSet", "tidemark");
    let member = &sts["spec"]["template"]["spec"]["containers"][0];
    let sts_args = args(member);
    // The StatefulSet's rules for submitted jobs; the rest (paths, peers, tokens)
    // are the test's own.
    let mut rules: Vec<String> = Vec::new();
    for flag in ["--allow-kafka-brokers", "--job-secret-env", "--job-env"] {
        for v in flag_values(&sts_args, flag) {
            rules.push(format!("{flag}={v}"));
        }
    }
    assert!(
        rules
            .iter()
            .any(|r| r.starts_with("--allow-kafka-brokers=")),
        "the StatefulSet allows no broker: {sts_args:?}"
    );
    let jobs: Vec<PathBuf> = files_with_ext(&k8s().join("jobs"), "toml");
    assert!(!jobs.is_empty());
    // The member's environment: what the StatefulSet gives it, dummy values.
    let env_names: Vec<String> = member["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| str_of(&e["name"], "env name").to_string())
        .collect();
    let env: Vec<(String, String)> = env_names
        .iter()
        .map(|n| (n.clone(), format!("dummy-{}", n.to_lowercase())))
        .collect();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Setup::new();
    let rule_refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    let mut m = s.start(&rule_refs, &env_refs);
    // As submit-jobs.yaml runs it, with this member's address and token.
    let submit_job = find(&docs, "Job", "tidemark-submit-jobs");
    for c in submit_job["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap()
    {
        let a = args(c);
        assert_eq!(&a[..2], ["job", "submit"], "{a:?}");
        let file = jobs
            .iter()
            .find(|j| a[2].ends_with(&format!("/{}", j.file_name().unwrap().to_str().unwrap())))
            .unwrap_or_else(|| panic!("{} is not one of deploy/kubernetes/jobs/", a[2]));
        let o = m.job(&["submit", file.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{}: {}\n{}",
            file.display(),
            text(&o),
            m.log()
        );
    }
    // Every job file is submitted by a container.
    let submitted = submit_job["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap()
        .len();
    assert_eq!(
        submitted,
        jobs.len(),
        "a job file in jobs/ that no container submits"
    );
    assert!(m.terminate().success(), "{}", m.log());
}

#[test]
fn the_manifests_parse_and_the_hosts_list_matches_the_statefulset() {
    let docs = manifests();
    for (path, d) in &docs {
        for key in ["apiVersion", "kind"] {
            assert!(d[key].as_str().is_some(), "{}: no {key}", path.display());
        }
        assert!(
            d["metadata"]["name"].as_str().is_some(),
            "{}: no metadata.name",
            path.display()
        );
    }
    let namespace = str_of(&kustomization()["namespace"], "namespace").to_string();
    let sts = find(&docs, "StatefulSet", "tidemark");
    let replicas = sts["spec"]["replicas"].as_i64().expect("replicas") as usize;
    let service = str_of(&sts["spec"]["serviceName"], "serviceName");
    let svc = find(&docs, "Service", service);
    assert_eq!(
        svc["spec"]["clusterIP"].as_str(),
        Some("None"),
        "not headless"
    );
    assert_eq!(
        svc["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true),
        "members must find each other before any is ready"
    );
    assert_eq!(
        sts["spec"]["podManagementPolicy"].as_str(),
        Some("Parallel"),
        "member 0 is ready only once all are up: ordered start would wait for ever"
    );
    let peers_port = svc["spec"]["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("peers"))
        .and_then(|p| p["port"].as_i64())
        .expect("the headless Service's port `peers`");
    let member = &sts["spec"]["template"]["spec"]["containers"][0];
    let container_port = member["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("peers"))
        .and_then(|p| p["containerPort"].as_i64());
    assert_eq!(container_port, Some(peers_port));

    let hosts_text = std::fs::read_to_string(k8s().join("hosts")).unwrap();
    let hosts: Vec<&str> = hosts_text
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    let sts_name = str_of(&sts["metadata"]["name"], "name");
    let want: Vec<String> = (0..replicas)
        .map(|i| format!("{sts_name}-{i}.{service}.{namespace}.svc.cluster.local:{peers_port}"))
        .collect();
    assert_eq!(hosts, want, "deploy/kubernetes/hosts");
    let a = args(member);
    assert_eq!(flag_values(&a, "--processes"), [replicas.to_string()]);
    assert_eq!(flag_values(&a, "--process"), ["$(POD_INDEX)"]);
    let pod_index = member["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("POD_INDEX"))
        .map(|e| {
            e["valueFrom"]["fieldRef"]["fieldPath"]
                .as_str()
                .unwrap_or("")
        })
        .unwrap_or("");
    assert_eq!(pod_index, "metadata.labels['apps.kubernetes.io/pod-index']");
}

/// A workload's containers with their pod spec.
#[test]
fn container_args_use_real_flags_files_and_variables() {
    let docs = manifests();
    // ConfigMap generator name -> its file names.
    let mut generated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for g in kustomization()["configMapGenerator"].as_vec().unwrap() {
        let files = strings(&g["files"]);
        for f in &files {
            assert!(
                k8s().join(f).is_file(),
                "configMapGenerator: {f} is missing"
            );
        }
        generated.insert(
            str_of(&g["name"], "generator name").to_string(),
            files
                .iter()
                .map(|f| f.rsplit('/').next().unwrap().to_string())
                .collect(),
        );
    }
    let mut help_cache: BTreeMap<String, String> = BTreeMap::new();
    let mut checked = 0;
    for w in workloads(&docs) {
        for (pod, c) in containers(w) {
            let a = args(c);
            let sub: Vec<&str> = a
                .iter()
                .take_while(|x| !x.starts_with('-') && !x.starts_with('/'))
                .map(String::as_str)
                .collect();
            assert!(!sub.is_empty(), "{a:?}");
            let help = help_cache.entry(sub.join(" ")).or_insert_with(|| {
                let o = tidemark().args(&sub).arg("--help").output().unwrap();
                assert!(o.status.success(), "{sub:?} --help: {}", text(&o));
                String::from_utf8(o.stdout).unwrap()
            });
            for flag in a.iter().filter(|x| x.starts_with("--")) {
                let name = flag.split('=').next().unwrap();
                // `--flag ` or `--flag=` or `--flag <`: a whole flag, not a prefix.
                let known = [" ", "=", "\n", ","]
                    .iter()
                    .any(|end| help.contains(&format!("{name}{end}")));
                assert!(
                    known,
                    "`tidemark {}` has no flag {name}:\n{help}",
                    sub.join(" ")
                );
                checked += 1;
            }
            // Every absolute path an arg names under a ConfigMap mount is a file of
            // that ConfigMap.
            let mounts = c["volumeMounts"].as_vec().cloned().unwrap_or_default();
            let volumes = pod["volumes"].as_vec().cloned().unwrap_or_default();
            for value in a
                .iter()
                .map(|x| x.split_once('=').map_or(x.as_str(), |(_, v)| v))
            {
                if !value.starts_with('/') {
                    continue;
                }
                for m in &mounts {
                    let at = str_of(&m["mountPath"], "mountPath");
                    let Some(file) = value.strip_prefix(&format!("{at}/")) else {
                        continue;
                    };
                    let Some(vol) = volumes
                        .iter()
                        .find(|v| v["name"].as_str() == m["name"].as_str())
                    else {
                        // A StatefulSet's claim per member.
                        let claims = w["spec"]["volumeClaimTemplates"].as_vec();
                        assert!(
                            claims.is_some_and(|c| c
                                .iter()
                                .any(|t| t["metadata"]["name"].as_str() == m["name"].as_str())),
                            "mount {:?} has no volume",
                            m["name"]
                        );
                        continue;
                    };
                    if let Some(cm) = vol["configMap"]["name"].as_str() {
                        let files = generated
                            .get(cm)
                            .unwrap_or_else(|| panic!("ConfigMap {cm} is not generated"));
                        assert!(
                            files.contains(file),
                            "{value}: not a file of ConfigMap {cm} ({files:?})"
                        );
                    }
                    if let Some(secret) = vol["secret"]["secretName"].as_str() {
                        assert!(
                            std::fs::read_to_string(deploy().join("README.md"))
                                .unwrap()
                                .contains(&format!("--from-file={file}=")),
                            "{value}: the README's `kubectl create secret generic {secret}` makes no key {file}"
                        );
                    }
                }
            }
            // `${NAME}` in a shipped file the container reads is in its environment.
            let env: BTreeSet<String> = c["env"]
                .as_vec()
                .map(|v| {
                    v.iter()
                        .map(|e| str_of(&e["name"], "env name").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let files_read: Vec<PathBuf> = match sub[0] {
                "agent" => vec![k8s().join("agent").join(a[1].rsplit('/').next().unwrap())],
                "cluster" => files_with_ext(&k8s().join("jobs"), "toml"),
                _ => Vec::new(),
            };
            for f in files_read {
                for v in variables(&std::fs::read_to_string(&f).unwrap()) {
                    assert!(
                        env.contains(&v),
                        "{}: ${{{v}}} is not in the container's env {env:?}",
                        f.display()
                    );
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} flags checked");
}

#[test]
fn the_dockerfile_builds_as_ci_does() {
    let ci =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run")).unwrap();
    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let packages = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.split("apt-get install").nth(1))
            .flat_map(|rest| {
                rest.split_whitespace()
                    .take_while(|w| !matches!(*w, "&&" | "\\" | ";" | "||"))
                    .filter(|w| !w.starts_with('-'))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let ci_packages = packages(&ci);
    // Packages .ci/run installs for its tests only (prlimit), not for the build.
    let test_only = ["util-linux"];
    let build: BTreeSet<String> = ci_packages
        .iter()
        .filter(|p| !test_only.contains(&p.as_str()))
        .cloned()
        .collect();
    assert!(
        build.contains("libssl-dev") && build.contains("make"),
        "{ci_packages:?}"
    );
    let image = packages(&dockerfile);
    let missing: Vec<&String> = build.difference(&image).collect();
    assert!(
        missing.is_empty(),
        "the Dockerfile does not install {missing:?} (.ci/run does)"
    );
    assert!(
        dockerfile.contains("cargo build --release --locked"),
        "the image builds with --release --locked"
    );
    // The runtime has what the binary links dynamically (OpenSSL) and a PID 1 that
    // forwards SIGTERM.
    assert!(
        image.contains("libssl3") && image.contains("tini"),
        "{image:?}"
    );
    assert!(
        dockerfile.contains("USER 10001"),
        "the image runs as a non-root user"
    );
}

/// The address a member said it serves `/healthz` on.
fn health_addr(m: &member::Member) -> String {
    let log = m.log();
    let Some(rest) = log.split(" health on http://").nth(1) else {
        panic!("no health address in the log:\n{log}");
    };
    rest.split("/healthz").next().unwrap().to_string()
}

fn healthz(addr: &str) -> (u16, String) {
    member::api::http(addr, "GET", "/healthz", None, "")
}

#[test]
fn every_member_answers_its_readiness_probe() {
    // The StatefulSet probes `--health-addr` on every pod: members other than 0
    // serve no API.
    let docs = manifests();
    let sts = find(&docs, "StatefulSet", "tidemark");
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let port = flag_values(&args(c), "--health-addr")[0]
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    let probe_port = &c["readinessProbe"]["httpGet"]["port"];
    let named = c["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"] == *probe_port)
        .and_then(|p| p["containerPort"].as_i64());
    assert_eq!(
        named.or(probe_port.as_i64()),
        Some(port),
        "the probe's port"
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );

    // Two members on this machine, ports from the OS.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let start = |p: usize, hosts: &Path| {
        let root = d.join(format!("logs-{p}"));
        std::fs::create_dir_all(&root).unwrap();
        let p_arg = p.to_string();
        let args = [
            "-n",
            "2",
            "-p",
            &p_arg,
            "--hosts",
            hosts.to_str().unwrap(),
            "--allow-root",
            root.to_str().unwrap(),
            "--health-addr",
            "127.0.0.1:0",
        ];
        member::Member::start_with(
            &d.join(format!("state-{p}")),
            &d.join(format!("member-{p}.log")),
            &args,
            &[],
            p == 0,
        )
    };
    let hosts_0 = d.join("hosts-0");
    std::fs::write(&hosts_0, "127.0.0.1:0\n127.0.0.1:0\n").unwrap();
    let zero = start(0, &hosts_0);
    // Member 0 alone: not ready.
    let (code, body) = healthz(&health_addr(&zero));
    assert_eq!(code, 503, "{body}");
    let hosts_1 = d.join("hosts-1");
    std::fs::write(&hosts_1, format!("{}\n127.0.0.1:0\n", zero.peer())).unwrap();
    let one = start(1, &hosts_1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for m in [&zero, &one] {
        let addr = health_addr(m);
        loop {
            let (code, body) = healthz(&addr);
            if code == 200 {
                assert!(body.contains("\"ok\":true"), "{body}");
                break;
            }
            assert_eq!(code, 503, "{body}");
            assert!(
                std::time::Instant::now() < deadline,
                "not ready: {body}\n{}\n{}",
                zero.log(),
                one.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // Only /healthz there.
    let (code, _) = member::api::http(&health_addr(&one), "GET", "/jobs", None, "");
    assert_eq!(code, 404);
}

/// What the kubelet does to a pod's volume at every mount when the pod sets
/// `fsGroup` (`fsGroupChangePolicy: Always`, the default): every file and folder is
/// made group-readable and -writable (`chmod |= 0660`; folders also `|= 0110` and
/// setgid) and given the group (kubernetes pkg/volume/volume_linux.go,
/// SetVolumeOwnership). The group change is left out: the mode is what a member checks.
fn kubelet_applies_fs_group(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let mut mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            mode |= 0o660 | 0o110 | 0o2000;
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                stack.push(e.path());
            }
        } else {
            mode |= 0o660;
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Review R15d: a member pod must start again on its own volume. With `fsGroup` and
/// the default `fsGroupChangePolicy` (Always), the kubelet makes the member's state
/// folder (`--state-dir=/var/lib/tidemark/state`, created 0700) group-writable at
/// every mount after the first, and the member refuses a folder other users can
/// write: every restart of a member pod — the cluster's way of recovering from any
/// lost member — crash-loops. `OnRootMismatch` changes the volume only while its
/// root does not match yet (the first mount).
#[test]
fn a_member_pod_starts_again_after_the_kubelet_remounts_its_volume() {
    let docs = manifests();
    let sts = find(&docs, "StatefulSet", "tidemark");
    let pod_security = &sts["spec"]["template"]["spec"]["securityContext"];
    let has_fs_group = pod_security["fsGroup"].as_i64().is_some();
    let policy = pod_security["fsGroupChangePolicy"]
        .as_str()
        .unwrap_or("Always")
        .to_string();
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let state_arg = flag_values(&args(c), "--state-dir")[0].clone();
    let mount = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some("state"))
        .and_then(|m| m["mountPath"].as_str())
        .expect("the state volume's mount")
        .to_string();
    let below = Path::new(&state_arg)
        .strip_prefix(&mount)
        .expect("--state-dir is on the state volume")
        .to_path_buf();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let volume = d.join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    let state = volume.join(&below);
    let root = d.join("no-files");
    std::fs::create_dir_all(&root).unwrap();
    let start = |n: usize| {
        member::Member::start_with(
            &state,
            &d.join(format!("member-{n}.log")),
            &["--allow-root", root.to_str().unwrap()],
            &[],
            true,
        )
    };
    // First mount of a new claim: the kubelet changes the (empty) volume.
    if has_fs_group {
        kubelet_applies_fs_group(&volume);
    }
    let mut m = start(1);
    assert!(m.terminate().success(), "{}", m.log());
    // The pod restarts: the volume is mounted again.
    if has_fs_group && policy == "Always" {
        kubelet_applies_fs_group(&volume);
    }
    let mut m = start(2);
    assert!(m.terminate().success(), "{}", m.log());
}
