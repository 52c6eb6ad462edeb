use super::*;
use crate::kafka_source::group::{AgentItem, RecordCx, StreamStart};
use crate::plan::Plan;
use tidemark_kafka::wire::GroupRef;
use tidemark_sources::parse::LineParser;

const HOUR: Duration = Duration::from_secs(3600);

fn job() -> tidemark_jobs::Job {
    let text = "name = \"j\"\n[source]\nkind = \"kafka\"\nbrokers = \"k:1\"\ntopic = \"t\"\n[parse]\nformat = \"json\"\n[[metric]]\nname = \"reqs\"\nkind = \"counter\"\n[[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n";
    tidemark_jobs::from_str(text, "j.toml", std::path::Path::new("/")).unwrap()
}

/// Streams `a` and `b` of partition 0, fed `(host, offset, seq, second)` lines
/// at `t0`; windows below `closed` (ms) are handed on and in the sinks.
fn streams(lines: &[(&str, i64, u64, i64)], t0: Instant, closed: EventMs) -> Streams {
    let job = job();
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let mut streams = Streams::default();
    let mut stats = JobStats::default();
    let start = StreamStart {
        floor: 0,
        skip_below: EventMs::MIN,
        checkpointing: true,
        now: t0,
    };
    let (mut warned, mut warned_ahead) = (0, 0);
    for (host, offset, seq, second) in lines {
        let group = GroupRef {
            host,
            group: "/g",
            epoch: 1,
        };
        let ts = jiff::Timestamp::from_millisecond(1_800_000_000_000 + second * 1000).unwrap();
        let text = format!("{{\"time\":\"{ts}\"}}");
        let s = streams.agent(host, "/g", 0, &mut stats, |_| {
            Stream::new("/g", 0, &plan, start)
        });
        let mut cx = RecordCx {
            parser: &mut parser,
            plan: &plan,
            wall_ms: 1_800_000_000_000,
            max_line: 1 << 20,
            stats: &mut stats,
            warned: &mut warned,
            heartbeat_grace_ms: 60_000,
            warned_ahead: &mut warned_ahead,
            append_ms: None,
        };
        let item = AgentItem::Line {
            seq: *seq,
            line: text.as_bytes(),
            host,
        };
        s.agent_record(*offset, &group, item, &mut cx);
    }
    for s in streams.values_mut() {
        // Windows below `closed` are handed on (a heartbeat's doing).
        s.at_end(closed + 60_000, &plan, 60_000);
        s.close_windows(&plan, |_, _| {});
    }
    streams
}

/// Review R14k: streams were never forgotten, so a (host, group) that stopped
/// sending long ago (k8s pods churn host names) stayed in memory and in every
/// checkpoint for ever.
#[test]
fn streams_are_never_pruned() {
    let t0 = Instant::now();
    let base = 1_800_000_000_000;
    // `a` wrote long ago; `b` still has a window open (at offset 5).
    let lines = [("a", 0, 1, 10), ("a", 1, 2, 20), ("b", 5, 1, 200)];
    let mut st = streams(&lines, t0, base + 120_000);
    let mut stats = JobStats::default();
    // Not before stream_retention, nor while its partition is being read.
    assert!(st
        .sweep(t0 + HOUR, 24 * HOUR, base + 120_000, |_| true, &mut stats)
        .is_empty());
    st.swept_at = None;
    assert!(st
        .sweep(
            t0 + 25 * HOUR,
            24 * HOUR,
            base + 120_000,
            |_| false,
            &mut stats
        )
        .is_empty());
    st.swept_at = None;
    let gone = st.sweep(
        t0 + 25 * HOUR,
        24 * HOUR,
        base + 120_000,
        |_| true,
        &mut stats,
    );
    let names: Vec<(&str, &str)> = gone.iter().map(|k| (k.host(), k.group())).collect();
    assert_eq!(names, [("a", "/g")], "b holds a window");
    assert_eq!(stats.kafka_streams_pruned, 1);
    assert_eq!(st.values().count(), 1);
    // It comes back: it goes on with its sequence (3 follows 2: nothing lost).
    let job = job();
    let plan = Plan::new(&job);
    let start = StreamStart {
        floor: 0,
        skip_below: EventMs::MIN,
        checkpointing: true,
        now: t0,
    };
    let mut kept = None;
    st.agent("a", "/g", 0, &mut stats, |g| {
        kept = g;
        Stream::new("/g", 0, &plan, start)
    });
    let kept = kept.expect("its sequence and clock were kept");
    assert_eq!((kept.seq.last, stats.kafka_streams_returned), (2, 1));
    assert_eq!(kept.clock.max_seen_ms, Some(base + 20_000));
}

/// A quiet stream whose records a restart would read again (another stream of
/// its partition resumes before them) is kept: taken again as a new stream,
/// its late lines could count.
#[test]
fn a_stream_whose_records_a_restart_reads_again_is_kept() {
    let t0 = Instant::now();
    let base = 1_800_000_000_000;
    let lines = [("b", 0, 1, 200), ("a", 1, 1, 10), ("a", 2, 2, 20)];
    let mut st = streams(&lines, t0, base + 120_000);
    let mut stats = JobStats::default();
    let gone = st.sweep(
        t0 + 25 * HOUR,
        24 * HOUR,
        base + 120_000,
        |_| true,
        &mut stats,
    );
    assert!(gone.is_empty());
    assert_eq!(stats.kafka_streams_pruned, 0);
    // Once `b`'s first window is in the sinks, `a` goes (`b` still holds it in
    // memory: not handed on).
    st.swept_at = None;
    let gone = st.sweep(
        t0 + 25 * HOUR,
        24 * HOUR,
        base + 240_000,
        |_| true,
        &mut stats,
    );
    assert_eq!(
        gone.len(),
        1,
        "b still has its window in memory (not handed on)"
    );
}

