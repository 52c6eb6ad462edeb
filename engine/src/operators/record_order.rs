//! The order sinks print a window's records in: by (record, labels).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use super::permute::permute;
use crate::key::KeyPrefix;
use crate::series::Series;

/// Sorts a window's records by (record, labels), equal ones in the order they
/// came (what a stable sort by those gives).
///
/// A window of one host's series arrives sorted already (seen in one pass).
/// Otherwise (thousands of hosts' series, rule outputs) the sort runs on small
/// entries: the record name's rank among the window's few names, and a number
/// that orders as the labels' first bytes do ([`KeyPrefix`]); only entries whose
/// numbers tie read their records' labels. The records are then moved into that
/// order in place.
pub(crate) fn sort_records(records: &mut [Series]) {
    if in_record_order(records) {
        return;
    }
    let mut names: HashMap<&str, u32, ahash::RandomState> = HashMap::default();
    // Each record's name id. A window's records of one name come in runs that
    // share its `Arc`: the name is hashed once per run, not once per record.
    let mut ids: Vec<u32> = Vec::with_capacity(records.len());
    let mut last: Option<(&Arc<str>, u32)> = None;
    for r in records.iter() {
        let id = match last {
            Some((name, id)) if Arc::ptr_eq(name, &r.record) => id,
            _ => {
                let next = names.len() as u32;
                *names.entry(&r.record).or_insert(next)
            }
        };
        last = Some((&r.record, id));
        ids.push(id);
    }
    let mut sorted: Vec<(&str, u32)> = names.iter().map(|(&n, &id)| (n, id)).collect();
    sorted.sort_unstable();
    let mut rank = vec![0u32; sorted.len()];
    for (r, &(_, id)) in sorted.iter().enumerate() {
        rank[id as usize] = r as u32;
    }
    let mut order: Vec<(u32, KeyPrefix, u32)> = records
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (r, id))| {
            let name = rank.get(id as usize).copied().unwrap_or_default();
            // Borrowed: records sorted here have their labels encoded (see
            // `series_limit`'s `to_stage2`); others are written out.
            (name, KeyPrefix::of(&r.labels.as_bytes(), 0), i as u32)
        })
        .collect();
    drop(names);
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then_with(|| {
            let (x, y) = (&records[a.2 as usize], &records[b.2 as usize]);
            x.labels
                .cmp(&y.labels)
                // Equal records keep their order: the sort is then the stable one.
                .then(a.2.cmp(&b.2))
        })
    });
    permute(records, order.into_iter().map(|(_, _, i)| i).collect());
}

/// Whether `records` are in the order [`sort_records`] gives (seen in one pass).
pub(crate) fn in_record_order(records: &[Series]) -> bool {
    records.is_sorted_by(|a, b| by_record(a, b).is_le())
}

/// (record, labels) order.
fn by_record(a: &Series, b: &Series) -> Ordering {
    // A window's records of one name share its `Arc`: equal without reading it.
    let name = if Arc::ptr_eq(&a.record, &b.record) {
        Ordering::Equal
    } else {
        a.record.cmp(&b.record)
    };
    name.then_with(|| a.labels.cmp(&b.labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::series::{Origin, Value};
    use proptest::prelude::*;

    const VALUES: &[&str] = &[
        "",
        "\0",
        "a",
        "a\0",
        "web-1",
        "web-10",
        "aaaaaaaaaaaaaaaaaaaa1",
        "aaaaaaaaaaaaaaaaaaaa2",
    ];
    const NAMES: &[&str] = &["hits", "hits:sum", "a", "", "hits_bucket"];

    proptest! {
        #[test]
        fn sorts_as_a_stable_sort_by_record_and_labels(
            sorted_first in any::<bool>(),
            raw in prop::collection::vec(
                (0usize..NAMES.len(), prop::collection::vec((0usize..3, 0usize..VALUES.len()), 0..3)),
                0..200,
            ),
        ) {
            let names: Vec<Arc<str>> = NAMES.iter().map(|&n| Arc::from(n)).collect();
            let mut records: Vec<Series> = raw
                .iter()
                .enumerate()
                .map(|(i, (name, labels))| {
                    let pairs: Vec<(String, &str)> =
                        labels.iter().map(|&(n, v)| (format!("l{n}"), VALUES[v])).collect();
                    Series {
                        record: names[*name].clone(),
                        labels: Labels::from_pairs(&pairs),
                        value: Value::Int(i as u64),
                        origin: Origin::Rule,
                    }
                })
                .collect();
            let by = |a: &Series, b: &Series| (&a.record, &a.labels).cmp(&(&b.record, &b.labels));
            if sorted_first {
                records.sort_by(by);
            }
            let mut want = records.clone();
            want.sort_by(by);
            sort_records(&mut records);
            prop_assert_eq!(records, want);
        }
    }
}
