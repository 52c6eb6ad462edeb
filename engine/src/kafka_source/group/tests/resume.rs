//! Streams across checkpoints and restarts: quiet streams, restored ones, heartbeats
//! judged again after a restart, and chained kills (review R15k).

use super::*;

/// Two streams of one partition: `b` writes a little, a heartbeat closes its
/// windows, then it is quiet while `a` goes on, and comes back once. Seconds.
fn two_streams() -> Vec<(usize, Rec)> {
    use Rec::*;
    let s = |x: i64| 1_800_000_000_000 + x * 1000;
    let mut out = Vec::new();
    let (mut qa, mut qb) = (0, 0);
    for i in 0..60i64 {
        qa += 1;
        out.push((0, Line(qa, s(10 + i * 7 - (i % 4) * 3))));
        if i < 8 {
            qb += 1;
            out.push((1, Line(qb, s(20 + i * 9))));
        }
        if i == 9 {
            // Far ahead of `a`, within max_clock_skew of the test's clock.
            out.push((1, Beat(qb, s(3_000))));
        }
        if i == 50 {
            // It comes back: its sequence goes on.
            qb += 1;
            out.push((1, Line(qb, s(3_100))));
        }
    }
    out
}

/// Called after each record with the streams.
type AfterRecord<'a> = dyn FnMut(usize, &[Stream; 2]) + 'a;

/// Review R14k's quiet stream: resuming it at its partition's read offset (not at
/// its last record) after a kill at any record gives what an uninterrupted run
/// gives, with the partition read again from the least of the streams' points.
#[test]
fn a_quiet_stream_resumed_at_its_partitions_offset_after_any_record_loses_nothing() {
    let job = job();
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let records = two_streams();
    let groups = [
        GroupId {
            host: "a".into(),
            group: "/g".into(),
            epoch: 1,
        },
        GroupId {
            host: "b".into(),
            group: "/g".into(),
            epoch: 2,
        },
    ];
    let run = |streams: &mut [Stream; 2],
               from: usize,
               parser: &mut LineParser,
               out: &mut Vec<String>,
               mut at: Box<AfterRecord<'_>>| {
        let mut stats = JobStats::default();
        let (mut warned, mut warned_ahead) = (0, 0);
        for (i, (k, r)) in records.iter().enumerate().skip(from) {
            let text;
            let item = match r {
                Rec::Line(seq, t) => {
                    let ts = jiff::Timestamp::from_millisecond(*t).unwrap();
                    text = format!("{{\"time\":\"{ts}\",\"v\":\"x{}\"}}", t % 3);
                    AgentItem::Line {
                        seq: *seq,
                        line: text.as_bytes(),
                        host: &groups[*k].host,
                    }
                }
                Rec::Beat(seq, t) => AgentItem::Heartbeat {
                    seq: *seq,
                    at_ms: *t,
                },
            };
            let mut cx = RecordCx {
                parser,
                plan: &plan,
                wall_ms: 1_800_003_000_000,
                max_line: 1 << 20,
                stats: &mut stats,
                warned: &mut warned,
                heartbeat_grace_ms: 60_000,
                warned_ahead: &mut warned_ahead,
                append_ms: None,
            };
            streams[*k].agent_record(i as i64, &groups[*k].as_ref(), item, &mut cx);
            for (k, s) in streams.iter_mut().enumerate() {
                s.close_windows(&plan, |t, p| out.push(format!("{t} {k} {:?}", p.acc)));
            }
            at(i, streams);
        }
        for (k, s) in streams.iter_mut().enumerate() {
            s.finish();
            s.close_windows(&plan, |t, p| out.push(format!("{t} {k} {:?}", p.acc)));
        }
        stats
    };
    let mut whole = Vec::new();
    let mut checkpoints = Vec::new();
    let mut streams = [
        Stream::new("/g", 0, &plan, start(EventMs::MIN)),
        Stream::new("/g", 0, &plan, start(EventMs::MIN)),
    ];
    run(
        &mut streams,
        0,
        &mut parser,
        &mut whole,
        Box::new(|i, s| {
            let frontier = s.iter().map(|s| s.first_open(&plan)).min().unwrap() as EventMs;
            let board = KafkaBoard::default();
            board.publish(
                [
                    (("a", "/g"), 0, s[0].marks.as_ref().unwrap()),
                    (("b", "/g"), 0, s[1].marks.as_ref().unwrap()),
                ],
                [(0, i as i64 + 1)],
            );
            checkpoints.push((frontier, board.checkpoint(frontier)));
        }),
    );
    let mut quiet_past_its_tail = 0;
    for (i, (frontier, cp)) in checkpoints.iter().enumerate() {
        let from = cp.partitions[0].next_offset as usize;
        let restore = |host: &str| {
            cp.streams.iter().find(|s| s.host == host).map_or_else(
                || Stream::new("/g", 0, &plan, start(*frontier)),
                |c| Stream::restored(c, &plan, start(*frontier)),
            )
        };
        if let Some(b) = cp.streams.iter().find(|s| s.host == "b") {
            if b.offset > 19 {
                quiet_past_its_tail += 1;
            }
        }
        let mut streams = [restore("a"), restore("b")];
        let mut again = Vec::new();
        let stats = run(
            &mut streams,
            from,
            &mut parser,
            &mut again,
            Box::new(|_, _| {}),
        );
        assert_eq!(
            (stats.kafka_lost_lines, stats.kafka_new_epochs),
            (0, 0),
            "killed after record {i}"
        );
        let mut want: Vec<&String> = whole
            .iter()
            .filter(|p| p.split(' ').next().unwrap().parse::<EventMs>().unwrap() >= *frontier)
            .collect();
        let mut got: Vec<&String> = again.iter().collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "killed after record {i}, resumed at {from}");
    }
    // The case the fix is about was met: `b`'s last record is 18 (its heartbeat).
    assert!(quiet_past_its_tail > 10, "{quiet_past_its_tail}");
}

