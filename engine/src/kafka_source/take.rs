//! Taking one record: an agent's line or heartbeat goes to its (host, group)
//! stream, another shipper's line to its partition's stream. Nothing is allocated
//! per record once its stream exists: names are looked up as the record borrows
//! them ([`super::streams`]).

use std::time::Instant;

use tidemark_jobs::HostFrom;
use tidemark_kafka::wire::{self, AgentRecord};

use super::consumer::Record;
use super::group::{AgentItem, RecordCx, Stream};
use super::{SourceState, MAX_WARNINGS};
use crate::time::EventMs;

impl SourceState {
    /// One record: an agent's line or heartbeat, or another shipper's line.
    pub(super) fn take(&mut self, record: &Record<'_>, now: Instant, wall_ms: EventMs) {
        let (partition, offset) = (record.partition(), record.offset());
        let decoded = wire::decode(record.headers(), record.payload());
        let job = &self.ctx.job;
        let (group, item) = match decoded {
            Err(e) => {
                self.bad_record(record, format_args!("{e}"));
                return;
            }
            Ok(AgentRecord::Foreign { payload }) => {
                self.take_foreign(record, payload, now, wall_ms);
                return;
            }
            Ok(AgentRecord::Line {
                group, seq, line, ..
            }) => {
                // The fixed host label, or the agent's.
                let host = match &job.source.host {
                    HostFrom::Value(v) => v.as_str(),
                    _ => group.host,
                };
                (group, AgentItem::Line { seq, line, host })
            }
            Ok(AgentRecord::Heartbeat { group, seq, at_ms }) => {
                (group, AgentItem::Heartbeat { seq, at_ms })
            }
        };
        let start = self.stream_start(now);
        let plan = &self.ctx.plan;
        let stream = self.streams.agent(
            group.host,
            group.group,
            partition,
            &mut self.delta,
            |gone| match gone {
                Some(g) => Stream::returned(group.group, partition, plan, start, g.seq, g.clock),
                None => Stream::new(group.group, partition, plan, start),
            },
        );
        stream.touched(now);
        let mut cx = RecordCx {
            parser: self.parser.as_mut().expect("built in step"),
            plan,
            wall_ms,
            max_line: job.source.max_line_bytes,
            stats: &mut self.delta,
            warned: &mut self.warned.sequence,
            heartbeat_grace_ms: heartbeat_grace_ms(&job.source),
            warned_ahead: &mut self.warned.ahead,
            append_ms: record.append_time_ms(),
        };
        stream.agent_record(offset, &group, item, &mut cx);
    }

    /// A record not from an agent: a line of its partition's stream, labelled with
    /// the host its header, a field or the job names.
    fn take_foreign(
        &mut self,
        record: &Record<'_>,
        payload: &[u8],
        now: Instant,
        wall_ms: EventMs,
    ) {
        let job = &self.ctx.job;
        let host = match &job.source.host {
            HostFrom::Value(v) => v.as_str(),
            HostFrom::Record { header } => {
                let found = record
                    .headers()
                    .filter(|(k, _)| *k == header.as_str())
                    .last()
                    .and_then(|(_, v)| std::str::from_utf8(v.unwrap_or_default()).ok());
                match found {
                    Some(h) => h,
                    None => {
                        let why = format!(
                            "a record not from a tidemark agent has no UTF-8 header {header:?} to take its host from. hint: set [source] host = {{ header = \"...\" }}, {{ field = \"...\" }} or {{ value = \"...\" }}"
                        );
                        self.bad_record(record, format_args!("{why}"));
                        return;
                    }
                }
            }
            // The plan reads it from the parsed line.
            HostFrom::Field(_) | HostFrom::PathRegex(_) => "",
        };
        let start = self.stream_start(now);
        let plan = &self.ctx.plan;
        let partition = record.partition();
        let stream = self
            .streams
            .foreign(partition, |name| Stream::new(name, partition, plan, start));
        stream.touched(now);
        let mut cx = RecordCx {
            parser: self.parser.as_mut().expect("built in step"),
            plan,
            wall_ms,
            max_line: job.source.max_line_bytes,
            stats: &mut self.delta,
            warned: &mut self.warned.sequence,
            heartbeat_grace_ms: heartbeat_grace_ms(&job.source),
            warned_ahead: &mut self.warned.ahead,
            append_ms: None,
        };
        stream.plain_record(record.offset(), payload, host, &mut cx);
    }

    /// A record that cannot be used: skipped, counted, warned (rate-limited).
    fn bad_record(&mut self, record: &Record<'_>, why: std::fmt::Arguments<'_>) {
        self.delta.kafka_bad_records += 1;
        self.warned.bad += 1;
        if self.warned.bad <= MAX_WARNINGS {
            tracing::warn!(
                "kafka source of job {:?}: partition {} offset {}: {why}; skipped",
                self.ctx.job.name,
                record.partition(),
                record.offset()
            );
        }
    }
}

/// `[source] heartbeat_grace` in ms (the reading and the discovery pass judge
/// heartbeats alike).
pub(super) fn heartbeat_grace_ms(source: &tidemark_jobs::Source) -> i64 {
    source
        .kafka
        .as_ref()
        .map_or(60_000, |k| k.heartbeat_grace.as_millis() as i64)
}
