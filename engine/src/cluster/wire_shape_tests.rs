//! The shape of what members exchange, pinned: one value of every type timely
//! sends between members (every variant of their enums), encoded as timely
//! encodes them (bincode): the dataflows' records, and the cluster's commands
//! (timely's `Sequencer`, with the members' stats). If this fails, a type sent between members changed:
//! bump [`WIRE_VERSION`] (so that members of the old and new releases refuse each
//! other by name rather than misread each other) and pin the new figures here.

use std::sync::Arc;

use super::WIRE_VERSION;
use crate::acc::{Acc, ExactSum, Hist};
use crate::cluster::Command;
use crate::key::{push_key_part, SeriesKey};
use crate::labels::{KeyNames, Labels};
use crate::series::{HostPartial, MergedSeries, Origin, RuleInput, RuleValue, Series, Value};
use crate::stats::{MemberGroup, MemberStats};

/// Every variant of [`Acc`]; the `match` fails to compile when one is added.
fn accs() -> Vec<Acc> {
    let mut sparse = Hist::new();
    sparse.record(0.25).unwrap();
    sparse.record(3.0).unwrap();
    let mut dense = Hist::new();
    for i in 0..500 {
        dense.record(f64::from(i) * 0.013).unwrap();
    }
    let mut sum = ExactSum::default();
    sum.add(12.5).unwrap();
    let all = vec![
        Acc::Count(7),
        Acc::Sum { sum, lines: 3 },
        Acc::Gauge {
            t: 1_700_000_000_123,
            v: -0.5,
            lines: 2,
        },
        Acc::Hist(Box::new(sparse)),
        Acc::Hist(Box::new(dense)),
    ];
    for a in &all {
        match a {
            Acc::Count(_) | Acc::Sum { .. } | Acc::Gauge { .. } | Acc::Hist(_) => {}
        }
    }
    all
}

/// A series key of these parts.
fn key_of(parts: &[&str]) -> SeriesKey {
    let mut buf = Vec::new();
    for p in parts {
        push_key_part(&mut buf, p);
    }
    SeriesKey::from(buf)
}

fn key() -> SeriesKey {
    key_of(&["web-1", "200", "GET"])
}

/// Both kinds of [`Labels`]: owned pairs and read from a key.
fn labels() -> Vec<Labels> {
    let names = Arc::new(KeyNames::new(&[
        ("host".to_string(), 0),
        ("status".to_string(), 1),
    ]));
    vec![
        Labels::from_pairs(&[("status", "200"), ("host", "web-1")]),
        Labels::of_key(&names, key_of(&["web-1", "200"])),
    ]
}

/// Each type's samples, encoded.
fn encoded() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for acc in accs() {
        let p = HostPartial {
            metric: 2,
            seq: 5,
            limited: true,
            key: key(),
            group: Arc::from("/var/log/nginx/access.log"),
            acc: acc.clone(),
        };
        out.push(("HostPartial", bincode::serialize(&p).unwrap()));
        // Where it is sent: a series' partials must meet on one worker.
        out.push(("HostPartial::route", p.route().to_le_bytes().to_vec()));
        let m = MergedSeries {
            metric: 1,
            limited: false,
            key: key(),
            acc,
        };
        out.push(("MergedSeries", bincode::serialize(&m).unwrap()));
    }
    let mut hist = Hist::new();
    hist.record(0.125).unwrap();
    let values = [
        RuleValue::Num { n: 4, folded: 9.75 },
        RuleValue::Hist(Box::new(hist)),
    ];
    for (value, out_labels) in values.into_iter().zip(labels().into_iter().cycle()) {
        match value {
            RuleValue::Num { .. } | RuleValue::Hist(_) => {}
        }
        let r = RuleInput {
            rule: 3,
            ord: 11,
            out_labels,
            value,
        };
        out.push(("RuleInput::route", r.route().to_le_bytes().to_vec()));
        out.push(("RuleInput", bincode::serialize(&r).unwrap()));
    }
    let records = [
        (Value::Int(42), Origin::Host),
        (Value::Float(0.1), Origin::Rule),
    ];
    for ((value, origin), labels) in records.into_iter().zip(labels()) {
        match (value, origin) {
            (Value::Int(_) | Value::Float(_), Origin::Host | Origin::Rule) => {}
        }
        let s = Series {
            record: Arc::from("http_requests_total"),
            labels,
            value,
            origin,
        };
        out.push(("Series", bincode::serialize(&s).unwrap()));
    }
    for c in commands() {
        out.push(("Command", bincode::serialize(&c).unwrap()));
    }
    out
}

/// Every variant of [`Command`]; the `match` fails to compile when one is added.
fn commands() -> Vec<Command> {
    let name = || "nginx".to_string();
    let mut stats = MemberStats::default();
    stats.parse_errors.insert("nginx".into(), 2);
    stats
        .groups
        .insert("/var/log/a.log".into(), MemberGroup::default());
    let all = vec![
        Command::Install {
            name: name(),
            toml: "name = \"nginx\"".into(),
            committed: Some(60_000),
        },
        Command::Prepared {
            name: name(),
            process: 1,
            result: Err("no such file".into()),
        },
        Command::Stop { name: name() },
        Command::Halt { name: name() },
        Command::StopSources { name: name() },
        Command::Committed {
            name: name(),
            frontier_ms: 120_000,
        },
        Command::Finished { name: name() },
        Command::Released {
            name: name(),
            process: 1,
        },
        Command::Report {
            process: 1,
            jobs: vec![(name(), stats)],
        },
        Command::Shutdown,
        Command::Exit,
    ];
    for c in &all {
        match c {
            Command::Install { .. }
            | Command::Prepared { .. }
            | Command::Stop { .. }
            | Command::Halt { .. }
            | Command::StopSources { .. }
            | Command::Committed { .. }
            | Command::Finished { .. }
            | Command::Released { .. }
            | Command::Report { .. }
            | Command::Shutdown
            | Command::Exit => {}
        }
    }
    all
}

#[test]
fn what_members_exchange_has_the_shape_of_this_wire_version() {
    let samples = encoded();
    let mut all = crc32fast::Hasher::new();
    let mut sizes = Vec::new();
    for (name, bytes) in &samples {
        all.update(name.as_bytes());
        all.update(bytes);
        sizes.push(bytes.len());
    }
    let crc = all.finalize();
    // Pinned for WIRE_VERSION 1.
    let pinned = (
        1,
        0x47f5_e002,
        vec![
            85, 8, 48, 101, 8, 64, 101, 8, 64, 137, 8, 100, 636, 8, 599, 8, 86, 8, 114, 101, 101,
            48, 49, 17, 17, 17, 25, 17, 25, 481, 4, 4,
        ],
    );
    assert_eq!(
        (WIRE_VERSION, crc, sizes.clone()),
        pinned,
        "a type sent between members changed shape (crc {crc:#010x}, sizes {sizes:?}): \
         bump WIRE_VERSION in cluster/hello.rs and pin the new figures here"
    );
}
