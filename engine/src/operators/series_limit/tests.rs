//! Stage 2½'s tests: which jobs' host records are in output order, the cut
//! with two workers (the warning pace's is in `warn.rs`).

use super::*;
use std::path::Path;
use std::sync::Mutex;
use timely::dataflow::operators::{Input, Inspect, Probe};

pub(super) fn plan_of(metrics_and_rules: &str) -> Plan {
    let text = format!(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n\
         [parse]\nformat = \"json\"\n{metrics_and_rules}\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"all\"\n"
    );
    let env = tidemark_jobs::Env::empty();
    let job = tidemark_jobs::from_str_with_env(&text, "j.toml", Path::new("/"), &env).unwrap();
    Plan::new(&job)
}

/// The jobs whose host records the collect stage may take as sorted, and
/// some whose records are not (each `false` here would print a window out
/// of order if it said `true`).
#[test]
fn host_records_are_in_output_order_only_where_keys_order_them_so() {
    let counter = |name: &str, labels: &str| {
        format!("[[metric]]\nname = \"{name}\"\nkind = \"counter\"\nlabels = [{labels}]\n")
    };
    let sorted = |text: &str| host_records_in_output_order(&plan_of(text));
    assert!(sorted(&counter("hits", "\"remote_addr\"")));
    assert!(sorted(&counter("hits", "")));
    assert!(sorted(&format!(
        "{}{}",
        counter("a", "\"x\""),
        counter("b", "\"y\", \"z\"")
    )));
    // "app" sorts before "host": label order is not key order.
    assert!(!sorted(&counter("hits", "\"app\"")));
    assert!(!sorted(&counter("hits", "\"z\", \"y\"")));
    // Record names against metric order.
    assert!(!sorted(&format!(
        "{}{}",
        counter("b", ""),
        counter("a", "")
    )));
    // A histogram's series make `_count` and `_sum` records too.
    assert!(!sorted(
        "[[metric]]\nname = \"lat\"\nkind = \"histogram\"\nfield = \"ms\"\n"
    ));
    // Rule outputs join the window's records.
    assert!(!sorted(&format!(
        "{}[[rule]]\nrecord = \"job:hits\"\nexpr = \"sum(hits)\"\n",
        counter("hits", "")
    )));
}

/// With two workers each one's sorted series interleave on worker 0, which
/// must sort them before the cut: `max_series = 2` keeps the two first by
/// key whatever order they arrived in (trusting the arrival order, as a
/// single worker may, would keep the first two to arrive).
#[test]
fn two_workers_sorted_runs_are_cut_as_one_sorted_window() {
    let text = "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n\
                [parse]\nformat = \"json\"\n[window]\nmax_series = 2\n\
                [[metric]]\nname = \"hits\"\nkind = \"counter\"\n\
                [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n";
    let env = tidemark_jobs::Env::empty();
    let job = tidemark_jobs::from_str_with_env(text, "j.toml", Path::new("/"), &env).unwrap();
    let plan = Arc::new(Plan::new(&job));
    let kept: Arc<Mutex<Vec<String>>> = Arc::default();
    let out = kept.clone();
    timely::execute(timely::Config::process(2), move |worker| {
        let (plan, out) = (plan.clone(), out.clone());
        let stats: SharedStats = Arc::default();
        let (mut input, probe) = worker.dataflow::<WindowTime, _, _>(|scope| {
            let (input, merged) = scope.new_input::<Vec<MergedSeries>>();
            let probe = series_limit_of_merged(merged, plan, stats)
                .0
                .inspect(move |s| {
                    let host = s.labels.get("host").unwrap_or_default().to_string();
                    out.lock().unwrap().push(host);
                })
                .probe()
                .0;
            (input, probe)
        });
        // Worker 0's run sorts after worker 1's: on worker 0 it arrives first.
        let hosts: &[&str] = if worker.index() == 0 {
            &["web3", "web4"]
        } else {
            &["web1", "web2"]
        };
        for host in hosts {
            let mut key = (host.len() as u32).to_le_bytes().to_vec();
            key.extend_from_slice(host.as_bytes());
            input.send(MergedSeries {
                metric: 0,
                limited: false,
                key: key.into(),
                acc: Acc::Count(1),
            });
        }
        input.close();
        while !probe.done() {
            worker.step();
        }
    })
    .unwrap();
    let mut kept = kept.lock().unwrap().clone();
    kept.sort();
    assert_eq!(kept, ["web1", "web2"]);
}
