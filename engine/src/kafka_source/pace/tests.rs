//! A partition's position is its slowest stream, read or not yet; a partition read
//! to its end holds no one back; windows close up to the earliest stream that can
//! still add to them.

use std::path::Path;
use std::time::Instant;

use tidemark_jobs::Job;

use super::*;
use crate::kafka_source::discover::Found;
use crate::kafka_source::group::{Stream, StreamStart};
use crate::kafka_source::streams::{StreamKey, Streams};
use crate::pacing::PaceBoard;

fn job() -> Job {
    let text = r#"
name = "j"
[source]
kind = "kafka"
brokers = "k:1"
topic = "t"
[parse]
format = "json"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "stdout"
series = "hosts"
"#;
    tidemark_jobs::from_str(text, "j.toml", Path::new("/")).unwrap()
}

const MIN: EventMs = 60_000;

/// A stream of partition `p` whose watermark is at `wm`.
fn stream(plan: &Plan, p: i32, wm: EventMs) -> Stream {
    let start = StreamStart {
        floor: 0,
        skip_below: EventMs::MIN,
        checkpointing: false,
        now: Instant::now(),
    };
    let mut s = Stream::new("g", p, plan, start);
    // A heartbeat moves the watermark to its time less the disorder.
    s.at_end(wm + plan.disorder_ms, plan, 0);
    s
}

fn key(k: &str, p: i32) -> StreamKey {
    StreamKey::new("h", k, p)
}

#[test]
fn a_stream_not_read_yet_holds_its_partition_and_the_windows_back() {
    let plan = Plan::new(&job());
    let mut streams = Streams::default();
    streams.insert("h", "a", stream(&plan, 0, 30 * MIN));
    streams.insert("h", "b", stream(&plan, 1, 40 * MIN));
    let mut found = Discovered::new();
    found.insert(key("a", 0), Found::known(0, 100, Some(0)));
    found.insert(key("b", 1), Found::known(1, 100, Some(0)));
    // Later in partition 0: a host whose lines start at minute 5.
    found.insert(
        key("late", 0),
        Found::known(0, 90, Some((5 * MIN) as WindowTime)),
    );
    let before = lanes([(0, false), (1, false), (2, false)], &streams, &found);
    assert_eq!(before[&0], Lane::Reading(Some(5 * MIN)));
    assert_eq!(before[&1], Lane::Reading(Some(40 * MIN)));
    // No stream yet: read it first.
    assert_eq!(before[&2], Lane::Reading(None));
    assert_eq!(
        first_open(&streams, &found, &plan),
        Some((5 * MIN) as WindowTime)
    );

    // Once read, only the streams' own watermarks count.
    streams.insert("h", "late", stream(&plan, 0, 35 * MIN));
    let after = lanes([(0, false), (1, false), (2, true)], &streams, &found);
    assert_eq!(after[&0], Lane::Reading(Some(30 * MIN)));
    assert_eq!(after[&2], Lane::Quiet);
    assert_eq!(
        first_open(&streams, &found, &plan),
        Some((30 * MIN) as WindowTime)
    );
}

#[test]
fn a_partition_past_the_bound_waits_and_the_slowest_reads() {
    let plan = Plan::new(&job());
    let mut streams = Streams::default();
    streams.insert("h", "a", stream(&plan, 0, 10 * MIN));
    streams.insert("h", "b", stream(&plan, 1, 30 * MIN));
    let found = Discovered::new();
    let now = lanes([(0, false), (1, false)], &streams, &found);
    let pacer = Pacer::new(6 * MIN, PaceBoard::new(1), 0);
    let horizon = pacer.horizon(now.values().copied());
    let reads = |p: i32| match now[&p] {
        Lane::Reading(wm) => horizon.allows(wm),
        Lane::Quiet => false,
    };
    assert!(reads(0), "the slowest partition always reads");
    assert!(!reads(1), "20 minutes ahead of the slowest: paused");
}

