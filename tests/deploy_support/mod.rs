//! Reading deploy/: its files, the manifests (YAML), containers' args and the
//! variables shipped files use. Shared by tests/deploy_kubernetes.rs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

pub fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

pub fn k8s() -> PathBuf {
    deploy().join("kubernetes")
}

pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every document of every manifest the kustomization lists.
pub fn manifests() -> Vec<(PathBuf, Yaml)> {
    let mut out = Vec::new();
    for name in strings(&kustomization()["resources"]) {
        let path = k8s().join(&name);
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
        for doc in docs {
            out.push((path.clone(), doc));
        }
    }
    out
}

pub fn kustomization() -> Yaml {
    let text = std::fs::read_to_string(k8s().join("kustomization.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

pub fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {y:?}"))
}

pub fn find<'a>(docs: &'a [(PathBuf, Yaml)], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

pub fn workloads(docs: &[(PathBuf, Yaml)]) -> Vec<&Yaml> {
    docs.iter()
        .map(|(_, d)| d)
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("StatefulSet" | "DaemonSet" | "Job" | "Deployment")
            )
        })
        .collect()
}

/// A container's args, as strings.
pub fn args(c: &Yaml) -> Vec<String> {
    strings(&c["args"])
}

/// The value of `--flag=VALUE` (the manifests always write the `=` form).
pub fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    args.iter()
        .filter_map(|a| a.strip_prefix(&format!("{flag}=")).map(str::to_string))
        .collect()
}

/// `${NAME}`s in `text`.
pub fn variables(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(n, _)| n.to_string()))
        .collect()
}

/// `(key, value)` of every `"OPTION" = "VALUE"` in `text` whose option is a secret one.
pub fn secret_option_values(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in tidemark_jobs::kafka_options::SECRET_OPTIONS {
        let quoted = format!("\"{key}\"");
        for (at, _) in text.match_indices(&quoted) {
            let rest = text[at + quoted.len()..].trim_start();
            let Some(rest) = rest.strip_prefix('=') else {
                continue;
            };
            let rest = rest.trim_start();
            let value = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(v, _)| v.to_string())
                .unwrap_or_else(|| panic!("{key}: a value that is not a plain string: {rest}"));
            out.push((key.to_string(), value));
        }
    }
    out
}

pub fn is_agent_file(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[agent]")
}

/// Dummy values for every variable the shipped files use.
pub fn dummy_env(files: &[PathBuf]) -> Vec<(String, String)> {
    let mut names = BTreeSet::new();
    for f in files {
        names.extend(variables(&std::fs::read_to_string(f).unwrap()));
    }
    names
        .into_iter()
        .map(|n| (n.clone(), format!("dummy-{}", n.to_lowercase())))
        .collect()
}

pub fn containers(w: &Yaml) -> Vec<(&Yaml, &Yaml)> {
    let pod = &w["spec"]["template"]["spec"];
    pod["containers"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| (pod, c))
        .collect()
}
