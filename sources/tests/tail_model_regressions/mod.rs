//! Cases the model found, pinned as scripts (each fails without its fix).

use super::{Op, World};

fn run_script(fingerprint_bytes: usize, script: &[Op]) {
    let mut w = World::new(fingerprint_bytes);
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
    run_script(16, &script);
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
    run_script(16, &script);
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
    run_script(16, &script);
}
