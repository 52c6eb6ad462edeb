//! The order sinks print a window's records in: by (record, labels).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use super::permute::permute;
use crate::key::stable_sorted_order;
use crate::series::Series;

/// Sorts a window's records by (record, labels), equal ones in the order they
/// came (what a stable sort by those gives).
///
/// A window of one host's series arrives sorted already (seen in one pass).
/// Otherwise (thousands of hosts' series, rule outputs) the records are
/// grouped by their name's rank among the window's few names, in the order
/// they came, and each group that is not in label order already is sorted
/// ([`sort_by_labels`]). The records are then moved into that order in place.
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
    drop(names);
    // The records grouped by name rank, each group in the order the records
    // came (a counting placement): a stable sort by name.
    let rank_of = |id: u32| rank.get(id as usize).copied().unwrap_or_default() as usize;
    let mut starts = vec![0usize; rank.len() + 1];
    for &id in &ids {
        if let Some(n) = starts.get_mut(rank_of(id) + 1) {
            *n += 1;
        }
    }
    for r in 1..starts.len() {
        starts[r] += starts[r - 1];
    }
    let mut order = vec![0u32; records.len()];
    let mut next = starts.clone();
    for (i, &id) in ids.iter().enumerate() {
        if let Some(slot) = next.get_mut(rank_of(id)) {
            if let Some(o) = order.get_mut(*slot) {
                *o = i as u32;
            }
            *slot += 1;
        }
    }
    // Each name's records by labels, stably. Most names' records come sorted
    // already (a metric whose label names sort in key order, a rule's
    // outputs): seen in one pass.
    for group in starts.windows(2) {
        let Some(group) = order.get_mut(group[0]..group[1]) else {
            continue;
        };
        let labels = |i: u32| &records[i as usize].labels;
        if group.is_sorted_by(|&a, &b| labels(a) <= labels(b)) {
            continue;
        }
        sort_by_labels(records, group);
    }
    permute(records, order);
}

/// Sorts `group` (indices of `records` of one name, in the order they came)
/// by their labels, equal ones in that order: their encodings sort as the
/// labels do, by [`stable_sorted_order`] (numbers from their first bytes past
/// what all share, radix-sorted; only ties read the encodings).
fn sort_by_labels(records: &[Series], group: &mut [u32]) {
    // Borrowed: records sorted here have their labels encoded (see
    // `series_limit`'s `to_stage2`); others are written out.
    let encoded: Vec<Cow<'_, [u8]>> = group
        .iter()
        .map(|&i| records[i as usize].labels.as_bytes())
        .collect();
    let order = stable_sorted_order(encoded.len(), |k| &encoded[k]);
    let sorted: Vec<u32> = order.iter().map(|&k| group[k as usize]).collect();
    group.copy_from_slice(&sorted);
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
            // A leading pair every record has: none, the same one, or one
            // name with values that vary (the numbers sorted on start past
            // what all share).
            lead in 0usize..3,
            raw in prop::collection::vec(
                (0usize..NAMES.len(), prop::collection::vec((0usize..3, 0usize..VALUES.len()), 0..3),
                 0usize..VALUES.len()),
                0..200,
            ),
        ) {
            let names: Vec<Arc<str>> = NAMES.iter().map(|&n| Arc::from(n)).collect();
            let mut records: Vec<Series> = raw
                .iter()
                .enumerate()
                .map(|(i, (name, labels, lead_value))| {
                    let mut pairs: Vec<(String, &str)> =
                        labels.iter().map(|&(n, v)| (format!("l{n}"), VALUES[v])).collect();
                    match lead {
                        1 => pairs.push(("a".to_string(), "web-1")),
                        2 => pairs.push(("a".to_string(), VALUES[*lead_value])),
                        _ => {}
                    }
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
