//! The vector `to_stage2` makes a window's records into.

use super::tests::plan_of;
use super::*;

/// A window's host records are made into a vector sized for them all: it is
/// never regrown (each regrowth copies them into new pages). Rule inputs,
/// folded one per rule output series, go into a vector of their own.
#[test]
fn a_windows_records_fill_a_vector_sized_for_them() {
    let plan = plan_of(
        "[[metric]]\nname = \"hits\"\nkind = \"counter\"\nlabels = [\"status\"]\n\
         [[metric]]\nname = \"lat\"\nkind = \"histogram\"\nfield = \"ms\"\n\
         quantiles = [0.5, 0.9, 0.99]\n\
         [[rule]]\nrecord = \"s:hits\"\nexpr = \"sum by (status) (hits)\"\n\
         [[rule]]\nrecord = \"j:hits\"\nexpr = \"sum(hits)\"\n\
         [[rule]]\nrecord = \"j:p99\"\nexpr = \"histogram_quantile(0.99, lat)\"\n",
    );
    let quantiles: Vec<Vec<String>> = plan
        .metrics
        .iter()
        .map(|mp| mp.quantiles.iter().map(|&q| format_quantile(q)).collect())
        .collect();
    let mut hist = crate::acc::Hist::new();
    hist.record(12.0).unwrap();
    let mut series = Vec::new();
    for host in 0..300 {
        for status in ["200", "404", "500"] {
            let mut key = Vec::new();
            crate::key::push_key_part(&mut key, &format!("h{host}"));
            crate::key::push_key_part(&mut key, status);
            series.push(MergedSeries {
                metric: 0,
                limited: false,
                key: key.into(),
                acc: Acc::Count(3),
            });
        }
    }
    for host in 0..300 {
        let mut key = Vec::new();
        crate::key::push_key_part(&mut key, &format!("h{host}"));
        series.push(MergedSeries {
            metric: 1,
            limited: false,
            key: key.into(),
            acc: Acc::Hist(Box::new(hist.clone())),
        });
    }
    let (hosts, rules) = to_stage2(
        series,
        &plan,
        &quantiles,
        None,
        &kept_places(&plan),
        &shared_of(&plan),
    );
    // 900 counters: 1 host record each; 300 histograms: 3 quantiles,
    // _count, _sum; 3 + 1 + 1 folded rule inputs (`sum by (status)`,
    // `sum`, the quantile).
    assert_eq!(hosts.len(), 900 + 300 * 5);
    assert_eq!(rules.len(), 5);
    // The bound: the host records, exactly.
    assert_eq!(hosts.capacity(), hosts.len());
}
