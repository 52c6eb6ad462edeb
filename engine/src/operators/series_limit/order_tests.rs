//! Review R16p: the collect stage skips its sort where
//! [`super::host_records_in_output_order`] says the host records come in
//! output order. Checked here against the sort it skips, over jobs whose metric
//! names, label names and kinds are drawn to order differently from their
//! index and key parts, and label values that compare differently as words
//! and as bytes (NUL, high bytes, lengths around 8, empty).

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::key::push_key_part;
use crate::operators::record_order::{in_record_order, sort_records};
use crate::series::Series;

const NAMES: [&str; 6] = ["a_m", "m", "m_b", "z", "hits", "b"];
const LABELS: [&str; 6] = ["app", "x", "y", "zone", "a1", "status"];
const VALUES: [&str; 14] = [
    "",
    "a",
    "a\0",
    "\0",
    "ab",
    "abcdefg",
    "abcdefgh",
    "abcdefgh\0",
    "abcdefghi",
    "10.0.0.101",
    "10.0.0.102",
    "\u{e9}",
    "\u{ff}x",
    "xxxxxxxxxxxxxxxxx",
];

fn plan_of(metrics: &[(usize, u8, Vec<usize>)]) -> Plan {
    let mut text = String::from(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n\
         [parse]\nformat = \"json\"\n",
    );
    for (name, kind, labels) in metrics {
        let kind = ["counter", "sum", "gauge", "histogram"][*kind as usize];
        let labels: Vec<String> = labels
            .iter()
            .map(|&l| format!("\"{}\"", LABELS[l]))
            .collect();
        text += &format!(
            "[[metric]]\nname = \"{}\"\nkind = \"{kind}\"\nlabels = [{}]\n",
            NAMES[*name],
            labels.join(", ")
        );
        if kind != "counter" {
            text += "field = \"v\"\n";
        }
    }
    text += "[[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n";
    let env = tidemark_jobs::Env::empty();
    let job = tidemark_jobs::from_str_with_env(&text, "j.toml", Path::new("/"), &env).unwrap();
    Plan::new(&job)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Where the plan says a window's host records are in output order, they
    /// are: the records `to_stage2` makes of series sorted by (metric, key)
    /// are what sorting them gives.
    #[test]
    fn host_records_said_sorted_are_sorted(
        names in prop::sample::subsequence((0..NAMES.len()).collect::<Vec<_>>(), 1..4).prop_shuffle(),
        kinds in prop::collection::vec(0u8..4, 4),
        labels in prop::collection::vec(prop::sample::subsequence((0..LABELS.len()).collect::<Vec<_>>(), 0..3).prop_shuffle(), 4),
        raw in prop::collection::vec((0usize..4, 0usize..VALUES.len(), prop::collection::vec(0usize..VALUES.len(), 3)), 1..60),
    ) {
        let metrics: Vec<(usize, u8, Vec<usize>)> = names
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, kinds[i], labels[i].clone()))
            .collect();
        let plan = plan_of(&metrics);
        let mut series: Vec<MergedSeries> = raw
            .iter()
            .map(|(m, host, values)| {
                let m = m % metrics.len();
                let mut key = Vec::new();
                push_key_part(&mut key, VALUES[*host]);
                for v in values.iter().take(metrics[m].2.len()) {
                    push_key_part(&mut key, VALUES[*v]);
                }
                MergedSeries { metric: m as u32, limited: false, key: key.into(), acc: Acc::Count(1) }
            })
            .collect();
        series.sort_by(|a, b| a.metric.cmp(&b.metric).then_with(|| cmp_keys(&a.key, &b.key)));
        series.dedup_by(|a, b| a.metric == b.metric && a.key == b.key);
        let quantiles = vec![Vec::new(); plan.metrics.len()];
        let names: Vec<Arc<KeyNames>> =
            plan.metrics.iter().map(|mp| Arc::new(KeyNames::new(&mp.output_labels))).collect();
        let (records, _) = to_stage2(series, &plan, &quantiles, host_records_in_output_order(&plan).then_some(&names[..]), &kept_places(&plan), &shared_of(&plan));
        if host_records_in_output_order(&plan) {
            prop_assert!(in_record_order(&records), "{metrics:?}");
            let mut sorted = records.clone();
            sort_records(&mut sorted);
            let key = |s: &Series| (s.record.to_string(), s.labels.to_vec());
            prop_assert_eq!(records.iter().map(key).collect::<Vec<_>>(), sorted.iter().map(key).collect::<Vec<_>>());
        }
    }
}