/// Review R15k: a restored stream is published (it is new, so dirty) before it
/// read anything again: its marks were then empty and its tail its checkpoint's
/// offset, so the next checkpoint — the first offer after a start writes one at
/// once — said `seen_to = offset`, losing the `seen_to` it was restored with. A second kill then makes every line it had read between the two
/// (of windows already written) count as `late_after_written`: "new lines of
/// windows an earlier run already wrote; not in the output", a false alarm.
#[test]
fn a_restored_stream_republished_before_rereading_keeps_its_seen_to() {
    let job = job();
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let records = records();
    let mut checkpoints = Vec::new();
    let mut s = Stream::new("/g", 0, &plan, start(EventMs::MIN));
    feed(
        &mut s,
        &records,
        0,
        &plan,
        &mut parser,
        &mut Vec::new(),
        |i, s| {
            let frontier = s.first_open(&plan) as EventMs;
            let board = KafkaBoard::default();
            board.publish(
                [(("h", "/g"), 0, s.marks.as_ref().unwrap())],
                [(0, i as i64 + 1)],
            );
            checkpoints.push((frontier, board.checkpoint(frontier)));
        },
    );
    let mut differ = Vec::new();
    for (i, (frontier, cp)) in checkpoints.iter().enumerate() {
        // Restarted from `cp`: the stream is restored and published at once, before
        // its partition gave a record; the first checkpoint is written then.
        let board = KafkaBoard::default();
        board.restore(cp);
        let restored = Stream::restored(&cp.streams[0], &plan, start(*frontier));
        board.publish(
            [(("h", "/g"), 0, restored.marks.as_ref().unwrap())],
            [(0, cp.partitions[0].next_offset)],
        );
        let again = board.checkpoint(*frontier);
        // Killed again: what a restart from either checkpoint counts.
        let late_after = |cp: &crate::kafka_source::resume::KafkaCheckpoint,
                          parser: &mut LineParser| {
            let mut s = Stream::restored(&cp.streams[0], &plan, start(*frontier));
            let from = cp.partitions[0].next_offset as usize;
            feed(
                &mut s,
                &records,
                from,
                &plan,
                parser,
                &mut Vec::new(),
                |_, _| {},
            )
            .late_after_written
        };
        let (first, second) = (late_after(cp, &mut parser), late_after(&again, &mut parser));
        if (cp.streams[0].seen_to, first) != (again.streams[0].seen_to, second) {
            differ.push((
                i,
                cp.streams[0].seen_to,
                again.streams[0].seen_to,
                first,
                second,
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "(killed after record, seen_to restored, seen_to rewritten, late_after_written then, after a second kill): {differ:?}"
    );
}

/// Review R15k: whether a heartbeat is "ahead" was judged against the consuming
/// machine's clock when the record is read. A restart reads the records after a
/// stream's resume point again, later: a heartbeat that was ahead (ignored) the
/// first time is in time then and moves the watermark, so a line the
/// uninterrupted run counted is late after the restart — the numbers differ.
/// Now a heartbeat is judged against the broker's append time when the topic
/// stamps records so (LogAppendTime): the same at every read. A topic with the
/// producer's time (CreateTime, the agent's own clock) leaves only this machine's
/// clock: there the re-read still differs, as docs/kafka.md says.
#[test]
fn a_heartbeat_ahead_of_the_brokers_append_time_is_ignored_at_every_read() {
    use Rec::*;
    let s = |x: i64| 1_800_000_000_000 + x * 1000;
    // The agent's clock is 20m ahead (max_clock_skew is 10m); the app's lines carry
    // the right time (stamped by the upstream, or a different time source).
    let records = [
        Line(1, s(100)),
        Line(2, s(101)),
        Beat(2, s(200 + 1200)),
        Line(3, s(150)),
    ];
    // LogAppendTime: the broker appended them at s(200). Read then, and again 15
    // minutes later (a kill -9 and restart; the stream resumed at its window's
    // first line, offset 0).
    let uninterrupted = beat_then_lines_appended(&records, s(200), Some(s(200)), 60_000);
    let replayed = beat_then_lines_appended(&records, s(200 + 900), Some(s(200)), 60_000);
    assert_eq!(
        (uninterrupted.0, uninterrupted.1),
        (0, 1),
        "(late lines, heartbeats ignored as ahead)"
    );
    assert_eq!(
        (uninterrupted.0, uninterrupted.1),
        (replayed.0, replayed.1),
        "(late lines, heartbeats ignored as ahead): the first read vs the one after a restart"
    );
    // CreateTime (documented): judged by this machine's clock at read time.
    let first = beat_then_lines(&records, s(200), 60_000);
    let again = beat_then_lines(&records, s(200 + 900), 60_000);
    assert_eq!(((first.0, first.1), (again.0, again.1)), ((0, 1), (1, 0)));
}

/// A run's windows emitted (start, text) and checkpoints (frontier, checkpoint).
type RunOut = (
    Vec<(EventMs, String)>,
    Vec<(EventMs, crate::kafka_source::resume::KafkaCheckpoint)>,
);

/// Review R15k: three streams of one partition in random interleavings (disorder,
/// resends, heartbeats, one stream going quiet), killed at random records and
/// restarted from the last checkpoint, again and again, with the board used as the
/// source uses it (restored, then only changed streams published, marks pruned to
/// the committed frontier): the windows written equal the uninterrupted run's.
#[test]
fn r15k_chained_kills_of_three_streams_in_one_partition_equal_an_uninterrupted_run() {
    let job = job();
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let hosts = ["a", "b", "c"];
    let groups: Vec<GroupId> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| GroupId {
            host: (*h).into(),
            group: "/g".into(),
            epoch: i as u64 + 1,
        })
        .collect();
    let base = 1_800_000_000_000i64;
    let seed0: u64 = std::env::var("R15K_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    println!("seed {seed0}");
    for round in 0..40u64 {
        let mut x = seed0
            .wrapping_add(round)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            | 1;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        // Records: (stream, Rec).
        let mut recs: Vec<(usize, Rec)> = Vec::new();
        let mut seq = [0u64; 3];
        let mut sent: [Vec<(u64, i64)>; 3] = Default::default();
        let quiet_after = 40 + rnd(60) as i64;
        for k in 0..3 {
            seq[k] += 1;
            recs.push((k, Rec::Line(seq[k], base + 1000 * k as i64)));
            sent[k].push((seq[k], base + 1000 * k as i64));
        }
        for i in 0..160i64 {
            let k = if i > quiet_after {
                rnd(2) as usize
            } else {
                rnd(3) as usize
            };
            let t = base + i * 2500 - rnd(7000) as i64;
            match rnd(20) {
                0 => {
                    // A heartbeat: everything sent, as of a little after now.
                    let at = base + i * 2500 + rnd(90_000) as i64;
                    recs.push((k, Rec::Beat(seq[k], at)));
                }
                1 if sent[k].len() > 3 => {
                    // A resend of its last few lines.
                    let n = sent[k].len();
                    for &(q, t) in &sent[k][n - 3..] {
                        recs.push((k, Rec::Line(q, t)));
                    }
                }
                _ => {
                    seq[k] += 1;
                    sent[k].push((seq[k], t));
                    recs.push((k, Rec::Line(seq[k], t)));
                }
            }
        }
        let n = recs.len();
        // One run from `cp` (None: the start) until `kill` (None: the end).
        // Returns the windows it emitted and its checkpoints (record index, cp).
        let mut run = |cp: Option<&(EventMs, crate::kafka_source::resume::KafkaCheckpoint)>,
                       kill: Option<usize>,
                       every: usize|
         -> RunOut {
            let board = KafkaBoard::default();
            let (skip, from) = match cp {
                Some((f, c)) => {
                    board.restore(c);
                    (*f, c.partitions[0].next_offset as usize)
                }
                None => (EventMs::MIN, 0),
            };
            let mut committed = skip;
            let mut pending: Option<EventMs> = None;
            let mut streams: Vec<Stream> = hosts
                .iter()
                .map(|h| {
                    cp.and_then(|(_, c)| c.streams.iter().find(|s| s.host == *h))
                        .map_or_else(
                            || Stream::new("/g", 0, &plan, start(skip)),
                            |c| Stream::restored(c, &plan, start(skip)),
                        )
                })
                .collect();
            let publish = |streams: &mut Vec<Stream>, committed: EventMs, read: i64| {
                let mut changed = Vec::new();
                for (k, s) in streams.iter_mut().enumerate() {
                    if s.dirty {
                        s.prune_marks(committed);
                        s.dirty = false;
                        changed.push(k);
                    }
                }
                board.publish(
                    changed
                        .iter()
                        .map(|k| ((hosts[*k], "/g"), 0, streams[*k].marks.as_ref().unwrap())),
                    [(0, read)],
                );
            };
            publish(&mut streams, committed, from as i64);
            let mut out = Vec::new();
            let mut cps = Vec::new();
            let mut stats = JobStats::default();
            let (mut warned, mut warned_ahead) = (0, 0);
            let end = kill.unwrap_or(n);
            for (i, (k, r)) in recs.iter().enumerate().take(end).skip(from) {
                let text;
                let item = match r {
                    Rec::Line(seq, t) => {
                        let ts = jiff::Timestamp::from_millisecond(*t).unwrap();
                        text = format!("{{\"time\":\"{ts}\",\"v\":\"x{}\"}}", t % 3);
                        AgentItem::Line {
                            seq: *seq,
                            line: text.as_bytes(),
                            host: hosts[*k],
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
                    wall_ms: base + 10_000_000,
                    max_line: 1 << 20,
                    stats: &mut stats,
                    warned: &mut warned,
                    heartbeat_grace_ms: 60_000,
                    warned_ahead: &mut warned_ahead,
                    append_ms: None,
                };
                streams[*k].agent_record(i as i64, &groups[*k].as_ref(), item, &mut cx);
                publish(&mut streams, committed, i as i64 + 1);
                for (k, s) in streams.iter_mut().enumerate() {
                    s.close_windows(&plan, |t, p| {
                        out.push((t as EventMs, format!("{t} {k} {:?}", p.acc)))
                    });
                }
                if i % every == 0 {
                    // Everything emitted is in the sinks: commit the frontier.
                    let f = streams.iter().map(|s| s.first_open(&plan)).min().unwrap() as EventMs;
                    // Odd rounds: the sinks lag, the frontier committed is the one
                    // seen at the previous checkpoint.
                    let seen = f.max(committed);
                    let f = if round % 2 == 1 {
                        pending.unwrap_or(committed)
                    } else {
                        seen
                    };
                    pending = Some(seen);
                    cps.push((f, board.checkpoint(f)));
                    committed = f;
                }
            }
            if kill.is_none() {
                for (k, s) in streams.iter_mut().enumerate() {
                    s.finish();
                    s.close_windows(&plan, |t, p| {
                        out.push((t as EventMs, format!("{t} {k} {:?}", p.acc)))
                    });
                }
            }
            let _ = &mut cps;
            (out, cps)
        };
        let (whole, _) = run(None, None, usize::MAX);
        let mut want: Vec<String> = whole.iter().map(|(_, s)| s.clone()).collect();
        want.sort();
        // Chained kills.
        let every = 1 + rnd(7) as usize;
        let mut written: Vec<String> = Vec::new();
        let mut cp: Option<(EventMs, crate::kafka_source::resume::KafkaCheckpoint)> = None;
        let mut at = 0usize;
        let mut kills = Vec::new();
        loop {
            let kill = at + 5 + rnd(60) as usize;
            let kill = (kill < n).then_some(kill);
            let (out, cps) = run(cp.as_ref(), kill, every);
            let last = cps.last().cloned().or(cp.clone());
            let below = last.as_ref().map_or(EventMs::MIN, |(f, _)| *f);
            let above = cp.as_ref().map_or(EventMs::MIN, |(f, _)| *f);
            if kill.is_none() {
                written.extend(out.into_iter().filter(|(t, _)| *t >= above).map(|(_, s)| s));
                break;
            }
            // What this run committed: its windows between the checkpoint it
            // started from and its last checkpoint.
            written.extend(
                out.into_iter()
                    .filter(|(t, _)| *t >= above && *t < below)
                    .map(|(_, s)| s),
            );
            kills.push(kill.unwrap());
            cp = last;
            at = kill.unwrap().max(at);
        }
        written.sort();
        assert_eq!(
            written, want,
            "seed {seed0} round {round}: killed at {kills:?}, checkpoint every {every}"
        );
    }
}
