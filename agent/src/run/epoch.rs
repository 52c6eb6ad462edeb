//! New epochs for groups whose files had a discontinuity (see [`crate::group`]):
//! drawn once a broken epoch has nothing in flight, written to the checkpoint, and
//! only then its first lines sent.

use tidemark_kafka::wire::RecordHeaders;
use tidemark_sources::file::EscapedPath;
use tidemark_sources::tail::{FileId, Position};

use super::{draw_epoch, Shipper};
use crate::error::AgentError;
use crate::group::{Numbering, Ship};
use crate::producer::{Ack, Sender};
use crate::stats::Stats;

impl Shipper<'_> {
    /// Draws the epochs due, writes them to the checkpoint (durably, before any
    /// line of theirs is queued: a `kill -9` after a line of a new epoch was sent
    /// must find that epoch on restart, or the line's number would be given again
    /// under another), then sends the lines held for them.
    pub(super) fn settle(&mut self) -> Result<(), AgentError> {
        let mut drawn = false;
        for g in self.groups.iter_mut().flatten() {
            let ready = matches!(&g.ship.numbering, Numbering::Broken { held } if !held.is_empty());
            if !ready || g.in_flight() > 0 {
                continue;
            }
            let epoch = draw_epoch(Some(g.ship.id.epoch))?;
            let acked = g.ship.acked_seq();
            let Some(old) = g.draw_epoch(epoch) else {
                continue;
            };
            drawn = true;
            Stats::add(&self.stats.new_epochs, 1);
            let from = match &g.ship.numbering {
                Numbering::Drawn { held, .. } => held.front().map(|h| h.start.clone()),
                _ => None,
            };
            tracing::warn!(
                "{}: its lines no longer continue the ones sent (the file source reported \
                 a discontinuity: see its warning). They are numbered in a new epoch \
                 {epoch:016x} from {}, so that no consumer takes them for copies of lines \
                 after {acked} of epoch {old:016x}, which the broker may hold. Lines may \
                 have been read again or missed across it",
                EscapedPath(&g.live),
                from.map_or_else(
                    || "the group's first file".to_string(),
                    |p| format!("byte {} of {}", p.offset, EscapedPath(&p.path))
                ),
            );
        }
        if drawn {
            self.checkpoint(true)?;
        }
        for i in 0..self.groups.len() {
            let Some(g) = self.groups[i].as_mut() else {
                continue;
            };
            let Some(held) = g.release() else {
                continue;
            };
            let sent = held.len();
            for h in held {
                send_line(
                    &self.sender,
                    &mut g.ship,
                    i,
                    &h.start,
                    &h.line,
                    &mut self.file_label,
                )?;
            }
            if sent > 0 {
                g.last_sent = Some(std::time::Instant::now());
            }
            self.in_flight += sent;
            Stats::add(&self.stats.lines_sent, sent as u64);
        }
        self.note_in_flight();
        Ok(())
    }
}

/// Numbers the line starting at `start` (group index `i`) and queues it.
pub(super) fn send_line(
    sender: &Sender,
    ship: &mut Ship,
    i: usize,
    start: &Position,
    line: &[u8],
    file_label: &mut Option<(FileId, String)>,
) -> Result<(), AgentError> {
    let seq = ship.send(start);
    let label = match file_label {
        Some((id, label)) if *id == start.file => label,
        _ => {
            let id = &start.file;
            let label = format!("{}:{}:{:016x}", id.dev, id.ino, id.fingerprint);
            &file_label.insert((id.clone(), label)).1
        }
    };
    let headers = RecordHeaders::Line {
        group: &ship.id,
        seq,
        file: label,
    };
    sender.send(
        ship.partition,
        &ship.key,
        line,
        headers,
        Ack { group: i, seq },
    )
}
