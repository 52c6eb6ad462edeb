//! Cases the model found, pinned as scripts (each fails without its fix).

use super::{Op, World};

fn run_script(mut w: World, script: &[Op]) {
    for op in script {
        w.apply(op);
    }
    w.finish();
}

fn write(lines: u8, tail: Option<u8>) -> Op {
    Op::Write {
        lines,
        payload: 0,
        crlf: false,
        tail,
        long: false,
    }
}

/// Found by the model once it parked files: a file closed mid-read and then
/// truncated in place was taken for deleted — its cut unterminated line was
/// delivered as a line and the truncation reported as a loss while parked.
#[test]
fn regression_a_file_truncated_while_closed_mid_read_is_a_truncation() {
    let script = [write(0, Some(0)), Op::PacedStop { lines: 0 }, Op::Truncate];
    // Its birth time settled when it was closed: the clock runs ahead.
    run_script(World::settled(16), &script);
}

/// Found by the model: an empty parked file rotated away and deleted gave its
/// inode number to the new live file; a fingerprint over no bytes matched it,
/// its birth time did not, and the group waited for it forever (every line
/// written after that was never read).
#[test]
fn regression_a_parked_file_whose_inode_was_reborn_does_not_wait_forever() {
    let script = [
        write(0, None),
        Op::Truncate,
        Op::Park,
        Op::Rotate { gzip: false },
        Op::Rotate { gzip: true },
        write(1, None),
    ];
    let mut w = World::new(16);
    for op in &script {
        w.apply(op);
        eprintln!(
            "{op:?}: parked {} cur {:?} delivered {}",
            w.tailer.is_parked(),
            w.tailer.current_file().map(|f| f.ino),
            w.delivered.len()
        );
    }
    w.finish();
}

/// Found by the model: a live file copytruncated before the tailer read any of
/// it, then parked empty, looked unchanged for good: the copy holding its line
/// was never read (a file kept open looks for an older file at its end).
#[test]
fn regression_an_older_copy_made_before_an_empty_file_was_parked_is_read() {
    let script = [
        Op::Rotate { gzip: false },
        Op::Read {
            budget: 1,
            advance_ms: 0,
        },
        write(0, Some(0)),
        Op::CopyTruncate { gzip: false },
        Op::Park,
        Op::Truncate,
    ];
    let mut w = World::new(16);
    for op in &script {
        w.apply(op);
        eprintln!(
            "{op:?}: parked {} cur {:?} delivered {}",
            w.tailer.is_parked(),
            w.tailer.current_file().map(|f| f.ino),
            w.delivered.len()
        );
    }
    w.finish();
}

/// Found by the model: a file closed mid-read, renamed away (`.1`) meanwhile
/// and opened there again, was parked as if still live before its end of file
/// noticed the rename; unchanged at `.1`, it stayed closed for good: its last
/// line and every line of the new live file were never read.
#[test]
fn regression_a_file_found_renamed_is_not_parked_as_live() {
    let script = [
        write(0, None),
        Op::PacedStop { lines: 0 },
        Op::Write {
            lines: 3,
            payload: 5,
            crlf: true,
            tail: Some(0),
            long: false,
        },
        Op::Rotate { gzip: false },
        Op::Read {
            budget: 46,
            advance_ms: 0,
        },
        Op::PacedStop { lines: 0 },
        Op::Park,
        write(1, None),
    ];
    run_script(World::new(16), &script);
}