#[test]
fn streams_read_to_their_last_record_stop_holding_windows() {
    let plan = Plan::new(&job());
    let mut streams = Streams::default();
    streams.insert("h", "a", stream(&plan, 0, 10 * MIN));
    streams.insert("h", "b", stream(&plan, 0, 20 * MIN));
    // Restored from a checkpoint, with no record left in the range.
    streams.insert("h", "gone", stream(&plan, 1, 2 * MIN));
    let mut found = Discovered::new();
    found.insert(key("a", 0), Found::known(0, 41, Some(0)));
    found.insert(key("b", 0), Found::known(0, 57, Some(0)));
    let next = |p: i32| (p == 0).then_some(42);
    finish_read(next, &mut streams, &found);
    assert!(streams.get(&key("a", 0)).unwrap().is_finished());
    assert!(!streams.get(&key("b", 0)).unwrap().is_finished());
    assert!(streams.get(&key("gone", 1)).unwrap().is_finished());
    assert_eq!(
        first_open(&streams, &found, &plan),
        Some((20 * MIN) as WindowTime)
    );
    let now = lanes([(0, false), (1, false)], &streams, &found);
    assert_eq!(now[&0], Lane::Reading(Some(20 * MIN)));
}

/// Review R15p: a stream read up to its first line only (its watermark
/// waits for a second line to confirm the first) holds every window from 0 and its
/// partition as the furthest behind — though the pass knows none of its lines comes
/// before its earliest window. A sparse host (one line now, the next an hour later
/// in its partition) thus keeps every window of the worker open, and every other
/// partition of the job paused, until its second line is read.
#[test]
fn rev15p_a_stream_read_to_its_first_line_keeps_the_bound_the_pass_found() {
    use crate::time::first_open_window;
    let job = job();
    let plan = Plan::new(&job);
    let mut parser = tidemark_sources::parse::LineParser::new(&job.parse, &plan.fields).unwrap();
    let mut streams = Streams::default();
    let start = StreamStart {
        floor: 0,
        skip_below: EventMs::MIN,
        checkpointing: false,
        now: Instant::now(),
    };
    let t0: EventMs = 1_800_000_000_000;
    streams.insert("h", "a", stream(&plan, 0, t0 + 40 * MIN));
    let mut sparse = Stream::new("sparse", 1, &plan, start);
    let line = format!(
        "{{\"time\":\"{}\"}}",
        jiff::Timestamp::from_millisecond(t0 + 30 * MIN).unwrap()
    );
    let mut stats = crate::stats::JobStats::default();
    let before = sparse.point(7);
    sparse.line(
        line.as_bytes(),
        "h",
        before,
        &mut parser,
        &plan,
        t0 + 600 * MIN,
        &mut stats,
    );
    assert_eq!(stats.lines_counted, 1, "{stats:?}");
    streams.insert("h", "sparse", sparse);
    let mut found = Discovered::new();
    found.insert(key("a", 0), Found::known(0, 100, Some(0)));
    // The pass: its lines (the first at minute 30 past t0, the next an hour later) add to
    // windows at or after minute 30.
    let earliest = first_open_window(Some(t0 + 30 * MIN), plan.window_ms);
    found.insert(key("sparse", 1), Found::known(1, 5_000, Some(earliest)));
    let open = first_open(&streams, &found, &plan);
    let lanes = lanes([(0, false), (1, false)], &streams, &found);
    assert!(
        open >= Some(earliest),
        "windows held from {open:?}, though no stream can add before {earliest}"
    );
    assert_ne!(
        lanes[&1],
        Lane::Reading(None),
        "the sparse stream's partition counts as furthest behind of all"
    );
}

