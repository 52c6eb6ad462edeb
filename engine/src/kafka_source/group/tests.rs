//! A stream killed after any record and restored from the checkpoint it would have
//! written emits exactly the windows an uninterrupted stream does.

use std::path::Path;
use std::time::Instant;

use tidemark_jobs::Job;
use tidemark_kafka::wire::GroupId;
use tidemark_sources::parse::LineParser;

use super::*;
use crate::kafka_source::resume::KafkaBoard;

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
max_jump = "1m"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["v"]
[[sink]]
kind = "stdout"
series = "hosts"
"#;
    tidemark_jobs::from_str(text, "j.toml", Path::new("/")).unwrap()
}

enum Rec {
    Line(u64, i64),
    Beat(u64, i64),
}

/// Seconds: disorder, stragglers, a heartbeat whose floor makes later stragglers
/// late, a jump ahead that the next line does not confirm, and an agent that
/// resends lines 5..=8.
fn records() -> Vec<Rec> {
    use Rec::*;
    let s = |x: i64| 1_800_000_000_000 + x * 1000;
    let mut seq = 0;
    let mut line = |t: i64| {
        seq += 1;
        Line(seq, s(t))
    };
    let mut r = vec![
        line(10),
        line(50),
        line(62),
        line(58),
        line(70),
        line(40),
        line(95),
        line(130),
    ];
    // The agent restarted from its checkpoint at 4: 5..=8 again.
    for (q, t) in [(5, 70), (6, 40), (7, 95), (8, 130)] {
        r.push(Line(q, s(t)));
    }
    let mut seq = 8;
    let mut line = |t: i64| {
        seq += 1;
        Line(seq, s(t))
    };
    r.extend([line(128), line(190), line(185)]);
    // With the default grace (1m) its floor is 260 s.
    r.push(Beat(11, s(320)));
    r.extend([
        line(240),
        line(262),
        line(900),
        line(263),
        line(300),
        line(250),
        line(310),
    ]);
    r
}

fn group() -> GroupId {
    GroupId {
        host: "h".into(),
        group: "/g".into(),
        epoch: 7,
    }
}

/// Feeds records `from..` to `stream`; returns the partials it emits, by window.
fn feed(
    stream: &mut Stream,
    records: &[Rec],
    from: usize,
    plan: &Plan,
    parser: &mut LineParser,
    out: &mut Vec<String>,
    mut at: impl FnMut(usize, &Stream),
) -> JobStats {
    let g = group();
    let mut stats = JobStats::default();
    let mut warned = 0;
    let mut warned_ahead = 0;
    for (i, r) in records.iter().enumerate().skip(from) {
        let text;
        let item = match r {
            Rec::Line(seq, t) => {
                let ts = jiff::Timestamp::from_millisecond(*t).unwrap();
                text = format!("{{\"time\":\"{ts}\",\"v\":\"x{}\"}}", t % 3);
                AgentItem::Line {
                    seq: *seq,
                    line: text.as_bytes(),
                    host: "h",
                }
            }
            Rec::Beat(seq, t) => AgentItem::Heartbeat {
                seq: *seq,
                at_ms: *t,
            },
        };
        let mut cx = RecordCx {
            parser,
            plan,
            wall_ms: 2_000_000_000_000,
            max_line: 1 << 20,
            stats: &mut stats,
            warned: &mut warned,
            heartbeat_grace_ms: 60_000,
            warned_ahead: &mut warned_ahead,
            append_ms: None,
        };
        stream.agent_record(i as i64, &g.as_ref(), item, &mut cx);
        stream.close_windows(plan, |t, p| {
            out.push(format!("{t} {:?} {:?}", p.key, p.acc))
        });
        at(i, stream);
    }
    stream.finish();
    stream.close_windows(plan, |t, p| {
        out.push(format!("{t} {:?} {:?}", p.key, p.acc))
    });
    stats
}

fn start(skip_below: EventMs) -> StreamStart {
    StreamStart {
        floor: 0,
        skip_below,
        checkpointing: true,
        now: Instant::now(),
    }
}

#[test]
fn a_stream_restored_after_any_record_emits_what_an_uninterrupted_one_does() {
    let job = job();
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let records = records();
    // Uninterrupted, and the checkpoint it would write after each record.
    let mut whole = Vec::new();
    let mut checkpoints = Vec::new();
    let mut s = Stream::new("/g", 0, &plan, start(EventMs::MIN));
    let first = feed(
        &mut s,
        &records,
        0,
        &plan,
        &mut parser,
        &mut whole,
        |i, s| {
            // Every window below the stream's first open one is in the sinks.
            let frontier = s.first_open(&plan) as EventMs;
            let board = KafkaBoard::default();
            board.publish(
                [(("h", "/g"), 0, s.marks.as_ref().unwrap())],
                [(0, i as i64 + 1)],
            );
            checkpoints.push((frontier, board.checkpoint(frontier)));
        },
    );
    assert!(whole.len() > 4, "{whole:?}");
    assert_eq!((first.kafka_resent_lines, first.kafka_lost_lines), (4, 0));
    for (i, (frontier, cp)) in checkpoints.iter().enumerate() {
        let restored = &cp.streams[0];
        let mut s = Stream::restored(restored, &plan, start(*frontier));
        let mut again = Vec::new();
        let from = cp.partitions[0].next_offset as usize;
        let stats = feed(
            &mut s,
            &records,
            from,
            &plan,
            &mut parser,
            &mut again,
            |_, _| {},
        );
        // Its sequence goes on where it was: nothing looks lost or new.
        assert_eq!(
            (stats.kafka_lost_lines, stats.kafka_new_epochs),
            (0, 0),
            "killed after record {i}"
        );
        let want: Vec<&String> = whole
            .iter()
            .filter(|p| p.split(' ').next().unwrap().parse::<EventMs>().unwrap() >= *frontier)
            .collect();
        let got: Vec<&String> = again.iter().collect();
        assert_eq!(got, want, "killed after record {i}, resumed at {from}");
    }
}