#[test]
fn borrowed_names_find_owned_ones_in_name_order() {
    let mut m: BTreeMap<StreamKey, u32> = BTreeMap::new();
    for (i, (h, g)) in [("b", "x"), ("a", "z"), ("a", "y"), ("", "partition 1")]
        .iter()
        .enumerate()
    {
        m.insert(
            StreamKey {
                host: (*h).into(),
                group: (*g).into(),
                partition: 1,
            },
            i as u32,
        );
    }
    assert_eq!(m.get(&("a", "z", 1) as &dyn KeyView), Some(&1));
    assert_eq!(m.get(&("a", "z", 0) as &dyn KeyView), None);
    assert_eq!(m.get(&("a", "x", 1) as &dyn KeyView), None);
    let order: Vec<(&str, &str)> = m.keys().map(|k| (k.host(), k.group())).collect();
    assert_eq!(
        order,
        [("", "partition 1"), ("a", "y"), ("a", "z"), ("b", "x")]
    );
}

/// Review R15k: an agent that lost its state draws a new epoch, and after
/// partitions were added its group's key (host, group, epoch) may hash to
/// another partition. The stream found by (host, group) kept its old
/// partition: the marks of the lines it took from the new partition were put
/// in the checkpoint as offsets of the old one, and the new partition was not
/// held back for them — after a kill -9 the open window's lines there are never
/// read again (lost), while the old partition resumes at a meaningless offset.
#[test]
fn a_group_that_moves_to_another_partition_resumes_in_its_new_one() {
    use crate::kafka_source::resume::KafkaBoard;
    let job = job();
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let mut streams = Streams::default();
    let mut stats = JobStats::default();
    let start = StreamStart {
        floor: 0,
        skip_below: EventMs::MIN,
        checkpointing: true,
        now: Instant::now(),
    };
    let (mut warned, mut warned_ahead) = (0, 0);
    // (epoch, partition, offset, seq, second): epoch 1 in partition 0, then the
    // agent lost its state: epoch 2 goes to partition 1; one window (0..60 s).
    for (epoch, partition, offset, seq, second) in
        [(1u64, 0i32, 10i64, 1u64, 5i64), (2, 1, 500, 1, 20)]
    {
        let group = GroupRef {
            host: "h",
            group: "/g",
            epoch,
        };
        let ts = jiff::Timestamp::from_millisecond(1_800_000_000_000 + second * 1000).unwrap();
        let text = format!("{{\"time\":\"{ts}\"}}");
        let s = streams.agent("h", "/g", partition, &mut stats, |_| {
            Stream::new("/g", partition, &plan, start)
        });
        let mut cx = RecordCx {
            parser: &mut parser,
            plan: &plan,
            wall_ms: 1_800_000_000_000,
            max_line: 1 << 20,
            stats: &mut stats,
            warned: &mut warned,
            heartbeat_grace_ms: 60_000,
            warned_ahead: &mut warned_ahead,
            append_ms: None,
        };
        let item = AgentItem::Line {
            seq,
            line: text.as_bytes(),
            host: "h",
        };
        s.agent_record(offset, &group, item, &mut cx);
    }
    assert_eq!(stats.kafka_streams_moved, 1, "warned and counted");
    // What SourceState::publish hands the board, and a checkpoint with the
    // window still open.
    let board = KafkaBoard::default();
    let published: Vec<_> = streams
        .iter_mut()
        .map(|(k, s)| ((k.host(), k.group()), s.partition, s.marks.clone().unwrap()))
        .collect();
    board.publish(
        published.iter().map(|(k, p, m)| (*k, *p, m)),
        [(0, 11), (1, 501)],
    );
    let cp = board.checkpoint(1_800_000_000_000);
    let p1 = cp.partitions.iter().find(|p| p.partition == 1).unwrap();
    assert!(
        p1.next_offset <= 500,
        "partition 1 resumes at {} past the open window's line at 500 (the stream is checkpointed in partition {} at offset {})",
        p1.next_offset,
        cp.streams[0].partition,
        cp.streams[0].offset
    );
}

/// The names of streams forgotten are kept only while a pass's findings are in use
/// (a live catch-up): after, a live run that forgets streams for days keeps none.
#[test]
fn forgotten_names_are_kept_until_the_pass_is_over() {
    let t0 = Instant::now();
    let base = 1_800_000_000_000;
    let lines = [("a", 0, 1, 10), ("b", 1, 1, 20)];
    let mut st = streams(&lines, t0, base + 120_000);
    let mut stats = JobStats::default();
    let (a, b) = (StreamKey::new("a", "/g", 0), StreamKey::new("b", "/g", 0));
    let gone = st.sweep(
        t0 + 25 * HOUR,
        24 * HOUR,
        base + 120_000,
        |_| true,
        &mut stats,
    );
    assert_eq!(gone, [a.clone(), b.clone()]);
    assert!(st.forgot(&a) && st.forgot(&b));
    st.pass_over();
    assert!(!st.forgot(&a), "kept after the pass was over");
    // Back, and forgotten again: not kept.
    let job = job();
    let plan = Plan::new(&job);
    let start = StreamStart {
        floor: 0,
        skip_below: EventMs::MIN,
        checkpointing: true,
        now: t0 + 25 * HOUR,
    };
    st.agent("a", "/g", 0, &mut stats, |_| {
        Stream::new("/g", 0, &plan, start)
    });
    st.swept_at = None;
    let gone = st.sweep(
        t0 + 50 * HOUR,
        24 * HOUR,
        base + 120_000,
        |_| true,
        &mut stats,
    );
    assert_eq!(gone, std::slice::from_ref(&a));
    assert!(!st.forgot(&a), "a name kept after the pass was over");
}