/// A live run catching up paused a partition once it was at its end (a quiet lane):
/// the records its agents kept writing waited unread until every partition had
/// caught up, while its streams, at their partition's end and given nothing,
/// looked idle — after `idle_timeout` their watermarks followed the wall clock and
/// those records' lines were late. A live partition at its end is read on.
#[test]
fn a_live_partition_at_its_end_was_paused_during_catch_up() {
    use std::time::Duration;

    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    use crate::kafka_source::consumer::Polled;

    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 2, 1).unwrap();
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    let send = |p: i32, payload: &str| {
        producer
            .send(BaseRecord::<(), _>::to("t").partition(p).payload(payload))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    };
    send(0, "p0 r0");
    send(1, "p1 r0");
    let source = tidemark_jobs::KafkaSource {
        brokers: mock.bootstrap_servers(),
        topic: "t".to_string(),
        options: Default::default(),
        group_id: None,
        heartbeat_grace: Duration::from_secs(60),
        stream_retention: Duration::from_secs(86_400),
        broker_timeout: Duration::from_secs(300),
    };
    let mut reader = Reader::connect(&source, "j", 0, 1, true, &BTreeMap::new()).unwrap();
    // Generous deadlines: only a failure waits for them.
    let poll_until = |reader: &mut Reader, done: &dyn Fn(&Reader) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while !done(reader) && Instant::now() < deadline {
            match reader.poll() {
                Polled::Record(r) => got.push(String::from_utf8_lossy(r.payload()).into_owned()),
                Polled::Nothing => std::thread::sleep(Duration::from_millis(10)),
                _ => {}
            }
        }
        got
    };
    let got = poll_until(&mut reader, &|r| r.at_eof(0) && r.at_eof(1));
    assert_eq!(got.len(), 2, "{got:?}");
    // Catching up: partition 0 at its end (quiet), partition 1 still reading.
    let lanes = BTreeMap::from([(0, Lane::Quiet), (1, Lane::Reading(Some(0)))]);
    let pacer = Pacer::new(6 * MIN, PaceBoard::new(1), 0);
    pace(&mut reader, &lanes, &pacer, true);
    // Its agent writes on.
    send(0, "p0 r1");
    let got = poll_until(&mut reader, &|r| !r.at_eof(0));
    assert_eq!(
        got,
        ["p0 r1"],
        "a live partition at its end must be read on while others catch up"
    );
}

/// A stream made this run of which the pass found no line (heartbeats only) adds to
/// no window: it holds none, though its watermark has not started.
#[test]
fn a_stream_with_no_line_in_the_pass_holds_no_window() {
    let plan = Plan::new(&job());
    let start = StreamStart {
        floor: 0,
        skip_below: EventMs::MIN,
        checkpointing: false,
        now: Instant::now(),
    };
    let mut streams = Streams::default();
    streams.insert("h", "a", stream(&plan, 0, 30 * MIN));
    streams.insert("h", "beats", Stream::new("beats", 1, &plan, start));
    let mut found = Discovered::new();
    found.insert(key("a", 0), Found::known(0, 100, Some(0)));
    found.insert(key("beats", 1), Found::known(1, 100, None));
    assert_eq!(
        first_open(&streams, &found, &plan),
        Some((30 * MIN) as WindowTime)
    );
}