/// Feeds `records` to a new stream with `wall_ms` as this machine's clock; returns
/// the lines counted late, the heartbeats ignored as ahead, and the watermark.
fn beat_then_lines(
    records: &[Rec],
    wall_ms: EventMs,
    grace_ms: i64,
) -> (u64, u64, Option<EventMs>) {
    beat_then_lines_appended(records, wall_ms, None, grace_ms)
}

/// [`beat_then_lines`], each record appended by the broker at `append_ms`
/// (`LogAppendTime`) when given.
fn beat_then_lines_appended(
    records: &[Rec],
    wall_ms: EventMs,
    append_ms: Option<EventMs>,
    grace_ms: i64,
) -> (u64, u64, Option<EventMs>) {
    let job = job();
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let mut s = Stream::new("/g", 0, &plan, start(EventMs::MIN));
    let g = group();
    let mut stats = JobStats::default();
    let (mut warned, mut warned_ahead) = (0, 0);
    let mut wm = None;
    for (i, r) in records.iter().enumerate() {
        let text;
        let item = match r {
            Rec::Line(seq, t) => {
                let ts = jiff::Timestamp::from_millisecond(*t).unwrap();
                text = format!("{{\"time\":\"{ts}\",\"v\":\"x\"}}");
                AgentItem::Line {
                    seq: *seq,
                    line: text.as_bytes(),
                    host: "h",
                }
            }
            Rec::Beat(seq, t) => AgentItem::Heartbeat {
                seq: *seq,
                at_ms: *t,
            },
        };
        let mut cx = RecordCx {
            parser: &mut parser,
            plan: &plan,
            wall_ms,
            max_line: 1 << 20,
            stats: &mut stats,
            warned: &mut warned,
            heartbeat_grace_ms: grace_ms,
            warned_ahead: &mut warned_ahead,
            append_ms,
        };
        s.agent_record(i as i64, &g.as_ref(), item, &mut cx);
        wm = s.wm.get();
    }
    (stats.late_lines, stats.kafka_heartbeats_ahead, wm)
}

/// Review R14k: a heartbeat at T moved the watermark to T - max_out_of_orderness, so
/// a line written after it but stamped a little earlier (a request logged at its end
/// with its start time, a buffered writer) was late — which `run --until-eof` over
/// the same file counts. Within `heartbeat_grace` it is on time.
#[test]
fn a_heartbeat_leaves_lines_stamped_within_its_grace_on_time() {
    use Rec::*;
    let s = |x: i64| 1_800_000_000_000 + x * 1000;
    let wall = s(400);
    // Line 4 is written 30 s after the heartbeat found the file at its end, stamped
    // 30 s before it: on time (it was late when the heartbeat's floor was 155 s).
    // Line 3 is stamped more than the grace (1m) before it: late.
    let records = [
        Line(1, s(100)),
        Line(2, s(101)),
        Beat(2, s(160)),
        Line(3, s(99)),
        Line(4, s(130)),
    ];
    let (late, ahead, wm) = beat_then_lines(&records, wall, 60_000);
    assert_eq!((late, ahead), (1, 0));
    assert_eq!(wm, Some(s(125)));
    // Never further than a line stamped T would move it: a grace below the
    // disorder bound (5 s) is the disorder bound.
    let records = [Line(1, s(100)), Line(2, s(101)), Beat(2, s(300))];
    assert_eq!(beat_then_lines(&records, wall, 60_000).2, Some(s(240)));
    assert_eq!(beat_then_lines(&records, wall, 1_000).2, Some(s(295)));
}

/// Review R14k: a heartbeat stamped further ahead of this machine's clock than
/// max_clock_skew (the agent's clock is wrong) must not push the watermark there:
/// its time is ignored, counted, warned; its sequence still counts.
#[test]
fn a_heartbeat_from_the_future_is_counted_and_its_time_ignored() {
    use Rec::*;
    let s = |x: i64| 1_800_000_000_000 + x * 1000;
    let wall = s(200);
    // max_clock_skew is 10m: the heartbeat is 20m ahead.
    let records = [
        Line(1, s(100)),
        Line(2, s(101)),
        Beat(2, s(200 + 1200)),
        Line(3, s(150)),
    ];
    let (late, ahead, wm) = beat_then_lines(&records, wall, 60_000);
    assert_eq!((late, ahead), (0, 1));
    assert_eq!(wm, Some(s(145)));
    // Within the skew it moves the watermark as usual.
    let records = [Line(1, s(100)), Line(2, s(101)), Beat(2, s(200 + 500))];
    assert_eq!(
        beat_then_lines(&records, wall, 60_000),
        (0, 0, Some(s(640)))
    );
}

mod resume;