/// Review R16l: during a live catch-up the streams are swept
/// (`stream_retention`) while the pass's findings are still used. A stream the pass
/// found, read and then forgotten (quiet for `stream_retention`, its partition at its
/// end, no window open) is no longer in `streams`, so `lanes` and `first_open` take
/// it for one "not read yet" and hold its partition and every window at the earliest
/// window the pass found for it — far behind where it had already been read. The
/// windows stop closing until the catch-up ends; once its partition gets a record
/// again (another stream's), its lane is `Reading` at that old window, the horizon is
/// pinned there and the other partitions are paused — they never reach their ends, so
/// the catch-up never ends.
#[test]
fn a_stream_forgotten_during_a_live_catch_up_is_not_taken_for_one_not_read_yet() {
    use std::time::Duration;

    let plan = Plan::new(&job());
    let mut streams = Streams::default();
    streams.insert("h", "a", stream(&plan, 0, 30 * MIN));
    streams.insert("h", "b", stream(&plan, 1, 40 * MIN));
    let mut found = Discovered::new();
    found.insert(key("a", 0), Found::known(0, 100, Some(0)));
    found.insert(key("b", 1), Found::known(1, 100, Some(0)));
    let before = first_open(&streams, &found, &plan).unwrap();
    assert_eq!(before, (30 * MIN) as WindowTime);
    // `a` quiet for stream_retention at its partition's end: forgotten.
    let mut stats = crate::stats::JobStats::default();
    let forgotten = streams.sweep(
        Instant::now() + Duration::from_secs(120),
        Duration::from_secs(60),
        0,
        |p| p == 0,
        &mut stats,
    );
    assert_eq!(forgotten, vec![key("a", 0)]);
    let after = first_open(&streams, &found, &plan).unwrap();
    assert!(
        after >= before,
        "windows already passed are held again after a stream was forgotten: first open {} min, was {} min",
        after / MIN as WindowTime,
        before / MIN as WindowTime
    );
    // Its partition gets a record again (another stream's): not at its end.
    let now = lanes([(0, false), (1, false)], &streams, &found);
    assert_ne!(
        now[&0],
        Lane::Reading(Some(0)),
        "the forgotten stream pins its partition (and the job's horizon) at minute 0"
    );
}

/// A stream forgotten during a live catch-up and made again (its sequence and clock
/// no longer remembered) starts from records past the pass's range: what the pass
/// found for its name (where its backlog's lines started) does not bound it.
#[test]
fn a_stream_made_again_after_it_was_forgotten_is_not_bounded_by_the_pass() {
    use std::time::Duration;

    let plan = Plan::new(&job());
    let mut streams = Streams::default();
    streams.insert("h", "a", stream(&plan, 0, 40 * MIN));
    streams.insert("h", "b", stream(&plan, 1, 50 * MIN));
    let mut found = Discovered::new();
    found.insert(
        key("a", 0),
        Found::known(0, 100, Some((30 * MIN) as WindowTime)),
    );
    found.insert(key("b", 1), Found::known(1, 100, Some(0)));
    let mut stats = crate::stats::JobStats::default();
    let forgotten = streams.sweep(
        Instant::now() + Duration::from_secs(120),
        Duration::from_secs(60),
        0,
        |p| p == 0,
        &mut stats,
    );
    assert_eq!(forgotten, vec![key("a", 0)]);
    // It sends again, lines of minute 10 on: a new stream of that name.
    streams.insert("h", "a", stream(&plan, 0, 10 * MIN));
    assert_eq!(
        first_open(&streams, &found, &plan),
        Some((10 * MIN) as WindowTime),
        "the pass's bound for the forgotten stream's backlog held the new one's windows as closed"
    );
    let now = lanes([(0, false), (1, false)], &streams, &found);
    assert_eq!(now[&0], Lane::Reading(Some(10 * MIN)));
}

/// Review R16l: during a live catch-up a stale stream (a dead agent's: no record, no
/// heartbeat; its watermark never moves while its partition is not at its end) held
/// its partition as the slowest lane while other hosts' records kept that partition
/// from its end: the other partitions, past it plus the bound, stayed paused short
/// of the end they had at connect, so the catch-up never ended (their lag grew). A
/// live partition read past the end it had at connect holds no one back.
#[test]
fn a_stale_stream_on_a_busy_partition_stalled_the_live_catch_up() {
    use std::time::Duration;

    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    use crate::kafka_source::consumer::Polled;

    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 2, 1).unwrap();
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    let send = |p: i32, payload: &str| {
        producer
            .send(BaseRecord::<(), _>::to("t").partition(p).payload(payload))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    };
    send(0, "p0 r0");
    send(1, "p1 r0");
    send(1, "p1 r1");
    let source = tidemark_jobs::KafkaSource {
        brokers: mock.bootstrap_servers(),
        topic: "t".to_string(),
        options: Default::default(),
        group_id: None,
        heartbeat_grace: Duration::from_secs(60),
        stream_retention: Duration::from_secs(86_400),
        broker_timeout: Duration::from_secs(300),
    };
    let mut reader = Reader::connect(&source, "j", 0, 1, true, &BTreeMap::new()).unwrap();
    // Generous deadlines: only a failure waits for them.
    let poll_until = |reader: &mut Reader, done: &dyn Fn(&Reader) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while !done(reader) && Instant::now() < deadline {
            match reader.poll() {
                Polled::Record(r) => got.push(String::from_utf8_lossy(r.payload()).into_owned()),
                Polled::Nothing => std::thread::sleep(Duration::from_millis(10)),
                _ => {}
            }
        }
        got
    };
    // Partition 1 waits (paced) while partition 0 is read past its backlog.
    reader.pace(|p| p == 0);
    let got = poll_until(&mut reader, &|r| r.at_eof(0));
    assert_eq!(got, ["p0 r0"]);
    // Other hosts write on in partition 0: read, it is not at its end.
    send(0, "p0 r1");
    let got = poll_until(&mut reader, &|r| !r.at_eof(0));
    assert_eq!(got, ["p0 r1"]);
    assert!(!reader.at_eof(0) && !reader.reached_end(1));

    // The stale stream holds partition 0 at minute 0; partition 1's backlog (not
    // read yet) starts at minute 30.
    let plan = Plan::new(&job());
    let mut streams = Streams::default();
    streams.insert("h", "stale", stream(&plan, 0, 0));
    let mut found = Discovered::new();
    found.insert(key("stale", 0), Found::known(0, 0, Some(0)));
    found.insert(
        key("b", 1),
        Found::known(1, 1, Some((30 * MIN) as WindowTime)),
    );
    let lanes = lanes(read_through(&reader, true), &streams, &found);
    let pacer = Pacer::new(6 * MIN, PaceBoard::new(1), 0);
    pace(&mut reader, &lanes, &pacer, true);
    let got = poll_until(&mut reader, &|r| r.reached_end(1));
    assert_eq!(
        got,
        ["p1 r0", "p1 r1"],
        "partition 1 stayed paused short of its backlog's end (lanes {lanes:?})"
    );
    assert!(reader.caught_up());
}

/// Review R16b: in a LIVE run the pass reads each partition only up to the
/// end it had at connect; records written after that reach the reading proper but
/// never the pass. A stream made this run whose shadow had not settled by the pass's
/// end (one line only, or heartbeats only) is bounded at what the pass saw — but its
/// next record, written after connect, may carry a line for an earlier window that
/// the stream counts (its own watermark has not passed it: an uninterrupted run
/// counts it too). `first_open` already let that window close: the source then
/// emits below its held capability (timely panics) or the numbers differ.
#[test]
fn rev16b_a_live_streams_records_after_the_pass_end_go_below_the_pass_bound() {
    use crate::kafka_source::discover::{FindCx, Finder};
    use crate::kafka_source::group::{AgentItem, RecordCx};
    use tidemark_kafka::wire::{self, GroupId};

    let job = job();
    let plan = Plan::new(&job);
    let mut parser = tidemark_sources::parse::LineParser::new(&job.parse, &plan.fields).unwrap();
    let t0: EventMs = 1_800_000_000_000; // a minute boundary
    let wall = t0 + 600 * MIN;
    let line = |t: EventMs| {
        format!(
            "{{\"time\":\"{}\"}}",
            jiff::Timestamp::from_millisecond(t).unwrap()
        )
    };
    #[derive(Clone, Copy)]
    enum Rec {
        Line(u64, EventMs),
        Beat(u64, EventMs),
    }
    let mut wrong = Vec::new();
    for (name, in_pass, after_pass) in [
        // A sparse host: one line at minute 30 (+1 s) in the pass; its next line, 2 s
        // earlier (minute 29, within max_out_of_orderness), written after connect.
        (
            "sparse",
            vec![Rec::Line(1, t0 + 30 * MIN + 1_000)],
            Rec::Line(2, t0 + 30 * MIN - 1_000),
        ),
        // A quiet host: heartbeats only in the pass (minute 20); it then writes a
        // line of minute 25, past its own watermark (heartbeat less grace).
        (
            "beats",
            vec![Rec::Beat(0, t0 + 20 * MIN)],
            Rec::Line(1, t0 + 25 * MIN),
        ),
    ] {
        let g = GroupId {
            host: "h".into(),
            group: name.into(),
            epoch: 7,
        };
        let encode = |r: Rec| match r {
            Rec::Line(seq, t) => (wire::line_headers(&g, seq, "1:1"), line(t)),
            Rec::Beat(seq, at) => (wire::heartbeat_headers(&g, seq, at), String::new()),
        };
        // The pass over partition 1 up to its end at connect.
        let mut finder = Finder::default();
        for (i, r) in in_pass.iter().enumerate() {
            let (headers, payload) = encode(*r);
            let headers: Vec<(&str, Option<&[u8]>)> = headers
                .iter()
                .map(|(k, v)| (*k, Some(v.as_slice())))
                .collect();
            let mut cx = FindCx {
                parser: &mut parser,
                plan: &plan,
                source: &job.source,
                wall_ms: wall,
                now: Instant::now(),
            };
            finder.record(1, i as i64, &headers, payload.as_bytes(), None, &mut cx);
        }
        let mut found = finder.finish_live(&plan);
        // Another stream, read well past minute 30, on partition 0.
        found.insert(key("a", 0), Found::known(0, 100, Some(0)));
        let mut streams = Streams::default();
        streams.insert("h", "a", stream(&plan, 0, t0 + 40 * MIN));
        // The reading proper: the same records, then one written after connect.
        let start = StreamStart {
            floor: 0,
            skip_below: EventMs::MIN,
            checkpointing: false,
            now: Instant::now(),
        };
        streams.insert("h", name, Stream::new(name, 1, &plan, start));
        let mut stats = crate::stats::JobStats::default();
        let (mut warned, mut warned_ahead) = (0, 0);
        let mut feed = |streams: &mut Streams, offset: i64, r: Rec| {
            let (_, payload) = encode(r);
            let item = match r {
                Rec::Line(seq, _) => AgentItem::Line {
                    seq,
                    line: payload.as_bytes(),
                    host: "h",
                },
                Rec::Beat(seq, at_ms) => AgentItem::Heartbeat { seq, at_ms },
            };
            let mut cx = RecordCx {
                parser: &mut parser,
                plan: &plan,
                wall_ms: wall,
                max_line: 1 << 20,
                stats: &mut stats,
                warned: &mut warned,
                heartbeat_grace_ms: 60_000,
                warned_ahead: &mut warned_ahead,
                append_ms: None,
            };
            let s = streams
                .iter_mut()
                .find(|(k, _)| k.group() == name)
                .unwrap()
                .1;
            s.agent_record(offset, &g.as_ref(), item, &mut cx);
        };
        for (i, r) in in_pass.iter().enumerate() {
            feed(&mut streams, i as i64, *r);
        }
        // Still catching up (partition 0 has more): windows close up to here.
        let released = first_open(&streams, &found, &plan).unwrap();
        feed(&mut streams, in_pass.len() as i64, after_pass);
        let s = streams.iter().find(|(k, _)| k.group() == name).unwrap().1;
        let counted = s.first_data_window();
        if counted.is_some_and(|w| w < released) {
            wrong.push(format!(
                "{name}: windows below {released} were let close while the pass had not \
                 seen all of the stream (live), then it counted a line in window {counted:?} \
                 (late lines: {})",
                stats.late_lines
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
